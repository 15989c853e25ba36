"""The cold-chain verdict engine (pure Python) against numpy doing the same arithmetic.

A lot with 1,000,000 readings: 10 sensors × 100,000 one-minute readings (69 days), a few
excursions and gaps. coldtrail computes the whole verdict (excursions, time out of range,
degree-minutes, completeness, MKT and the worst 24 h MKT window of controlled cold);
numpy computes the same held weights, MKT, time above range, degree-minutes and worst
window with vectorised arrays. Both answers are checked equal before any figure is
printed. Medians of 3 runs.
"""

from __future__ import annotations

import math
import random
import sys
from typing import Any

from proofs import coldchain as cc

from ._harness import Table, median_rate

SENSORS = 10
PER_SENSOR = 100_000
INTERVAL_MS = 60_000
K = cc.ACTIVATION_ENERGY_K


def make_lot(sensors: int = SENSORS, per_sensor: int = PER_SENSOR) -> dict[str, Any]:
    """Plain lists, as readings come out of a ledger: ``{id: (times, values)}``."""
    rng = random.Random(12)
    lot = {}
    for s in range(sensors):
        times, values, t, temp = [], [], 0, 5.0
        for i in range(per_sensor):
            t += INTERVAL_MS + rng.randint(-500, 500)
            if i % 25_000 == 24_999:
                t += 5 * INTERVAL_MS  # a gap now and then
            temp += rng.gauss(0.0, 0.05) + (5.0 - temp) * 0.01
            if i % 30_000 == 100:
                temp = 9.5  # an excursion that decays back into range
            times.append(t)
            values.append(round(temp, 2))
        lot[f"probe-{s}"] = (times, values)
    return lot


def custody(lot: dict[str, Any]) -> tuple[int, int]:
    return 0, max(times[-1] for times, _ in lot.values()) + INTERVAL_MS


def ours(lot: dict[str, Any], profile: cc.Profile, built: dict[str, cc.Series] | None) -> Any:
    start, end = custody(lot)
    series = built or {
        sid: cc.Series(tuple(t), tuple(v), INTERVAL_MS) for sid, (t, v) in lot.items()
    }
    return cc.verdict(series, profile, start, end)


def numpy_figures(lot: dict[str, Any], profile: cc.Profile, arrays: Any = None) -> dict[str, Any]:
    """The engine's arithmetic (docs/verdicts.md), vectorised: held weights, MKT, time
    above and below range, degree-minutes, the worst window's MKT."""
    import numpy as np

    start, end = custody(lot)
    hi = math.inf if profile.high_c is None else profile.high_c
    lo = -math.inf if profile.low_c is None else profile.low_c
    window = profile.mkt_window_ms
    out = {}
    for sid, (times, values) in lot.items():
        if arrays is None:
            t = np.asarray(times, dtype=np.int64)
            v = np.asarray(values, dtype=np.float64)
        else:
            t, v = arrays[sid]
        if not (np.all(np.isfinite(v)) and np.all(np.diff(t) > 0)):
            raise ValueError("bad input")
        i0, i1 = np.searchsorted(t, start), np.searchsorted(t, end)
        t, v = t[i0:i1], v[i0:i1]
        nxt = np.append(t[1:], end)
        spacing = nxt - t
        ends = np.where(spacing > 2 * INTERVAL_MS, t + INTERVAL_MS, nxt)
        starts = t.copy()
        if t[0] - start <= 2 * INTERVAL_MS:
            starts[0] = start
        w = ends - starts
        scale = K / (v.max() + 273.15)
        x = np.exp(scale - K / (v + 273.15))
        wx = w * x
        mkt = K / (scale - math.log(wx.sum() / w.sum())) - 273.15
        above, below = v > hi, v < lo
        figures = {
            "mkt_c": mkt,
            "time_above_ms": int(w[above].sum()),
            "time_below_ms": int(w[below].sum()),
            "degree_minutes_above": float(((v[above] - hi) * w[above]).sum()) / 60_000,
            "degree_minutes_below": float(((lo - v[below]) * w[below]).sum()) / 60_000,
        }
        if window is not None and end - start > window:
            gap_at = spacing > 2 * INTERVAL_MS
            ratio = _numpy_worst_ratio(
                starts, ends, x, w, ends[gap_at], nxt[gap_at], start, end, window
            )
            figures["mkt_max_window_c"] = K / (scale - math.log(ratio)) - 273.15
        out[sid] = figures
    return out


def _numpy_worst_ratio(
    starts: Any, ends: Any, x: Any, w: Any, gap_starts: Any, gap_ends: Any,
    start: int, end: int, window: int,
) -> float:  # fmt: skip
    """The engine's candidate windows (docs/verdicts.md), all at once."""
    import numpy as np

    pn = np.concatenate(([0.0], np.cumsum(w * x)))
    pd = np.concatenate(([0], np.cumsum(w)))

    def cumulative(y: Any) -> tuple[Any, Any]:
        j = np.searchsorted(starts, y, side="right") - 1
        jj = np.maximum(j, 0)
        part = np.where(j >= 0, np.minimum(y, ends[jj]) - starts[jj], 0)
        return np.where(j >= 0, pn[jj] + x[jj] * part, 0.0), np.where(j >= 0, pd[jj] + part, 0)

    candidates = np.concatenate(
        (starts, ends - window, gap_starts, gap_ends - window, [start, end - window])
    )
    a = candidates[(candidates >= start) & (candidates <= end - window)]
    n1, d1 = cumulative(a + window)
    n0, d0 = cumulative(a)
    covered = d1 > d0
    return float(((n1 - n0)[covered] / (d1 - d0)[covered]).max())


def _agree(verdict: cc.Verdict, theirs: dict[str, Any]) -> bool:
    for f in verdict.sensors:
        want = theirs[f.sensor]
        for key, value in want.items():
            got = getattr(f, key)
            if isinstance(value, int) and got != value:
                return False
            if not math.isclose(got, value, rel_tol=1e-9, abs_tol=1e-7):
                print(f"{f.sensor} {key}: coldtrail {got!r}, numpy {value!r}", file=sys.stderr)
                return False
    return True


def run(sensors: int = SENSORS, per_sensor: int = PER_SENSOR, repeats: int = 3) -> list[float]:
    import numpy as np

    lot = make_lot(sensors, per_sensor)
    n = sensors * per_sensor
    built = {sid: cc.Series(tuple(t), tuple(v), INTERVAL_MS) for sid, (t, v) in lot.items()}
    arrays = {
        sid: (np.asarray(t, dtype=np.int64), np.asarray(v, dtype=np.float64))
        for sid, (t, v) in lot.items()
    }
    windowless = cc.Profile("cold-no-window", 1, "custom", 2.0, 8.0, mkt_limit_c=8.0)
    table = Table(
        f"Cold-chain verdict: a lot of {sensors} sensors × {per_sensor:,} readings "
        f"(median of {repeats})"
    )
    ratios = []
    for what, profile, use_built in [
        ("verdict, 24 h MKT windows", cc.CONTROLLED_COLD, True),
        ("verdict, no MKT window", windowless, True),
        ("from Python lists, 24 h windows", cc.CONTROLLED_COLD, False),
    ]:
        verdict = ours(lot, profile, built if use_built else None)
        if not _agree(verdict, numpy_figures(lot, profile, arrays if use_built else None)):
            print(f"coldtrail and numpy DISAGREE ({what}): not comparable", file=sys.stderr)
            raise SystemExit(1)

        def ours_work(p: cc.Profile = profile, b: bool = use_built) -> int:
            ours(lot, p, built if b else None)
            return n

        def numpy_work(p: cc.Profile = profile, b: bool = use_built) -> int:
            numpy_figures(lot, p, arrays if b else None)
            return n

        mine, _ = median_rate(ours_work, repeats)
        peer, _ = median_rate(numpy_work, repeats)
        ratios.append(table.add(what, mine, peer, "readings/s", None))
    table.print(f"numpy {np.__version__}")
    print(
        "  (coldtrail's verdict also finds every excursion, gap and coded reason; numpy's side "
        "computes only the figures compared)"
    )
    return ratios


if __name__ == "__main__":
    run()

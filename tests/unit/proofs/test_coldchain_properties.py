"""Properties of the verdict engine on random series, and agreement with a slow reference
written here from the rules in docs/verdicts.md (segments held reading by reading, sums
taken directly, windows tried at every millisecond), not from the engine's code."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from proofs import coldchain as cc

K = 10_000.0


@dataclass
class Case:
    times: list[int]
    values: list[float]
    interval: int
    start: int
    end: int
    low: float | None
    high: float | None


temperatures = st.floats(min_value=-40.0, max_value=60.0, allow_nan=False).map(
    lambda v: round(v, 2)
)


@st.composite
def cases(draw: st.DrawFn, max_time: int = 200) -> Case:
    times = sorted(draw(st.sets(st.integers(0, max_time), min_size=1, max_size=25)))
    values = [draw(temperatures) for _ in times]
    interval = draw(st.integers(1, 12))
    start = draw(st.integers(times[0] - 30, times[0]))
    end = draw(st.integers(times[-1] + 1, times[-1] + 40))
    # Bounds as profiles state them (tenths of a degree): a subnormal bound such as
    # 5e-324 makes a reading of 0.0 "below" by a depth whose degree-minutes underflow.
    low = draw(st.one_of(st.none(), st.floats(-20.0, 10.0).map(lambda x: round(x, 1))))
    high = draw(st.one_of(st.none(), st.floats(12.0, 40.0).map(lambda x: round(x, 1))))
    return Case(times, values, interval, start, end, low, high)


def segments(c: Case) -> list[tuple[int, int, float]]:
    """(from, to, °C) per reading in the custody: until the next reading, or one interval
    when the next is more than two intervals away; the first from the custody start when it
    is within two intervals of it."""
    inside = [(t, v) for t, v in zip(c.times, c.values, strict=True) if c.start <= t < c.end]
    out = []
    for i, (t, v) in enumerate(inside):
        nxt = inside[i + 1][0] if i + 1 < len(inside) else c.end
        begin = c.start if i == 0 and t - c.start <= 2 * c.interval else t
        finish = nxt if nxt - t <= 2 * c.interval else t + c.interval
        out.append((begin, finish, v))
    return out


def side_of(v: float, c: Case) -> str | None:
    if c.high is not None and v > c.high:
        return "above"
    if c.low is not None and v < c.low:
        return "below"
    return None


def reference(c: Case) -> dict[str, object]:
    segs = segments(c)
    above = sum(b - a for a, b, v in segs if side_of(v, c) == "above")
    below = sum(b - a for a, b, v in segs if side_of(v, c) == "below")
    dm_above = sum((b - a) * (v - c.high) for a, b, v in segs if side_of(v, c) == "above")
    dm_below = sum((b - a) * (c.low - v) for a, b, v in segs if side_of(v, c) == "below")
    runs: list[list[tuple[int, int, float]]] = []
    for seg in segs:
        s = side_of(seg[2], c)
        prev = runs[-1][-1] if runs else None
        if s and prev and side_of(prev[2], c) == s and prev[1] == seg[0]:
            runs[-1].append(seg)
        elif s:
            runs.append([seg])
    excursions = [(side_of(r[0][2], c), r[0][0], r[-1][1], len(r)) for r in runs]
    covered = sum(b - a for a, b, _ in segs)
    points = [c.start, *[x for a, b, _ in segs for x in (a, b)], c.end]
    gaps = [
        (points[i], points[i + 1]) for i in range(0, len(points), 2) if points[i] < points[i + 1]
    ]
    mkt = None
    if segs:
        total = sum(b - a for a, b, _ in segs)
        mean = sum((b - a) * math.exp(-K / (v + 273.15)) for a, b, v in segs) / total
        mkt = K / -math.log(mean) - 273.15
    return {
        "above": above,
        "below": below,
        "dm_above": dm_above / 60_000,
        "dm_below": dm_below / 60_000,
        "excursions": excursions,
        "covered": covered,
        "gaps": gaps,
        "mkt": mkt,
    }


def figures(c: Case) -> cc.SensorFigures:
    # a profile must bound one side; 1e6 °C bounds nothing a test draws
    high = 1e6 if c.low is None and c.high is None else c.high
    profile = cc.Profile("p", 1, "custom", c.low, high)
    series = cc.Series(tuple(c.times), tuple(c.values), c.interval)
    return cc.verdict({"s": series}, profile, c.start, c.end).sensors[0]


@settings(max_examples=300, deadline=None)
@given(cases())
def test_the_engine_agrees_with_the_slow_reference(c: Case) -> None:
    f, ref = figures(c), reference(c)
    assert f.time_above_ms == ref["above"] and f.time_below_ms == ref["below"]
    assert math.isclose(f.degree_minutes_above, ref["dm_above"], rel_tol=1e-9, abs_tol=1e-12)
    assert math.isclose(f.degree_minutes_below, ref["dm_below"], rel_tol=1e-9, abs_tol=1e-12)
    got = [(e.side, e.start_ms, e.end_ms, e.readings) for e in f.excursions]
    assert got == ref["excursions"]
    assert f.completeness.covered_ms == ref["covered"]
    assert [(g.start_ms, g.end_ms) for g in f.completeness.gaps] == ref["gaps"]
    if ref["mkt"] is None:
        assert f.mkt_c is None
    else:
        assert f.mkt_c is not None and math.isclose(f.mkt_c, ref["mkt"], abs_tol=1e-9)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(cases())
def test_the_books_balance(c: Case) -> None:
    f = figures(c)
    comp = f.completeness
    assert comp.covered_ms + comp.gap_ms == c.end - c.start
    assert f.time_above_ms + f.time_below_ms <= comp.covered_ms
    assert sum(e.duration_ms for e in f.excursions) == f.time_above_ms + f.time_below_ms
    # degree-minutes are zero exactly when there is no excursion
    assert (f.degree_minutes_above + f.degree_minutes_below > 0) == bool(f.excursions)
    for e in f.excursions:
        assert e.degree_minutes > 0 and e.duration_ms > 0
        inside = [v for t, v in zip(c.times, c.values, strict=True) if e.start_ms <= t < e.end_ms]
        assert e.peak_c == (max(inside) if e.side == "above" else min(inside))


def unshift(d: dict[str, Any], offset: int) -> dict[str, Any]:
    """``d`` with ``offset`` taken off every time in it (keys ending in ``start_ms`` or
    ``end_ms``); durations and everything else left as they are."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, list):
            out[key] = [unshift(v, offset) for v in value]
        elif key.endswith(("start_ms", "end_ms")) and value is not None:
            out[key] = value - offset
        else:
            out[key] = value
    return out


@settings(max_examples=300, deadline=None)
@given(cases(), st.integers(-(10**12), 10**12))
def test_shifting_every_time_changes_no_figure(c: Case, offset: int) -> None:
    before = figures(c).to_dict()
    moved = Case(
        [t + offset for t in c.times], c.values, c.interval, c.start + offset, c.end + offset,
        c.low, c.high,
    )  # fmt: skip
    after = unshift(figures(moved).to_dict(), offset)
    for key in ("mkt_c", "mean_c", "mkt_max_window_c"):  # exp of the same values: equal
        assert after.pop(key) == before.pop(key)
    assert after == before


@settings(max_examples=300, deadline=None)
@given(
    st.lists(temperatures, min_size=1, max_size=60),
    st.integers(1, 10**7),
)
def test_mkt_lies_between_the_mean_and_the_maximum(values: list[float], spacing: int) -> None:
    samples = [(i * spacing, v) for i, v in enumerate(values)]
    mkt = cc.mean_kinetic_temperature(samples, spacing)
    mean = sum(values) / len(values)  # equal spacing: equal weights
    slack = 1e-9
    assert min(values) - slack <= mkt <= max(values) + slack
    assert mkt >= mean - slack


@settings(max_examples=200, deadline=None)
@given(cases(max_time=120), st.integers(1, 80))
def test_the_worst_window_is_the_worst_of_every_window(c: Case, window: int) -> None:
    segs = segments(c)
    if not segs or c.end - c.start <= window:
        return

    def window_ratio(a: int) -> float | None:
        num = den = 0.0
        for s, e, v in segs:
            lo, hi = max(s, a), min(e, a + window)
            if hi > lo:
                num += (hi - lo) * math.exp(-K / (v + 273.15))
                den += hi - lo
        return num / den if den else None

    ratios = [r for a in range(c.start, c.end - window + 1) if (r := window_ratio(a)) is not None]
    worst = K / -math.log(max(ratios)) - 273.15
    profile = cc.Profile("p", 1, "custom", None, 1e6, mkt_window_ms=window)
    series = cc.Series(tuple(c.times), tuple(c.values), c.interval)
    f = cc.verdict({"s": series}, profile, c.start, c.end).sensors[0]
    assert f.mkt_max_window_c is not None and f.mkt_max_window_start_ms is not None
    assert math.isclose(f.mkt_max_window_c, worst, abs_tol=1e-9)
    at = window_ratio(f.mkt_max_window_start_ms)
    assert at is not None and math.isclose(K / -math.log(at) - 273.15, worst, abs_tol=1e-9)

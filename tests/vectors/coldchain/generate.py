"""Writes the cold-chain verdict vectors (``python tests/vectors/coldchain/generate.py``).

Every expected figure here is worked out by hand from the rules in docs/verdicts.md:
durations as readings × spacing, degree-minutes as minutes × degrees beyond the bound,
MKT from USP <1079.2>'s formula with explicit weights. Nothing is imported from the
engine, so the vectors check it (and its JS port) rather than describe it.
``tests/unit/proofs/test_coldchain_vectors.py`` runs them and checks this script still
writes exactly the files that are checked in.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR
WEEK = 7 * DAY
TOLERANCE = 1e-9  # °C and °C·min: floats are compared to this; times and counts exactly

CONTROLLED_COLD = {
    "type": "coldchain-profile", "v": 1, "name": "controlled-cold", "version": 1,
    "kind": "controlled-cold", "low_c": 2, "high_c": 8, "allowed_low_c": None,
    "allowed_high_c": None, "mkt_limit_c": 8, "mkt_window_ms": DAY,
}  # fmt: skip
CONTROLLED_ROOM = {
    "type": "coldchain-profile", "v": 1, "name": "controlled-room", "version": 1,
    "kind": "controlled-room", "low_c": 20, "high_c": 25, "allowed_low_c": 15,
    "allowed_high_c": 30, "mkt_limit_c": 25, "mkt_window_ms": 30 * DAY,
}  # fmt: skip
FROZEN = {
    "type": "coldchain-profile", "v": 1, "name": "frozen", "version": 1, "kind": "frozen",
    "low_c": None, "high_c": -18, "allowed_low_c": None, "allowed_high_c": None,
    "mkt_limit_c": None, "mkt_window_ms": None,
}  # fmt: skip
USP_CCT_WITH_EXCURSIONS = {
    **CONTROLLED_COLD, "name": "usp-cct-with-excursions", "kind": "custom",
    "allowed_low_c": 0, "allowed_high_c": 15,
}  # fmt: skip


def mkt(weighted: list[tuple[float, float]]) -> float:
    """USP <1079.2>: (ΔH/R) / -ln(Σ w·exp(-(ΔH/R)/T) / Σ w) - 273.15, ΔH/R = 10,000 K."""
    total = sum(w for w, _ in weighted)
    mean = sum(w * math.exp(-10_000 / (t + 273.15)) for w, t in weighted) / total
    return 10_000 / -math.log(mean) - 273.15


def equal(temps: list[float]) -> float:
    return mkt([(1, t) for t in temps])


def digest(profile: dict[str, Any]) -> str:
    # These profiles hold only integers, null and ASCII strings, where sorted compact JSON
    # is RFC 8785's canonical form.
    import hashlib

    text = json.dumps(profile, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def hourly(values: list[float], t0: int = 0, step: int = HOUR) -> list[list[float]]:
    return [[t0 + i * step, v] for i, v in enumerate(values)]


def excursion(side: str, start: int, end: int, peak: float, dm: float, n: int,
              before: bool = False, after: bool = False) -> dict[str, Any]:  # fmt: skip
    return {
        "side": side, "start_ms": start, "end_ms": end, "duration_ms": end - start,
        "peak_c": peak, "degree_minutes": dm, "readings": n, "gap_before": before,
        "gap_after": after,
    }  # fmt: skip


def gap(start: int, end: int) -> dict[str, int]:
    return {"start_ms": start, "end_ms": end, "duration_ms": end - start}


def sensor(
    *, readings: int, min_c: float, max_c: float, mean_c: float, mkt_c: float,
    mkt_max_window_c: float, above: int = 0, below: int = 0, above_allowed: int | None = None,
    below_allowed: int | None = None, dm_above: float = 0.0, dm_below: float = 0.0,
    excursions: list[dict[str, Any]] | None = None, covered: int, gaps: list[dict[str, int]]
    | None = None, window_start: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    out = {
        "readings": readings, "min_c": min_c, "max_c": max_c, "mean_c": mean_c,
        "mkt_c": mkt_c, "mkt_max_window_c": mkt_max_window_c, "time_above_ms": above,
        "time_below_ms": below,
        "time_above_allowed_ms": above if above_allowed is None else above_allowed,
        "time_below_allowed_ms": below if below_allowed is None else below_allowed,
        "degree_minutes_above": dm_above, "degree_minutes_below": dm_below,
        "excursions": excursions or [], "covered_ms": covered,
        "gap_ms": sum(g["duration_ms"] for g in gaps or []), "gaps": gaps or [],
    }  # fmt: skip
    if window_start is not None:
        out["mkt_max_window_start_ms"] = window_start
    return out


def verdict_vector(
    description: str,
    profile: dict[str, Any],
    start: int,
    end: int,
    sensors: dict[str, tuple[int, list[list[float]]]],
    status: str,
    reasons: list[list[str]],
    figures: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    return {
        "kind": "verdict",
        "description": description,
        "rules": "coldtrail-coldchain/1",
        "tolerance": TOLERANCE,
        "input": {
            "profile": profile,
            "custody_start_ms": start,
            "custody_end_ms": end,
            "sensors": {
                sid: {"interval_ms": interval, "samples": samples}
                for sid, (interval, samples) in sensors.items()
            },
        },
        "expected": {
            "status": status,
            "profile_digest": digest(profile),
            "reasons": reasons,
            "sensors": figures,
        },
    }


def vectors() -> dict[str, dict[str, Any]]:
    v: dict[str, dict[str, Any]] = {}

    temps = [12.0 if h in (10, 11, 12) else 5.0 for h in range(24)]
    v["hourly-logger-3h-excursion"] = verdict_vector(
        "An hourly logger at 2-8 °C with one 3-hour excursion to 12 °C: 3 h, 3 × 60 min × "
        "4 °C = 720 °C·min; an hourly logger is complete.",
        CONTROLLED_COLD, 0, DAY, {"probe-1": (HOUR, hourly(temps))},
        "fail", [["excursion-above", "fail", "probe-1"]],
        {"probe-1": sensor(
            readings=24, min_c=5.0, max_c=12.0, mean_c=(21 * 5 + 3 * 12) / 24,
            mkt_c=equal(temps), mkt_max_window_c=equal(temps), window_start=0,
            above=3 * HOUR, dm_above=3 * 60 * 4.0,
            excursions=[excursion("above", 10 * HOUR, 13 * HOUR, 12.0, 720.0, 3)],
            covered=DAY,
        )},
    )  # fmt: skip

    temps = [4.0, 6.0] * 12
    v["hourly-logger-pass"] = verdict_vector(
        "24 hourly readings alternating 4 and 6 °C: in range, complete, pass.",
        CONTROLLED_COLD, 0, DAY, {"logger-1": (HOUR, hourly(temps))}, "pass", [],
        {"logger-1": sensor(
            readings=24, min_c=4.0, max_c=6.0, mean_c=5.0, mkt_c=equal(temps),
            mkt_max_window_c=equal(temps), window_start=0, covered=DAY,
        )},
    )  # fmt: skip

    samples = [[h * HOUR, 5.0] for h in range(24) if h not in (10, 11, 12)]
    v["gap-makes-indeterminate"] = verdict_vector(
        "No reading from 10:00 to 13:00 on an hourly logger (4 h apart, more than twice the "
        "interval): 09:00 holds one hour, 10:00-13:00 is a gap, the verdict indeterminate.",
        CONTROLLED_COLD, 0, DAY, {"logger-1": (HOUR, samples)},
        "indeterminate", [["coverage-gap", "indeterminate", "logger-1"]],
        {"logger-1": sensor(
            readings=21, min_c=5.0, max_c=5.0, mean_c=5.0, mkt_c=5.0, mkt_max_window_c=5.0,
            window_start=0, covered=21 * HOUR, gaps=[gap(10 * HOUR, 13 * HOUR)],
        )},
    )  # fmt: skip

    minutes = [0, 10, 20, 120, 130, 140, 150, 160, 170]
    temps = [5.0, 5.0, 12.0, 12.0, 5.0, 5.0, 5.0, 5.0, 5.0]
    v["excursion-reaches-a-gap"] = verdict_vector(
        "A 10-minute logger reads 12 °C at 00:20 and nothing until 02:00 (12 °C again): no "
        "interpolation across the gap; the first excursion ends one interval after its "
        "reading, the second may have begun in the gap.",
        CONTROLLED_COLD, 0, 3 * HOUR,
        {"probe-7": (10 * MIN, [[m * MIN, t] for m, t in zip(minutes, temps, strict=True)])},
        "fail",
        [["excursion-above", "fail", "probe-7"], ["coverage-gap", "indeterminate", "probe-7"]],
        {"probe-7": sensor(
            readings=9, min_c=5.0, max_c=12.0, mean_c=(7 * 5 + 2 * 12) / 9,
            mkt_c=equal(temps), mkt_max_window_c=equal(temps), window_start=0,
            above=20 * MIN, dm_above=2 * 10 * 4.0,
            excursions=[
                excursion("above", 20 * MIN, 30 * MIN, 12.0, 40.0, 1, after=True),
                excursion("above", 120 * MIN, 130 * MIN, 12.0, 40.0, 1, before=True),
            ],
            covered=90 * MIN, gaps=[gap(30 * MIN, 120 * MIN)],
        )},
    )  # fmt: skip

    temps = [22.0] * 240 + [28.0] * 48
    v["controlled-room-permitted-excursion"] = verdict_vector(
        "Ten days at 22 °C then two at 28 °C: outside 20-25 but inside the permitted "
        "15-30, and the MKT (the custody is shorter than the 30-day window) stays <= 25.",
        CONTROLLED_ROOM, 0, 12 * DAY, {"room": (HOUR, hourly(temps))},
        "pass", [["excursion-allowed", "pass", "room"]],
        {"room": sensor(
            readings=288, min_c=22.0, max_c=28.0, mean_c=23.0, mkt_c=equal(temps),
            mkt_max_window_c=equal(temps), window_start=0, above=48 * HOUR,
            above_allowed=0, dm_above=48 * 60 * 3.0,
            excursions=[excursion("above", 240 * HOUR, 288 * HOUR, 28.0, 48 * 60 * 3.0, 48)],
            covered=12 * DAY,
        )},
    )  # fmt: skip

    temps = [22.0] * 144 + [29.0] * 144
    v["controlled-room-mkt-above-25"] = verdict_vector(
        "Six days at 22 °C then six at 29 °C: every reading is permitted, the MKT is not.",
        CONTROLLED_ROOM, 0, 12 * DAY, {"room": (HOUR, hourly(temps))},
        "fail", [["excursion-allowed", "pass", "room"], ["mkt-above-limit", "fail", "room"]],
        {"room": sensor(
            readings=288, min_c=22.0, max_c=29.0, mean_c=25.5, mkt_c=equal(temps),
            mkt_max_window_c=equal(temps), window_start=0, above=144 * HOUR,
            above_allowed=0, dm_above=144 * 60 * 4.0,
            excursions=[excursion("above", 144 * HOUR, 288 * HOUR, 29.0, 144 * 60 * 4.0, 144)],
            covered=12 * DAY,
        )},
    )  # fmt: skip

    temps = [15.0 if 20 <= h < 26 else 5.0 for h in range(48)]
    v["worst-24-hours-straddles-midnight"] = verdict_vector(
        "USP controlled cold with its 0-15 °C allowance (a custom profile): 15 °C from 20:00 "
        "to 02:00. The worst 24 h holds 18 h at 5 °C and 6 h at 15 °C, above the 8 °C MKT "
        "limit; calendar days and the whole 48 h would pass. (The worst window's start is "
        "not compared: every window holding the spell ties.)",
        USP_CCT_WITH_EXCURSIONS, 0, 2 * DAY, {"truck-07": (HOUR, hourly(temps))},
        "fail",
        [["excursion-allowed", "pass", "truck-07"], ["mkt-above-limit", "fail", "truck-07"]],
        {"truck-07": sensor(
            readings=48, min_c=5.0, max_c=15.0, mean_c=(42 * 5 + 6 * 15) / 48,
            mkt_c=equal(temps), mkt_max_window_c=equal([5.0] * 18 + [15.0] * 6),
            above=6 * HOUR, above_allowed=0, dm_above=6 * 60 * 7.0,
            excursions=[excursion("above", 20 * HOUR, 26 * HOUR, 15.0, 2520.0, 6)],
            covered=2 * DAY,
        )},
    )  # fmt: skip

    temps = [-15.0 if 6 <= i < 12 else -20.0 for i in range(24)]
    v["frozen-warms-for-30-minutes"] = verdict_vector(
        "A 5-minute logger in a freezer at -20 °C warms to -15 °C for 30 minutes: "
        "30 min × 3 °C = 90 °C·min above -18 °C. Frozen has no MKT window.",
        FROZEN, 0, 2 * HOUR, {"freezer-2": (5 * MIN, hourly(temps, step=5 * MIN))},
        "fail", [["excursion-above", "fail", "freezer-2"]],
        {"freezer-2": sensor(
            readings=24, min_c=-20.0, max_c=-15.0, mean_c=(18 * -20 + 6 * -15) / 24,
            mkt_c=equal(temps), mkt_max_window_c=equal(temps), window_start=0,
            above=30 * MIN, dm_above=90.0,
            excursions=[excursion("above", 30 * MIN, 60 * MIN, -15.0, 90.0, 6)],
            covered=2 * HOUR,
        )},
    )  # fmt: skip

    v["worst-sensor-decides"] = verdict_vector(
        "Two sensors: 'a' complete; 'b' stops after 11:00 (it holds one interval, then a "
        "trailing gap) and starts 3 h after the custody (a leading gap).",
        CONTROLLED_COLD, 0, DAY,
        {"a": (HOUR, hourly([5.0] * 24)), "b": (HOUR, hourly([6.0] * 9, t0=3 * HOUR))},
        "indeterminate", [["coverage-gap", "indeterminate", "b"]],
        {
            "a": sensor(readings=24, min_c=5.0, max_c=5.0, mean_c=5.0, mkt_c=5.0,
                        mkt_max_window_c=5.0, window_start=0, covered=DAY),
            "b": sensor(readings=9, min_c=6.0, max_c=6.0, mean_c=6.0, mkt_c=6.0,
                        mkt_max_window_c=6.0, window_start=0, covered=9 * HOUR,
                        gaps=[gap(0, 3 * HOUR), gap(12 * HOUR, DAY)]),
        },
    )  # fmt: skip

    weekly = [round(22.0 + 4.5 * math.sin(2 * math.pi * (k - 13) / 52), 1) for k in range(52)]
    for name, description, samples, interval, expected in [
        (
            "mkt-52-weekly-averages",
            "USP <1079.2>'s own kind of example: 52 weekly averages, equal weights.",
            [[k * WEEK, t] for k, t in enumerate(weekly)], None, equal(weekly),
        ),
        (
            "mkt-irregular-spacing",
            "Spacings 1 h and 2 h: the learned interval is 1 h (the lower median); 2 h is "
            "not a gap; weights 1, 2, 1.",
            [[0, 4.0], [HOUR, 12.0], [3 * HOUR, 6.0]], None,
            mkt([(1, 4.0), (2, 12.0), (1, 6.0)]),
        ),
        (
            "mkt-reading-before-a-gap",
            "A 15-minute logger stops for 5 h: the reading before the gap weighs one "
            "interval, not the gap.",
            [[0, 10.0], [15 * MIN, 2.0], [315 * MIN, 10.0]], 15 * MIN,
            equal([10.0, 2.0, 10.0]),
        ),
        (
            "mkt-two-temperatures",
            "20 °C and 30 °C for an hour each.",
            [[0, 20.0], [HOUR, 30.0]], None, equal([20.0, 30.0]),
        ),
    ]:  # fmt: skip
        v[name] = {
            "kind": "mkt",
            "description": description,
            "rules": "coldtrail-coldchain/1",
            "tolerance": TOLERANCE,
            "input": {"samples": samples, "interval_ms": interval},
            "expected": {"mkt_c": expected},
        }

    good = verdict_vector("", CONTROLLED_COLD, 0, DAY, {"a": (HOUR, hourly([5.0] * 3))},
                          "pass", [], {})["input"]  # fmt: skip
    for name, description, change, code in [
        ("error-unsorted-times", "Samples out of time order.",
         {"sensors": {"a": {"interval_ms": HOUR, "samples": [[0, 5.0], [2, 5.0], [1, 5.0]]}}},
         "samples-unsorted"),
        ("error-duplicate-time", "Two samples at one time.",
         {"sensors": {"a": {"interval_ms": HOUR, "samples": [[0, 5.0], [0, 6.0]]}}},
         "samples-duplicate-time"),
        ("error-zero-interval", "A sampling interval of 0 ms.",
         {"sensors": {"a": {"interval_ms": 0, "samples": [[0, 5.0]]}}}, "bad-interval"),
        ("error-empty-profile-range", "A profile whose low bound is above its high bound.",
         {"profile": {**CONTROLLED_COLD, "low_c": 9}}, "profile-bad-range"),
        ("error-custody-backwards", "A custody that ends before it starts.",
         {"custody_start_ms": DAY, "custody_end_ms": 0}, "custody-bad-window"),
    ]:  # fmt: skip
        v[name] = {
            "kind": "error",
            "description": description,
            "rules": "coldtrail-coldchain/1",
            "input": {**good, **change},
            "expected": {"error": code},
        }
    return v


def render(vector: dict[str, Any]) -> str:
    return json.dumps(vector, indent=1, ensure_ascii=False) + "\n"


def main() -> int:
    for old in HERE.glob("*.json"):
        old.unlink()
    for name, vector in vectors().items():
        (HERE / f"{name}.json").write_text(render(vector), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A lot's verdict over its custody legs (proofs.coldchain.lot_verdict) and its check in
a bundle (proofs.bundle.check_verdict), against values worked out by hand."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from proofs.bundle import check_verdict
from proofs.coldchain import (
    CONTROLLED_COLD,
    CONTROLLED_ROOM,
    FROZEN,
    HANDOVER_GAP_MS,
    LONE_READING_INTERVAL_MS,
    Leg,
    Profile,
    Reason,
    lot_verdict,
    sensor_id,
)
from proofs.errors import FormatError, VerificationError
from proofs.records import ClockEvidence, Reading

MIN = 60_000
T0 = 1_795_000_000_000


def _steady(start: int, n: int, value: float, every: int = 5 * MIN) -> list[tuple[int, float]]:
    return [(start + i * every, value) for i in range(n)]


def test_two_legs_joined_without_a_gap_pass_and_sum_time_out_of_range() -> None:
    truck = Leg("truck-7", T0, T0 + 60 * MIN, {"gw/p1": _steady(T0, 12, 5.0)})
    room = Leg(
        "room-3",
        T0 + 60 * MIN,
        T0 + 120 * MIN,
        {"gw2/p2": [*_steady(T0 + 60 * MIN, 6, 4.0), *_steady(T0 + 90 * MIN, 6, 9.0)]},
    )
    lot = lot_verdict([truck, room], CONTROLLED_COLD)
    assert lot.status == "fail"
    # 6 readings of 9 °C, each held 5 min until the next (the last until the leg's end).
    assert lot.time_out_of_range_ms == 30 * MIN
    assert [r.code for r in lot.reasons] == ["excursion-above"]
    [(_, room_v)] = [leg for leg in lot.legs if leg[0] == "room-3"]
    assert room_v.sensors[0].degree_minutes_above == pytest.approx(30.0)  # 1 °C × 30 min


def test_a_long_hand_over_is_a_custody_gap() -> None:
    a = Leg("truck-7", T0, T0 + 60 * MIN, {"gw/p1": _steady(T0, 12, 5.0)})
    late = T0 + 60 * MIN + HANDOVER_GAP_MS + 1
    b = Leg("room-3", late, late + 60 * MIN, {"gw2/p2": _steady(late, 12, 5.0)})
    lot = lot_verdict([a, b], CONTROLLED_COLD)
    assert lot.status == "indeterminate"
    assert [r.code for r in lot.notes] == ["custody-gap"]
    on_time = Leg(
        "room-3", T0 + 90 * MIN, T0 + 150 * MIN, {"gw2/p2": _steady(T0 + 90 * MIN, 12, 5)}
    )
    assert lot_verdict([a, on_time], CONTROLLED_COLD).status == "pass"  # exactly 30 min


def test_the_interval_is_learned_over_all_legs_and_a_lone_reading_gets_15_minutes() -> None:
    # One reading per leg at 10-minute spacing across the legs: learned as 10 min.
    legs = [
        Leg(
            f"h{i}",
            T0 + i * 10 * MIN,
            T0 + (i + 1) * 10 * MIN,
            {"gw/p": [(T0 + i * 10 * MIN, 5.0)]},
        )
        for i in range(3)
    ]
    lot = lot_verdict(legs, CONTROLLED_COLD)
    assert {s.interval_ms for _, v in lot.legs for s in v.sensors} == {10 * MIN}
    assert lot.status == "pass"
    lone = lot_verdict([Leg("h", T0, T0 + 20 * MIN, {"gw/q": [(T0, 5.0)]})], CONTROLLED_COLD)
    assert lone.legs[0][1].sensors[0].interval_ms == LONE_READING_INTERVAL_MS
    # 15 min interval: a 20-min leg with one reading at its start is covered (<= 2 × 15).
    assert lone.status == "pass"


def test_of_two_readings_at_one_time_the_worse_stands_whatever_the_order() -> None:
    for pair in ([(T0, 5.0), (T0, 12.0)], [(T0, 12.0), (T0, 5.0)]):
        leg = Leg("h", T0, T0 + 10 * MIN, {"gw/p": [*pair, (T0 + 5 * MIN, 5.0)]})
        lot = lot_verdict([leg], CONTROLLED_COLD)
        assert lot.legs[0][1].sensors[0].max_c == 12.0 and lot.status == "fail"


def test_impossible_readings_are_set_aside_and_said() -> None:
    readings = [
        (T0, 5.0),
        (T0 + 5 * MIN, -300.0),
        (T0 + 10 * MIN, float("inf")),
        (T0 + 15 * MIN, 5),
    ]
    lot = lot_verdict([Leg("h", T0, T0 + 20 * MIN, {"gw/p": readings})], CONTROLLED_COLD)
    assert lot.status == "indeterminate"
    [note] = [r for r in lot.reasons if r.code == "impossible-reading"]
    assert note.sensor == "gw/p" and "2 reading(s)" in note.message
    assert lot.legs[0][1].sensors[0].readings == 2


def test_notes_can_only_cast_doubt_and_no_leg_is_no_custody() -> None:
    leg = Leg("h", T0, T0 + 10 * MIN, {"gw/p": _steady(T0, 2, 5.0)})
    with pytest.raises(FormatError):
        lot_verdict([leg], CONTROLLED_COLD, [Reason("x", "fail", "no")])
    doubt = Reason("clock-evidence", "indeterminate", "1 record(s) without NTP")
    assert lot_verdict([leg], CONTROLLED_COLD, [doubt]).status == "indeterminate"
    assert [r.code for r in lot_verdict([], FROZEN).reasons] == ["no-custody"]


def test_sensor_ids_stay_identifiers() -> None:
    assert sensor_id("gw-1", "probe-1") == "gw-1/probe-1"
    long = sensor_id("g" * 100, "s" * 100)
    assert len(long) <= 128 and long.startswith("g" * 80 + "/")


def test_profile_dispositions_default_and_own_and_leave_standard_digests_alone() -> None:
    assert CONTROLLED_COLD.disposition_for("fail") == "quarantine"
    assert "dispositions" not in CONTROLLED_COLD.to_dict()
    strict = Profile.from_dict({**CONTROLLED_ROOM.to_dict(), "dispositions": {"fail": "reject"}})
    assert strict.disposition_for("fail") == "reject"
    assert strict.disposition_for("indeterminate") == "needs-review"
    assert strict.digest() != CONTROLLED_ROOM.digest()
    with pytest.raises(FormatError) as e:
        Profile.from_dict({**CONTROLLED_ROOM.to_dict(), "dispositions": {"fail": "eat"}})
    assert e.value.code == "profile-bad-dispositions"


# --- the check in a bundle ----------------------------------------------------------------


def _reading(seq: int, t: int, val: float, *, src: str = "p1", asset: str = "truck-7") -> Reading:
    return Reading(
        gw="gw", seq=seq, src=src, t=t, clk=ClockEvidence(mono_us=seq, boot="b", sync=True),
        salt="00" * 16, asset=asset, q="temperature", val=val, unit="CEL",
    )  # fmt: skip


def _subject(records: list[Reading], *, complete: bool = True) -> dict[str, Any]:
    readings: dict[str, list[tuple[int, float]]] = {}
    for r in records:
        readings.setdefault(sensor_id(r.gw, r.src), []).append((r.t, r.val))
    lot = lot_verdict([Leg("truck-7", T0, T0 + 60 * MIN, readings)], CONTROLLED_COLD)
    claim = {**lot.to_dict(), "complete": complete, "readings": len(records)}
    return {"gtin": "09506000134352", "lot": "L1", "profile": CONTROLLED_COLD.to_dict(),
            "verdict": claim}  # fmt: skip


def test_a_complete_claim_is_recomputed_and_any_changed_figure_refused() -> None:
    records = [_reading(i, T0 + i * 5 * MIN, 9.0 if i == 3 else 5.0) for i in range(12)]
    subject = _subject(records)
    mine = check_verdict(subject, records)
    assert mine is not None and mine.status == "fail"
    lying = copy.deepcopy(subject)
    lying["verdict"]["status"] = "pass"
    lying["verdict"]["legs"][0]["verdict"]["status"] = "pass"
    lying["verdict"]["legs"][0]["verdict"]["reasons"] = []
    with pytest.raises(VerificationError) as e:
        check_verdict(lying, records)
    assert e.value.code == "verdict-mismatch"
    shorter = copy.deepcopy(subject)
    shorter["verdict"]["legs"][0]["verdict"]["sensors"][0]["time_above_ms"] = 60_000
    with pytest.raises(VerificationError, match="time_above_ms"):
        check_verdict(shorter, records)
    # A reading the bundle proves but the verdict left out (another sensor on the truck).
    hidden = [*records, _reading(99, T0 + 7 * MIN, 15.0, src="p2")]
    with pytest.raises(VerificationError, match="left out"):
        check_verdict(subject, hidden)
    other = copy.deepcopy(subject)
    other["profile"] = FROZEN.to_dict()
    with pytest.raises(VerificationError, match="another profile"):
        check_verdict(other, records)


def test_a_partial_claim_must_agree_with_every_proven_reading() -> None:
    records = [_reading(i, T0 + i * 5 * MIN, 5.0) for i in range(12)]
    subject = _subject(records, complete=False)
    assert check_verdict(subject, records) is None  # checked, not recomputed
    warm = [*records[:-1], _reading(11, T0 + 55 * MIN, 30.0)]
    with pytest.raises(VerificationError) as e:
        check_verdict(subject, warm)  # a proven 30 °C reading, yet "pass"
    assert e.value.code == "verdict-mismatch"

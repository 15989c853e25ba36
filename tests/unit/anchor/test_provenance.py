"""Provenance logic over the in-memory twin: custody, joins, verdicts, gaps, clocks, bundles."""

from __future__ import annotations

import itertools
import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anchor.errors import AnchorError
from anchor.ledger.model import StoredDocument
from anchor.provenance.answer import (
    ColdChainRange,
    ProvenanceConfig,
    Subject,
    analyse_series,
    answer_for_subject,
    assemble_bundle,
    build_custody,
    chart_points,
    find_clock_anomalies,
    gs1_check_digit_ok,
    parse_gtin,
)
from anchor.provenance.source import ReadingPoint
from proofs.bundle import verify_bundle
from proofs.coldchain import FROZEN
from proofs.documents import DocumentEntry, describe_file, sensor_spans
from proofs.errors import VerificationError
from proofs.records import ClockEvidence, Scan, new_salt
from support.provenance_fixtures import GTIN, LOT, MIN, T0, Journey, standard_journey

# An hour after the cold room's last reading: its open custody is judged up to now less
# the upload grace (an hour), so the journey's readings cover all of it.
NOW = T0 + 9 * 3_600_000


def _scan(t: int, step: str, asset: str, seq: int) -> Scan:
    return Scan(
        gw="gw-" + asset,
        seq=seq,
        src="s",
        t=t,
        clk=ClockEvidence(t * 1000, "b", True),
        salt=new_salt(os.urandom(16)),
        asset=asset,
        raw="x",
        sym="",
        gs1={"01": GTIN},
        step=step,
        rp="",
    )


def _point(
    t: int,
    val: float,
    *,
    seq: int,
    src: str = "p",
    sync: bool = True,
    mono_t: int | None = None,
    boot: str = "b",
) -> ReadingPoint:
    mono = (mono_t if mono_t is not None else t) * 1_000  # µs
    return ReadingPoint("gw", seq, src, "truck", t, "temperature", val, "CEL", sync, boot, mono)


# --- identifiers --------------------------------------------------------------------------


def test_gtin_check_digit_and_padding() -> None:
    assert gs1_check_digit_ok(GTIN)
    assert parse_gtin("9506000134352") == GTIN  # GTIN-13 padded to 14 as scans carry it
    with pytest.raises(AnchorError) as e:
        parse_gtin("09506000134353")
    assert e.value.code == "bad-gtin"


@pytest.mark.parametrize("lot", ["..", "../etc", "a/../b", "a//b", "x" * 21, "lot\n", "lot space"])
def test_lot_refuses_traversal_and_garbage(lot: str) -> None:
    with pytest.raises(AnchorError) as e:
        Subject.for_lot(GTIN, lot)
    assert e.value.code in {"bad-lot", "path-traversal"}


def test_lot_accepts_the_gs1_character_set() -> None:
    assert Subject.for_lot(GTIN, "A-1/2.3_x%'()").lot == "A-1/2.3_x%'()"


# --- custody ------------------------------------------------------------------------------


def test_custody_from_packing_loading_unloading_receiving() -> None:
    scans = [
        _scan(T0, "packing", "line-4", 1),
        _scan(T0 + 10, "packing", "line-4", 2),  # a re-scan at the same holder is no transfer
        _scan(T0 + 100, "loading", "truck-07", 3),
        _scan(T0 + 200, "unloading", "coldroom-3", 4),  # hand-over into the cold room
        _scan(T0 + 210, "receiving", "coldroom-3", 5),
        _scan(T0 + 220, "inspecting", "coldroom-3", 6),
    ]
    intervals, loose = build_custody(list(reversed(scans)))  # order of input does not matter
    assert [(i.holder, i.start, i.end) for i in intervals] == [
        ("line-4", T0, T0 + 100),
        ("truck-07", T0 + 100, T0 + 200),
        ("coldroom-3", T0 + 200, None),
    ]
    assert [s.seq for s in intervals[0].events] == [2]
    assert [s.seq for s in intervals[2].events] == [5, 6]
    assert loose == []


def test_every_case_unloaded_into_a_holder_belongs_to_one_hand_over() -> None:
    intervals, loose = build_custody(
        [
            _scan(T0, "loading", "truck-07", 1),
            _scan(T0 + 100, "unloading", "coldroom-3", 2),  # first case: hand-over
            _scan(T0 + 105, "unloading", "coldroom-3", 3),  # the next cases of the pallet
            _scan(T0 + 110, "unloading", "coldroom-3", 4),
            _scan(T0 + 120, "receiving", "coldroom-3", 5),
        ]
    )
    assert [(i.holder, i.start, i.end) for i in intervals] == [
        ("truck-07", T0, T0 + 100),
        ("coldroom-3", T0 + 100, None),
    ]
    assert [s.seq for s in intervals[1].events] == [3, 4, 5]
    assert loose == []


def test_unloading_by_the_holder_itself_closes_custody_until_the_next_scan() -> None:
    intervals, loose = build_custody(
        [
            _scan(T0, "loading", "truck-07", 1),
            _scan(T0 + 50, "unloading", "truck-07", 2),
            _scan(T0 + 90, "receiving", "dc-1", 3),
            _scan(T0 + 95, "shipping", "elsewhere", 4),  # not the holder: shown, changes nothing
        ]
    )
    assert [(i.holder, i.start, i.end) for i in intervals] == [
        ("truck-07", T0, T0 + 50),
        ("dc-1", T0 + 90, None),
    ]
    assert [s.seq for s in loose] == [4]


# --- readings ---------------------------------------------------------------------------


def test_series_aggregates_and_runs_of_out_of_range_readings() -> None:
    chilled = ColdChainRange(2.0, 8.0)
    vals = [4.0, 5.0, 9.0, 10.0, 6.0, 1.0, 5.0]
    points = [_point(T0 + i * 5 * MIN, v, seq=i + 1) for i, v in enumerate(vals)]
    a = analyse_series(points, chilled, T0, T0 + 35 * MIN)
    s = a.stats["temperature"]
    assert (s.count, s.min.val if s.min else None, s.max.val if s.max else None) == (7, 1.0, 10.0)
    assert s.mean == pytest.approx(sum(vals) / 7)
    assert [(e.start, e.end, e.count, e.peak.val) for e in a.excursions] == [
        (T0 + 10 * MIN, T0 + 20 * MIN, 2, 10.0),
        (T0 + 25 * MIN, T0 + 30 * MIN, 1, 1.0),
    ]


def test_an_hourly_logger_is_complete_and_its_excursion_lasts_its_true_duration() -> None:
    # The old range check called an hourly logger "silent" (900 s) and capped time out of
    # range at 15 min per reading; the engine holds each reading until the next one.
    j = Journey()
    j.gateway("room-gw", "cool", "room-1")
    j.scan("room-gw", T0, "storing")
    j.readings("room-gw", T0, T0 + 24 * 60 * MIN, 60 * MIN, lambda i, t: 9.0 if i in (5, 6) else 5)
    j.scan("room-gw", T0 + 24 * 60 * MIN, "shipping")
    answer = answer_for_subject(
        j.publish_memory(), Subject.for_lot(GTIN, LOT), ProvenanceConfig(), NOW
    )
    [(_, exc)] = answer.excursions()
    assert exc.duration_ms == 120 * MIN and exc.peak_c == 9.0
    assert answer.verdict.lot.time_out_of_range_ms == 120 * MIN
    assert answer.overall["temperature"].above_ms == 120 * MIN
    assert answer.verdict.status == "fail"
    # No calibration certificate is registered: the verdict says so, and still fails
    # on the readings alone (require_calibration is off).
    assert [(r.code, r.status) for r in answer.verdict.lot.reasons] == [
        ("excursion-above", "fail"),
        ("calibration-missing", "pass"),
    ]
    [leg] = answer.intervals
    assert [f.interval_ms for f in leg.sensors()] == [60 * MIN]  # learned, no gap


def test_clock_anomalies_unsynced_1970_and_jump() -> None:
    points = [
        _point(T0, 4.0, seq=1),
        _point(T0 + MIN, 4.0, seq=2, sync=False),
        _point(T0 + 2 * MIN, 4.0, seq=3),
        # the wall clock leapt an hour ahead while the monotonic clock moved one minute
        _point(T0 + 63 * MIN, 4.0, seq=4, mono_t=T0 + 3 * MIN),
        _point(5_000, 4.0, seq=5, boot="other"),
    ]
    found = {(a.kind, a.seq) for a in find_clock_anomalies(points, 60_000)}
    assert found == {("unsynced-clock", 2), ("clock-jump", 4), ("implausible-wall-clock", 5)}


def test_chart_points_keep_each_buckets_extremes() -> None:
    points = [_point(T0 + i * MIN, 4.0 + (20.0 if i == 537 else 0.0), seq=i) for i in range(2000)]
    kept = chart_points(points, "temperature", 100)
    assert len(kept) <= 100
    assert max(p.val for p in kept) == 24.0


# --- whole answers ---------------------------------------------------------------------


def test_answer_joins_custody_with_readings_on_the_same_asset() -> None:
    source = standard_journey().publish_memory()
    answer = answer_for_subject(source, Subject.for_lot(GTIN, LOT), ProvenanceConfig(), NOW)
    assert [i.custody.holder for i in answer.intervals] == ["line-4", "truck-07", "coldroom-3"]
    counts = [i.analysis.stats["temperature"].count for i in answer.intervals]
    # line-4 readings before packing are not the lot's; the truck's after unloading neither
    assert counts == [12, 48, 36]
    assert answer.verdict.status == "pass"
    t = answer.overall["temperature"]
    assert (t.min.val if t.min else None, t.max.val if t.max else None) == (2.8, 4.9)
    doc = answer.to_json()
    assert doc["verdict"]["status"] == "pass"
    assert "readings" not in doc  # aggregates only in the public answer
    json.dumps(doc, allow_nan=False)


def test_excursion_fails_the_verdict_and_is_proven() -> None:
    source = standard_journey(excursion=True).publish_memory()
    answer = answer_for_subject(source, Subject.for_lot(GTIN, LOT), ProvenanceConfig(), NOW)
    assert answer.verdict.status == "fail"
    [(_, exc)] = answer.excursions()
    assert (exc.start_ms, exc.readings, exc.peak_c) == (T0 + 150 * MIN, 5, 10.0)
    assert exc.duration_ms == 25 * MIN  # five 5-minute readings, each held until the next
    assert answer.verdict.complete  # every reading it rests on is proven in the bundle
    assert len(answer.proof_keys) >= answer.verdict.readings


def test_gaps_and_clock_problems_make_the_verdict_indeterminate() -> None:
    j = standard_journey()
    j.gap("truck-07-gw", T0 + 200 * MIN, "silent-sensor", "probe-truck-07-gw silent 10 min")
    j.reading("truck-07-gw", T0 + 201 * MIN, 4.4, sync=False)
    answer = answer_for_subject(
        j.publish_memory(), Subject.for_lot(GTIN, LOT), ProvenanceConfig(), NOW
    )
    assert answer.verdict.status == "indeterminate"
    assert {r.code for r in answer.verdict.lot.notes} == {
        "signed-gap",
        "clock-evidence",
        "calibration-missing",
    }
    assert [g.reason for g in answer.gaps] == ["silent-sensor"]
    assert [a.kind for a in answer.anomalies] == ["unsynced-clock"]


def test_readings_with_a_1970_clock_on_the_holder_are_reported() -> None:
    j = standard_journey()
    j.reading("truck-07-gw", 12_345, 4.0)
    answer = answer_for_subject(
        j.publish_memory(), Subject.for_lot(GTIN, LOT), ProvenanceConfig(), NOW
    )
    assert "implausible-wall-clock" in {a.kind for a in answer.anomalies}


def test_a_1970_clock_from_an_unrelated_boot_is_not_this_lots_problem() -> None:
    j = standard_journey()
    j.reading("truck-07-gw", 12_345, 4.0, boot="a-boot-weeks-earlier")
    answer = answer_for_subject(
        j.publish_memory(), Subject.for_lot(GTIN, LOT), ProvenanceConfig(), NOW
    )
    assert answer.anomalies == [] and answer.verdict.status == "pass"


def test_unknown_lot_has_no_custody() -> None:
    source = standard_journey().publish_memory()
    answer = answer_for_subject(source, Subject.for_lot(GTIN, "OTHER"), ProvenanceConfig(), NOW)
    assert answer.intervals == [] and answer.verdict.status == "indeterminate"
    assert [r.code for r in answer.verdict.lot.reasons] == ["no-custody"]


def test_an_open_custody_whose_sensor_went_quiet_is_indeterminate() -> None:
    source = standard_journey(shipped=False).publish_memory()
    later = NOW + 15 * 3_600_000  # the cold room has uploaded nothing for 15 hours
    answer = answer_for_subject(source, Subject.for_lot(GTIN, LOT), ProvenanceConfig(), later)
    assert answer.verdict.status == "indeterminate"
    assert [r.code for r in answer.verdict.lot.reasons if r.status != "pass"] == ["coverage-gap"]


def _certificate(sensor: str, valid_from: int, valid_until: int, name: str) -> StoredDocument:
    facts = describe_file(b"%PDF-1.7\n" + name.encode() * 200)
    entry = DocumentEntry(
        facts.digest, "calibration", "sensor", sensor, "acme", "Kalibrierlabor Nord",
        valid_from, valid_until, name, "application/pdf", facts.size, facts.chunk_size,
        facts.chunks_root, valid_from,
    )  # fmt: skip
    return StoredDocument(entry, facts.chunks, "")


def test_calibration_certificates_decide_what_the_verdict_says_about_each_logger() -> None:
    source = standard_journey().publish_memory()
    lot = Subject.for_lot(GTIN, LOT)
    plain = answer_for_subject(source, lot, ProvenanceConfig(), NOW)
    spans = sensor_spans(plain.verdict.lot.to_dict())
    assert len(spans) >= 2
    missing = {r.sensor for r in plain.verdict.lot.notes if r.code == "calibration-missing"}
    assert missing == set(spans)
    assert {r.status for r in plain.verdict.lot.notes if r.code == "calibration-missing"} == {
        "pass"  # said, not judged
    }
    first, *rest = sorted(spans)
    start, end = spans[first]
    # One logger calibrated over its readings, another whose certificate ran out midway.
    source.documents.append(_certificate(first, start - 1, end + 3_650 * 86_400_000, "ok.pdf"))
    other = rest[0]
    source.documents.append(_certificate(other, 0, spans[other][0] + 1, "old.pdf"))
    answer = answer_for_subject(source, lot, ProvenanceConfig(), NOW)
    notes = {r.sensor: r.code for r in answer.verdict.lot.notes if r.code.startswith("calib")}
    assert first not in notes and notes[other] == "calibration-expired"
    assert [d.entry.name for d in answer.documents] == ["ok.pdf", "old.pdf"]
    assert {d["status"] for d in answer.to_json()["documents"]} == {"valid", "expired"}
    # An anchor that requires calibrated loggers does not pass a lot without them.
    strict = answer_for_subject(source, lot, ProvenanceConfig(require_calibration=True), NOW)
    assert {r.status for r in strict.verdict.lot.notes if r.code.startswith("calib")} == {
        "indeterminate"
    }


def test_per_gtin_range_overrides_the_default() -> None:
    config = ProvenanceConfig(profile_by_gtin={GTIN: FROZEN})
    answer = answer_for_subject(
        standard_journey().publish_memory(), Subject.for_lot(GTIN, LOT), config, NOW
    )
    assert answer.verdict.status == "fail"


# --- bundles --------------------------------------------------------------------------------


def test_bundle_verifies_offline_and_is_bounded() -> None:
    j = Journey()
    j.gateway("truck-gw", "cool", "truck-07")
    j.scan("truck-gw", T0, "loading")
    j.readings("truck-gw", T0, T0 + 3000 * MIN, MIN, lambda i, t: 4.0 + (i % 7) * 0.1)
    source = j.publish_memory(batch_size=500)
    # Above bundle_max_readings the bundle proves a bounded sample and says so.
    config = ProvenanceConfig(proof_sample_per_interval=24, bundle_max_readings=2_999)
    answer = answer_for_subject(source, Subject.for_lot(GTIN, LOT), config, T0 + 3001 * MIN)
    assert answer.overall["temperature"].count == 3000
    assert len(answer.proof_keys) <= 1 + 2 + 24
    assert not answer.verdict.complete and answer.verdict.readings == 3000
    result = assemble_bundle(source, answer.proof_keys, {"gtin": GTIN, "lot": LOT})
    assert result.bundle is not None and result.unproven == 0
    report = verify_bundle(
        json.loads(json.dumps(result.bundle)), trusted_log_vkeys=[source.log_trust().log_vkey]
    )
    assert report.records == len(answer.proof_keys)
    assert report.cosigners == ["coldtrail.test/member"]
    q = report.summary["quantities"]["temperature"]
    assert (q["min"], q["max"]) == (4.0, 4.6)  # the proven extremes are the lot's extremes


def test_bundle_leaves_out_records_after_the_checkpoint() -> None:
    j = standard_journey()
    source = j.publish_memory(checkpoint=False)
    answer = answer_for_subject(source, Subject.for_lot(GTIN, LOT), ProvenanceConfig(), NOW)
    assert assemble_bundle(source, answer.proof_keys, {}).bundle is None
    source.sign_checkpoint(NOW)
    result = assemble_bundle(source, answer.proof_keys, {"gtin": GTIN, "lot": LOT})
    assert result.bundle is not None and result.proven == len(answer.proof_keys)


def test_tampered_bundle_fails_offline_verification() -> None:
    source = standard_journey().publish_memory()
    answer = answer_for_subject(source, Subject.for_lot(GTIN, LOT), ProvenanceConfig(), NOW)
    bundle = assemble_bundle(source, answer.proof_keys, {"gtin": GTIN, "lot": LOT}).bundle
    assert bundle is not None
    entry = next(
        e for b in bundle["batches"] for e in b["records"] if e["record"]["type"] == "reading"
    )
    entry["record"]["val"] = 3.0
    with pytest.raises(VerificationError):
        verify_bundle(bundle)


_STEPS = sorted(
    {"packing", "loading", "unloading", "receiving", "shipping", "storing", "inspecting"}
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 10_000),
            st.sampled_from(_STEPS),
            st.sampled_from(["line-4", "truck-07", "coldroom-3", "dc-1"]),
        ),
        max_size=25,
    )
)
def test_custody_intervals_never_overlap_and_account_for_every_scan(
    events: list[tuple[int, str, str]],
) -> None:
    scans = [_scan(T0 + t, step, holder, i + 1) for i, (t, step, holder) in enumerate(events)]
    intervals, loose = build_custody(scans)
    for a, b in itertools.pairwise(intervals):
        assert a.end is not None and a.start <= a.end <= b.start
    placed = {s.seq for s in loose}
    for i in intervals:
        placed |= {i.opened_by.seq, *(e.seq for e in i.events)}
        if i.closed_by is not None:
            placed.add(i.closed_by.seq)
    assert placed == {s.seq for s in scans}

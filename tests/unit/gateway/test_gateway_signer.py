"""Observations -> signed records: registry binding, calibration, gaps for every loss."""

from __future__ import annotations

from gateway_twins import make_signer

from gateway.observations import BadInput, Measurement, ScanEvent
from proofs.records import Gap, Reading, Scan, record_from_json, verify


def test_reading_is_calibrated_bound_to_its_asset_and_signed() -> None:
    signer, key, clock = make_signer()
    (draft,) = signer.drafts([Measurement("probe-1", "temperature", -18.0, "CEL", dev_t=5)])
    record = record_from_json(signer.seal(draft, 42))
    assert isinstance(record, Reading)
    assert (record.seq, record.val, record.asset, record.dev_t) == (42, -18.5, "truck-07/reefer", 5)
    assert record.t == clock.wall_ms and record.clk.sync is True
    assert len(record.salt) == 32
    verify(record, key.public_key)


def test_salts_differ_between_records() -> None:
    signer, _, _ = make_signer()
    drafts = signer.drafts([Measurement("probe-1", "temperature", 4, "CEL")] * 3)
    assert len({d.salt for d in drafts}) == 3


def test_unknown_sensor_is_still_recorded_without_asset() -> None:
    signer, _, _ = make_signer()
    (draft,) = signer.drafts([Measurement("probe-9", "humidity", 55, "P1")])
    assert isinstance(draft, Reading) and draft.asset is None and draft.val == 55


def test_scan_takes_read_point_and_step_from_the_registry() -> None:
    signer, key, _ = make_signer()
    event = ScanEvent("dock-scanner", "0109506000134352\x1d10LOT7", "]C1", {"01": "09506000134352"})
    record = record_from_json(signer.seal(signer.drafts([event])[0], 1))
    assert isinstance(record, Scan)
    assert (record.rp, record.step, record.asset) == ("dock-1", "loading", "truck-07")
    verify(record, key.public_key)


def test_bad_input_and_unusable_values_become_bad_frame_gaps() -> None:
    signer, _, _ = make_signer()
    drafts = signer.drafts(
        [
            BadInput("serial-1", "bad-checksum", "checksum 3F, computed 40"),
            Measurement("probe-1", "temperature", float("nan"), "CEL"),
            Measurement("probe-1", "temperature", 3, "celsius"),
        ]
    )
    assert [type(d) for d in drafts] == [Gap, Gap, Gap]
    assert all(d.reason == "bad-frame" for d in drafts)
    assert drafts[0].detail.startswith("bad-checksum:")


def test_wall_clock_jump_against_monotonic_writes_a_clock_jump_gap() -> None:
    signer, _, clock = make_signer()
    signer.drafts([Measurement("probe-1", "temperature", 1, "CEL")])
    clock.advance(1.0)
    assert len(signer.drafts([Measurement("probe-1", "temperature", 1, "CEL")])) == 1
    clock.wall_ms -= 3_600_000  # NTP stepped the clock back an hour
    drafts = signer.drafts([Measurement("probe-1", "temperature", 1, "CEL")])
    assert isinstance(drafts[0], Gap) and drafts[0].reason == "clock-jump"
    assert isinstance(drafts[1], Reading)


def test_device_counter_jump_is_a_signed_silent_sensor_gap() -> None:
    signer, _, _ = make_signer()
    signer.drafts([Measurement("ruuvi-1", "temperature", 1, "CEL", dev_seq=10)])
    drafts = signer.drafts([Measurement("ruuvi-1", "temperature", 1, "CEL", dev_seq=14)])
    assert isinstance(drafts[0], Gap)
    assert (drafts[0].reason, drafts[0].count) == ("silent-sensor", 3)


def test_evicted_gap_names_its_range() -> None:
    signer, key, _ = make_signer()
    gap = signer.evicted_gap(100, 1, 40, 40, "budget")
    assert (gap.seq, gap.lost_from, gap.lost_to, gap.reason) == (100, 1, 40, "evicted")
    verify(gap, key.public_key)


def test_text_json_cannot_carry_becomes_a_gap_that_can_still_be_signed() -> None:
    # A device's JSON may escape a lone surrogate ("\ud800"); the record must still seal.
    signer, key, _ = make_signer()
    observations = [
        BadInput("probe-1", "bad-shape", "value \ud800"),
        ScanEvent("dock-scanner", "0109506000134352\ud800", "]C1", {}),
    ]
    drafts = signer.drafts(observations)
    assert [type(d) for d in drafts] == [Gap, Gap]
    for seq, draft in enumerate(drafts, 1):
        record = record_from_json(signer.seal(draft, seq))
        verify(record, key.public_key)
    assert "\\ud800" in drafts[0].detail
    assert "not valid Unicode" in drafts[1].detail


def test_a_null_value_becomes_a_null_value_gap() -> None:
    signer, key, _ = make_signer()
    bad = BadInput("ruuvi-1", "null-value", "temperature is null", reason="null-value")
    (draft,) = signer.drafts([bad])
    gap = record_from_json(signer.seal(draft, 7))
    assert isinstance(gap, Gap) and gap.reason == "null-value" and gap.src == "ruuvi-1"
    assert gap.detail == "null-value: temperature is null"
    verify(gap, key.public_key)


def test_implausible_values_are_signed_gaps_not_readings() -> None:
    signer, key, _ = make_signer()
    drafts = signer.drafts(
        [
            Measurement("probe-9", "temperature", 1e9, "CEL"),
            Measurement("probe-9", "temperature", -300, "CEL"),
            Measurement("probe-9", "humidity", 140, "P1"),
            Measurement("probe-9", "humidity", 55, "KEL"),
            Measurement("probe-9", "temperature", -459.67, "FAH"),  # absolute zero: possible
        ]
    )
    assert [type(d) for d in drafts] == [Gap, Gap, Gap, Gap, Reading]
    gaps = [record_from_json(signer.seal(d, i + 1)) for i, d in enumerate(drafts[:4])]
    assert all(isinstance(g, Gap) and g.reason == "implausible-value" for g in gaps)
    assert all(g.src == "probe-9" for g in gaps)
    details = [g.detail for g in gaps if isinstance(g, Gap)]
    assert details[0] == (
        "sensor probe-9: temperature 1e+09 CEL is outside the physically possible -273.15..1000"
    )
    assert "-300" in details[1] and "140" in details[2] and "KEL" in details[3]
    for g in gaps:
        verify(g, key.public_key)


def test_plausibility_is_checked_after_calibration() -> None:
    signer, _, _ = make_signer()  # probe-1 is calibrated by -0.5 CEL
    (draft,) = signer.drafts([Measurement("probe-1", "temperature", -272.9, "CEL")])
    assert isinstance(draft, Gap) and draft.reason == "implausible-value"
    assert "-273.4" in draft.detail and "reported -272.9 before calibration" in draft.detail

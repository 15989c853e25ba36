"""The simulator's encoders and generators: valid identifiers, determinism, faults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from firmware_sim import gs1
from firmware_sim.cli import build_parser, main
from firmware_sim.faults import FaultPlan, corrupt_frame
from firmware_sim.frames import encode_frame, xor_checksum
from firmware_sim.payloads import FORMATS, Sample, ruuvi_df5
from firmware_sim.scenario import custody_scans, logger_stream, mqtt_stream
from firmware_sim.thermal import ThermalModel


@pytest.mark.parametrize(
    "valid", ["09506000134352", "05901234123457", "376130321109103420", "4006381333931"]
)
def test_check_digits_match_published_examples(valid: str) -> None:
    assert gs1.check_digit(valid[:-1]) == valid[-1]


def test_generated_identifiers_have_valid_check_digits() -> None:
    g = gs1.gtin14(1, "00012")
    assert len(g) == 14 and gs1.check_digit(g[:-1]) == g[-1]
    s = gs1.sscc(123456789)
    assert len(s) == 18 and gs1.check_digit(s[:-1]) == s[-1]


def test_element_string_puts_gs_only_after_variable_fields() -> None:
    data = gs1.element_string([("01", "1" * 14), ("17", "270331"), ("10", "L1"), ("21", "S")])
    assert data == "01" + "1" * 14 + "17270331" + "10L1\x1d21S"


@pytest.mark.parametrize(("c", "raw"), [(4.0, "000400"), (-18.0, "001800-"), (0.0, "000000")])
def test_pack_temperature(c: float, raw: str) -> None:
    assert gs1.pack_temperature(c) == raw


def test_frame_encoding_and_checksum() -> None:
    frame = encode_frame("TH-01", 3, -18.25, 55.0, None, b"\r\n")
    body = frame[1 : frame.index(b"*")]
    assert frame.startswith(b"$CTTH,TH-01,3,-18.25,55.0,*")
    assert frame[-4:-2] == f"{xor_checksum(body):02X}".encode()


def test_corrupt_frame_changes_one_body_byte_and_no_terminator() -> None:
    import random

    frame = encode_frame("TH-01", 3, 4.0, None, None)
    rng = random.Random(0)
    for _ in range(200):
        bad = corrupt_frame(frame, rng)
        assert len(bad) == len(frame) and bad != frame
        assert bad.count(b"\r") == 1 and bad.count(b"\n") == 1


def test_generators_are_deterministic_per_seed() -> None:
    plan = FaultPlan(noise=0.2, garbage=0.2, dropout=0.2, clock_jump=0.1, epoch_reset=0.1)
    assert list(logger_stream(7, 50, faults=plan)) == list(logger_stream(7, 50, faults=plan))
    assert list(logger_stream(7, 50, faults=plan)) != list(logger_stream(8, 50, faults=plan))
    assert custody_scans(3) == custody_scans(3)
    assert list(mqtt_stream(2, 5)) == list(mqtt_stream(2, 5))


def test_faults_show_up_in_the_stream() -> None:
    plan = FaultPlan(noise=0.3, garbage=0.3, dropout=0.3, epoch_reset=0.3)
    emissions = list(logger_stream(1, 100, faults=plan))
    kinds = {e.kind for e in emissions}
    assert kinds == {"frame", "corrupt", "garbage"}
    seqs = [e.seq for e in emissions if e.kind != "garbage"]
    assert len(seqs) < 100  # dropouts
    assert any(e.device_ms is not None and e.device_ms < 10**9 for e in emissions)  # 1970


def test_door_open_excursion_heads_for_ambient() -> None:
    import random

    model = ThermalModel(random.Random(1), setpoint_c=4.0, excursion_rate=1.0, excursion_samples=10)
    temps = [model.step()[0] for _ in range(10)]
    assert max(temps) > 15.0


def test_fault_rates_are_validated() -> None:
    with pytest.raises(ValueError):
        FaultPlan(noise=1.5)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_payload_is_valid_json_or_a_bare_number(fmt: str) -> None:
    for topic, payload in FORMATS[fmt]("dev-1", Sample(4.0, 50.0, 1, None)):
        assert topic and "+" not in topic and "#" not in topic
        json.loads(payload)


def test_cli_refuses_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["logger", "--rate", "-1"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["logger", "--start", "2026-11-21T08:00:00"])  # no offset
    assert main(["mqtt", "--port", "1", "--count", "1"]) == 1  # nothing listening
    assert "coldtrail-sim:" in capsys.readouterr().err


def test_ruuvi_df5_encoder_reproduces_the_official_vector() -> None:
    # The simulator's encoder is independent of the gateway's decoder; both meet here.
    vectors = Path(__file__).resolve().parents[2] / "vectors" / "ruuvi" / "df5.json"
    valid = json.loads(vectors.read_text())["cases"][0]
    sample = Sample(valid["temperature_c"], valid["humidity_pct"], valid["sequence"], None)
    raw = ruuvi_df5(sample, bytes.fromhex(valid["mac"].replace(":", "")))
    assert raw.hex().upper() == valid["raw"]

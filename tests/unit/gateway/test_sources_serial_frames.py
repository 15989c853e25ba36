"""The sensor line protocol parser: every good and bad frame class."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_sim.frames import encode_frame
from gateway.observations import BadInput, Measurement
from gateway.sources.line_framer import LineFramer, Overflow, Resync
from gateway.sources.serial_frames import BAD_FRAME_CODES, checksum, parse_frame, parse_line

PORT = "serial-ttyCT0"


def frame(body: str) -> bytes:
    return b"$" + body.encode() + b"*" + f"{checksum(body.encode()):02X}".encode()


def test_good_frame_gives_temperature_and_humidity() -> None:
    out = parse_frame(frame("CTTH,TH-01,42,-18.25,55.5,1795248001000"), PORT)
    assert out == [
        Measurement("TH-01", "temperature", -18.25, "CEL", 1795248001000, 42),
        Measurement("TH-01", "humidity", 55.5, "P1", 1795248001000, 42),
    ]


def test_frame_without_humidity_or_clock() -> None:
    out = parse_frame(frame("CTTH,TH-01,7,4.2,,"), PORT)
    assert out == [Measurement("TH-01", "temperature", 4.2, "CEL", None, 7)]


@pytest.mark.parametrize("dev", ["0", "86400000", "1577836799999"])  # 1970 .. end of 2019
def test_implausible_device_clock_is_dropped_not_rejected(dev: str) -> None:
    out = parse_frame(frame(f"CTTH,TH-01,1,4.0,,{dev}"), PORT)
    assert isinstance(out[0], Measurement)
    assert out[0].dev_t is None


def test_sensor_ids_are_mapped_to_registry_ids() -> None:
    out = parse_frame(frame("CTTH,TH-01,1,4.0,,"), PORT, {"TH-01": "truck07-rear"})
    assert out[0].src == "truck07-rear"


def test_lowercase_checksum_digits_are_accepted() -> None:
    body = b"CTTH,TH-01,1,4.0,,"
    out = parse_frame(b"$" + body + b"*" + f"{checksum(body):02x}".encode(), PORT)
    assert isinstance(out[0], Measurement)


def test_simulator_frames_parse() -> None:
    raw = encode_frame("TH-02", 9, -0.5, None, 1795248001000, b"")
    assert parse_frame(raw, PORT) == [
        Measurement("TH-02", "temperature", -0.5, "CEL", 1795248001000, 9)
    ]


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b"$CTTH,TH-01,1,4.0,,*00", "bad-checksum"),
        (b"CTTH,TH-01,1,4.0,,*00", "garbage"),
        (b"$CTTH,TH-01,1,4.0,,", "bad-frame"),  # no checksum
        (b"$CTTH,TH-01,1,4.0,,*G1", "bad-frame"),
        (b"$CTTH,TH-01,1,4.0,,*+1", "bad-frame"),
        (b"$CTTH,T\xffH-01,1,4.0,,*00", "bad-frame"),  # not ASCII
        (b"$CTTH,TH\x07-01,1,4.0,,*00", "bad-frame"),  # control character
        (frame("GPGGA,1,2,3,4,5"), "unknown-sentence"),
        (frame("CTTH,TH-01,1,4.0"), "bad-frame"),  # too few fields
        (frame("CTTH,TH-01,1,4.0,,,"), "bad-frame"),  # too many
        (frame("CTTH,,1,4.0,,"), "bad-value"),  # empty sensor id
        (frame("CTTH,TH 01,1,4.0,,"), "bad-value"),
        (frame("CTTH,TH-01,-1,4.0,,"), "bad-value"),  # negative seq
        (frame("CTTH,TH-01,99999999999,4.0,,"), "bad-value"),  # seq beyond 32 bits
        (frame("CTTH,TH-01,1,nan,,"), "bad-value"),
        (frame("CTTH,TH-01,1,1e3,,"), "bad-value"),
        (frame("CTTH,TH-01,1,200.0,,"), "bad-value"),  # beyond any probe
        (frame("CTTH,TH-01,1,4.0,101,"), "bad-value"),  # humidity over 100 %
        (frame("CTTH,TH-01,1,,50,"), "bad-value"),  # missing temperature
        (frame("CTTH,TH-01,1,4.0,,17952480010001234567"), "bad-value"),
        (frame("CTTH,TH-01,1,4.0,,-5"), "bad-value"),
    ],
)
def test_bad_frames_have_stable_codes(line: bytes, code: str) -> None:
    out = parse_line(line, PORT)
    assert [o.code for o in out if isinstance(o, BadInput)] == [code]
    assert all(isinstance(o, BadInput) and o.src == PORT for o in out)


def test_noise_before_a_frame_is_reported_and_the_frame_still_counts() -> None:
    out = parse_line(b"\x00\xfe\x81" + frame("CTTH,TH-01,1,4.0,,"), PORT)
    assert isinstance(out[0], BadInput) and out[0].code == "garbage"
    assert isinstance(out[1], Measurement)


def test_overflow_marker_becomes_line_too_long() -> None:
    (out,) = parse_line(Overflow(300), PORT)
    assert isinstance(out, BadInput) and out.code == "line-too-long"


def test_bad_input_detail_never_carries_the_whole_payload() -> None:
    (out,) = parse_line(b"x" * 250, PORT)
    assert isinstance(out, BadInput) and len(out.detail) < 120


# --- framing ------------------------------------------------------------------


@pytest.mark.parametrize("ending", [b"\r", b"\n", b"\r\n"])
def test_every_line_ending_frames_the_same(ending: bytes) -> None:
    framer = LineFramer(b"\r\n", 64)
    assert framer.feed(b"a" + ending + b"b" + ending) == [b"a", b"b"]


def test_partial_lines_across_reads() -> None:
    framer = LineFramer(b"\r\n", 64)
    data = frame("CTTH,TH-01,1,4.0,,") + b"\r\n" + frame("CTTH,TH-01,2,4.1,,") + b"\r\n"
    lines: list[bytes | Overflow] = []
    for i in range(len(data)):
        lines += framer.feed(data[i : i + 1])
    assert lines == [frame("CTTH,TH-01,1,4.0,,"), frame("CTTH,TH-01,2,4.1,,")]
    assert framer.buffered == 0


def test_over_long_line_is_dropped_up_to_the_next_terminator() -> None:
    framer = LineFramer(b"\n", 16)
    out = framer.feed(b"x" * 10) + framer.feed(b"y" * 10) + framer.feed(b"z\nok\n")
    assert out == [Overflow(21), b"ok"]
    assert framer.buffered == 0


def test_a_port_opened_mid_line_resyncs_on_the_first_frame_start() -> None:
    framer = LineFramer(b"\r\n", 64, sync=b"$")
    assert framer.feed(b"4.0,,*1F\r\n$a\r\nnoise\r\n") == [Resync(8), b"$a", b"noise"]
    synced = LineFramer(b"\r\n", 64, sync=b"$")
    assert synced.feed(b"$a\r\n") == [b"$a"]


def test_buffer_stays_capped_without_any_terminator() -> None:
    framer = LineFramer(b"\n", 16)
    for _ in range(1000):
        framer.feed(b"garbage-without-end")
    assert framer.buffered <= 16


# --- fuzz: any bytes in, only observations out -----------------------------------


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_never_raise(data: bytes) -> None:
    framer = LineFramer(b"\r\n", 128)
    for line in framer.feed(data) + framer.feed(b"\n"):
        for obs in parse_line(line, PORT):
            assert isinstance(obs, Measurement | BadInput)
            if isinstance(obs, BadInput):
                assert obs.code in BAD_FRAME_CODES


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet="CTH,0123456789.-*$ab", max_size=60),
)
def test_near_miss_frames_never_raise(body: str) -> None:
    for obs in parse_line(frame(body), PORT):
        assert isinstance(obs, Measurement | BadInput)

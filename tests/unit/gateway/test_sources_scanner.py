"""Scanner parsing: AIM symbology ids, GS separators, GS1 through biip, bad input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_sim import gs1
from firmware_sim.scenario import custody_scans
from gateway.observations import BadInput, ScanEvent
from gateway.sources.gs1_codec import decode_pack_temperature
from gateway.sources.line_framer import LineFramer, Overflow
from gateway.sources.scanner import SCAN_TERMINATORS, parse_scan

SRC = "scanner-line4"
GTIN = "09506000134352"
GS = "\x1d"


def scan(data: str | bytes) -> ScanEvent:
    out = parse_scan(SRC, data.encode() if isinstance(data, str) else data)
    assert isinstance(out, ScanEvent), out
    return out


def bad(data: bytes | Overflow) -> BadInput:
    out = parse_scan(SRC, data)
    assert isinstance(out, BadInput), out
    return out


def test_gs1_128_with_gs_separators_and_pack_temperatures() -> None:
    data = f"01{GTIN}17270331{GS}4331000800{GS}4333001800-{GS}10LOT-7"
    out = scan("]C1" + data)
    assert out.sym == "]C1"
    assert out.raw == data  # GS kept, symbology id stripped
    assert out.gs1 == {
        "01": GTIN,
        "17": "270331",
        "4331": "000800",
        "max_temp_CEL": "8.00",
        "4333": "001800-",
        "min_temp_CEL": "-18.00",
        "10": "LOT-7",
    }


def test_sscc_and_serial_from_datamatrix() -> None:
    sscc = gs1.sscc(123456789)
    assert scan(f"]C100{sscc}").gs1 == {"00": sscc}
    assert scan(f"]d201{GTIN}21SN-001{GS}10L1").gs1 == {"01": GTIN, "21": "SN-001", "10": "L1"}


def test_q1_url_is_parsed_as_a_digital_link() -> None:
    out = scan(f"]Q1https://id.gs1.org/01/{GTIN}/10/ABC1/21/77?17=270331")
    assert out.sym == "]Q1"
    assert out.gs1 == {"01": GTIN, "10": "ABC1", "21": "77", "17": "270331"}


def test_gs1_qr_with_digital_link_and_no_symbology_id() -> None:
    assert scan(f"]Q3https://example.com/01/{GTIN}/10/X").gs1 == {"01": GTIN, "10": "X"}
    assert scan(f"https://example.com/01/{GTIN}").gs1 == {"01": GTIN}


def test_parenthesised_hri() -> None:
    assert scan(f"(01){GTIN}(10)ABC").gs1 == {"01": GTIN, "10": "ABC"}


def test_ean13_becomes_gtin14() -> None:
    assert scan("]E05901234123457").gs1 == {"01": "05901234123457"}


def test_plain_code128_label_is_a_scan_without_gs1() -> None:
    out = scan("]C0TRUCK-07")
    assert (out.sym, out.raw, out.gs1) == ("]C0", "TRUCK-07", {})


def test_urls_that_are_not_digital_links_stay_plain_scans() -> None:
    for url in ("https://example.com/2024/01/15/news", "https://例え.jp/x", "ＴＲＵＣＫ"):
        assert scan(url).gs1 == {}


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"]E05901234123458", "bad-gs1"),  # wrong check digit
        (b"]C1garbage", "bad-gs1"),
        (b"]C101" + GTIN[:-1].encode() + b"3", "bad-gs1"),
        (b"]d2https://example.com/nothing", "bad-gs1"),
        (b"12345", "bad-gs1"),  # digits only: a misread, not a label
        (b"]", "unknown-symbology"),
        (b"]!1abc", "unknown-symbology"),
        (b"]C1", "bad-frame"),
        (b"   ", "bad-frame"),
        (b"\xff\xfe\x00", "bad-encoding"),
        (b"]C1\x0101" + GTIN.encode(), "bad-frame"),
        # A Digital Link is GS1 by its path: a wrong check digit is a misread too.
        (b"https://id.example.com/01/09506000134353/10/ABC", "bad-gs1"),
        (b"]Q1https://id.example.com/01/09506000134353/10/ABC", "bad-gs1"),
        (b"https://id.example.com/00/106141412345678907", "bad-gs1"),  # SSCC
        (b"https://id.example.com/414/5412345000014", "bad-gs1"),  # GLN
        # GS1 in fullwidth digits: valid UTF-8, so not an encoding fault, and not GS1.
        ("０１".encode() + "".join(chr(0xFF10 + int(d)) for d in GTIN).encode(), "non-ascii"),
        ("]C1０１".encode() + "".join(chr(0xFF10 + int(d)) for d in GTIN).encode(), "non-ascii"),
        ("https://id.example.com/01/０９５０６０００１３４３５２".encode(), "non-ascii"),
        ("]C1Ａ".encode(), "non-ascii"),
        ("٠١٢٣".encode(), "non-ascii"),  # Arabic-Indic digits
    ],
)
def test_bad_scans(data: bytes, code: str) -> None:
    out = bad(data)
    assert out.code == code
    assert out.src == SRC


def test_overflow_is_line_too_long() -> None:
    assert bad(Overflow(5000)).code == "line-too-long"


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [("000400", "4.00"), ("001800-", "-18.00"), ("000000-", "0.00"), ("123456", "1234.56")],
)
def test_pack_temperature_decoding(raw: str, decoded: str) -> None:
    assert decode_pack_temperature(raw) == decoded


@pytest.mark.parametrize("raw", ["", "4.00", "00040", "0004000", "000400+", "-000400"])
def test_malformed_pack_temperature_is_not_decoded(raw: str) -> None:
    assert decode_pack_temperature(raw) is None


@pytest.mark.parametrize("suffix", [b"\r", b"\n", b"\r\n", b"\t"])
def test_the_whole_custody_scenario_parses(suffix: bytes) -> None:
    framer = LineFramer(SCAN_TERMINATORS, 4096)
    emissions = custody_scans(seed=3, cases=4, suffix=suffix)
    lines = framer.feed(b"".join(e.data for e in emissions))
    assert len(lines) == len(emissions)
    for emission, line in zip(emissions, lines, strict=True):
        out = parse_scan(SRC, line)
        assert isinstance(out, ScanEvent), (emission, out)
        for ai, value in emission.expect.items():
            assert out.gs1[ai] == value


def test_scenario_faults_become_bad_input() -> None:
    from firmware_sim.faults import FaultPlan

    emissions = custody_scans(seed=5, cases=6, faults=FaultPlan(noise=0.5, garbage=0.3))
    framer = LineFramer(SCAN_TERMINATORS, 4096)
    kinds = {e.kind for e in emissions}
    assert "misread" in kinds
    for emission in emissions:
        outs = [parse_scan(SRC, line) for line in framer.feed(emission.data)]
        if emission.kind == "misread":
            assert [type(o) for o in outs] == [BadInput]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_never_raise(data: bytes) -> None:
    assert isinstance(parse_scan(SRC, data), ScanEvent | BadInput)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["", "]C1", "]d2", "]Q1", "]Q3", "]E0", "]e0", "]J1", "]C0"]),
    st.text(alphabet="0123456789()/:.?=&%-ABChtps\x1d", max_size=80),
)
def test_gs1_shaped_text_never_raises(sym: str, data: str) -> None:
    out = parse_scan(SRC, (sym + data).encode())
    assert isinstance(out, ScanEvent | BadInput)
    if isinstance(out, ScanEvent):
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in out.gs1.items())

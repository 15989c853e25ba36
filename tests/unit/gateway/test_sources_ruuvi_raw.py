"""The Ruuvi DF5 decoder against the official test vectors, and its refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.sources.ruuvi_raw import (
    RUUVI_RAW_CODES,
    RuuviRawError,
    decode_advertisement,
    decode_df5,
)

VECTORS = json.loads(
    (Path(__file__).resolve().parents[2] / "vectors" / "ruuvi" / "df5.json").read_text()
)["cases"]
FLAGS = "020106"  # AD structure: flags, LE General Discoverable, BR/EDR not supported


def advertisement(df5_hex: str) -> str:
    """The Ruuvi Gateway's ``"data"``: flags, then the manufacturer-specific structure."""
    body = "FF9904" + df5_hex
    return FLAGS + f"{len(body) // 2:02X}" + body


def test_vectors_are_present() -> None:
    assert [c["name"] for c in VECTORS] == [
        "valid data",
        "maximum values",
        "minimum values",
        "invalid values",
    ]


@pytest.mark.parametrize("case", VECTORS, ids=lambda c: c["name"])
def test_official_vectors(case: dict[str, Any]) -> None:
    got = decode_df5(bytes.fromhex(case["raw"]))
    assert got.temperature_c == case["temperature_c"]
    if case["humidity_pct"] is None:
        assert got.humidity_pct is None
    else:  # the spec prints 53.49 for 21396 * 0.0025 = 53.49 exactly
        assert got.humidity_pct == pytest.approx(case["humidity_pct"], abs=1e-9)
    assert got.pressure_pa == case["pressure_pa"]
    assert list(got.acceleration_mg) == case["acceleration_mg"]
    assert got.battery_mv == case["battery_mv"]
    assert got.tx_power_dbm == case["tx_power_dbm"]
    assert got.movement_counter == case["movement_counter"]
    assert got.sequence == case["sequence"]
    assert got.mac == case["mac"]


def test_the_gateway_example_advertisement_decodes() -> None:
    # Ruuvi Gateway's documented raw MQTT example, character for character.
    got = decode_advertisement("0201061BFF99040512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F")
    assert (got.temperature_c, got.sequence, got.mac) == (24.3, 205, "CB:B8:33:4C:88:4F")
    assert decode_advertisement(advertisement(VECTORS[0]["raw"]).lower()) == got


def test_other_ad_structures_before_and_after_are_skipped() -> None:
    name = "0908" + "52757576692041424344"[:16]  # shortened local name, 8 bytes
    data = FLAGS + name + advertisement(VECTORS[0]["raw"])[len(FLAGS) :] + "00" * 3
    assert decode_advertisement(data).temperature_c == 24.3


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ("", "not-ruuvi"),
        (FLAGS, "not-ruuvi"),
        ("0201061BFF99040512FC53", "bad-length"),  # truncated AD structure
        (FLAGS + "1BFF4C000512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F", "not-ruuvi"),
        (advertisement(VECTORS[0]["raw"])[:-2] + "4", "not-hex"),  # odd number of digits
        (advertisement(VECTORS[0]["raw"]).replace("C", "G", 1), "not-hex"),
        ("02 01 06", "not-hex"),
        (advertisement("03291A1ECE1EFC18F94202CA0B53"), "unknown-data-format"),  # DF3
        (advertisement(VECTORS[0]["raw"] + "00"), "bad-length"),
        (advertisement(VECTORS[0]["raw"][:-2]), "bad-length"),
        (FLAGS + "03FF9904", "bad-length"),  # Ruuvi id, no payload
        ("AA" * 300, "bad-length"),
        ("０２０１０６", "not-hex"),  # fullwidth digits
    ],
)
def test_refusals_are_coded(data: str, code: str) -> None:
    with pytest.raises(RuuviRawError) as info:
        decode_advertisement(data)
    assert info.value.code == code
    assert code in RUUVI_RAW_CODES


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_any_bytes_decode_or_are_refused_with_a_code(raw: bytes) -> None:
    for data in (raw.hex(), advertisement(raw.hex())):
        try:
            decode_advertisement(data)
        except RuuviRawError as e:
            assert e.code in RUUVI_RAW_CODES

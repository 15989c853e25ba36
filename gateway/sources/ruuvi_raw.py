"""Ruuvi BLE advertisements as the Ruuvi Gateway publishes them: hex -> values.

The Ruuvi Gateway's default MQTT JSON carries no decoded values, only
``"data"``: the whole advertisement in hex, AD structures one after the other
(``020106`` flags, then ``1BFF9904`` + the Ruuvi payload). This module finds the
manufacturer-specific structure of Ruuvi Innovations (company id 0x0499, sent
little-endian as ``9904``) and decodes data format 5 (RAWv2), following
https://docs.ruuvi.com/communication/bluetooth-advertisements/data-format-5-rawv2.
Why not ``ruuvitag-sensor``'s decoder: docs/adr/0110-ruuvi-raw-df5-decoder.md.

Values come back exactly as the format encodes them (no rounding): a field set to
the format's "not available" sentinel is ``None``. Anything that is not a whole,
well-formed Ruuvi DF5 advertisement raises :class:`RuuviRawError` with a stable code.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from gateway.errors import GatewayError

__all__ = ["RUUVI_RAW_CODES", "Df5", "RuuviRawError", "decode_advertisement", "decode_df5"]

RUUVI_RAW_CODES = frozenset({"not-hex", "bad-length", "not-ruuvi", "unknown-data-format"})
# An extended BLE advertisement carries at most 254 bytes of AD structures (legacy: 31).
MAX_ADVERTISEMENT_BYTES = 254
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})*")  # bytes.fromhex would also take spaces
_MANUFACTURER_SPECIFIC = 0xFF
_RUUVI_COMPANY = b"\x99\x04"  # 0x0499, little-endian on air
_DF5 = struct.Struct(">BhHHhhhHBH6s")  # 24 bytes: format, then the fields below
_NO_MAC = b"\xff" * 6


class RuuviRawError(GatewayError):
    """The hex is not a Ruuvi advertisement this gateway can decode."""

    default_code = "not-ruuvi"


@dataclass(frozen=True, slots=True)
class Df5:
    """One decoded DF5 payload; ``None`` where the tag sent "not available"."""

    temperature_c: float | None  # 0.005 °C steps, -163.835 .. 163.835
    humidity_pct: float | None  # 0.0025 % steps, 0 .. 163.835 (> 100 means a faulty sensor)
    pressure_pa: int | None  # 50000 .. 115534
    acceleration_mg: tuple[int | None, int | None, int | None]
    battery_mv: int | None  # 1600 .. 3646
    tx_power_dbm: int | None  # -40 .. 20, 2 dBm steps
    movement_counter: int | None  # 0 .. 254
    sequence: int | None  # measurement sequence number, 0 .. 65534
    mac: str | None  # "CB:B8:33:4C:88:4F"


def decode_advertisement(data: str) -> Df5:
    """The Ruuvi Gateway's ``"data"`` (whole advertisement, hex) -> :class:`Df5`."""
    if len(data) > 2 * MAX_ADVERTISEMENT_BYTES:
        raise RuuviRawError(
            f"advertisement longer than {MAX_ADVERTISEMENT_BYTES} bytes", code="bad-length"
        )
    if not _HEX.fullmatch(data):
        raise RuuviRawError("'data' is not an even number of hex digits", code="not-hex")
    return decode_df5(_ruuvi_manufacturer_data(bytes.fromhex(data)))


def _ruuvi_manufacturer_data(adv: bytes) -> bytes:
    """The manufacturer data after the 0x0499 company id, from the AD structures."""
    at = 0
    while at < len(adv):
        length = adv[at]
        if length == 0:  # padding: no structures follow (Core spec Vol 3 Part C §11)
            break
        if at + 1 + length > len(adv):
            raise RuuviRawError(
                f"AD structure at byte {at} claims {length} bytes; only {len(adv) - at - 1} follow",
                code="bad-length",
            )
        ad_type, body = adv[at + 1], adv[at + 2 : at + 1 + length]
        if ad_type == _MANUFACTURER_SPECIFIC and body[:2] == _RUUVI_COMPANY:
            return body[2:]
        at += 1 + length
    raise RuuviRawError("no Ruuvi (0x0499) manufacturer data in the advertisement")


def decode_df5(payload: bytes) -> Df5:
    """The Ruuvi payload (data format byte first) -> :class:`Df5`."""
    if not payload:
        raise RuuviRawError("empty Ruuvi manufacturer data", code="bad-length")
    if payload[0] != 5:
        raise RuuviRawError(
            f"Ruuvi data format 0x{payload[0]:02X} is not supported (only 5)",
            code="unknown-data-format",
        )
    if len(payload) != _DF5.size:
        raise RuuviRawError(
            f"data format 5 is {_DF5.size} bytes, got {len(payload)}", code="bad-length"
        )
    _, temp, hum, pres, ax, ay, az, power, moves, seq, mac = _DF5.unpack(payload)
    battery, tx = power >> 5, power & 0x1F
    return Df5(
        # Division by the step's reciprocal gives the nearest double to the exact
        # decimal (4860 / 200 == 24.3), where multiplying by 0.005 would not.
        temperature_c=None if temp == -0x8000 else temp / 200,
        humidity_pct=None if hum == 0xFFFF else hum / 400,
        pressure_pa=None if pres == 0xFFFF else pres + 50_000,
        acceleration_mg=(_signed(ax), _signed(ay), _signed(az)),
        battery_mv=None if battery == 0x7FF else battery + 1600,
        tx_power_dbm=None if tx == 0x1F else tx * 2 - 40,
        movement_counter=None if moves == 0xFF else moves,
        sequence=None if seq == 0xFFFF else seq,
        mac=None if mac == _NO_MAC else ":".join(f"{b:02X}" for b in mac),
    )


def _signed(value: int) -> int | None:
    return None if value == -0x8000 else value

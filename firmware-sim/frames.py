"""Encode the serial sensor line protocol (docs/serial-protocol.md)."""

from __future__ import annotations

__all__ = ["LINE_ENDINGS", "encode_frame", "xor_checksum"]

LINE_ENDINGS = {"crlf": b"\r\n", "lf": b"\n", "cr": b"\r"}


def xor_checksum(body: bytes) -> int:
    value = 0
    for byte in body:
        value ^= byte
    return value


def encode_frame(
    sensor: str,
    seq: int,
    temperature_c: float,
    humidity_pct: float | None,
    device_ms: int | None,
    ending: bytes = b"\r\n",
) -> bytes:
    """``$CTTH,<sensor>,<seq>,<temp>,<hum>,<device ms>*XX`` plus the line ending."""
    hum = "" if humidity_pct is None else f"{humidity_pct:.1f}"
    dev = "" if device_ms is None else str(device_ms)
    body = f"CTTH,{sensor},{seq},{temperature_c:.2f},{hum},{dev}".encode("ascii")
    return b"$" + body + b"*" + f"{xor_checksum(body):02X}".encode("ascii") + ending

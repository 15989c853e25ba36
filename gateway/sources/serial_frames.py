"""The sensor line protocol (docs/serial-protocol.md), as a pure parser.

A frame is ``$CTTH,<sensor>,<seq>,<temp>,<hum>,<dev_ms>*<XX>``: NMEA-style, with
``XX`` the XOR of every byte between ``$`` and ``*`` in hex. Every way a frame can
be wrong maps to a :class:`~gateway.observations.BadInput` with a stable code;
nothing here raises on device input.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from types import MappingProxyType

from gateway.observations import BadInput, Measurement, Observation

from .backoff import truncate_for_log
from .device_clock import plausible_device_ms
from .line_framer import Overflow

__all__ = [
    "BAD_FRAME_CODES",
    "HUMIDITY_RANGE",
    "TEMPERATURE_RANGE_CEL",
    "checksum",
    "parse_frame",
    "parse_line",
]

BAD_FRAME_CODES = frozenset(
    {"garbage", "line-too-long", "bad-frame", "bad-checksum", "unknown-sentence", "bad-value"}
)
TEMPERATURE_RANGE_CEL = (-100.0, 150.0)  # beyond any cold-chain probe: a corrupt value
HUMIDITY_RANGE = (0.0, 100.0)

_SENTENCE = "CTTH"
_SENSOR_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}", re.ASCII)
_NUMBER = re.compile(r"-?\d{1,4}(\.\d{1,4})?", re.ASCII)
_UINT = re.compile(r"\d{1,10}", re.ASCII)
_DEV_MS = re.compile(r"\d{1,16}", re.ASCII)
_HEX2 = re.compile(rb"[0-9A-Fa-f]{2}")
_MAX_SEQ = 2**32 - 1


def checksum(body: bytes) -> int:
    """XOR of the bytes between ``$`` and ``*``."""
    value = 0
    for byte in body:
        value ^= byte
    return value


def parse_line(
    line: bytes | Overflow, port_src: str, sensor_ids: Mapping[str, str] = MappingProxyType({})
) -> list[Observation]:
    """One framed line (or overflow marker) into observations.

    Bytes before the last ``$`` on a line are line noise: they are reported as
    ``garbage`` and the frame after them is still parsed, because losing a good
    reading to a burst of noise in front of it would be a second loss.
    """
    if isinstance(line, Overflow):
        return [
            BadInput(port_src, "line-too-long", f"dropped {line.dropped_bytes} bytes without EOL")
        ]
    out: list[Observation] = []
    start = line.rfind(b"$")
    if start < 0:
        if line.strip(b" \x00"):
            out.append(BadInput(port_src, "garbage", f"no frame start: {truncate_for_log(line)}"))
        return out
    if line[:start].strip(b" \x00"):
        out.append(BadInput(port_src, "garbage", f"{start} bytes before frame start"))
    out.extend(parse_frame(line[start:], port_src, sensor_ids))
    return out


def parse_frame(
    frame: bytes, port_src: str, sensor_ids: Mapping[str, str] = MappingProxyType({})
) -> list[Observation]:
    """Parse one ``$...*XX`` frame (no line ending). ``sensor_ids`` maps the ids
    devices put in frames to registry ids; unmapped ids are used as they are."""
    frame = frame.rstrip(b" ")
    if len(frame) < 4 or frame[:1] != b"$" or frame[-3:-2] != b"*":
        return [BadInput(port_src, "bad-frame", f"not $...*XX: {truncate_for_log(frame)}")]
    body, given = frame[1:-3], frame[-2:]
    if not _HEX2.fullmatch(given):
        return [BadInput(port_src, "bad-frame", "checksum is not two hex digits")]
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        return [BadInput(port_src, "bad-frame", "non-ASCII byte in frame")]
    if not text.isprintable():
        return [BadInput(port_src, "bad-frame", "control character in frame")]
    if checksum(body) != int(given, 16):
        return [
            BadInput(port_src, "bad-checksum", f"checksum mismatch in {truncate_for_log(text)}")
        ]
    fields = text.split(",")
    if fields[0] != _SENTENCE:
        return [
            BadInput(port_src, "unknown-sentence", f"sentence {truncate_for_log(fields[0], 8)!r}")
        ]
    if len(fields) != 6:
        return [BadInput(port_src, "bad-frame", f"{_SENTENCE} has {len(fields)} fields, need 6")]
    _, sensor, seq_s, temp_s, hum_s, dev_s = fields
    if not _SENSOR_ID.fullmatch(sensor):
        return [BadInput(port_src, "bad-value", f"bad sensor id {truncate_for_log(sensor, 32)!r}")]
    if not _UINT.fullmatch(seq_s) or int(seq_s) > _MAX_SEQ:
        return [BadInput(port_src, "bad-value", f"bad sequence number in {sensor}")]
    temp = _number(temp_s, TEMPERATURE_RANGE_CEL)
    hum = _number(hum_s, HUMIDITY_RANGE) if hum_s else None
    if temp is None or (hum_s and hum is None):
        return [BadInput(port_src, "bad-value", f"value out of range or malformed from {sensor}")]
    if dev_s and not _DEV_MS.fullmatch(dev_s):
        return [BadInput(port_src, "bad-value", f"bad device time from {sensor}")]
    dev_t = plausible_device_ms(int(dev_s)) if dev_s else None
    src = sensor_ids.get(sensor, sensor)
    seq = int(seq_s)
    out: list[Observation] = [Measurement(src, "temperature", temp, "CEL", dev_t, seq)]
    if hum is not None:
        out.append(Measurement(src, "humidity", hum, "P1", dev_t, seq))
    return out


def _number(text: str, bounds: tuple[float, float]) -> float | None:
    if not _NUMBER.fullmatch(text):
        return None
    value = float(text)
    if not math.isfinite(value) or not bounds[0] <= value <= bounds[1]:
        return None
    return value

"""Which device timestamps are worth recording.

Device clocks are advisory: the gateway records its own clock evidence with
every record. A device time is kept only when it is absolute and plausible;
an RTC that reset to 1970 (or any time before 2020), or a local time whose
offset is unknown, becomes ``None`` rather than a misleading number.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["EARLIEST_PLAUSIBLE_MS", "iso_to_ms", "plausible_device_ms", "seconds_to_ms"]

EARLIEST_PLAUSIBLE_MS = 1_577_836_800_000  # 2020-01-01T00:00:00Z
_LATEST_PLAUSIBLE_MS = 4_102_444_800_000  # 2100-01-01: beyond that the value is corrupt


def plausible_device_ms(ms: int) -> int | None:
    return ms if EARLIEST_PLAUSIBLE_MS <= ms < _LATEST_PLAUSIBLE_MS else None


def seconds_to_ms(value: object) -> int | None:
    """Epoch seconds as int, float or numeric string (Ruuvi sends strings)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if not isinstance(value, int | float) or value != value or abs(value) > 1e12:
        return None
    return plausible_device_ms(round(value * 1000))


def iso_to_ms(value: object, local_zone: str | None = None) -> int | None:
    """An ISO 8601 time: kept when it carries an offset, or when the operator
    configured the zone the device's local clock runs in (Tasmota sends local
    time without an offset); otherwise ``None``."""
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        if local_zone is None:
            return None
        try:
            parsed = parsed.replace(tzinfo=ZoneInfo(local_zone))
        except (ZoneInfoNotFoundError, ValueError):
            return None
    try:
        return plausible_device_ms(round(parsed.timestamp() * 1000))
    except (OverflowError, OSError, ValueError):
        return None

"""Physical plausibility of a reading: the limits nature sets, per quantity and unit.

A broken probe or a hostile gateway can report a temperature of 1e9 or a relative
humidity of -40 %. Such a value is not evidence of anything, and every consumer of
readings (verdicts, charts, aggregates) would otherwise have to defend itself
against it. The gateway checks each value before signing it (an implausible value
becomes a signed ``implausible-value`` gap: the loss is recorded, not hidden) and
the anchor refuses a batch carrying one (``implausible-value``).

The limits are physical, not product ranges: a reading outside them cannot be a
true measurement by a sensor of that quantity. Quantities not listed here carry no
physical limits beyond the record format's own (finite, within ±(2^53 - 1)).
"""

from __future__ import annotations

from collections.abc import Mapping

from .errors import FormatError

__all__ = ["LIMITS", "check_reading", "implausible"]

# (quantity, UN/ECE unit) -> inclusive (low, high). Temperatures: absolute zero
# below, and above, the hottest any cold-chain or ambient sensor we know of can
# report (1000 °C covers ovens and autoclave validation loggers).
LIMITS: Mapping[tuple[str, str], tuple[float, float]] = {
    ("temperature", "CEL"): (-273.15, 1000.0),
    ("temperature", "FAH"): (-459.67, 1832.0),
    ("temperature", "KEL"): (0.0, 1273.15),
    ("humidity", "P1"): (0.0, 100.0),
    ("battery", "P1"): (0.0, 100.0),
    ("pressure", "PAL"): (0.0, 10_000_000.0),  # vacuum to 100 bar
    ("voltage", "VLT"): (-1000.0, 1000.0),
    ("linkquality", "C62"): (0.0, 255.0),
}
# The units a listed quantity may come in; any other is refused as implausible too.
_UNITS: Mapping[str, frozenset[str]] = {
    q: frozenset(u for (q2, u) in LIMITS if q2 == q) for (q, _) in LIMITS
}


def implausible(q: str, val: float, unit: str) -> str | None:
    """Why ``val`` (in ``unit``) cannot be a measurement of ``q``, or None if it can."""
    units = _UNITS.get(q)
    if units is None:
        return None
    if unit not in units:
        return f"{q} in unit {unit!r}: expected one of {', '.join(sorted(units))}"
    low, high = LIMITS[(q, unit)]
    if not low <= val <= high:
        return f"{q} {val:g} {unit} is outside the physically possible {low:g}..{high:g}"
    return None


def check_reading(q: str, val: float, unit: str) -> None:
    """Raise ``FormatError`` (``implausible-value``) when :func:`implausible` says why."""
    why = implausible(q, val, unit)
    if why is not None:
        raise FormatError(why, code="implausible-value")

"""The one module that talks to ``biip``, and fills in where it falls short.

biip 5.2 reports errors inside its result instead of raising, does not treat a
``]Q1`` (plain QR) URL as a GS1 Digital Link, needs ``GS1Message.parse_hri`` for
parenthesised human-readable text, leaves AIs 4330-4333 (pack temperature
limits) as raw strings, and accepts a GS1 message whose GTIN or SSCC has a
wrong check digit (the error is only on the element). It also reads fullwidth
and other non-ASCII digits as digits (Python's ``int`` does), though GS1 data is
ASCII by definition. See docs/adr/0104-gs1-parsing-with-biip.md.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

import biip
from biip import ParseConfig, ParseError
from biip.gs1_digital_link_uris import GS1DigitalLinkURI
from biip.gs1_element_strings import GS1ElementStrings
from biip.gs1_messages import GS1Message
from biip.symbology import ISOSymbology, SymbologyIdentifier

__all__ = ["Gs1Parse", "SymbologyError", "decode_pack_temperature", "parse_gs1", "split_symbology"]

# Derived, non-AI keys added next to the raw AI values (AI keys are all digits).
PACK_TEMPERATURE_KEYS = {
    "4330": ("max_temp", "FAH"),
    "4331": ("max_temp", "CEL"),
    "4332": ("min_temp", "FAH"),
    "4333": ("min_temp", "CEL"),
}
_PACK_TEMP = re.compile(r"(\d{6})(-?)")
_QUOTED = re.compile(r"'[^']*'")
_ISO_CODES = frozenset(s.value for s in ISOSymbology)
_CONFIG = ParseConfig(separator_chars=("\x1d",))
# biip can fail in ways beyond ParseError on hostile input; all of them mean "not GS1".
_BIIP_FAILURES = (ParseError, ValueError, IndexError, KeyError, TypeError)


class SymbologyError(ValueError):
    """The data starts with ``]`` but not with a known AIM symbology identifier."""


@dataclass(frozen=True, slots=True)
class Gs1Parse:
    """AI -> value, plus derived keys; ``error`` says why nothing parsed and ``code``
    names it (``bad-gs1``, or ``non-ascii`` for GS1 written in look-alike characters).
    ``claimed``: the data is GS1 by its own structure (element strings or a Digital
    Link path were found) and is broken, so it is bad whatever the symbology."""

    elements: dict[str, str] = field(default_factory=dict)
    error: str = ""
    code: str = ""
    claimed: bool = False


def split_symbology(data: str) -> tuple[str, str]:
    """``"]C1010950..."`` -> ``("]C1", "010950...")``; no identifier -> ``("", data)``."""
    if not data.startswith("]"):
        return "", data
    if len(data) < 3 or data[1] not in _ISO_CODES:
        raise SymbologyError("unknown AIM symbology identifier")
    try:
        sym = SymbologyIdentifier.extract(data)
    except _BIIP_FAILURES as e:
        raise SymbologyError("malformed AIM symbology identifier") from e
    return sym.value, data[len(sym.value) :]


def parse_gs1(sym: str, data: str) -> Gs1Parse:
    """Parse ``data`` (identifier already split off) as GS1 as far as ``sym`` allows."""
    if not data.isascii():
        # GS1 character sets are subsets of ASCII. Fullwidth digits (an input method
        # or a keyboard-wedge layout) would pass biip's int()-based checks, so GS1
        # written in look-alike characters is caught here, before biip sees it.
        folded = unicodedata.normalize("NFKC", data)
        if folded.isascii():
            look_alike = parse_gs1(sym, folded)
            if not look_alike.error or look_alike.claimed:
                return _refused("GS1 data in non-ASCII look-alike characters", "non-ascii")
        return Gs1Parse(error="GS1 data is ASCII; this is not", code="non-ascii")
    try:
        if data.startswith(("http://", "https://")) and sym in ("", "]Q1", "]Q3", "]d2", "]d1"):
            # biip only tries Digital Link for GS1 symbologies; a plain QR URL is the
            # common case on packs, so parse the URL itself.
            return _elements(GS1DigitalLinkURI.parse(data, config=_CONFIG).element_strings)
        if data.startswith("(") and sym in ("", "]C0", "]Q1", "]d1"):
            return _elements(GS1Message.parse_hri(data, config=_CONFIG).element_strings)
        result = biip.parse(sym + data, config=_CONFIG)
    except _BIIP_FAILURES as e:
        return Gs1Parse(error=_first_sentence(str(e)), code="bad-gs1")
    if result.gs1_message is not None:
        return _elements(result.gs1_message.element_strings)
    if result.gs1_digital_link_uri is not None:
        return _elements(result.gs1_digital_link_uri.element_strings)
    if result.gtin is not None:
        return Gs1Parse({"01": result.gtin.as_gtin_14()})
    if result.sscc is not None:
        return Gs1Parse({"00": result.sscc.value})
    error = (
        result.gs1_message_error
        or result.gs1_digital_link_uri_error
        or result.gtin_error
        or result.sscc_error
        or "not a GS1 barcode"
    )
    return Gs1Parse(error=_first_sentence(error), code="bad-gs1")


def _refused(error: str, code: str = "bad-gs1") -> Gs1Parse:
    return Gs1Parse(error=error, code=code, claimed=True)


def decode_pack_temperature(raw: str) -> str | None:
    """AI 4330-4333 value (hundredths of a degree, optional trailing ``-``) as a
    decimal string, e.g. ``"001800-"`` -> ``"-18.00"``; ``None`` when malformed."""
    match = _PACK_TEMP.fullmatch(raw)
    if match is None:
        return None
    hundredths = int(match.group(1))
    sign = "-" if match.group(2) and hundredths else ""
    return f"{sign}{hundredths // 100}.{hundredths % 100:02d}"


def _elements(element_strings: GS1ElementStrings) -> Gs1Parse:
    out: dict[str, str] = {}
    for es in element_strings:
        ai = es.ai.ai
        # biip accepts the message but records a bad GTIN/SSCC/GLN check digit
        # only on the element: a misread must not pass as a valid scan.
        # That holds for a Digital Link URI as much as for element strings.
        element_error = es.gtin_error or es.sscc_error or es.gln_error
        if element_error:
            return _refused(f"AI {ai}: {_first_sentence(element_error)}")
        if ai in out:  # a repeated AI is invalid GS1; keep the first, as biip's .get does
            continue
        out[ai] = es.value
        if ai in PACK_TEMPERATURE_KEYS:
            decoded = decode_pack_temperature(es.value)
            if decoded is not None:
                name, unit = PACK_TEMPERATURE_KEYS[ai]
                out[f"{name}_{unit}"] = decoded
    if not out:
        return Gs1Parse(error="no GS1 element strings", code="bad-gs1")
    return Gs1Parse(out)


def _first_sentence(message: str) -> str:
    # biip quotes the whole (untrusted) input in its messages: elide the quotes.
    return (_QUOTED.sub("…", message).strip() or "not a GS1 barcode")[:160]

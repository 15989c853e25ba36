"""RFC 8785 (JCS) canonical JSON: the bytes every hash and signature covers.

``rfc8785`` is the reference we trust, but it walks and escapes in pure Python
(about 50k records/s here), which would make JCS cost as much as the Ed25519
signature itself. Most records fall in a subset where the standard library's C
encoder (sorted keys, no whitespace, UTF-8) already produces the exact JCS
bytes; :func:`canonical_json` takes that path when it provably applies and falls
back to ``rfc8785`` otherwise. A property test checks the two agree on
arbitrary JSON (tests/unit/proofs/test_canonical.py); docs/adr/0004 explains.

The fast path applies when: every object key is ASCII (then code-point order is
UTF-16 order), every integer fits in ±(2^53 - 1), and every float is either
integral below 2^53 (JCS prints it as an integer) or has magnitude in
[1e-4, 1e16), where Python's shortest round-trip ``repr`` uses the same fixed
notation as ECMAScript's Number-to-String. String escaping of the C encoder with
``ensure_ascii=False`` equals JCS's; lone surrogates fail UTF-8 encoding and
fall back.
"""

from __future__ import annotations

import json
import math
from typing import Any

import rfc8785

from .errors import FormatError

__all__ = ["canonical_json", "jcs_number", "jcs_string"]

_MAX_SAFE_INT = 2**53 - 1
_encode = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
).encode


# The C encoder's string escaping, which equals JCS's (the module docstring).
jcs_string = json.encoder.encode_basestring


def jcs_number(value: int | float) -> str | None:
    """JCS text of a number inside the fast subset, ``None`` outside it."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value) if -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT else None
    if not math.isfinite(value):
        return None
    magnitude = abs(value)
    if value.is_integer():
        return str(int(value)) if magnitude <= _MAX_SAFE_INT else None
    return repr(value) if 1e-4 <= magnitude < 1e16 else None


class _NotFast(Exception):
    """The value is outside the subset where the C encoder equals JCS."""


def _prepare(value: Any) -> Any:
    if isinstance(value, str) or value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT:
            return value
        raise _NotFast
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _NotFast
        magnitude = abs(value)
        if value.is_integer():
            if magnitude <= _MAX_SAFE_INT:
                return int(value)
            raise _NotFast
        if 1e-4 <= magnitude < 1e16:
            return value
        raise _NotFast
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str) or not k.isascii():
                raise _NotFast
            out[k] = _prepare(v)
        return out
    if isinstance(value, list | tuple):
        return [_prepare(v) for v in value]
    raise _NotFast


def canonical_json(value: Any) -> bytes:
    """Return the RFC 8785 canonical UTF-8 bytes of ``value``.

    Raises :class:`FormatError` for values JSON cannot carry canonically
    (NaN, infinities, integers beyond IEEE 754 doubles, non-string keys).
    """
    try:
        return _encode(_prepare(value)).encode("utf-8")
    except (_NotFast, UnicodeEncodeError, RecursionError):
        pass
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError, RecursionError) as e:
        raise FormatError(
            f"value cannot be canonicalised as JSON: {e}", code="not-canonical"
        ) from e

"""RFC 8785 (JCS) canonical JSON: the bytes every hash and signature covers."""

from __future__ import annotations

from typing import Any

import rfc8785

from .errors import FormatError

__all__ = ["canonical_json"]


def canonical_json(value: Any) -> bytes:
    """Return the RFC 8785 canonical UTF-8 bytes of ``value``.

    Raises :class:`FormatError` for values JSON cannot carry canonically
    (NaN, infinities, integers beyond IEEE 754 doubles, non-string keys).
    """
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as e:
        raise FormatError(
            f"value cannot be canonicalised as JSON: {e}", code="not-canonical"
        ) from e

"""The one identifier rule every id in coldtrail follows, and organisation names.

Gateway, sensor, scanner, asset, read point and organisation ids are 1-128
characters of ASCII letters, digits and ``._:/@-``, starting with a letter or a
digit. They are matched with :meth:`re.Pattern.fullmatch`: ``re.match`` with
``$`` accepts a trailing newline, which once let ``"truck-07\\n"`` pass as a
second id for ``truck-07``. Every package checks ids through this module.
"""

from __future__ import annotations

import re
import unicodedata

from .errors import FormatError

__all__ = [
    "ID_RE",
    "ID_RULE",
    "NAME_MAX",
    "check_identifier",
    "check_name",
    "is_identifier",
]

ID_RULE = "1-128 characters of ASCII letters, digits and ._:/@-, starting with a letter or digit"
ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}", re.ASCII)  # use fullmatch
_ID = ID_RE
NAME_MAX = 200


def is_identifier(value: object) -> bool:
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def check_identifier(value: object, what: str) -> str:
    """Return ``value`` if it is an identifier; raise ``FormatError`` (``bad-identifier``)."""
    if not is_identifier(value):
        raise FormatError(f"{what} must be {ID_RULE}: {value!r:.80}", code="bad-identifier")
    assert isinstance(value, str)
    return value


def check_name(value: object, what: str) -> str:
    """A human name (an organisation's): 1-200 characters, no control or format
    characters, no leading or trailing space, valid Unicode."""
    if not isinstance(value, str) or not value or len(value) > NAME_MAX:
        raise FormatError(f"{what} must be 1-{NAME_MAX} characters", code="bad-name")
    if value != value.strip():
        raise FormatError(f"{what} must not start or end with white space", code="bad-name")
    for ch in value:
        if unicodedata.category(ch) in {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}:
            raise FormatError(
                f"{what} must not contain control or invisible characters (U+{ord(ch):04X})",
                code="bad-name",
            )
    return value

"""Request parameters and JSON bodies: the one way every route reads a number from a
query or path and writes JSON, so every refusal is the same ``bad-parameter`` problem."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from anchor.errors import AnchorError

__all__ = ["MAX_SAFE_INT", "int_param", "json_response", "path_int", "query_int"]

MAX_SAFE_INT = 2**53 - 1  # what every JSON client reads exactly


def int_param(
    text: str | None, name: str, *, default: int | None = None, lo: int = 0, hi: int = MAX_SAFE_INT
) -> int:
    """A whole number of ASCII digits in ``[lo, hi]`` (``int()`` would read fullwidth
    and other Unicode digits too); ``default`` when absent, else it is required."""
    if text is None:
        if default is None:
            raise AnchorError("bad-parameter", f"query parameter '{name}' is required")
        return default
    if not (text.isascii() and text.isdigit() and len(text) <= 16):
        raise AnchorError("bad-parameter", f"'{name}' is a whole number")
    value = int(text)
    if not lo <= value <= hi:
        raise AnchorError("bad-parameter", f"'{name}' must be between {lo} and {hi}")
    return value


def query_int(
    request: web.Request, name: str, default: int | None = None, *, hi: int = MAX_SAFE_INT
) -> int:
    return int_param(request.query.get(name), name, default=default, hi=hi)


def path_int(request: web.Request, name: str) -> int:
    return int_param(request.match_info[name], name)


def json_response(
    doc: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=json.dumps(doc, separators=(",", ":"), allow_nan=False).encode(),
        status=status,
        content_type="application/json",
        headers={"Vary": "Accept", **(headers or {})},
    )

"""HTTP calls the integration tests make to a real anchor: any status comes back (no
exception for 4xx/5xx), and multipart bodies as a browser's form sends them."""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping

__all__ = ["call", "form"]


def call(
    base: str,
    path: str,
    token: str | None = None,
    data: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, bytes, dict[str, str]]:
    """``(status, body, headers)`` of a GET (or a POST when ``data`` is given)."""
    h = dict(headers or {})
    if token:
        h["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(base + path, data=data, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def form(
    parts: Mapping[str, bytes | str], files: Mapping[str, str] | None = None
) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body and its content type; ``files`` names the parts
    sent as files (part -> file name)."""
    boundary = uuid.uuid4().hex
    chunks = []
    for name, value in parts.items():
        disposition = f'form-data; name="{name}"'
        if files and name in files:
            disposition += f'; filename="{files[name]}"'
        head = f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
        if files and name in files:
            head += "Content-Type: application/octet-stream\r\n"
        body = value.encode() if isinstance(value, str) else value
        chunks.append(head.encode() + b"\r\n" + body + b"\r\n")
    return b"".join(chunks) + f"--{boundary}--\r\n".encode(), (
        f"multipart/form-data; boundary={boundary}"
    )

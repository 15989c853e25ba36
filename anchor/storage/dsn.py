"""Which store a config names, and its address fit for logs (never a password)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["is_postgres_url", "redact_dsn"]

_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(store: str) -> bool:
    """True for a ``postgresql://`` (or ``postgres://``) URL."""
    return store.strip().lower().startswith(_SCHEMES)


def redact_dsn(dsn: str) -> str:
    """``dsn`` with its password (in the userinfo or a ``password=`` parameter) masked."""
    try:
        parts = urlsplit(dsn)
    except ValueError:
        return "postgresql://(unparsable address)"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        netloc = f"{userinfo}@{host}"
    query = "&".join(
        "password=***" if item.lower().startswith("password=") else item
        for item in parts.query.split("&")
        if item
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))

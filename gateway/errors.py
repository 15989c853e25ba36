"""The error families of the ``gateway`` package.

Like ``proofs.errors``: every error carries a stable kebab-case ``code`` and a
human sentence, so an operator (``coldtrail-gateway status``, the journal) sees
both what went wrong and what to grep for.
"""

from __future__ import annotations

from proofs.errors import CodedError

__all__ = ["ConfigError", "GatewayError", "SpoolError", "UplinkError"]


class GatewayError(CodedError):
    """Base of every error raised by ``gateway``."""

    default_code = "gateway-error"


class ConfigError(GatewayError):
    """The configuration file, an override or the registry cannot be used as given."""

    default_code = "bad-config"


class SpoolError(GatewayError):
    """The spool cannot be opened or refuses an operation (it never loses data silently)."""

    default_code = "spool-error"


class UplinkError(GatewayError):
    """The anchor could not be reached or answered something that is not a valid reply."""

    default_code = "uplink-error"

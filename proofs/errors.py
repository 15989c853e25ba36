"""The error families of the ``proofs`` package.

Every error carries a stable machine-readable ``code`` (kebab-case, never
renamed once published) and a human sentence. Trust failures
(:class:`VerificationError`) are kept apart from input that cannot even be
read (:class:`FormatError`), so callers can tell "this is forged" from "this is
garbage".
"""

from __future__ import annotations

__all__ = [
    "CodedError",
    "FormatError",
    "KeyError_",
    "ProofsError",
    "VerificationError",
]


class CodedError(Exception):
    """A human sentence and a stable ``code``; the base of coldtrail's error families
    (``proofs`` here, ``gateway.errors`` too)."""

    default_code = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code or self.default_code
        self.message = message

    def __str__(self) -> str:
        return f"{self.message} [{self.code}]"


class ProofsError(CodedError):
    """Base of every error raised by ``proofs``."""

    default_code = "proofs-error"


class FormatError(ProofsError):
    """Input bytes or JSON that cannot be parsed into the expected structure."""

    default_code = "malformed"


class VerificationError(ProofsError):
    """A signature, hash, proof or chain does not check out."""

    default_code = "verification-failed"


class KeyError_(ProofsError):
    """A key cannot be read, written or used."""

    default_code = "bad-key"

"""Ed25519 keys: the one module of ``proofs`` that touches a crypto library.

Everything else in coldtrail signs and verifies through :class:`SigningKey` and
:class:`PublicKey`, so the algorithm is fixed in one place and the backend can
be swapped without touching callers.

Keys and PEM files use ``cryptography`` (OpenSSL). Signing and verification use
libsodium through PyNaCl: it verifies about 1.8x faster here (23.8k/s vs 13.3k/s
per core; the anchor's hot path) and signs about 25% faster (the gateway's), and
it is the stricter verifier (it rejects non-canonical and small-order encodings).
Ed25519 is deterministic, so a test checks both libraries sign identically.
See docs/adr/0007.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from nacl.bindings import crypto_sign
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from .errors import KeyError_, VerificationError

__all__ = ["SIGNATURE_SIZE", "PublicKey", "SigningKey", "key_id_of"]

SIGNATURE_SIZE = 64
_PUBLIC_SIZE = 32


def key_id_of(public_raw: bytes) -> str:
    """Short stable id of a public key: hex of the first 8 bytes of SHA-256(key)."""
    return hashlib.sha256(public_raw).hexdigest()[:16]


class PublicKey:
    """An Ed25519 public key that verifies signatures."""

    __slots__ = ("_verify_key", "raw")

    def __init__(self, raw: bytes) -> None:
        if not isinstance(raw, bytes | bytearray) or len(raw) != _PUBLIC_SIZE:
            raise KeyError_("an Ed25519 public key is exactly 32 bytes", code="bad-public-key")
        self.raw = bytes(raw)
        try:
            Ed25519PublicKey.from_public_bytes(self.raw)  # refuse what OpenSSL refuses, too
            self._verify_key = VerifyKey(self.raw)
        except ValueError as e:
            raise KeyError_(f"not an Ed25519 public key: {e}", code="bad-public-key") from e

    @classmethod
    def from_base64(cls, text: str) -> PublicKey:
        try:
            raw = base64.b64decode(text, validate=True)
        except (ValueError, TypeError) as e:
            raise KeyError_("public key is not valid base64", code="bad-public-key") from e
        return cls(raw)

    def to_base64(self) -> str:
        return base64.b64encode(self.raw).decode("ascii")

    @property
    def key_id(self) -> str:
        return key_id_of(self.raw)

    def verify(self, signature: bytes, message: bytes) -> None:
        """Return ``None`` if ``signature`` is valid for ``message``; raise otherwise."""
        if len(signature) != SIGNATURE_SIZE:
            raise VerificationError(
                f"an Ed25519 signature is {SIGNATURE_SIZE} bytes, got {len(signature)}",
                code="bad-signature",
            )
        try:
            self._verify_key.verify(message, signature)
        except BadSignatureError as e:
            raise VerificationError("signature does not verify", code="bad-signature") from e

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and other.raw == self.raw

    def __hash__(self) -> int:
        return hash(self.raw)

    def __repr__(self) -> str:
        return f"PublicKey({self.key_id})"


class SigningKey:
    """An Ed25519 private key. Its bytes are never part of ``repr`` or logs."""

    __slots__ = ("_key", "_sodium_secret", "public_key")

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public_key = PublicKey(
            key.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
        )
        # libsodium's 64-byte secret (seed || public key): signing through it is
        # about 25% faster than through OpenSSL, and Ed25519 is deterministic, so
        # both give the same signature.
        self._sodium_secret = self.seed() + self.public_key.raw

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        if len(seed) != 32:
            raise KeyError_("an Ed25519 seed is exactly 32 bytes", code="bad-private-key")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def from_pem(cls, pem: bytes) -> SigningKey:
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as e:
            raise KeyError_(f"not a readable private key: {e}", code="bad-private-key") from e
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyError_("private key is not Ed25519", code="bad-private-key")
        return cls(key)

    def to_pem(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def seed(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    @property
    def key_id(self) -> str:
        return self.public_key.key_id

    def sign(self, message: bytes) -> bytes:
        signed: bytes = crypto_sign(message, self._sodium_secret)
        return signed[:SIGNATURE_SIZE]

    def __repr__(self) -> str:
        return f"SigningKey({self.key_id})"

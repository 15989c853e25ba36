"""Ed25519 keys: the one module of ``proofs`` that touches a crypto library.

Everything else in coldtrail signs and verifies through :class:`SigningKey` and
:class:`PublicKey`, so the algorithm is fixed in one place and the backend can
be swapped without touching callers.

Keys, signing and verification use libsodium through PyNaCl: it verifies about
1.8x faster here than OpenSSL (23.8k/s vs 13.3k/s per core; the anchor's hot
path) and signs about 25% faster (the gateway's), and it is the stricter verifier
(it rejects non-canonical and small-order encodings). PEM files go through
``cryptography`` (OpenSSL), imported only when a PEM is written or is not the
exact RFC 8410 layout that ``cryptography`` itself writes: that import costs the
gateway 7 MB of resident memory it has no other use for (docs/adr/0007).
Ed25519 is deterministic, so a test checks both libraries sign identically.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os

from nacl.bindings import crypto_sign, crypto_sign_seed_keypair
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from .errors import KeyError_, VerificationError

__all__ = ["SIGNATURE_SIZE", "PublicKey", "SigningKey", "key_id_of"]

SIGNATURE_SIZE = 64
_PUBLIC_SIZE = 32
_SEED_SIZE = 32
# RFC 8410 §7: an unencrypted Ed25519 private key as PKCS#8 v1 DER is this 16-byte
# prefix and the 32-byte seed, in a "PRIVATE KEY" PEM. It is what ``to_pem`` writes.
_PKCS8_ED25519_PREFIX = bytes.fromhex("302e020100300506032b657004220420")
_PEM_BEGIN = b"-----BEGIN PRIVATE KEY-----"
_PEM_END = b"-----END PRIVATE KEY-----"


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
            self._verify_key = VerifyKey(self.raw)
        except (ValueError, TypeError) as e:
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

    __slots__ = ("_seed", "_sodium_secret", "public_key")

    def __init__(self, seed: bytes) -> None:
        if not isinstance(seed, bytes) or len(seed) != _SEED_SIZE:
            raise KeyError_("an Ed25519 seed is exactly 32 bytes", code="bad-private-key")
        public, secret = crypto_sign_seed_keypair(seed)
        self._seed = seed
        # libsodium's 64-byte secret (seed || public key), what it signs with.
        self._sodium_secret = secret
        self.public_key = PublicKey(public)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(os.urandom(_SEED_SIZE))

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        return cls(seed)

    @classmethod
    def from_pem(cls, pem: bytes) -> SigningKey:
        seed = _seed_of_rfc8410_pem(pem)
        if seed is not None:
            return cls(seed)
        # Any other layout (PKCS#8 v2 with the public key, other line breaks...): the
        # general parser, which also names what is wrong.
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as e:
            raise KeyError_(f"not a readable private key: {e}", code="bad-private-key") from e
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyError_("private key is not Ed25519", code="bad-private-key")
        return cls(
            key.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
        )

    def to_pem(self) -> bytes:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return Ed25519PrivateKey.from_private_bytes(self._seed).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def seed(self) -> bytes:
        return self._seed

    @property
    def key_id(self) -> str:
        return self.public_key.key_id

    def sign(self, message: bytes) -> bytes:
        signed: bytes = crypto_sign(message, self._sodium_secret)
        return signed[:SIGNATURE_SIZE]

    def __repr__(self) -> str:
        return f"SigningKey({self.key_id})"


def _seed_of_rfc8410_pem(pem: bytes) -> bytes | None:
    """The seed of a PEM in exactly the layout ``to_pem`` writes, else ``None``."""
    lines = pem.strip().split(b"\n")
    if len(lines) != 3 or lines[0] != _PEM_BEGIN or lines[2] != _PEM_END:
        return None
    try:
        der = base64.b64decode(lines[1], validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(der) != len(_PKCS8_ED25519_PREFIX) + _SEED_SIZE:
        return None
    if not der.startswith(_PKCS8_ED25519_PREFIX):
        return None
    return der[len(_PKCS8_ED25519_PREFIX) :]

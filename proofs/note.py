"""C2SP signed notes, tlog-checkpoints and tlog-cosignature/v1.

- signed-note: text, a blank line, then ``— <name> base64(key id || signature)``
  lines. Ed25519 key ids are SHA-256(name || "\\n" || 0x01 || public key)[:4];
  verifier keys are written ``name+hexid+base64(0x01 || public key)``.
- tlog-checkpoint: the note text is ``origin\\nsize\\nbase64(root)\\n`` plus
  optional extension lines.
- tlog-cosignature/v1: type 0x04 keys; the signature is an 8-byte big-endian
  POSIX timestamp followed by Ed25519 over
  ``cosignature/v1\\ntime <ts>\\n<checkpoint text>``.

Signatures from keys the verifier does not know are ignored, as the spec says;
a known key whose signature fails rejects the note.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass

from .errors import FormatError, VerificationError
from .keys import PublicKey, SigningKey
from .merkle import HASH_SIZE

__all__ = [
    "ALG_COSIGNATURE_V1",
    "ALG_ED25519",
    "Checkpoint",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "SignedNote",
    "cosign_checkpoint",
    "verify_cosignature",
]

ALG_ED25519 = 0x01
ALG_COSIGNATURE_V1 = 0x04
_DASH = "\u2014"
_MAX_SIGNATURES = 100


def _key_id(name: str, alg: int, public_raw: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + public_raw).digest()[:4]


def _check_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise FormatError(
            f"key name {name!r} must be non-empty, without spaces or '+'", code="bad-key-name"
        )


@dataclass(frozen=True, slots=True)
class NoteVerifier:
    """A verifier key: name, algorithm byte, Ed25519 public key."""

    name: str
    alg: int
    public_key: PublicKey

    def __post_init__(self) -> None:
        _check_name(self.name)
        if self.alg not in (ALG_ED25519, ALG_COSIGNATURE_V1):
            raise FormatError(f"unsupported signature type 0x{self.alg:02x}", code="bad-vkey")

    @property
    def key_id(self) -> bytes:
        return _key_id(self.name, self.alg, self.public_key.raw)

    def to_vkey(self) -> str:
        material = base64.b64encode(bytes([self.alg]) + self.public_key.raw).decode()
        return f"{self.name}+{self.key_id.hex()}+{material}"

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        parts = vkey.strip().split("+")
        # base64 may itself contain '+': name and hex id are the first two fields
        if len(parts) < 3:
            raise FormatError("a verifier key is name+hexid+base64", code="bad-vkey")
        name, hexid, material_b64 = parts[0], parts[1], "+".join(parts[2:])
        _check_name(name)
        try:
            key_id = bytes.fromhex(hexid)
            material = base64.b64decode(material_b64, validate=True)
        except (ValueError, binascii.Error) as e:
            raise FormatError(f"verifier key is not decodable: {e}", code="bad-vkey") from e
        if len(key_id) != 4 or len(hexid) != 8:
            raise FormatError("verifier key id must be 8 hex digits", code="bad-vkey")
        if len(material) != 33:
            raise FormatError("verifier key material must be 1 + 32 bytes", code="bad-vkey")
        verifier = cls(name, material[0], PublicKey(material[1:]))
        if verifier.key_id != key_id:
            raise FormatError("verifier key id does not match name and key", code="bad-vkey")
        return verifier


class NoteSigner:
    """Signs notes (alg 0x01) or cosigns checkpoints (alg 0x04) under a key name."""

    __slots__ = ("alg", "key", "name")

    def __init__(self, name: str, key: SigningKey, alg: int = ALG_ED25519) -> None:
        _check_name(name)
        self.name = name
        self.key = key
        self.alg = alg

    @property
    def verifier(self) -> NoteVerifier:
        return NoteVerifier(self.name, self.alg, self.key.public_key)

    def sign_text(self, text: str) -> NoteSignature:
        if self.alg != ALG_ED25519:
            raise FormatError("a cosigning key signs with cosign_checkpoint()", code="bad-vkey")
        sig = self.key.sign(text.encode())
        return NoteSignature(self.name, _key_id(self.name, self.alg, self.key.public_key.raw), sig)


@dataclass(frozen=True, slots=True)
class NoteSignature:
    name: str
    key_id: bytes
    signature: bytes  # for cosignatures: 8-byte timestamp || 64-byte signature

    def to_line(self) -> str:
        payload = base64.b64encode(self.key_id + self.signature).decode()
        return f"{_DASH} {self.name} {payload}\n"

    @classmethod
    def from_line(cls, line: str) -> NoteSignature:
        if not line.startswith(_DASH + " "):
            raise FormatError(
                "a signature line starts with an em dash and a space", code="bad-note"
            )
        rest = line[2:]
        fields = rest.split(" ")
        if len(fields) != 2:
            raise FormatError("a signature line is '— name base64'", code="bad-note")
        name, payload_b64 = fields
        _check_name(name)
        try:
            payload = base64.b64decode(payload_b64, validate=True)
        except (ValueError, binascii.Error) as e:
            raise FormatError("signature is not base64", code="bad-note") from e
        if len(payload) < 5:
            raise FormatError("signature is too short", code="bad-note")
        return cls(name, payload[:4], payload[4:])

    @property
    def timestamp(self) -> int | None:
        """The cosignature time in POSIX seconds, if this is a 72-byte cosignature."""
        if len(self.signature) != 72:
            return None
        return int(struct.unpack(">Q", self.signature[:8])[0])


@dataclass(frozen=True, slots=True)
class SignedNote:
    text: str
    signatures: tuple[NoteSignature, ...]

    @classmethod
    def parse(cls, data: str | bytes) -> SignedNote:
        if isinstance(data, bytes):
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError as e:
                raise FormatError("a note must be UTF-8", code="bad-note") from e
        if any(ord(c) < 0x20 and c != "\n" for c in data):
            raise FormatError("a note has no control characters but newlines", code="bad-note")
        sep = data.rfind("\n\n")
        if sep < 0:
            raise FormatError("a note needs a blank line before its signatures", code="bad-note")
        text, sig_block = data[: sep + 1], data[sep + 2 :]
        if not sig_block.endswith("\n"):
            raise FormatError("a note ends with a newline", code="bad-note")
        lines = sig_block[:-1].split("\n")
        if len(lines) > _MAX_SIGNATURES:
            raise FormatError("too many signatures on a note", code="bad-note")
        sigs = tuple(NoteSignature.from_line(line) for line in lines)
        if not sigs:
            raise FormatError("a note carries at least one signature", code="bad-note")
        return cls(text, sigs)

    def to_text(self) -> str:
        return self.text + "\n" + "".join(s.to_line() for s in self.signatures)

    @classmethod
    def sign(cls, text: str, *signers: NoteSigner) -> SignedNote:
        if not text.endswith("\n"):
            raise FormatError("note text ends with a newline", code="bad-note")
        return cls(text, tuple(s.sign_text(text) for s in signers))

    def with_signature(self, sig: NoteSignature) -> SignedNote:
        return SignedNote(self.text, (*self.signatures, sig))

    def verify(self, verifiers: list[NoteVerifier] | tuple[NoteVerifier, ...]) -> list[str]:
        """Check every signature by a known key; return the names of those that verified.

        Unknown signatures are ignored. Raises :class:`VerificationError` if a
        known key's signature is bad or no known key signed at all.
        """
        return [v.name for v in self.verified_by(verifiers)]

    def verified_by(
        self, verifiers: list[NoteVerifier] | tuple[NoteVerifier, ...]
    ) -> list[NoteVerifier]:
        """As :meth:`verify`, but the keys themselves: names alone can be shared by two keys."""
        verified: list[NoteVerifier] = []
        for sig in self.signatures:
            for v in verifiers:
                if v.name != sig.name or v.key_id != sig.key_id:
                    continue
                if v.alg == ALG_ED25519:
                    v.public_key.verify(sig.signature, self.text.encode())
                else:
                    verify_cosignature(self.text, sig, v)
                verified.append(v)
        if not verified:
            raise VerificationError(
                "no signature on the note by a known key", code="no-known-signer"
            )
        return verified


# --- checkpoints --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise FormatError("checkpoint origin is one non-empty line", code="bad-checkpoint")
        if self.size < 0:
            raise FormatError("checkpoint size must not be negative", code="bad-checkpoint")
        if len(self.root) != HASH_SIZE:
            raise FormatError("checkpoint root must be 32 bytes", code="bad-checkpoint")
        if any(not e or "\n" in e for e in self.extensions):
            raise FormatError("checkpoint extension lines are non-empty", code="bad-checkpoint")

    def to_text(self) -> str:
        lines = [
            self.origin,
            str(self.size),
            base64.b64encode(self.root).decode(),
            *self.extensions,
        ]
        return "\n".join(lines) + "\n"

    @classmethod
    def from_text(cls, text: str) -> Checkpoint:
        if not text.endswith("\n"):
            raise FormatError("checkpoint text ends with a newline", code="bad-checkpoint")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise FormatError("a checkpoint has origin, size and root lines", code="bad-checkpoint")
        origin, size_s, root_s, *ext = lines
        if not size_s.isdigit() or (size_s.startswith("0") and size_s != "0"):
            raise FormatError(
                "checkpoint size is a decimal without leading zeros", code="bad-checkpoint"
            )
        try:
            root = base64.b64decode(root_s, validate=True)
        except (ValueError, binascii.Error) as e:
            raise FormatError("checkpoint root is not base64", code="bad-checkpoint") from e
        return cls(origin, int(size_s), root, tuple(ext))


def _cosigned_message(checkpoint_text: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n{checkpoint_text}".encode()


def cosign_checkpoint(checkpoint_text: str, signer: NoteSigner, timestamp: int) -> NoteSignature:
    """A tlog-cosignature/v1 over ``checkpoint_text`` at POSIX time ``timestamp``."""
    if signer.alg != ALG_COSIGNATURE_V1:
        raise FormatError("cosignatures use a type 0x04 key", code="bad-vkey")
    if not 0 <= timestamp < 2**63:
        raise FormatError("cosignature timestamp out of range", code="bad-cosignature")
    sig = signer.key.sign(_cosigned_message(checkpoint_text, timestamp))
    key_id = _key_id(signer.name, ALG_COSIGNATURE_V1, signer.key.public_key.raw)
    return NoteSignature(signer.name, key_id, struct.pack(">Q", timestamp) + sig)


def verify_cosignature(checkpoint_text: str, sig: NoteSignature, verifier: NoteVerifier) -> int:
    """Verify a tlog-cosignature/v1; return its timestamp or raise."""
    if verifier.alg != ALG_COSIGNATURE_V1:
        raise VerificationError("not a cosignature key", code="bad-cosignature")
    if sig.key_id != verifier.key_id or sig.name != verifier.name:
        raise VerificationError("cosignature is by another key", code="bad-cosignature")
    ts = sig.timestamp
    if ts is None:
        raise VerificationError("a cosignature is 8 + 64 bytes", code="bad-cosignature")
    if ts >= 2**63:
        raise VerificationError("cosignature timestamp out of range", code="bad-cosignature")
    verifier.public_key.verify(sig.signature[8:], _cosigned_message(checkpoint_text, ts))
    return ts

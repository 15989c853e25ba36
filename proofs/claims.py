"""Claims about a pack: the events of their lifecycle and the receipts a claimant keeps.

A consumer files a claim about a lot (what happened, an optional photo, a contact kept
private); the anchor routes it to the custodian that held the lot when an excursion
happened, or to the lot's owner, and every change of its state is a
:class:`ClaimEvent`: ``received``, then ``answered`` (any number of times), then
``resolved`` or ``rejected`` (with a reason). Each event is a leaf of the anchor's
**claims log**, an RFC 6962 tree of its own whose checkpoints the log key signs under
the name ``<log origin>/claims`` (:func:`claims_verifier`): same key, another name, so
a claims checkpoint can never pass for one of the ledger's.

An event names who made it, when, the lot, where the claim was routed, and the SHA-256
of what was said (the claimant's text, the photo, the lot's bundle as it stood when the
claim was filed, an answer's message), never the words or the contact themselves: the
log is public, the claim is not. A :class:`ClaimReceipt` is one event with its inclusion
proof against a signed checkpoint; :func:`verify_receipt` checks it offline.

Pure: no I/O, typed strictly.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .canonical import canonical_json
from .errors import FormatError, VerificationError
from .identifiers import check_identifier
from .merkle import leaf_hash, verify_inclusion
from .note import ALG_ED25519, Checkpoint, NoteVerifier, SignedNote

__all__ = [
    "CLAIM_STATES",
    "EVENT_DOMAIN",
    "MAX_CONTACT_CHARS",
    "MAX_MESSAGE_CHARS",
    "MAX_PHOTO_BYTES",
    "MAX_TEXT_CHARS",
    "RECEIPT_FORMAT",
    "TRANSITIONS",
    "ClaimEvent",
    "ReceiptReport",
    "check_text",
    "claims_origin",
    "claims_verifier",
    "receipt_json",
    "sha256_hex",
    "sniff_photo",
    "verify_receipt",
]

CLAIM_STATES = ("received", "answered", "resolved", "rejected")
# From each state, the states an event may move a claim to; resolved and rejected end it.
TRANSITIONS: Mapping[str, frozenset[str]] = {
    "received": frozenset({"answered", "resolved", "rejected"}),
    "answered": frozenset({"answered", "resolved", "rejected"}),
    "resolved": frozenset(),
    "rejected": frozenset(),
}
EVENT_DOMAIN = b"coldtrail-claim/v1\n"
RECEIPT_FORMAT = "coldtrail-claim-receipt/1"
MAX_TEXT_CHARS = 4_000
MAX_MESSAGE_CHARS = 4_000
MAX_CONTACT_CHARS = 200
MAX_PHOTO_BYTES = 5 * 1024 * 1024
_HEX = frozenset("0123456789abcdef")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def claims_origin(log_origin: str) -> str:
    """The claims log's checkpoint origin and key name."""
    return f"{log_origin}/claims"


def claims_verifier(log: NoteVerifier) -> NoteVerifier:
    """The claims log's verifier from the ledger's log verifier key: the same public key
    under the name ``<name>/claims``."""
    return NoteVerifier(claims_origin(log.name), ALG_ED25519, log.public_key)


def check_text(value: object, what: str, limit: int, *, required: bool = True) -> str:
    """Free text a person wrote: a string of at most ``limit`` characters without control
    characters other than line breaks and tabs. Never rendered unescaped anywhere."""
    if not isinstance(value, str):
        raise FormatError(f"{what} must be text", code="claim-malformed")
    text = value.strip()
    if required and not text:
        raise FormatError(f"{what} is empty", code="claim-malformed")
    if len(text) > limit:
        raise FormatError(f"{what} is longer than {limit} characters", code="claim-too-large")
    if any((ord(c) < 32 and c not in "\n\r\t") or 0x7F <= ord(c) < 0xA0 for c in text):
        raise FormatError(f"{what} holds control characters", code="claim-malformed")
    return text


def sniff_photo(data: bytes) -> str:
    """A photo's media type from its bytes: JPEG or PNG, nothing else."""
    if len(data) > MAX_PHOTO_BYTES:
        raise FormatError(f"a photo is at most {MAX_PHOTO_BYTES >> 20} MiB", code="claim-too-large")
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    raise FormatError("a photo must be a JPEG or PNG image", code="claim-photo-type")


def _digest(value: object, what: str, *, optional: bool = True) -> str:
    if optional and value == "":
        return ""
    if not isinstance(value, str) or len(value) != 64 or not set(value) <= _HEX:
        raise FormatError(f"{what} must be a SHA-256 in hex", code="claim-malformed")
    return value


@dataclass(frozen=True, slots=True)
class ClaimEvent:
    """One change of a claim's state: the ``n``-th event of claim ``claim``."""

    claim: str
    n: int
    state: str
    by: str  # "claimant", or the operator as "org:token-id"
    at: int
    gtin: str
    lot: str
    routed_to: str  # the organisation that must answer
    text_sha256: str = ""  # the claimant's words (received)
    photo_sha256: str = ""
    bundle_sha256: str = ""  # the lot's bundle when the claim was filed (received)
    message_sha256: str = ""  # an answer's or a rejection's words

    def __post_init__(self) -> None:
        if not (isinstance(self.claim, str) and len(self.claim) == 32 and set(self.claim) <= _HEX):
            raise FormatError("a claim id is 32 hex digits", code="claim-malformed")
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise FormatError("an event number is a positive integer", code="claim-malformed")
        if self.state not in CLAIM_STATES:
            raise FormatError(f"a claim state: {self.state!r:.30}", code="claim-malformed")
        if (self.n == 1) != (self.state == "received"):
            raise FormatError("a claim begins received, and only once", code="claim-malformed")
        if isinstance(self.at, bool) or not isinstance(self.at, int) or self.at < 0:
            raise FormatError("an event time is ms since 1970", code="claim-malformed")
        if not isinstance(self.gtin, str) or not (len(self.gtin) == 14 and self.gtin.isdigit()):
            raise FormatError("a claim's GTIN is 14 digits", code="claim-malformed")
        check_identifier(self.lot, "a claim's lot")
        check_identifier(self.routed_to, "the organisation a claim is routed to")
        if not isinstance(self.by, str) or not 0 < len(self.by) <= 200:
            raise FormatError("an event names who made it", code="claim-malformed")
        for name in ("text_sha256", "photo_sha256", "bundle_sha256", "message_sha256"):
            _digest(getattr(self, name), name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "claim": self.claim,
            "n": self.n,
            "state": self.state,
            "by": self.by,
            "at": self.at,
            "gtin": self.gtin,
            "lot": self.lot,
            "routed_to": self.routed_to,
            "text_sha256": self.text_sha256,
            "photo_sha256": self.photo_sha256,
            "bundle_sha256": self.bundle_sha256,
            "message_sha256": self.message_sha256,
        }

    @classmethod
    def from_dict(cls, data: object) -> ClaimEvent:
        if not isinstance(data, dict):
            raise FormatError("a claim event is an object", code="claim-malformed")
        try:
            return cls(**{k: data[k] for k in cls.__slots__})
        except KeyError as e:
            raise FormatError(f"a claim event lacks {e.args[0]!r}", code="claim-malformed") from e
        except TypeError as e:
            raise FormatError(f"a claim event: {e}", code="claim-malformed") from e

    def statement(self) -> bytes:
        """The leaf's bytes in the claims log."""
        return EVENT_DOMAIN + canonical_json({"kind": "claim-event", **self.to_dict()})

    def leaf_hash(self) -> bytes:
        return leaf_hash(self.statement())


def receipt_json(
    event: ClaimEvent, index: int, checkpoint_note: str, proof: Sequence[bytes], log_vkey: str
) -> dict[str, Any]:
    """A receipt: the event, its leaf index, the signed claims checkpoint, the inclusion
    proof (base64) and the ledger's log verifier key (what to pin it against)."""
    return {
        "format": RECEIPT_FORMAT,
        "event": event.to_dict(),
        "leaf_index": index,
        "checkpoint": checkpoint_note,
        "inclusion_proof": [base64.b64encode(p).decode() for p in proof],
        "log_vkey": log_vkey,
    }


@dataclass(frozen=True, slots=True)
class ReceiptReport:
    event: ClaimEvent
    leaf_index: int
    tree_size: int
    root_hex: str
    pinned: bool


def verify_receipt(data: Any, trusted_log_vkeys: Sequence[str] = ()) -> ReceiptReport:
    """Check a claim receipt offline: the event's leaf is in the claims checkpoint, which
    the log key signed under ``<log name>/claims``. With ``trusted_log_vkeys`` the key is
    the pinned one; without, the receipt's own (``pinned`` False says so)."""
    if isinstance(data, (bytes, str)):
        try:
            data = json.loads(data)
        except ValueError as e:
            raise FormatError("a claim receipt is JSON", code="bad-receipt") from e
    if not isinstance(data, dict) or data.get("format") != RECEIPT_FORMAT:
        raise FormatError(f"not a {RECEIPT_FORMAT} document", code="bad-receipt")
    event = ClaimEvent.from_dict(data.get("event"))
    index, note_text, proof_b64 = (
        data.get("leaf_index"), data.get("checkpoint"), data.get("inclusion_proof"))  # fmt: skip
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise FormatError("the receipt's leaf index is malformed", code="bad-receipt")
    if not isinstance(note_text, str) or not isinstance(proof_b64, list):
        raise FormatError("the receipt lacks its checkpoint or proof", code="bad-receipt")
    try:
        proof = [base64.b64decode(p, validate=True) for p in proof_b64]
    except (TypeError, ValueError, binascii.Error) as e:
        raise FormatError("the receipt's proof is not base64", code="bad-receipt") from e
    pinned = bool(trusted_log_vkeys)
    vkeys = list(trusted_log_vkeys) if pinned else [data.get("log_vkey")]
    if not all(isinstance(v, str) for v in vkeys):
        raise FormatError("the receipt names no log key", code="bad-receipt")
    verifiers = [claims_verifier(NoteVerifier.from_vkey(str(v))) for v in vkeys]
    note = SignedNote.parse(note_text)
    signer = note.verified_by(verifiers)[0]
    checkpoint = Checkpoint.from_text(note.text)
    if checkpoint.origin != signer.name:
        raise VerificationError(
            f"the checkpoint is of {checkpoint.origin!r:.80}, not of the claims log",
            code="bad-receipt",
        )
    try:
        verify_inclusion(event.leaf_hash(), index, checkpoint.size, proof, checkpoint.root)
    except VerificationError as e:
        raise VerificationError(
            f"the claim event is not in the signed claims log: {e.message}", code="bad-receipt"
        ) from e
    return ReceiptReport(event, index, checkpoint.size, checkpoint.root.hex(), pinned)

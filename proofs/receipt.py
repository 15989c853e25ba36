"""Signed ingest receipts: the anchor's proof that it logged a gateway's batch.

A gateway deletes spooled records only after :func:`verify_receipt` passes:
the receipt is signed by the anchor's log key, the checkpoint inside it is a
signed note by the same key, and the manifest's leaf hash is included in that
checkpoint's tree at ``leaf_index``.

The signature covers ``b"coldtrail-receipt/v1\\n" + JCS(receipt body)`` so it
can never be confused with a note or record signature by the same key.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from .canonical import canonical_json
from .errors import FormatError, VerificationError
from .keys import SigningKey
from .merkle import verify_inclusion
from .note import ALG_ED25519, Checkpoint, NoteVerifier, SignedNote
from .records import Manifest

__all__ = ["RECEIPT_DOMAIN", "Receipt", "sign_receipt", "verify_receipt"]

RECEIPT_DOMAIN = b"coldtrail-receipt/v1\n"


@dataclass(frozen=True, slots=True)
class Receipt:
    gw: str
    batch_seq: int
    manifest_hash: str  # hex SHA-256 of the manifest's signed JSON
    leaf_index: int
    log_proof: tuple[bytes, ...]
    checkpoint: str  # the signed note (log signature, possibly cosignatures)
    accepted_at: int  # ms
    sig: str = ""

    def body(self) -> dict[str, Any]:
        return {
            "gw": self.gw,
            "batch_seq": self.batch_seq,
            "manifest_hash": self.manifest_hash,
            "leaf_index": self.leaf_index,
            "log_proof": [base64.b64encode(p).decode() for p in self.log_proof],
            "checkpoint": self.checkpoint,
            "accepted_at": self.accepted_at,
        }

    def to_dict(self) -> dict[str, Any]:
        return {"receipt": self.body(), "sig": self.sig}

    @classmethod
    def from_dict(cls, d: Any) -> Receipt:
        if not isinstance(d, dict) or not isinstance(d.get("receipt"), dict):
            raise FormatError("a receipt is {'receipt': {...}, 'sig': ...}", code="bad-receipt")
        b = d["receipt"]

        def need(name: str, kind: type) -> Any:
            value = b.get(name)
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise FormatError(f"receipt: '{name}' must be {kind.__name__}", code="bad-receipt")
            return value

        proof_b64 = need("log_proof", list)
        sig = d.get("sig")
        if not isinstance(sig, str) or not all(isinstance(p, str) for p in proof_b64):
            raise FormatError("receipt: 'sig' and proof hashes are strings", code="bad-receipt")
        try:
            proof = tuple(base64.b64decode(p, validate=True) for p in proof_b64)
        except (ValueError, binascii.Error) as e:
            raise FormatError("receipt: a proof hash is not base64", code="bad-receipt") from e
        return cls(
            gw=need("gw", str),
            batch_seq=need("batch_seq", int),
            manifest_hash=need("manifest_hash", str),
            leaf_index=need("leaf_index", int),
            log_proof=proof,
            checkpoint=need("checkpoint", str),
            accepted_at=need("accepted_at", int),
            sig=sig,
        )


def sign_receipt(receipt: Receipt, log_key: SigningKey) -> Receipt:
    sig = log_key.sign(RECEIPT_DOMAIN + canonical_json(receipt.body()))
    return Receipt(**{**_fields(receipt), "sig": base64.b64encode(sig).decode()})


def _fields(r: Receipt) -> dict[str, Any]:
    return {name: getattr(r, name) for name in Receipt.__slots__}


def verify_receipt(data: Any, manifest: Manifest, anchor_vkey: str) -> tuple[Receipt, Checkpoint]:
    """Check a receipt for ``manifest`` against the anchor's log verifier key."""
    receipt = Receipt.from_dict(data)
    verifier = NoteVerifier.from_vkey(anchor_vkey)
    if verifier.alg != ALG_ED25519:
        raise FormatError("the anchor key must be a type 0x01 verifier key", code="bad-vkey")
    try:
        sig = base64.b64decode(receipt.sig, validate=True)
    except (ValueError, binascii.Error) as e:
        raise VerificationError("receipt signature is not base64", code="bad-receipt") from e
    verifier.public_key.verify(sig, RECEIPT_DOMAIN + canonical_json(receipt.body()))
    if receipt.gw != manifest.gw or receipt.batch_seq != manifest.batch_seq:
        raise VerificationError("receipt is for another batch", code="receipt-mismatch")
    if receipt.manifest_hash != manifest.hash_hex():
        raise VerificationError("receipt names another manifest", code="receipt-mismatch")
    note = SignedNote.parse(receipt.checkpoint)
    note.verify([verifier])
    checkpoint = Checkpoint.from_text(note.text)
    if checkpoint.origin != verifier.name:
        raise VerificationError("receipt checkpoint is for another log", code="origin-mismatch")
    verify_inclusion(
        manifest.leaf_hash(),
        receipt.leaf_index,
        checkpoint.size,
        list(receipt.log_proof),
        checkpoint.root,
    )
    return receipt, checkpoint

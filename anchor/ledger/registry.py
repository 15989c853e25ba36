"""Who may speak for what, signed: places, enrolments and revocations.

The rows that say which organisation owns a place, which key a gateway has and
which places it may name, and when it was compromised decide what every answer
counts; the profile that judges a product's lots and each disposition of a lot decide
what a verdict says and what happens to the stock. They are not log entries (yet), so
each row carries an attestation: the log key's Ed25519 signature over a canonical
statement of the row, made when the row is written. ``verify-ledger`` rebuilds each
statement from the row and checks the signature, so a row edited in the database
without the log key is named.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass

from anchor.ledger.model import (
    ApiToken,
    Disposition,
    Gateway,
    Place,
    Product,
    StoredDocument,
    StoredProfile,
)
from proofs.canonical import canonical_json
from proofs.errors import ProofsError
from proofs.keys import PublicKey, SigningKey

__all__ = [
    "REGISTRY_DOMAIN",
    "Attest",
    "Revocation",
    "attester",
    "disposition_statement",
    "document_statement",
    "enrolment_statement",
    "organisation_statement",
    "place_statement",
    "product_statement",
    "profile_statement",
    "revocation_statement",
    "token_revocation_statement",
    "token_statement",
    "verify_attestation",
]

REGISTRY_DOMAIN = b"coldtrail-registry/v1\n"

# statement bytes -> base64 signature by the log key
Attest = Callable[[bytes], str]


@dataclass(frozen=True, slots=True)
class Revocation:
    gw: str
    at: int  # the compromise time given
    recorded_at: int  # when the revocation was made
    reason: str
    attestation: str = ""


def _statement(kind: str, body: dict[str, object]) -> bytes:
    return REGISTRY_DOMAIN + canonical_json({"kind": kind, **body})


def organisation_statement(org_id: str, name: str, at: int) -> bytes:
    return _statement("organisation", {"id": org_id, "name": name, "at": at})


def token_statement(t: ApiToken) -> bytes:
    """A token by its id and the hash of its secret (the secret is never in a statement)."""
    return _statement(
        "token",
        {"id": t.id, "org": t.org_id, "role": t.role, "hash": t.token_hash.hex(),
         "at": t.created_at, "label": t.label},
    )  # fmt: skip


def token_revocation_statement(token_id: str, at: int) -> bytes:
    return _statement("token-revocation", {"id": token_id, "at": at})


def place_statement(p: Place) -> bytes:
    return _statement(
        "place",
        {"id": p.id, "org": p.org_id, "type": p.kind, "name": p.name, "at": p.registered_at},
    )


def enrolment_statement(g: Gateway) -> bytes:
    return _statement(
        "enrolment",
        {
            "gw": g.id,
            "org": g.org_id,
            "public_key": g.public_key,
            "key_id": g.key_id,
            "asset": g.asset,
            "places": sorted(g.places),
            "at": g.enrolled_at,
        },
    )


def revocation_statement(r: Revocation) -> bytes:
    return _statement(
        "revocation", {"gw": r.gw, "at": r.at, "recorded_at": r.recorded_at, "reason": r.reason}
    )


def profile_statement(p: StoredProfile) -> bytes:
    """A profile by its digest; the body is what the digest is over."""
    return _statement("profile", {"digest": p.digest, "body": p.body, "at": p.registered_at})


def product_statement(p: Product) -> bytes:
    return _statement(
        "product",
        {"gtin": p.gtin, "org": p.org_id, "name": p.name, "description": p.description,
         "pack": p.pack, "unit": p.unit, "profile": p.profile, "at": p.updated_at},
    )  # fmt: skip


def disposition_statement(d: Disposition) -> bytes:
    return _statement(
        "disposition",
        {"gtin": d.gtin, "lot": d.lot, "n": d.n, "disposition": d.disposition,
         "cause": d.cause, "rule": d.rule, "status": d.status, "evidence": d.evidence,
         "custodian": d.custodian, "owner": d.owner, "by": d.by, "reason": d.reason,
         "at": d.at},
    )  # fmt: skip


def document_statement(d: StoredDocument) -> bytes:
    """The entry's own statement (proofs.documents), so a bundle's reader checks it
    without the anchor's code: the same domain and canonical JSON as every row here."""
    return d.entry.statement()


def attester(log_key: SigningKey) -> Attest:
    def attest(statement: bytes) -> str:
        return base64.b64encode(log_key.sign(statement)).decode()

    return attest


def verify_attestation(statement: bytes, attestation: str, log_key: PublicKey) -> bool:
    try:
        log_key.verify(base64.b64decode(attestation, validate=True), statement)
    except (ProofsError, binascii.Error, ValueError):
        return False
    return True

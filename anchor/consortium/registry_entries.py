"""Registry changes as entries of the consortium's stream, applied by every member.

Which organisations exist, which places they own, which keys their gateways have, when
a key was compromised and which gateway tokens exist decide what every member accepts
and what every answer counts, so every member must hold the same rows. A member that
makes such a change (``coldtrail-anchor gateway enroll`` and friends on its node) signs
the row's statement (:mod:`anchor.ledger.registry`) with its log key and publishes it;
every member, itself included, applies it in stream order after checking:

- the signature is by a log key of the consortium's policy;
- an organisation belongs to the member that registered it: only that member may add
  its places, enrol or revoke its gateways and issue its gateway tokens.

The row keeps the signature as its attestation, so ``verify-ledger`` on any member
checks it against the policy's log keys. Applying an entry twice (a member that crashed
between the write and its stream position) is a no-op.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from anchor.auth import ROLES
from anchor.errors import AnchorError
from anchor.ledger.model import (
    ApiToken,
    Gateway,
    Organisation,
    Place,
    Product,
    StoredDocument,
    StoredProfile,
)
from anchor.ledger.ports import LedgerStore
from anchor.ledger.products import profile_of
from anchor.ledger.registry import (
    Revocation,
    document_statement,
    enrolment_statement,
    organisation_statement,
    place_statement,
    product_statement,
    profile_statement,
    revocation_statement,
    token_revocation_statement,
    token_statement,
)
from proofs.canonical import canonical_json
from proofs.documents import DocumentEntry
from proofs.errors import FormatError, ProofsError
from proofs.keys import PublicKey, SigningKey, key_id_of
from proofs.note import NoteVerifier

__all__ = ["REGISTRY_OPS", "RegistryEntry", "apply_entry", "decode_entry", "sign_entry"]

REGISTRY_OPS = (
    "organisation", "place", "enrolment", "revocation", "token", "token-revocation", "profile",
    "product", "document",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class RegistryEntry:
    op: str
    row: dict[str, Any]
    by: str  # the signing member's log verifier key (a vkey)
    sig: str  # base64 Ed25519 signature over the row's statement

    def to_bytes(self) -> bytes:
        return canonical_json({"op": self.op, "row": self.row, "by": self.by, "sig": self.sig})

    def msg_id(self) -> str:
        """The stream's dedupe id: one per signed statement."""
        return "registry-" + self.sig


def _str(row: dict[str, Any], key: str) -> str:
    v = row.get(key)
    if not isinstance(v, str):
        raise AnchorError("malformed", f"registry entry: {key} is not a string")
    return v


def _int(row: dict[str, Any], key: str) -> int:
    v = row.get(key)
    if not isinstance(v, int) or isinstance(v, bool):
        raise AnchorError("malformed", f"registry entry: {key} is not an integer")
    return v


def _model(op: str, row: dict[str, Any], sig: str) -> Any:
    """The row as the store's model, its statement and signature checked elsewhere."""
    if op == "organisation":
        return Organisation(_str(row, "id"), _str(row, "name"), _int(row, "at"))
    if op == "place":
        return Place(_str(row, "id"), _str(row, "org"), _str(row, "type"), _str(row, "name"),
                     _int(row, "at"), sig)  # fmt: skip
    if op == "enrolment":
        places = row.get("places")
        if not isinstance(places, list) or not all(isinstance(p, str) for p in places):
            raise AnchorError("malformed", "registry entry: places is not a list of ids")
        asset = row.get("asset")
        if asset is not None and not isinstance(asset, str):
            raise AnchorError("malformed", "registry entry: asset is not an id")
        return Gateway(_str(row, "gw"), _str(row, "org"), _str(row, "public_key"),
                       _str(row, "key_id"), asset, _int(row, "at"), places=frozenset(places),
                       attestation=sig)  # fmt: skip
    if op == "revocation":
        return Revocation(_str(row, "gw"), _int(row, "at"), _int(row, "recorded_at"),
                          _str(row, "reason"), sig)  # fmt: skip
    if op == "token":
        try:
            token_hash = bytes.fromhex(_str(row, "hash"))
        except ValueError as e:
            raise AnchorError("malformed", "registry entry: hash is not hex") from e
        return ApiToken(_str(row, "id"), _str(row, "org"), _str(row, "role"), token_hash,
                        _int(row, "at"), None, _str(row, "label"))  # fmt: skip
    if op == "token-revocation":
        return (_str(row, "id"), _int(row, "at"))
    if op == "profile":
        return StoredProfile(_str(row, "digest"), _str(row, "body"), _int(row, "at"), sig)
    if op == "product":
        return Product(_str(row, "gtin"), _str(row, "org"), _str(row, "name"),
                       _str(row, "description"), _str(row, "pack"), _str(row, "unit"),
                       _str(row, "profile"), _int(row, "at"), sig)  # fmt: skip
    if op == "document":
        chunks = row.get("chunks")
        if not isinstance(chunks, list):
            raise AnchorError("malformed", "registry entry: chunks is not a list")
        try:
            entry = DocumentEntry.from_dict({k: v for k, v in row.items() if k != "chunks"})
            return StoredDocument(entry, entry.check_chunks(chunks), sig)
        except FormatError as e:
            raise AnchorError("malformed", f"registry entry: {e.message}") from e
    raise AnchorError("malformed", f"registry entry: unknown operation {op!r}")


def _statement(op: str, model: Any) -> bytes:
    if op == "organisation":
        return organisation_statement(model.id, model.name, model.created_at)
    if op == "place":
        return place_statement(model)
    if op == "enrolment":
        return enrolment_statement(model)
    if op == "revocation":
        return revocation_statement(model)
    if op == "token":
        return token_statement(model)
    if op == "profile":
        return profile_statement(model)
    if op == "product":
        return product_statement(model)
    if op == "document":
        return document_statement(model)
    return token_revocation_statement(*model)


def _row(op: str, model: Any) -> dict[str, Any]:
    """The inverse of :func:`_model`: the JSON row of a model."""
    if op == "organisation":
        org: Organisation = model
        return {"id": org.id, "name": org.name, "at": org.created_at}
    if op == "place":
        return {"id": model.id, "org": model.org_id, "type": model.kind, "name": model.name,
                "at": model.registered_at}  # fmt: skip
    if op == "enrolment":
        return {"gw": model.id, "org": model.org_id, "public_key": model.public_key,
                "key_id": model.key_id, "asset": model.asset, "places": sorted(model.places),
                "at": model.enrolled_at}  # fmt: skip
    if op == "revocation":
        return {"gw": model.gw, "at": model.at, "recorded_at": model.recorded_at,
                "reason": model.reason}  # fmt: skip
    if op == "token":
        return {"id": model.id, "org": model.org_id, "role": model.role,
                "hash": model.token_hash.hex(), "at": model.created_at,
                "label": model.label}  # fmt: skip
    if op == "token-revocation":
        return {"id": model[0], "at": model[1]}
    if op == "profile":
        return {"digest": model.digest, "body": model.body, "at": model.registered_at}
    if op == "product":
        return {"gtin": model.gtin, "org": model.org_id, "name": model.name,
                "description": model.description, "pack": model.pack, "unit": model.unit,
                "profile": model.profile, "at": model.updated_at}  # fmt: skip
    if op == "document":
        return {**model.entry.to_dict(), "chunks": list(model.chunks)}
    raise ValueError(f"unknown registry operation {op!r}")


def sign_entry(op: str, model: Any, log_key: SigningKey, log_vkey: str) -> RegistryEntry:
    """The entry for a new row (an :class:`Organisation`, :class:`Place`,
    :class:`Gateway`, :class:`Revocation`, :class:`ApiToken` or ``(token id, at)``),
    signed by this member's log key."""
    row = _row(op, model)
    statement = _statement(op, _model(op, row, ""))
    return RegistryEntry(op, row, log_vkey, base64.b64encode(log_key.sign(statement)).decode())


def decode_entry(data: bytes) -> RegistryEntry:
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise AnchorError("malformed", "a registry entry is not JSON") from e
    if not isinstance(obj, dict) or not isinstance(obj.get("row"), dict):
        raise AnchorError("malformed", "a registry entry is an object with a row")
    op, by, sig = obj.get("op"), obj.get("by"), obj.get("sig")
    if op not in REGISTRY_OPS or not isinstance(by, str) or not isinstance(sig, str):
        raise AnchorError("malformed", "a registry entry names its op, signer and signature")
    return RegistryEntry(op, obj["row"], by, sig)


def apply_entry(store: LedgerStore, entry: RegistryEntry, log_keys: list[NoteVerifier]) -> None:
    """Apply a registry entry to ``store``, or raise :class:`AnchorError` saying why not."""
    signer = next((v for v in log_keys if v.to_vkey() == entry.by), None)
    if signer is None:
        raise AnchorError("forbidden", "the registry entry is signed by no member of the policy")
    model = _model(entry.op, entry.row, entry.sig)
    try:
        signer.public_key.verify(base64.b64decode(entry.sig, validate=True),
                                 _statement(entry.op, model))  # fmt: skip
    except (ProofsError, binascii.Error, ValueError) as e:
        raise AnchorError("bad-signature", f"the {entry.op} entry's signature is bad") from e
    org = entry.row.get("org", entry.row.get("id") if entry.op == "organisation" else None)
    if entry.op == "revocation":
        g = store.gateway(model.gw)
        org = None if g is None else g.org_id
    elif entry.op == "token-revocation":
        t = store.token(model[0])
        org = None if t is None else t.org_id
    try:
        if entry.op == "organisation":
            _apply_organisation(store, model, entry.by)
            return
        if entry.op == "profile":  # a profile is rules, no organisation's: any member's
            profile_of(model)
            with store.transaction() as tx:
                tx.add_profile(model)
            return
        with store.transaction() as tx:
            owner = tx.org_member(org) if isinstance(org, str) else None
        if owner != entry.by:
            raise AnchorError(
                "forbidden", f"organisation {org} is not registered by the member that signed"
            )
        _apply_row(store, entry.op, model)
    except ValueError as e:
        raise AnchorError("malformed", f"the {entry.op} entry cannot apply: {e}") from e


def _apply_organisation(store: LedgerStore, model: Organisation, by: str) -> None:
    org_id, name, at = model.id, model.name, model.created_at
    existing = store.organisation(org_id)
    with store.transaction() as tx:
        owner = tx.org_member(org_id)
    if existing is not None and owner is not None:
        if owner != by:
            raise AnchorError("forbidden", f"organisation {org_id} belongs to another member")
        return  # applied before
    if existing is None:
        store.add_organisation(org_id, name, at)
    with store.transaction() as tx:
        tx.set_org_member(org_id, by)


def _apply_row(store: LedgerStore, op: str, model: Any) -> None:
    if op == "place":
        have = store.place(model.id)
        if have is None:
            store.add_place(model)
        elif have.org_id != model.org_id:
            raise ValueError(f"{model.id} is registered to another organisation")
    elif op == "enrolment":
        enrolled = store.gateway(model.id)
        if key_id_of(PublicKey.from_base64(model.public_key).raw) != model.key_id:
            raise ValueError("the key id is not the key's")
        if enrolled is None:
            store.enroll_gateway(model)
        elif enrolled.public_key != model.public_key:
            raise ValueError(f"gateway {model.id} is enrolled with another key")
    elif op == "revocation":
        known = {(gw, at, rec) for gw, at, rec, _, _ in store.revocations()}
        if (model.gw, model.at, model.recorded_at) not in known:
            store.revoke_gateway(model.gw, model.at, model.reason, model.recorded_at,
                                 model.attestation)  # fmt: skip
    elif op == "token":
        if model.role not in ROLES:
            raise ValueError(f"no role {model.role!r}")
        if store.token(model.id) is None:
            store.add_token(model)
    elif op == "product":
        product = store.product(model.gtin)
        if product is not None and product.org_id != model.org_id:
            raise ValueError(f"GTIN {model.gtin} belongs to another organisation")
        if model.profile and store.profile(model.profile) is None:
            raise ValueError("the product names an unregistered profile")
        if product is None or product.updated_at <= model.updated_at:
            with store.transaction() as tx:
                tx.put_product(model)
    elif op == "document":
        # The entry only: the file stays with the member that registered it.
        with store.transaction() as tx:
            tx.add_document(model)
    elif op == "token-revocation":
        t = store.token(model[0])
        if t is not None and t.revoked_at is None:
            store.revoke_token(model[0], model[1])

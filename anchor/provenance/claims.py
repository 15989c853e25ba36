"""Consumer claims: filed about a lot, routed to whoever must answer, answered under
deadlines, every change an event of the claims log (proofs.claims).

A claim is routed to the organisation that held the lot when it went out of its profile
(:func:`anchor.provenance.dispositions.custodian_of`), else to the lot's owner (the
product's organisation), else to the organisation of the place that first held it.
With it are kept the claimant's words, an optional photo, a contact private to the
parties, and the lot's bundle as it stood at that moment (content-addressed beside the
ledger, its digest in the first event). Its notification goes out through the same
outbox as dispositions, in the transaction that writes the claim (``announce``).

Each event is signed by the log key (its ``attestation``) and is a leaf of the claims
log; :func:`receipt` proves one event's inclusion in a checkpoint the log key signs
under ``<origin>/claims``, which the claimant verifies offline with ``coldtrail-verify``.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from anchor.errors import AnchorError
from anchor.ledger.documents import DocumentFiles
from anchor.ledger.model import Claim, StoredClaimEvent
from anchor.ledger.ports import LedgerStore, LedgerTx
from anchor.provenance.answer import ProvenanceAnswer
from anchor.provenance.dispositions import custodian_of, owner_of
from proofs.canonical import canonical_json
from proofs.claims import (
    MAX_CONTACT_CHARS,
    MAX_MESSAGE_CHARS,
    MAX_TEXT_CHARS,
    TRANSITIONS,
    ClaimEvent,
    check_text,
    receipt_json,
    sha256_hex,
    sniff_photo,
)
from proofs.errors import FormatError
from proofs.merkle import MerkleTree
from proofs.note import Checkpoint, NoteSigner, SignedNote

__all__ = [
    "ClaimAnnounce",
    "ClaimsConfig",
    "change_claim",
    "claim_json",
    "file_claim",
    "receipt",
    "route",
]

DAY_MS = 86_400_000

# Called inside the transaction that writes a claim event: enqueue its notifications.
ClaimAnnounce = Callable[[LedgerTx, Claim, ClaimEvent], None]


@dataclass(frozen=True, slots=True)
class ClaimsConfig:
    answer_days: int = 3  # a first answer is due this many days after filing
    resolve_days: int = 30  # resolved or rejected by then
    per_lot_per_day: int = 20  # claims about one lot in 24 h; more are refused (429)
    per_client_per_hour: int = 5  # claims from one client address in an hour


def _err(e: FormatError) -> AnchorError:
    return AnchorError(e.code, e.message)


def route(answer: ProvenanceAnswer, store: LedgerStore) -> tuple[str, str, str, str]:
    """``(organisation, holder, reason in words, owner)`` a claim about the lot goes to:
    the custodian of the excursion when the lot failed, else its owner (the product's
    organisation, else the one that packed it: dispositions.owner_of)."""
    owner = owner_of(answer, store)
    if answer.verdict.status == "fail":
        holder, org = custodian_of(answer, store)
        if org:
            why = f"{holder} ({org}) held the lot when it went out of its profile"
            return org, holder, why, owner
    if owner:
        why = f"no custodian is responsible for an excursion: the lot's owner {owner} answers"
        return owner, "", why, owner
    raise AnchorError("not-found", "no organisation on record can answer for this lot")


def file_claim(
    store: LedgerStore,
    files: DocumentFiles,
    answer: ProvenanceAnswer,
    bundle: dict[str, Any] | None,
    *,
    text: str,
    contact: str,
    photo: bytes,
    now: int,
    config: ClaimsConfig,
    attest: Callable[[bytes], str],
    announce: ClaimAnnounce | None = None,
) -> tuple[Claim, StoredClaimEvent]:
    """File a claim about ``answer``'s lot; the claim and its ``received`` event."""
    subject = answer.subject
    if subject is None or subject.kind != "lot" or not subject.gtin or not subject.lot:
        raise AnchorError("bad-parameter", "a claim is about a lot (GTIN and lot)")
    if not answer.intervals:
        raise AnchorError("not-found", "this ledger holds no scan of this lot")
    try:
        words = check_text(text, "what happened", MAX_TEXT_CHARS)
        reach = check_text(contact, "the contact", MAX_CONTACT_CHARS, required=False)
        photo_type = sniff_photo(photo) if photo else ""
    except FormatError as e:
        raise _err(e) from e
    since = now - DAY_MS
    if store.claims_filed_since(subject.gtin, subject.lot, since) >= config.per_lot_per_day:
        raise AnchorError(
            "rate-limited",
            f"this lot has had {config.per_lot_per_day} claims in the last 24 hours; try later",
            retry_after_s=3600,
        )
    routed_to, holder, why, owner = route(answer, store)
    claim_id = secrets.token_hex(16)
    photo_sha = files.put(photo) if photo else ""
    bundle_sha = (
        files.put(canonical_json(bundle)) if bundle is not None else ""
    )  # the lot as it stood
    claim = Claim(
        id=claim_id, gtin=subject.gtin, lot=subject.lot, filed_at=now, text=words,
        contact=reach, photo_sha256=photo_sha, photo_type=photo_type, bundle_sha256=bundle_sha,
        routed_to=routed_to, holder=holder, route_reason=why, owner=owner, state="received",
        answer_due=now + config.answer_days * DAY_MS,
        resolve_due=now + config.resolve_days * DAY_MS, updated_at=now,
    )  # fmt: skip
    event = ClaimEvent(
        claim_id, 1, "received", "claimant", now, subject.gtin, subject.lot, routed_to,
        text_sha256=sha256_hex(words.encode()), photo_sha256=photo_sha,
        bundle_sha256=bundle_sha,
    )  # fmt: skip
    with store.transaction() as tx:
        tx.add_claim(claim)
        stored = tx.add_claim_event(StoredClaimEvent(0, event, "", attest(event.statement())))
        if announce is not None:
            announce(tx, claim, event)
    return claim, stored


def change_claim(
    store: LedgerStore,
    claim_id: str,
    state: str,
    message: str,
    *,
    org: str,
    by: str,
    now: int,
    attest: Callable[[bytes], str],
    announce: ClaimAnnounce | None = None,
) -> StoredClaimEvent:
    """An operator of the routed organisation (or of the lot's owner) answers, resolves
    or rejects a claim; answering and rejecting need words."""
    claim = store.claim(claim_id)
    if claim is None:
        raise AnchorError("not-found", "no such claim")
    if org not in (claim.routed_to, claim.owner):
        raise AnchorError(
            "forbidden", f"this claim is for {claim.routed_to} (and the lot's owner) to answer"
        )
    if state not in TRANSITIONS.get(claim.state, frozenset()):
        raise AnchorError("claim-state", f"a {claim.state} claim cannot become {state!r:.20}")
    try:
        words = check_text(
            message, "the message", MAX_MESSAGE_CHARS, required=state in ("answered", "rejected")
        )
    except FormatError as e:
        raise _err(e) from e
    with store.transaction() as tx:
        n = len(tx.claim_events(claim_id)) + 1
        current = tx.claim(claim_id)
        if current is None or state not in TRANSITIONS.get(current.state, frozenset()):
            raise AnchorError("claim-state", "the claim changed meanwhile; reload it")
        event = ClaimEvent(
            claim_id, n, state, by, now, claim.gtin, claim.lot, claim.routed_to,
            message_sha256=sha256_hex(words.encode()) if words else "",
        )  # fmt: skip
        stored = tx.add_claim_event(StoredClaimEvent(0, event, words, attest(event.statement())))
        if announce is not None:
            announce(tx, current, event)
    return stored


def receipt(
    store: LedgerStore, claim_id: str, n: int | None, signer: NoteSigner, log_vkey: str
) -> dict[str, Any]:
    """Event ``n`` (default: the latest) of a claim with its inclusion proof against a
    checkpoint of the claims log signed now. ``signer`` is the log key under the claims
    log's name (proofs.claims.claims_verifier)."""
    events = store.claim_events(claim_id)
    if not events:
        raise AnchorError("not-found", "no such claim")
    chosen = events[-1] if n is None else next((e for e in events if e.event.n == n), None)
    if chosen is None:
        raise AnchorError("not-found", f"this claim has no event {n}")
    size = store.claims_log_size()
    tree = MerkleTree(store.claims_log_leaves(size))
    text = Checkpoint(signer.name, size, tree.root()).to_text()
    note = SignedNote.sign(text, signer).to_text()
    return receipt_json(chosen.event, chosen.index, note, tree.inclusion_proof(chosen.index),
                        log_vkey)  # fmt: skip


def claim_json(
    claim: Claim, events: list[StoredClaimEvent], now: int, *, party: bool
) -> dict[str, Any]:
    """A claim as its page and the API show it. ``party``: the routed organisation, the
    lot's owner or an auditor asks, and sees the contact and the photo's address."""
    body: dict[str, Any] = {
        "id": claim.id,
        "gtin": claim.gtin,
        "lot": claim.lot,
        "filed_at": claim.filed_at,
        "state": claim.state,
        "routed_to": claim.routed_to,
        "holder": claim.holder,
        "route_reason": claim.route_reason,
        "answer_due": claim.answer_due,
        "resolve_due": claim.resolve_due,
        "overdue": _overdue(claim, events, now),
        "text": claim.text,
        "photo": bool(claim.photo_sha256),
        "bundle_sha256": claim.bundle_sha256,
        "events": [
            {
                **e.event.to_dict(),
                "index": e.index,
                "message": e.message,
                "attestation": e.attestation,
            }
            for e in events
        ],
        "receipt_url": f"/v1/claims/{claim.id}/receipt",
    }
    if party:
        body["contact"] = claim.contact
        if claim.photo_sha256:
            body["photo_url"] = f"/v1/claims/{claim.id}/photo"
    return body


def _overdue(claim: Claim, events: list[StoredClaimEvent], now: int) -> list[str]:
    late: list[str] = []
    answered = any(e.event.state != "received" for e in events)
    if not answered and now > claim.answer_due:
        late.append("answer")
    if claim.state not in ("resolved", "rejected") and now > claim.resolve_due:
        late.append("resolution")
    return late


def load_bundle(files: DocumentFiles, claim: Claim) -> dict[str, Any] | None:
    """The lot's bundle as it stood when the claim was filed."""
    if not claim.bundle_sha256:
        return None
    data = files.read(claim.bundle_sha256)
    return None if data is None else dict(json.loads(data))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()

"""Automatic quality handling: each lot's disposition follows its verdict.

When batches are anchored, :class:`DispositionWatcher` finds the lots they can change
(lots their scans name, and lots scanned at the places their readings come from in the
last ``lookback``), recomputes each lot's verdict (:func:`answer_for_subject`) and maps
it through the lot's profile (:meth:`proofs.coldchain.Profile.disposition_for`: by
default pass → release, fail → quarantine, indeterminate → needs-review). A change is
a new :class:`~anchor.ledger.model.Disposition` row, signed by the log key, naming the
rule, the evidence (profile digest, rules version, checkpoint size, the reasons) and,
for a failure, the custodian organisation that held the lot when it happened; its
notification to the custodian and the owner (anchor.notify) commits in the same
transaction. An operator's override (:func:`override`) stands until the verdict's
status changes.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from anchor.errors import AnchorError
from anchor.ledger.model import DISPOSITIONS, Disposition
from anchor.ledger.ports import LedgerStore, LedgerTx
from anchor.ledger.registry import Attest, disposition_statement
from anchor.provenance.answer import ProvenanceAnswer, ProvenanceConfig, Subject, answer_for_subject
from anchor.provenance.source import ProvenanceSource
from proofs.canonical import canonical_json

__all__ = [
    "DispositionWatcher",
    "custodian_of",
    "decide",
    "disposition_json",
    "override",
]

log = logging.getLogger(__name__)

# Called inside the transaction that writes a disposition: enqueue its notifications.
Announce = Callable[[LedgerTx, Disposition, Sequence[str]], None]


def custodian_of(answer: ProvenanceAnswer, store: LedgerStore) -> tuple[str, str]:
    """``(holder, organisation)`` responsible for the verdict: the holder of the first leg
    with a failing (else doubtful) reason, and the organisation owning that place."""
    worst = answer.verdict.status
    if worst == "pass":
        return "", ""
    for ia in answer.intervals:
        v = ia.verdict
        if v is not None and any(r.status == worst for r in v.reasons):
            return ia.custody.holder, _org_of_place(store, ia.custody.holder)
    return "", ""


def _org_of_place(store: LedgerStore, holder: str) -> str:
    place = store.place(holder)
    if place is not None:
        return place.org_id
    gateway = store.gateway(holder)
    return gateway.org_id if gateway is not None else ""


def owner_of(answer: ProvenanceAnswer, store: LedgerStore) -> str:
    """The lot's owner: its product's organisation, else the one that packed it."""
    if answer.product is not None:
        return answer.product.org_id
    if answer.intervals:
        gateway = store.gateway(answer.intervals[0].custody.opened_by.gw)
        return gateway.org_id if gateway is not None else ""
    return ""


def _evidence(answer: ProvenanceAnswer, tree_size: int, holder: str) -> str:
    lot = answer.verdict.lot
    return canonical_json(
        {
            "profile": lot.profile_digest,
            "rules": lot.rules_version,
            "status": lot.status,
            "checkpoint_size": tree_size,
            "held_by": holder,
            "reasons": [r.to_dict() for r in lot.reasons],
            "mkt_c": lot.mkt_c,
            "time_out_of_range_ms": lot.time_out_of_range_ms,
        }
    ).decode()


def decide(
    answer: ProvenanceAnswer,
    history: Sequence[Disposition],
    store: LedgerStore,
    now: int,
    tree_size: int,
) -> Disposition | None:
    """The lot's next disposition by its profile's rule, or None if it stays as it is
    (the same disposition for the same status, or an override made on this status)."""
    subject = answer.subject
    if subject is None or subject.kind != "lot" or not subject.gtin or not subject.lot:
        return None
    status = answer.verdict.status
    wanted = answer.verdict.profile.disposition_for(status)
    latest = history[-1] if history else None
    if (
        latest is not None
        and latest.status == status
        and (latest.cause == "override" or latest.disposition == wanted)
    ):
        return None
    holder, custodian = custodian_of(answer, store)
    profile = answer.verdict.profile
    return Disposition(
        gtin=subject.gtin,
        lot=subject.lot,
        n=(latest.n + 1) if latest is not None else 1,
        disposition=wanted,
        cause="rule",
        rule=f"{profile.name} v{profile.version}: {status} -> {wanted}",
        status=status,
        evidence=_evidence(answer, tree_size, holder),
        custodian=custodian,
        owner=owner_of(answer, store),
        by="anchor",
        reason=answer.verdict.lot.reasons[0].message if answer.verdict.lot.reasons else (
            "every reading within the profile"),
        at=now,
    )  # fmt: skip


def _write(
    store: LedgerStore,
    d: Disposition,
    attest: Attest | None,
    announce: Announce | None,
) -> Disposition:
    if attest is not None:
        d = dataclasses.replace(d, attestation=attest(disposition_statement(d)))
    with store.transaction() as tx:
        tx.add_disposition(d)
        if announce is not None:
            announce(tx, d, sorted({o for o in (d.custodian, d.owner) if o}))
    return d


def override(
    store: LedgerStore,
    gtin: str,
    lot: str,
    disposition: str,
    reason: str,
    by: str,
    now: int,
    attest: Attest | None = None,
    announce: Announce | None = None,
) -> Disposition:
    """An operator's signed, logged override of a lot's disposition, with the reason in
    words; it stands until the lot's verdict status changes."""
    if disposition not in DISPOSITIONS:
        raise AnchorError("bad-parameter", f"a disposition is one of {', '.join(DISPOSITIONS)}")
    reason = reason.strip()
    if not 3 <= len(reason) <= 500 or any(ord(c) < 0x20 for c in reason):
        raise AnchorError(
            "bad-parameter", "an override needs a reason of 3-500 characters, on one line"
        )
    history = store.dispositions(gtin, lot)
    latest = history[-1] if history else None
    d = Disposition(
        gtin=gtin,
        lot=lot,
        n=(latest.n + 1) if latest is not None else 1,
        disposition=disposition,
        cause="override",
        rule="",
        status=latest.status if latest is not None else "",
        evidence=latest.evidence if latest is not None else "{}",
        custodian=latest.custodian if latest is not None else "",
        owner=latest.owner if latest is not None else "",
        by=by,
        reason=reason,
        at=now,
    )
    return _write(store, d, attest, announce)


def disposition_json(d: Disposition) -> dict[str, object]:
    return {
        "n": d.n,
        "disposition": d.disposition,
        "cause": d.cause,
        "rule": d.rule,
        "status": d.status,
        "custodian": d.custodian,
        "owner": d.owner,
        "by": d.by,
        "reason": d.reason,
        "at": d.at,
        "attestation": d.attestation,
    }


@dataclass
class DispositionWatcher:
    """Follows the log and re-decides the lots new batches can change (see the module)."""

    store: LedgerStore
    source: ProvenanceSource
    config: ProvenanceConfig
    attest: Attest | None = None
    announce: Announce | None = None
    lookback_ms: int = 30 * 24 * 3_600_000
    max_lots_per_pass: int = 200
    next_leaf: int = -1  # -1: start near the end of the log (see start_at)
    pending: set[tuple[str, str]] = field(default_factory=set)
    decided: int = 0

    def start_at(self, size: int, recheck: int = 1_000) -> None:
        """Begin with the last ``recheck`` batches: after a restart, lots whose change was
        anchored but not yet decided are decided (deciding again is a no-op)."""
        self.next_leaf = max(0, size - recheck)

    def collect(self) -> None:
        """The lots the batches anchored since the last pass can change."""
        size = self.store.log_size()
        if self.next_leaf < 0:
            self.start_at(size)
        while self.next_leaf < size:
            batch = self.store.batch(self.next_leaf)
            self.next_leaf += 1
            if batch is None:
                continue
            self.pending.update(self.store.lots_in_batch(batch.gw, batch.first_seq, batch.last_seq))
            holders = set(self.store.places_in_batch(batch.leaf_index))
            gateway = self.store.gateway(batch.gw)
            if gateway is not None and gateway.asset:
                holders.add(gateway.asset)
            self.pending.update(
                self.store.lots_at(
                    sorted(holders), batch.opened - self.lookback_ms, batch.closed + 1, 10_000
                )
            )

    def run_once(self, now: int) -> list[Disposition]:
        """Collect, then decide up to ``max_lots_per_pass`` lots; the changes written."""
        self.collect()
        tree_size = self.store.log_size()
        written: list[Disposition] = []
        for gtin, lot in sorted(self.pending)[: self.max_lots_per_pass]:
            self.pending.discard((gtin, lot))
            try:
                subject = Subject.for_lot(gtin, lot)
            except AnchorError:
                continue  # a scan whose lot is no GS1 lot: nothing to decide
            answer = answer_for_subject(self.source, subject, self.config, now)
            d = decide(answer, self.store.dispositions(gtin, lot), self.store, now, tree_size)
            if d is not None:
                written.append(_write(self.store, d, self.attest, self.announce))
                self.decided += 1
        return written

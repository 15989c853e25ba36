"""Custodian scorecards from the ledger: the rows :mod:`proofs.scorecard` computes from.

An organisation's shipments are found by scan: the lots scanned at its places (the
places registered to it and its gateways' homes) in the period, each answered by the
provenance engine (:func:`~anchor.provenance.answer.answer_for_subject`), and every
custody leg held by one of those places made a :class:`~proofs.scorecard.ShipmentRow`.
Only what the log already commits to counts: a leg counts once a scan has closed it
(an open custody's figures still move) and when every batch it rests on is inside the
checkpoint the export names; the others are counted as ``pending``. The export states
the rows, the checkpoint and the figures, so ``coldtrail-verify scorecard`` recomputes
every figure from the rows (docs/scorecards.md).

Pure logic over a :class:`~anchor.provenance.source.ProvenanceSource` and bounded: at most
``max_lots`` lots per export, said with ``truncated``.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from anchor.errors import AnchorError
from anchor.ledger.model import Claim
from anchor.provenance.answer import IntervalAnswer, ProvenanceConfig, Subject, answer_for_subject
from anchor.provenance.source import BatchInfo, ProvenanceSource
from proofs.scorecard import SCORECARD_FORMAT, ShipmentRow, scorecard
from proofs.scorecard import Claim as ScClaim

__all__ = ["ScorecardLimits", "default_period", "monthly", "org_figures", "org_scorecard"]


@dataclass(frozen=True, slots=True)
class ScorecardLimits:
    """Bounds of one export; units in the names."""

    max_lots: int = 200
    max_places: int = 1_000
    default_months: int = 12
    max_period_days: int = 3_660


def default_period(now_ms: int, months: int) -> tuple[int, int]:
    """The start of the UTC month ``months - 1`` before ``now`` up to the start of the
    next month: whole months, so the chart's first and last bars are whole too."""
    now = datetime.fromtimestamp(now_ms / 1000, UTC)
    index = now.year * 12 + now.month - 1
    start = index - (months - 1)
    end = index + 1
    t_from = datetime(start // 12, start % 12 + 1, 1, tzinfo=UTC)
    t_to = datetime(end // 12, end % 12 + 1, 1, tzinfo=UTC)
    return int(t_from.timestamp() * 1000), int(t_to.timestamp() * 1000)


class _Batches:
    """``batch_of`` with the batches already seen remembered: a leg's readings come a
    batch at a time, so this asks once per batch, not once per reading."""

    def __init__(self, source: ProvenanceSource) -> None:
        self._source = source
        self._known: dict[str, list[BatchInfo]] = defaultdict(list)

    def of(self, gw: str, seq: int) -> BatchInfo | None:
        for known in self._known[gw]:
            if known.first_seq <= seq <= known.last_seq:
                return known
        info = self._source.batch_of(gw, seq)
        if info is not None:
            self._known[gw].append(info)
        return info


def _row(
    ia: IntervalAnswer,
    gtin: str,
    lot: str,
    org_id: str,
    q: str,
    batches: _Batches,
) -> ShipmentRow | None:
    """The shipment row of one closed leg; None if a record it rests on is in no batch."""
    v = ia.verdict
    if v is None:
        return None
    start, end = v.custody_start_ms, v.custody_end_ms
    leaves: set[int] = set()
    scans = [ia.custody.opened_by, *([ia.custody.closed_by] if ia.custody.closed_by else [])]
    for s in scans:
        info = batches.of(s.gw, s.seq)
        if info is None:
            return None
        leaves.add(info.leaf_index)
    earliest: dict[int, int] = {}
    received: dict[int, int] = {}
    for p in ia.evidence.points:
        if p.q != q or not start <= p.t < end:
            continue
        info = batches.of(p.gw, p.seq)
        if info is None:
            return None
        leaves.add(info.leaf_index)
        earliest[info.leaf_index] = min(p.t, earliest.get(info.leaf_index, p.t))
        received[info.leaf_index] = info.accepted_at
    sensors = v.sensors
    return ShipmentRow(
        gtin=gtin,
        lot=lot,
        holder=ia.custody.holder,
        org=org_id,
        start_ms=start,
        end_ms=end,
        status=v.status,
        excursions=max((len(s.excursions) for s in sensors), default=0),
        degree_minutes=round(
            max((s.degree_minutes_above + s.degree_minutes_below for s in sensors), default=0.0),
            3,
        ),
        covered_ms=max((s.completeness.covered_ms for s in sensors), default=0),
        leaves=tuple(sorted(leaves)),
        receipts=tuple((leaf, received[leaf] - earliest[leaf]) for leaf in sorted(earliest)),
    )


def _with_claims(rows: list[ShipmentRow], claims: Sequence[Claim]) -> list[ShipmentRow]:
    """Each claim routed to the organisation counted against the leg it was routed for
    (the holder at the excursion), or, routed to the lot's owner, against the owner's
    first leg of the lot. Resolution is the claim's closing (resolved or rejected)."""
    if not rows:
        return rows
    attached: dict[int, list[ScClaim]] = defaultdict(list)
    for c in sorted(claims, key=lambda c: (c.filed_at, c.id)):
        at = next((i for i, r in enumerate(rows) if r.holder == c.holder), 0)
        closed = c.updated_at if c.state in ("resolved", "rejected") else None
        attached[at].append(ScClaim(c.filed_at, closed))
    return [
        dataclasses.replace(r, claims=tuple(attached[i])) if attached[i] else r
        for i, r in enumerate(rows)
    ]


def org_scorecard(
    source: ProvenanceSource,
    org_id: str,
    config: ProvenanceConfig,
    now_ms: int,
    period: tuple[int, int],
    limits: ScorecardLimits = ScorecardLimits(),
) -> dict[str, Any]:
    """The ``coldtrail-scorecard/1`` export of one organisation over ``[from, to)``: its
    shipments starting in the period, the checkpoint they rest in and their figures."""
    org = source.org(org_id)
    if org is None:
        raise AnchorError("not-found", f"no organisation {org_id!r}")
    t_from, t_to = period
    if not t_from < t_to or t_to - t_from > limits.max_period_days * 86_400_000:
        raise AnchorError(
            "bad-parameter",
            f"a scorecard's period runs forwards and spans at most {limits.max_period_days} days",
        )
    holders = set(source.org_places(org_id, limits.max_places))
    holders |= {
        g.asset for g in source.org_gateways(org_id, 0, limits.max_places) if g.asset is not None
    }
    block = source.proof_checkpoint()
    size = block.tree_size if block is not None else 0
    lots = source.lots_at(sorted(holders), t_from, t_to, limits.max_lots + 1)
    truncated = len(lots) > limits.max_lots
    rows: list[ShipmentRow] = []
    pending = 0
    batches = _Batches(source)
    for gtin, lot in lots[: limits.max_lots]:
        try:
            subject = Subject.for_lot(gtin, lot)
        except AnchorError:
            continue  # scanned with a malformed GTIN or lot: no lot answer to score
        answer = answer_for_subject(source, subject, config, now_ms)
        mine = [c for c in source.lot_claims(gtin, lot) if c.routed_to == org_id]
        lot_rows: list[ShipmentRow] = []
        for ia in answer.intervals:
            c = ia.custody
            if c.holder not in holders or not t_from <= c.start < t_to:
                continue
            row = None if c.end is None else _row(ia, gtin, lot, org_id, answer.checked.q, batches)
            if row is None or any(leaf >= size for leaf in row.leaves):
                pending += 1
                continue
            lot_rows.append(row)
        rows += _with_claims(lot_rows, mine)
    rows.sort(key=lambda r: (r.start_ms, r.gtin, r.lot, r.holder))
    return {
        "format": SCORECARD_FORMAT,
        "org": {"id": org.id, "name": org.name},
        "period": {"from_ms": t_from, "to_ms": t_to},
        "checkpoint": {
            "tree_size": size,
            "root": block.root_hex if block is not None else None,
            "height": block.height if block is not None else None,
            "note": block.note if block is not None else None,
        },
        "rows": [r.to_dict() for r in rows],
        "pending": pending,
        "truncated": truncated,
        "figures": scorecard(rows),
    }


def org_figures(doc: dict[str, Any]) -> dict[str, Any] | None:
    """The organisation's own figures from an export (None without shipments)."""
    found: dict[str, Any] | None = doc["figures"]["orgs"].get(doc["org"]["id"])
    return found


def monthly(doc: dict[str, Any]) -> Sequence[tuple[str, dict[str, Any]]]:
    """Every month of the period in order, with its figures (zero shipments if none)."""
    months: dict[str, dict[str, Any]] = doc["figures"]["months"].get(doc["org"]["id"], {})
    t_from, t_to = doc["period"]["from_ms"], doc["period"]["to_ms"]
    first = datetime.fromtimestamp(t_from / 1000, UTC)
    last = datetime.fromtimestamp((t_to - 1) / 1000, UTC)
    out: list[tuple[str, dict[str, Any]]] = []
    i, end = first.year * 12 + first.month - 1, last.year * 12 + last.month - 1
    while i <= end and len(out) < 240:
        key = f"{i // 12:04d}-{i % 12 + 1:02d}"
        out.append((key, months.get(key, {"shipments": 0, "excursion_rate": None})))
        i += 1
    return out

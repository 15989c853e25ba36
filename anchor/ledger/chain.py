"""The chain rules of a gateway's batches (contract checks 4 and 5, docs/adr/0310) and
the enrolment scope of its records (docs/adr/0311): pure functions over chain links,
used by ingest (early and authoritative) and by verify-ledger.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from anchor.errors import AnchorError
from anchor.ledger.model import ChainLink, Gateway, NewRecord
from anchor.ledger.ports import LedgerStore, LedgerTx
from proofs.records import ZERO_HASH, Manifest

__all__ = [
    "ChainReads",
    "before_first",
    "check_apart",
    "check_chain",
    "check_link",
    "check_scope",
    "link_of",
    "load_neighbours",
]


_GENESIS_PREV = ChainLink("", 0, ZERO_HASH, ZERO_HASH, 0, 0, False, -1)

ChainReads = LedgerStore | LedgerTx


def before_first(gw: str) -> ChainLink:
    """The place before a gateway's first batch: batch 0, hash ZERO_HASH, last_seq 0."""
    return dataclasses.replace(_GENESIS_PREV, gw=gw)


def link_of(manifest: Manifest, manifest_hash: str, leaf_index: int = -1) -> ChainLink:
    """The chain facts of a manifest (received or stored)."""
    return ChainLink(
        manifest.gw,
        manifest.batch_seq,
        manifest_hash,
        manifest.prev,
        manifest.first_seq,
        manifest.last_seq,
        False,
        leaf_index,
    )


def check_link(
    lower: ChainLink,
    upper: ChainLink,
    upper_gaps: Sequence[tuple[int, int]] | None,
    *,
    incoming: str | None = None,
) -> None:
    """The link between consecutive batches (``upper.batch_seq == lower.batch_seq + 1``).

    ``lower`` with batch_seq 0 stands for "before the first batch" (prev ZERO_HASH,
    last_seq 0). ``upper_gaps`` are the ``(lost_from, lost_to)`` of ``upper``'s
    ``evicted`` gap records; ``None`` means not known yet: a seq hole is not judged.
    ``incoming`` ("lower", "upper" or None) only words the refusal.
    """
    gw = upper.gw
    n = upper.batch_seq
    if upper.prev != lower.manifest_hash:
        if lower.batch_seq == 0:
            what = f"manifest 1 of {gw}: 'prev' of the first batch must be the zero hash"
        elif incoming == "lower":
            what = (
                f"manifest {lower.batch_seq} of {gw}: its stored successor, batch {n}, names"
                " another manifest as 'prev'"
            )
        elif incoming == "upper":
            what = (
                f"manifest {n} of {gw}: 'prev' is not the hash of its stored predecessor,"
                f" batch {lower.batch_seq}"
            )
        else:
            what = f"batch {n} of {gw}: 'prev' is not the hash of batch {lower.batch_seq}"
        raise AnchorError("broken-chain", what)
    expected_first = lower.last_seq + 1
    if upper.first_seq < expected_first:
        raise AnchorError(
            "seq-overlap",
            f"first_seq {upper.first_seq} of {gw} batch {n}: batch {lower.batch_seq} already"
            f" covers seqs up to {lower.last_seq}"
            + (" (the first batch starts at seq 1)" if lower.batch_seq == 0 else ""),
        )
    if upper.first_seq > expected_first and upper_gaps is not None:
        hole = (expected_first, upper.first_seq - 1)
        if hole not in upper_gaps:
            raise AnchorError(
                "seq-gap",
                f"seqs {hole[0]}..{hole[1]} of {gw} between batches {lower.batch_seq} and {n}"
                f" are missing and no 'evicted' gap record in batch {n} covers them",
            )


def check_apart(lower: ChainLink, upper: ChainLink, *, incoming: str | None = None) -> None:
    """Two stored-or-incoming batches with batches missing between them.

    Their seq ranges must not overlap, and the missing batches (at least one record
    each) must still fit between them; the links themselves wait for those batches.
    """
    gw = upper.gw
    a, b = lower.batch_seq, upper.batch_seq
    stored = {"lower": b, "upper": a}.get(incoming or "")
    other = "" if stored is None else f" (the stored neighbour is batch {stored})"
    if upper.first_seq <= lower.last_seq:
        raise AnchorError(
            "seq-overlap",
            f"batches {a} and {b} of {gw} overlap: seqs {lower.first_seq}..{lower.last_seq} and"
            f" {upper.first_seq}..{upper.last_seq}{other}",
        )
    missing, room = b - a - 1, upper.first_seq - lower.last_seq - 1
    if room < missing:
        raise AnchorError(
            "seq-overlap",
            f"batches {a + 1}..{b - 1} of {gw} are still missing but only {room} seqs are left"
            f" between {lower.last_seq} and {upper.first_seq}{other}",
        )


def check_chain(
    manifest: Manifest,
    manifest_hash: str,
    lower: ChainLink | None,
    higher: ChainLink | None,
    evicted_gaps: Sequence[tuple[int, int]] | None,
    higher_gaps: Sequence[tuple[int, int]] | None,
    *,
    max_lookahead: int | None = None,
) -> None:
    """Contract checks 4 and 5 against the stored neighbours (docs/adr/0310).

    ``lower``/``higher`` are the gateway's stored batches nearest below and above
    ``manifest.batch_seq`` (an already used batch_seq is handled before this).
    ``evicted_gaps`` are the manifest's own ``evicted`` gap records, ``higher_gaps``
    those of ``higher``; ``None`` means not known yet, and a seq hole next to that
    batch is not judged. Every link with both sides known is checked; links to
    batches that are still missing are checked when those batches arrive.
    """
    gw, n = manifest.gw, manifest.batch_seq
    if n < 1:
        raise AnchorError("broken-chain", f"batch_seq {n} of {gw}: batch_seq starts at 1")
    this = link_of(manifest, manifest_hash)
    if max_lookahead is not None and higher is None:
        top = 0 if lower is None else lower.batch_seq
        if n - top > max_lookahead:
            raise AnchorError(
                "batch-too-far-ahead",
                f"batch_seq {n} of {gw} is {n - top} ahead of its highest stored batch"
                f" ({top}); at most {max_lookahead} is accepted",
            )
    below = lower if lower is not None else before_first(gw)
    if below.batch_seq == n - 1:
        check_link(below, this, evicted_gaps, incoming="upper")
    else:
        check_apart(below, this, incoming="upper" if lower is not None else None)
    if higher is not None:
        if higher.batch_seq == n + 1:
            check_link(this, higher, higher_gaps, incoming="lower")
        else:
            check_apart(this, higher, incoming="lower")


def check_scope(gateway: Gateway, records: Sequence[NewRecord]) -> None:
    """Every asset and read point a record names is one ``gateway`` is enrolled for.

    Places belong to organisations and a gateway's enrolment names the ones it may
    report for (docs/adr/0311): otherwise org A's gateway could put readings on org
    B's cold room, or scan B's lots into custody, and flip B's verdicts.
    """
    gw = gateway.id
    for r in records:
        if r.asset is not None and not gateway.may_name(r.asset):
            raise AnchorError(
                "foreign-asset",
                f"record seq {r.seq} of {gw} names asset {r.asset!r}, which {gw} is not"
                f" enrolled for (it may name: {', '.join(sorted(gateway.places)) or 'none'})",
            )
        # An empty rp names no read point: the scan is at its asset or the gateway's home.
        if r.scan is not None and r.scan.rp and not gateway.may_name(r.scan.rp):
            raise AnchorError(
                "foreign-read-point",
                f"scan seq {r.seq} of {gw} names read point {r.scan.rp!r}, which {gw} is not"
                f" enrolled for (it may name: {', '.join(sorted(gateway.places)) or 'none'})",
            )


def load_neighbours(
    reads: ChainReads, manifest: Manifest
) -> tuple[ChainLink | None, ChainLink | None, list[tuple[int, int]]]:
    """The stored neighbours of ``manifest`` and the evicted gaps its successor states.

    The successor's gap records are read only when they matter: it is the very next
    batch, holds records, and starts after this manifest's ``last_seq + 1``.
    """
    lower, higher = reads.chain_neighbours(manifest.gw, manifest.batch_seq)
    higher_gaps: list[tuple[int, int]] = []
    if (
        higher is not None
        and higher.batch_seq == manifest.batch_seq + 1
        and not higher.records_evicted
        and higher.first_seq > manifest.last_seq + 1
    ):
        higher_gaps = reads.evicted_gaps(manifest.gw, higher.first_seq, higher.last_seq)
    return lower, higher, higher_gaps

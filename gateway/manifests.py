"""Build a batch manifest from stored records (pure: bytes in, unsigned Manifest out)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from proofs.errors import FormatError
from proofs.merkle import MerkleTree
from proofs.records import ZERO_HASH, Manifest

from .errors import SpoolError

__all__ = ["ChainHead", "batch_payload", "build_manifest"]


@dataclass(frozen=True, slots=True)
class ChainHead:
    """Where this gateway's manifest chain stands: the next batch continues from here."""

    next_batch_seq: int = 1
    prev_hash: str = ZERO_HASH


def build_manifest(
    gw: str,
    key_id: str,
    head: ChainHead,
    seqs: Sequence[int],
    leaves: Sequence[bytes],
    opened_ms: int,
    closed_ms: int,
) -> Manifest:
    """The unsigned manifest over records with ``leaves`` (their RFC 6962 leaf hashes,
    ``proofs.merkle.leaf_hash`` of the canonical signed bytes, in seq order)."""
    if not leaves or len(seqs) != len(leaves):
        raise SpoolError("a batch needs at least one record", code="empty-batch")
    first, last = seqs[0], seqs[-1]
    if last - first + 1 != len(seqs):
        # The spool never leaves holes inside unbatched records; if it did, the anchor
        # would refuse the batch, so stop here with the reason instead.
        raise SpoolError(f"records {first}..{last} are not contiguous", code="seq-hole")
    root = MerkleTree(list(leaves)).root().hex()
    try:
        return Manifest(
            gw=gw,
            batch_seq=head.next_batch_seq,
            prev=head.prev_hash,
            first_seq=first,
            last_seq=last,
            count=len(leaves),
            root=root,
            opened=opened_ms,
            closed=max(closed_ms, opened_ms),
            key=key_id,
        )
    except FormatError as e:
        raise SpoolError(f"cannot build manifest: {e}", code="bad-manifest") from e


def batch_payload(manifest_json: bytes, bodies: Sequence[bytes], evicted: bool) -> bytes:
    """The POST /v1/batches body, assembled from stored canonical bytes (no re-encoding)."""
    parts = [
        b'{"evicted":',
        b"true" if evicted else b"false",
        b',"manifest":',
        manifest_json,
        b',"records":[',
        b",".join(bodies),
        b"]}",
    ]
    return b"".join(parts)

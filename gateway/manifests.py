"""Build a batch manifest from stored records (pure: bytes in, unsigned Manifest out)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from proofs.errors import FormatError
from proofs.merkle import MerkleTree, leaf_hash
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
    bodies: Sequence[bytes],
    opened_ms: int,
    closed_ms: int,
) -> Manifest:
    """The unsigned manifest over ``bodies`` (canonical signed records, in seq order)."""
    if not bodies or len(seqs) != len(bodies):
        raise SpoolError("a batch needs at least one record", code="empty-batch")
    first, last = seqs[0], seqs[-1]
    if last - first + 1 != len(seqs):
        # The spool never leaves holes inside unbatched records; if it did, the anchor
        # would refuse the batch, so stop here with the reason instead.
        raise SpoolError(f"records {first}..{last} are not contiguous", code="seq-hole")
    root = MerkleTree([leaf_hash(b) for b in bodies]).root().hex()
    try:
        return Manifest(
            gw=gw,
            batch_seq=head.next_batch_seq,
            prev=head.prev_hash,
            first_seq=first,
            last_seq=last,
            count=len(bodies),
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

"""Checkpoints: signed by the log key, cosigned by a member only after its own review."""

from __future__ import annotations

import uuid

import pytest

from anchor.auth import enroll_gateway
from anchor.consortium.checkpoints import (
    CheckpointSigner,
    InProcessMember,
    gather_cosignatures,
    sign_checkpoint,
)
from anchor.ledger.model import Checkpoint, NewBatch
from anchor.storage.sqlite.store import SqliteLedger
from proofs.keys import SigningKey
from proofs.note import Checkpoint as CheckpointText
from proofs.note import NoteVerifier, SignedNote
from support.batches import GatewaySim


@pytest.fixture
def store() -> SqliteLedger:
    s = SqliteLedger.in_memory(uuid.uuid4().hex)
    s.add_organisation("acme", "Acme", 0)
    return s


@pytest.fixture
def signer() -> CheckpointSigner:
    member = InProcessMember("test/member", SigningKey.generate())
    return CheckpointSigner("test/log", SigningKey.generate(), [member], threshold=1)


def _append(store: SqliteLedger, sim: GatewaySim) -> None:
    m, _ = sim.readings_batch(1)
    batch = NewBatch(
        gw=m.gw, batch_seq=m.batch_seq, manifest_hash=m.hash_hex(), manifest_json=m.to_json(),
        leaf_hash=m.leaf_hash(), first_seq=m.first_seq, last_seq=m.last_seq, count=m.count,
        root=m.root, opened=m.opened, closed=m.closed, records_evicted=True, accepted_at=1,
    )  # fmt: skip
    with store.transaction() as tx:
        tx.append_batch(batch)


def _sign(store: SqliteLedger, signer: CheckpointSigner) -> Checkpoint:
    """Log-sign in a write transaction, then gather cosignatures after it committed."""
    with store.transaction() as tx:
        cp = sign_checkpoint(tx, signer, now_ms=1_000)
    return gather_cosignatures(store, signer, now_ms=1_000) or cp


def test_genesis_then_blocks_and_no_empty_blocks(
    store: SqliteLedger, signer: CheckpointSigner
) -> None:
    genesis = _sign(store, signer)
    assert (genesis.height, genesis.size, genesis.final) == (0, 0, True)
    assert _sign(store, signer) == genesis  # nothing new: no new block
    sim = GatewaySim()
    enroll_gateway(store, sim.gw, "acme", sim.public_key_b64, None, 0)
    _append(store, sim)
    _append(store, sim)
    block = _sign(store, signer)
    assert (block.height, block.size, block.entries, block.cosignatures) == (1, 2, 2, 1)
    note = SignedNote.parse(block.note)
    assert note.verify([signer.log_verifier, *signer.policy.members]) == [
        "test/log",
        "test/member",
    ]
    assert CheckpointText.from_text(note.text).size == 2


def test_member_refuses_an_unenrolled_leaf_and_reviews_it_again_later(
    store: SqliteLedger, signer: CheckpointSigner
) -> None:
    _sign(store, signer)
    stranger = GatewaySim(gw="stranger")
    _append(store, stranger)  # bypasses ingest: the member must catch it
    unfinal = _sign(store, signer)
    assert (unfinal.cosignatures, unfinal.final) == (0, False)
    log_only = SignedNote.parse(unfinal.note)
    assert log_only.verify([signer.log_verifier]) == ["test/log"]
    enroll_gateway(store, stranger.gw, "acme", stranger.public_key_b64, None, 0)
    _append(store, stranger)
    again = _sign(store, signer)
    # The member reviewed from height 0 (its last cosignature), leaf 0 included.
    assert (again.cosignatures, again.final) == (1, True)
    assert store.latest_checkpoint(final_only=True) == again
    assert store.checkpoint_covering(0, final_only=True) == again


def test_quorum_policy_counts_only_valid_member_cosignatures(
    store: SqliteLedger, signer: CheckpointSigner
) -> None:
    cp = _sign(store, signer)
    note = SignedNote.parse(cp.note)
    assert signer.policy.cosigners_of(note) == ["test/member"]
    other = NoteVerifier("test/member", 0x04, SigningKey.generate().public_key)
    assert not signer.policy.cosigners_of(SignedNote(note.text, note.signatures[:1]))
    assert other.key_id != signer.policy.members[0].key_id


def test_members_review_after_the_commit_never_inside_a_write_transaction(
    store: SqliteLedger,
) -> None:
    """The log key signs in the write transaction; a member (which may be slow or
    remote) is asked only once that has committed, holding no write lock."""
    seen: list[bool] = []

    class WatchingMember(InProcessMember):
        def review_and_cosign(self, tx, previous, checkpoint_text, now_s):  # type: ignore[no-untyped-def]
            seen.append(store._write_lock.locked())
            return super().review_and_cosign(tx, previous, checkpoint_text, now_s)

    member = WatchingMember("test/member", SigningKey.generate())
    signer = CheckpointSigner("test/log", SigningKey.generate(), [member], threshold=1)
    sim = GatewaySim()
    enroll_gateway(store, sim.gw, "acme", sim.public_key_b64, None, 0)
    _append(store, sim)
    with store.transaction() as tx:
        logged = sign_checkpoint(tx, signer, now_ms=1_000)
    assert seen == []  # no member asked inside the transaction
    assert (logged.cosignatures, logged.final) == (0, False)
    cosigned = gather_cosignatures(store, signer, now_ms=2_000)
    assert seen == [False]
    assert cosigned is not None
    assert (cosigned.height, cosigned.cosignatures, cosigned.final) == (logged.height, 1, True)
    assert store.checkpoint(logged.height) == cosigned
    # Asked again, a member that has cosigned is not asked twice.
    assert gather_cosignatures(store, signer, now_ms=3_000) == cosigned
    assert seen == [False]

"""The node as a C2SP tlog-witness: every answer the spec prescribes, on a real SQLite
ledger (the record) and through the real app for the HTTP shape."""

from __future__ import annotations

import base64
import threading
from pathlib import Path
from typing import Any

import pytest

from anchor.consortium.witness import Witness, WitnessError, parse_add_checkpoint
from anchor.storage.sqlite.store import SqliteLedger
from proofs.keys import SigningKey
from proofs.merkle import MerkleTree, leaf_hash
from proofs.note import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    Checkpoint,
    NoteSignature,
    NoteSigner,
    SignedNote,
    verify_cosignature,
)
from support.provenance_fixtures import serve_journey

ORIGIN = "example.org/other-member"
LEAVES = [leaf_hash(b"entry %d" % i) for i in range(40)]


class _Log:
    def __init__(self, key: SigningKey | None = None, origin: str = ORIGIN) -> None:
        self.signer = NoteSigner(origin, key or SigningKey.generate(), ALG_ED25519)
        self.origin = origin

    def note(self, size: int, leaves: list[bytes] = LEAVES) -> str:
        cp = Checkpoint(self.origin, size, MerkleTree(leaves[:size]).root())
        return SignedNote.sign(cp.to_text(), self.signer).to_text()

    def body(self, old: int, size: int, proof: list[bytes] | None = None) -> bytes:
        if proof is None:
            proof = MerkleTree(LEAVES[:size]).consistency_proof(old) if 0 < old < size else []
        lines = [f"old {old}", *(base64.b64encode(p).decode() for p in proof)]
        return ("\n".join(lines) + "\n\n" + self.note(size)).encode()


@pytest.fixture
def ledger(tmp_path: Path) -> Any:
    store = SqliteLedger(tmp_path / "ledger.sqlite3")
    yield store
    store.close()


def _witness(store: SqliteLedger, log: _Log) -> tuple[Witness, NoteSigner]:
    key = NoteSigner("witness.example/w1", SigningKey.generate(), ALG_COSIGNATURE_V1)
    return Witness([log.signer.verifier], key, store, lambda: 1_800_000_000.0), key


def _status(witness: Witness, body: bytes) -> tuple[int, str]:
    try:
        return 200, witness.add_checkpoint(body)
    except WitnessError as e:
        return e.status, e.text


def test_cosigns_a_consistent_history_and_refuses_the_rest(ledger: SqliteLedger) -> None:
    log = _Log()
    witness, key = _witness(ledger, log)
    status, line = _status(witness, log.body(0, 10))
    assert status == 200
    sig = NoteSignature.from_line(line.rstrip("\n"))
    text = Checkpoint(ORIGIN, 10, MerkleTree(LEAVES[:10]).root()).to_text()
    assert verify_cosignature(text, sig, key.verifier) == 1_800_000_000
    assert _status(witness, log.body(10, 25))[0] == 200
    with ledger.transaction() as tx:
        assert tx.witnessed(ORIGIN) == (25, MerkleTree(LEAVES[:25]).root())
    # A stale or made-up old size: 409 with the size the witness has.
    assert _status(witness, log.body(10, 30)) == (409, "25\n")
    assert _status(witness, log.body(0, 30)) == (409, "25\n")
    # A proof that does not take the recorded root to the new one: 422.
    bad = [leaf_hash(b"x")] * len(MerkleTree(LEAVES[:30]).consistency_proof(25))
    assert _status(witness, log.body(25, 30, bad))[0] == 422
    # The same size again: fine if the root is the same, a split view if not.
    assert _status(witness, log.body(25, 25))[0] == 200
    forked = [*LEAVES[:24], leaf_hash(b"fork")]
    body = b"old 25\n\n" + log.note(25, forked).encode()
    assert _status(witness, body) == (409, "25\n")
    # Another log's key, an unknown origin, a shrinking tree, garbage.
    assert _status(witness, _Log().body(25, 30))[0] == 403
    assert _status(witness, _Log(origin="example.org/nobody").body(0, 3))[0] == 404
    assert _status(witness, log.body(30, 20, []))[0] == 400
    for junk in (b"", b"old 01\n\n", b"old 1\nnot-base64!\n\n", b"\xff\xfe", b"old 0\n\nnope\n"):
        assert _status(witness, junk)[0] == 400, junk
    with ledger.transaction() as tx:
        assert tx.witnessed(ORIGIN) == (25, MerkleTree(LEAVES[:25]).root())  # unchanged


def test_two_racing_requests_never_roll_the_record_back(ledger: SqliteLedger) -> None:
    """The spec's race: A (old 5 -> 10) and B (old 5 -> 30) at once; at most one wins,
    and the record is the winner's, never an older size after a newer one."""
    log = _Log()
    witness, _ = _witness(ledger, log)
    assert _status(witness, log.body(0, 5))[0] == 200
    results: dict[int, int] = {}

    def send(size: int) -> None:
        results[size] = _status(witness, log.body(5, size))[0]

    threads = [threading.Thread(target=send, args=(n,)) for n in (10, 30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results.values()) == [200, 409]
    winner = next(n for n, s in results.items() if s == 200)
    with ledger.transaction() as tx:
        record = tx.witnessed(ORIGIN)
    assert record is not None and record[0] == winner


def test_the_body_parser_keeps_the_proof_and_the_note() -> None:
    req = parse_add_checkpoint(b"old 3\n" + base64.b64encode(bytes(32)) + b"\n\nnote\n\n- x\n")
    assert (req.old_size, req.proof, req.note) == (3, (bytes(32),), "note\n\n- x\n")
    with pytest.raises(WitnessError):
        parse_add_checkpoint(b"old 3\n" + b"\n".join([base64.b64encode(bytes(32))] * 64) + b"\n\nn")


async def test_the_http_endpoint_answers_as_the_spec_says(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    log = _Log()
    vkey = log.signer.verifier.to_vkey()
    client, _, _ = await serve_journey(aiohttp_client, tmp_path / "anchor", witness_logs=vkey)
    resp = await client.post("/witness/add-checkpoint", data=log.body(0, 8))
    assert resp.status == 200 and resp.content_type == "text/plain"
    line = await resp.text()
    assert line.startswith("\u2014 ") and line.endswith("\n")
    resp = await client.post("/witness/add-checkpoint", data=log.body(0, 9))
    assert resp.status == 409 and resp.content_type == "text/x.tlog.size"
    assert await resp.text() == "8\n"
    resp = await client.post("/witness/add-checkpoint", data=_Log(origin="a.example/b").body(0, 2))
    assert resp.status == 404

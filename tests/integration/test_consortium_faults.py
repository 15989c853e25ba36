"""Fault drills for the consortium, on real processes and bounded in time
(docs/consortium.md "What survives what").

While each member's gateway posts (failing over to another member when its own is
down, as a gateway with several member URLs does), one member node and its
``nats-server`` are killed with -9 at random points, repeatedly, and brought back.
Ingestion and finality go on with the other two; the member returns, catches up from
the stream, reviews and cosigns again. At the end nothing acknowledged is lost or
stored twice, every member's tree is byte-identical and ``verify-ledger`` passes on
every member.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from typing import Any

import pytest

from proofs.note import SignedNote
from proofs.policy import parse_policy
from proofs.receipt import verify_receipt
from support.consortium import Consortium, Member

pytestmark = pytest.mark.integration


class Poster(threading.Thread):
    """One gateway: sends its batches in order, each until a member gives a receipt."""

    def __init__(self, c: Consortium, home: Member, deadline: float) -> None:
        super().__init__(daemon=True)
        self.c, self.home, self.deadline = c, home, deadline
        self.acked: dict[int, int] = {}  # batch_seq -> leaf index in the receipt
        self.answers: dict[str, int] = {}
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as e:  # reported by the test
            self.error = e

    def _run(self) -> None:
        order = [self.home] + [m for m in self.c.members if m is not self.home]
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            manifest, body = self.home.gateway.readings_batch(4)
            while not self.stop.is_set():
                if time.monotonic() > self.deadline + 60:
                    raise AssertionError(f"batch {manifest.batch_seq} never got a receipt")
                for m in order:
                    try:
                        status, answer = m.post(body, token=self.home.token)
                    except OSError:
                        status, answer = 0, None
                    key = str(status)
                    self.answers[key] = self.answers.get(key, 0) + 1
                    if status in (200, 201):
                        verify_receipt(answer, manifest, m.log_vkey)
                        self.acked[manifest.batch_seq] = answer["receipt"]["leaf_index"]
                        break
                    assert status in (0, 503), (m.name, status, answer)
                else:
                    time.sleep(0.2)
                    continue
                break


def _final_cosigners(c: Consortium, m: Member) -> set[str]:
    status, blocks = m.get("/v1/blocks?limit=1")
    assert status == 200
    status, block = m.get(f"/v1/blocks/{blocks['blocks'][0]['height']}")
    policy = parse_policy(c.policy_text)
    names = {s.name for s in SignedNote.parse(block["note"]).signatures}
    return {w.name for w in policy.witnesses if w.verifier.name in names}


def _check_all(c: Consortium, posters: list[Poster]) -> None:
    size = c.wait_same_tree(timeout_s=90)
    stored = 0
    for p in posters:
        gw = p.home.gateway.gw
        for m in c.members:
            status, page = m.get(f"/v1/gateways/{gw}/batches?limit=1000")
            assert status == 200
            seqs = [b["batch_seq"] for b in page["batches"]]
            assert len(seqs) == len(set(seqs)), f"{gw} stored twice on {m.name}"
            leaves = {b["batch_seq"]: b["leaf_index"] for b in page["batches"]}
            for batch_seq, leaf in p.acked.items():
                assert leaves.get(batch_seq) == leaf, f"acknowledged {gw} {batch_seq} lost"
        stored += len(seqs)
    assert stored == size
    for m in c.members:
        out = m.cli("verify-ledger", "--quiet")
        assert out.returncode == 0, (m.name, out.stdout, out.stderr)


def test_kill9_member_and_its_nats_server_repeatedly(tmp_path) -> None:
    rng = random.Random(int.from_bytes(os.urandom(4)))
    with Consortium(tmp_path) as c:
        deadline = time.monotonic() + 40
        posters = [Poster(c, m, deadline) for m in c.members]
        for p in posters:
            p.start()
        for _round in range(3):
            time.sleep(rng.uniform(1.0, 3.0))
            i = rng.randrange(3)
            victim = c.members[i]
            c.kill(victim)
            c.nats.kill(c.nats.nodes[i])
            # The other two go on: a batch posted now is final without the victim.
            time.sleep(rng.uniform(2.0, 4.0))
            c.nats.start(c.nats.nodes[i])
            c.start(victim)
        time.sleep(2)
        for p in posters:
            p.stop.set()
        for p in posters:
            p.join(120)
            assert p.error is None, p.error
            assert p.acked, f"{p.home.name}'s gateway got no receipt at all: {p.answers}"
            print(p.home.name, len(p.acked), p.answers)
        _check_all(c, posters)
        # The returned members cosign again: the latest checkpoint has all three.
        deadline = time.monotonic() + 30
        for m in c.members:
            while len(_final_cosigners(c, m)) < 3:
                assert time.monotonic() < deadline, f"{m.name}: {_final_cosigners(c, m)}"
                m.get("/healthz")
                time.sleep(0.5)


def test_hung_member_and_stream_leader_killed_mid_publish(tmp_path) -> None:
    with Consortium(tmp_path) as c:
        deadline = time.monotonic() + 25
        posters = [Poster(c, m, deadline) for m in c.members]
        for p in posters:
            p.start()
        time.sleep(2)
        hung = c.members[2]
        assert hung.proc is not None
        os.kill(hung.proc.pid, signal.SIGSTOP)  # hung, not dead: its socket stays open
        try:
            time.sleep(3)
            leader = _stream_leader(c)
            c.nats.kill(leader)
            time.sleep(4)
            c.nats.start(leader)
        finally:
            os.kill(hung.proc.pid, signal.SIGCONT)
        time.sleep(3)
        for p in posters:
            p.stop.set()
        for p in posters:
            p.join(120)
            assert p.error is None, p.error
        _check_all(c, posters)


def _stream_leader(c: Consortium) -> Any:
    import asyncio

    import nats

    async def leader() -> str:
        nc = await nats.connect(c.nats.urls, connect_timeout=2)
        try:
            info = await nc.jetstream().stream_info("COLDTRAIL")
            return str(info.cluster.leader)
        finally:
            await nc.close()

    name = asyncio.run(leader())
    return next(n for n in c.nats.nodes if n.name == name)


def test_a_member_on_postgresql_applies_the_same_tree_and_catches_up(tmp_path, pg_dsn) -> None:
    """Members choose their own store: the warehouse keeps its copy in PostgreSQL."""
    with Consortium(tmp_path, member_config={"warehouse": {"store": pg_dsn}}) as c:
        packer, _, warehouse = c.members
        for m in c.members:
            for _ in range(2):
                assert m.post(m.gateway.readings_batch(5)[1])[0] == 201
        c.wait_same_tree()
        c.kill(warehouse)
        for _ in range(5):
            assert packer.post(packer.gateway.readings_batch(5)[1])[0] == 201
        c.start(warehouse)
        assert c.wait_same_tree(timeout_s=90) == 11
        status, health = warehouse.get("/healthz")
        assert status == 200 and health["consortium"]["cosigning"] == "ok", health
        for m in c.members:
            out = m.cli("verify-ledger", "--quiet")
            assert out.returncode == 0, (m.name, out.stdout, out.stderr)


def test_a_member_returning_to_a_long_backlog_starts_at_once_and_catches_up(tmp_path) -> None:
    """Its backlog takes longer to verify than its finality timeout: it must still start
    (serving reads, applying in turn), not wait for its first cut and give up."""
    with Consortium(tmp_path, member_config={"warehouse": {"finality_timeout_s": 1.0}}) as c:
        packer, carrier, warehouse = c.members
        c.kill(warehouse)
        for _ in range(15):
            for m in (packer, carrier):
                assert m.post(m.gateway.readings_batch(400)[1])[0] == 201
        c.start(warehouse)  # listens before it has applied the backlog
        status, health = warehouse.get("/healthz")
        assert status == 200, health
        assert c.wait_same_tree(timeout_s=120) == 30
        out = warehouse.cli("verify-ledger", "--quiet")
        assert out.returncode == 0, out.stdout + out.stderr

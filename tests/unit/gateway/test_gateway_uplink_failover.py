"""The uplink with several anchor member nodes, over in-memory transports to stand-ins
that share one log origin and sign with their own keys, and the real SQLite spool.

A member that fails hands the batch to the next at once; a 4xx refusal is an answer;
a receipt verifies only with the key of the member that sent it; home again after
failback_s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sqlite3
from pathlib import Path

import pytest
from gateway_twins import StandinTransport, make_signer

from gateway.metrics import GatewayMetrics
from gateway.observations import Measurement
from gateway.spool import Spool
from gateway.uplink import AnchorLink, Backoff, Outcome, Uplink
from proofs.note import NoteVerifier, SignedNote
from support.standin_anchor import StandinAnchor

ORIGIN = "coldtrail.test/log"
FAILBACK_S = 10.0


class Members:
    """Stand-ins A (home), B and C of one consortium, each with its own log key."""

    def __init__(self, n: int = 3) -> None:
        self.anchors = [StandinAnchor(origin=ORIGIN) for _ in range(n)]
        self.transports = [StandinTransport(a) for a in self.anchors]
        self.urls = [f"https://member-{'abc'[i]}.test" for i in range(n)]
        self.vkeys = [a.vkey for a in self.anchors]

    def links(self) -> list[AnchorLink]:
        return [
            AnchorLink(url, transport, vkey)
            for url, transport, vkey in zip(self.urls, self.transports, self.vkeys, strict=True)
        ]

    def posts(self) -> list[int]:
        return [t.posts for t in self.transports]

    def accepted(self) -> list[list[int]]:
        return [[a.manifest.batch_seq for a in anchor.accepted] for anchor in self.anchors]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def members() -> Members:
    return Members()


async def spool_with(tmp_path: Path, members: Members, batches: int) -> Spool:
    signer, key, _ = make_signer()
    for anchor in members.anchors:
        anchor.enroll("truck-07", key.public_key)
    spool = await Spool.open(tmp_path / "s.db", signer, budget_bytes=10**9, batch_max_records=5)
    await add_batches(spool, batches)
    return spool


async def add_batches(spool: Spool, batches: int) -> None:
    if not batches:
        return
    signer = spool._sealer
    await spool.append(
        signer.drafts([Measurement("probe-1", "temperature", i, "CEL") for i in range(5 * batches)])
    )
    for _ in range(batches):
        await spool.seal_batch()


def uplink(spool: Spool, links: list[AnchorLink], **kw) -> Uplink:
    kw.setdefault("failback_s", FAILBACK_S)
    return Uplink(
        spool,
        links,
        backoff=Backoff(0.01, 0.05),
        backfill_batches_per_s=1000.0,
        live_window_s=60.0,
        rng=random.Random(1),
        **kw,
    )


def stored_receipt_signers(spool_file: Path, members: Members) -> dict[int, str]:
    """batch_seq -> URL of the member whose log key signed the receipt the spool kept."""
    conn = sqlite3.connect(f"file:{spool_file}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT batch_seq, receipt FROM receipts ORDER BY 1").fetchall()
    finally:
        conn.close()
    by_key = {
        NoteVerifier.from_vkey(vkey).key_id: url
        for vkey, url in zip(members.vkeys, members.urls, strict=True)
    }
    signers = {}
    for batch_seq, receipt in rows:
        note = SignedNote.parse(json.loads(receipt)["receipt"]["checkpoint"])
        signers[batch_seq] = by_key[note.signatures[0].key_id]
    return signers


@pytest.mark.parametrize(
    "failure",
    ["unreachable", "answer-lost", "500", "503", "429", "408", "forged-receipt"],
)
async def test_a_failing_home_member_hands_the_batch_to_the_next_at_once(
    tmp_path, members, failure
) -> None:
    spool = await spool_with(tmp_path, members, batches=1)
    home = members.transports[0]
    if failure == "unreachable":
        home.down = True
    elif failure == "answer-lost":
        home.lose_reply = True  # A logged it, the gateway never heard: B gets the same bytes
    elif failure == "forged-receipt":
        home.anchor.receipt_mode = "forged"
    else:
        home.anchor.refuse_with = (int(failure), "unavailable")
    metrics = GatewayMetrics(lambda: spool.stats)
    up = uplink(spool, members.links(), metrics=metrics)

    assert await up.step() is Outcome.SENT  # one step: no backoff between the members
    assert members.posts() == [1, 1, 0]
    assert spool.stats.records == 0 and spool.stats.batches == 0
    assert stored_receipt_signers(spool.path, members) == {1: members.urls[1]}
    assert up.status.member == members.urls[1] and up.status.member_index == 1
    assert up.status.failovers == 1 and up.link_up
    assert metrics.uplink_failovers.labels(members.urls[1])._value.get() == 1
    assert metrics.uplink_member._value.get() == 1
    if failure == "answer-lost":
        # Both hold the same manifest: the consortium's dedupe by manifest hash makes it one.
        a, b = members.anchors[0].accepted[0], members.anchors[1].accepted[0]
        assert a.manifest_json == b.manifest_json
    await spool.close()


async def test_the_next_batches_go_to_the_member_in_use_without_asking_home(
    tmp_path, members
) -> None:
    spool = await spool_with(tmp_path, members, batches=3)
    members.transports[0].down = True
    clock = Clock()
    up = uplink(spool, members.links(), clock=clock)
    for _ in range(3):
        assert await up.step() is Outcome.SENT
    assert members.posts() == [1, 3, 0]  # a dead home costs one attempt, not one per batch
    assert members.accepted() == [[], [3, 2, 1], []]
    await spool.close()


async def test_a_4xx_refusal_is_an_answer_not_a_reason_to_fail_over(tmp_path, members) -> None:
    spool = await spool_with(tmp_path, members, batches=2)
    members.anchors[0].refuse_batches[2] = (422, "bad-signature")
    metrics = GatewayMetrics(lambda: spool.stats)
    up = uplink(spool, members.links(), metrics=metrics)
    assert await up.step() is Outcome.REFUSED
    assert members.posts() == [1, 0, 0]  # the others would refuse it for the same reason
    assert up.status.member_index == 0 and up.status.failovers == 0
    assert await up.step() is Outcome.SENT  # batch 1 still goes to home
    assert await up.step() is Outcome.HELD
    assert members.posts() == [2, 0, 0]
    assert spool.stats.refused_batches == 1 and spool.stats.records == 5
    assert metrics.uplink_refused.labels("bad-signature")._value.get() == 1
    await spool.close()


async def test_a_refusal_from_the_member_in_use_keeps_it_in_use(tmp_path, members) -> None:
    spool = await spool_with(tmp_path, members, batches=2)
    members.transports[0].down = True
    members.anchors[1].refuse_batches[2] = (409, "batch-replay")
    up = uplink(spool, members.links())
    assert await up.step() is Outcome.REFUSED  # A down, B refuses: not handed on to C
    assert members.posts() == [1, 1, 0] and up.status.member_index == 1
    await spool.close()


async def test_a_receipt_from_b_verifies_with_b_key_only(tmp_path, members) -> None:
    """B's receipt, checked against A's key (the home member's, trusted for A), is refused."""
    spool = await spool_with(tmp_path, members, batches=1)
    members.transports[0].down = True
    members.transports[2].down = True
    links = members.links()
    links[1] = AnchorLink(members.urls[1], members.transports[1], members.vkeys[0])
    metrics = GatewayMetrics(lambda: spool.stats)
    up = uplink(spool, links, metrics=metrics)
    assert await up.step() is Outcome.RETRY
    assert spool.stats.records == 5 and members.accepted()[1] == [1]
    assert metrics.bad_receipts._value.get() == 1
    assert "receipt rejected" in up.status.last_error and up.status.failovers == 0
    await spool.close()


async def test_member_b_signing_with_a_key_is_refused(tmp_path, members) -> None:
    """A node at B's address that signs with A's log key is not B: nothing is deleted."""
    spool = await spool_with(tmp_path, members, batches=1)
    impostor = StandinAnchor(origin=ORIGIN, log_key=members.anchors[0].log_key)
    impostor.enroll("truck-07", members.anchors[0].gateways["truck-07"])
    members.transports[0].down = True
    members.transports[2].down = True
    links = members.links()
    links[1] = AnchorLink(members.urls[1], StandinTransport(impostor), members.vkeys[1])
    up = uplink(spool, links)
    assert await up.step() is Outcome.RETRY
    assert spool.stats.records == 5 and len(impostor.accepted) == 1
    await spool.close()


async def test_every_member_failing_is_one_round_then_the_backoff(tmp_path, members) -> None:
    spool = await spool_with(tmp_path, members, batches=1)
    for t in members.transports:
        t.down = True
    sleeps: list[tuple[float, list[int]]] = []
    errors: list[str] = []

    async def sleep(s: float) -> None:
        sleeps.append((s, members.posts()))
        errors.append(up.status.last_error)
        if len(sleeps) == 2:
            members.transports[2].down = False

    up = uplink(spool, members.links(), sleep=sleep)
    task = asyncio.create_task(up.run())
    for _ in range(200):
        if spool.stats.records == 0:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    # Each sleep comes after a whole round, never between two members.
    assert [posts for _, posts in sleeps] == [[1, 1, 1], [2, 2, 2]]
    assert all(0.005 <= s <= 0.05 for s, _ in sleeps)
    assert members.posts() == [3, 3, 3] and members.accepted() == [[], [], [1]]
    assert errors[0].startswith("no anchor member took batch 1: https://member-a.test: anchor")
    assert all(f"{url}: anchor unreachable" in errors[0] for url in members.urls)
    await spool.close()


async def test_retry_after_from_every_member_is_waited_out_the_shortest(tmp_path) -> None:
    members = Members(2)
    spool = await spool_with(tmp_path, members, batches=1)
    members.anchors[0].refuse_with = (503, "disk-full")
    members.anchors[0].retry_after = "30"
    members.anchors[1].refuse_with = (503, "disk-full")
    members.anchors[1].retry_after = "7"
    up = uplink(spool, members.links())
    assert await up.step() is Outcome.RETRY
    up.status.consecutive_failures = 1
    assert up.retry_delay_s() == 7.0
    members.anchors[1].retry_after = None
    assert await up.step() is Outcome.RETRY
    assert members.posts() == [2, 2]
    assert up.retry_delay_s() < 1  # B sent none this time: only the backoff
    await spool.close()


async def test_home_again_after_failback_s(tmp_path, members) -> None:
    spool = await spool_with(tmp_path, members, batches=1)
    clock = Clock()
    metrics = GatewayMetrics(lambda: spool.stats)
    up = uplink(spool, members.links(), clock=clock, metrics=metrics)
    home = members.transports[0]
    home.down = True
    assert await up.step() is Outcome.SENT  # batch 1 via B
    home.down = False  # A is back, but the gateway does not know it yet

    clock.now += FAILBACK_S - 0.1
    await add_batches(spool, 1)
    assert await up.step() is Outcome.SENT
    assert members.accepted() == [[], [1, 2], []] and up.status.member_index == 1

    clock.now += 0.1
    await add_batches(spool, 1)
    assert await up.step() is Outcome.SENT  # the first batch after failback_s: home
    assert members.accepted() == [[3], [1, 2], []]
    assert up.status.member == members.urls[0] and up.status.member_index == 0
    assert up.status.failovers == 1 and up.status.failbacks == 1
    assert metrics.uplink_failbacks._value.get() == 1
    assert metrics.uplink_member._value.get() == 0
    assert stored_receipt_signers(spool.path, members) == {
        1: members.urls[1],
        2: members.urls[1],
        3: members.urls[0],
    }
    await spool.close()


async def test_a_failback_that_fails_stays_on_the_member_in_use(tmp_path, members) -> None:
    spool = await spool_with(tmp_path, members, batches=1)
    clock = Clock()
    up = uplink(spool, members.links(), clock=clock)
    members.transports[0].down = True
    assert await up.step() is Outcome.SENT
    clock.now += FAILBACK_S
    await add_batches(spool, 1)
    assert await up.step() is Outcome.SENT  # home asked first, still down: B, at once
    assert members.posts() == [2, 2, 0]
    assert up.status.failovers == 1 and up.status.failbacks == 0  # no new failover either
    clock.now += FAILBACK_S / 2
    await add_batches(spool, 1)
    assert await up.step() is Outcome.SENT
    assert members.posts() == [2, 3, 0]  # the failback clock restarted at that failure
    await spool.close()


async def test_status_names_the_members(tmp_path, members) -> None:
    spool = await spool_with(tmp_path, members, batches=0)
    up = uplink(spool, members.links())
    doc = up.status.to_dict()
    assert doc["member"] == members.urls[0] and doc["member_index"] == 0
    assert doc["members"] == 3 and doc["failovers"] == 0 and doc["failbacks"] == 0
    await spool.close()

"""Batches of one gateway arriving out of batch_seq order (docs/adr/0310), against the
real app and a real SQLite ledger: every link is checked once both sides are stored,
a refusal leaves nothing behind, and verify-ledger reports holes as pending."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from anchor.cli import main as anchor_main
from anchor.http.app import create_app
from anchor.http.keys import STORE
from anchor.ledger.model import NewBatch, NewRecord
from anchor.storage.sqlite.store import SqliteLedger
from proofs.receipt import verify_receipt
from proofs.records import Manifest, Reading
from support.batches import GatewaySim, Node, auth, make_node

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]
Client = TestClient[Any, Any]


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return make_node(tmp_path)


@pytest.fixture
async def client(node: Node, aiohttp_client: ClientFactory) -> AsyncIterator[Client]:
    yield await aiohttp_client(create_app(node.config))


def store_of(client: Client) -> SqliteLedger:
    store = client.app[STORE]
    assert isinstance(store, SqliteLedger)
    return store


async def post(client: Client, node: Node, body: dict[str, Any]) -> Any:
    return await client.post(
        "/v1/batches",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **auth(node.gateway_token)},
    )


async def accepted(client: Client, node: Node, body: dict[str, Any]) -> dict[str, Any]:
    resp = await post(client, node, body)
    assert resp.status == 201, await resp.text()
    doc: dict[str, Any] = await resp.json()
    return doc


async def refused(client: Client, node: Node, body: dict[str, Any], code: str) -> str:
    before = store_of(client).table_counts()
    resp = await post(client, node, body)
    problem = await resp.json()
    assert (resp.status, problem["code"]) == (409, code), problem
    assert store_of(client).table_counts() == before  # nothing left behind
    detail: str = problem["detail"]
    return detail


def verify_cli(node: Node, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    config = tmp_path / "anchor.toml"
    config.write_text(f'[anchor]\ndata_dir = "{node.config.data_dir}"\n')
    code = anchor_main(["--config", str(config), "verify-ledger", "--quiet"])
    out, err = capsys.readouterr()
    return code, out + err


async def test_n_plus_2_before_n_plus_1_then_both_links_are_checked(
    client: Client, node: Node, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gw = node.gateway
    batches = [gw.readings_batch(2) for _ in range(4)]
    await accepted(client, node, batches[0][1])
    _, b4 = batches[3]
    await accepted(client, node, b4)  # live first: 4 before 2 and 3
    await accepted(client, node, batches[2][1])  # 3: links to 4 checked, 2 still missing
    code, text = verify_cli(node, tmp_path, capsys)
    assert code == 0 and "ledger OK: 3 batches" in text
    assert "WARNING: 1 batches in 1 pending holes" in text and "truck-07 2..2" in text
    m2, b2 = batches[1]
    receipt = await accepted(client, node, b2)  # checked against both 1 and 3
    verify_receipt(receipt, m2, node.log_vkey)
    # An identical resend of an out-of-order batch answers the same stored receipt.
    resend = await post(client, node, b4)
    assert resend.status == 200
    first = store_of(client).batch_by_seq(gw.gw, 4)
    assert first is not None and first.receipt_json is not None
    assert json.loads(first.receipt_json) == await resend.json()
    page = await (await client.get(f"/v1/gateways/{gw.gw}/batches")).json()
    assert [b["batch_seq"] for b in page["batches"]] == [4, 3, 2, 1]
    code, text = verify_cli(node, tmp_path, capsys)
    assert code == 0 and "ledger OK: 4 batches, 8 records" in text and "WARNING" not in text


def fork(gw: GatewaySim) -> GatewaySim:
    """Another gateway object at the same chain position with the same key."""
    return GatewaySim(gw=gw.gw, key=gw.key, seq=gw.seq, batch_seq=gw.batch_seq, prev=gw.prev)


async def test_broken_link_against_a_stored_successor(client: Client, node: Node) -> None:
    gw = node.gateway
    await accepted(client, node, gw.readings_batch(2)[1])
    liar = fork(gw)
    _, honest_two = gw.readings_batch(2)
    _, three = gw.readings_batch(2)
    await accepted(client, node, three)
    _, other_two = liar.readings_batch(2, val=-20.0)  # links to 1, but 3 names another prev
    detail = await refused(client, node, other_two, "broken-chain")
    assert "stored successor, batch 3" in detail
    await accepted(client, node, honest_two)


async def test_broken_link_against_a_stored_predecessor(client: Client, node: Node) -> None:
    gw = node.gateway
    await accepted(client, node, gw.readings_batch(2)[1])
    gw.prev = "ab" * 32
    _, two = gw.readings_batch(2)
    detail = await refused(client, node, two, "broken-chain")
    assert "stored predecessor, batch 1" in detail


async def test_seq_overlap_with_the_lower_and_the_higher_neighbour(
    client: Client, node: Node
) -> None:
    gw = node.gateway
    await accepted(client, node, gw.readings_batch(3)[1])  # batch 1: seqs 1..3
    far = fork(gw)
    far.batch_seq, far.seq = 4, 10
    await accepted(client, node, far.readings_batch(2)[1])  # batch 5: seqs 11..12

    low = fork(gw)
    low.batch_seq, low.seq = 2, 2  # batch 3 from seq 3: inside batch 1
    detail = await refused(client, node, low.readings_batch(2)[1], "seq-overlap")
    assert "stored neighbour is batch 1" in detail

    high = fork(gw)
    high.batch_seq, high.seq = 2, 9  # batch 3 with seqs 10..12: into batch 5
    detail = await refused(client, node, high.readings_batch(3)[1], "seq-overlap")
    assert "stored neighbour is batch 5" in detail


async def test_replay_of_an_out_of_order_batch_seq(client: Client, node: Node) -> None:
    gw = node.gateway
    await accepted(client, node, gw.readings_batch(2)[1])
    liar = fork(gw)
    gw.readings_batch(2)
    _, three = gw.readings_batch(2)
    await accepted(client, node, three)
    liar.readings_batch(2)
    _, other_three = liar.readings_batch(2, val=-5.0)
    await refused(client, node, other_three, "batch-replay")


def _append_bypassing_ingest(store: SqliteLedger, m: Manifest, records: list[Reading]) -> None:
    """What a compromised or buggy anchor could have written: no ingest checks at all."""
    new_records = [
        NewRecord(r.gw, r.seq, "reading", r.src, r.asset, r.t, r.to_json(), r.q, r.val, r.unit)
        for r in records
    ]
    batch = NewBatch(
        gw=m.gw,
        batch_seq=m.batch_seq,
        manifest_hash=m.hash_hex(),
        manifest_json=m.to_json(),
        leaf_hash=m.leaf_hash(),
        first_seq=m.first_seq,
        last_seq=m.last_seq,
        count=m.count,
        root=m.root,
        opened=m.opened,
        closed=m.closed,
        records_evicted=False,
        accepted_at=m.closed,
        records=new_records,
    )
    with store.transaction() as tx:
        tx.append_batch(batch)


async def test_verify_ledger_fails_hard_on_a_broken_link(
    client: Client, node: Node, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gw = node.gateway
    await accepted(client, node, gw.readings_batch(2)[1])
    liar = fork(gw)
    gw.readings_batch(2)  # the honest batch 2 never reaches the ledger
    three_records = [gw.reading(), gw.reading()]
    three = gw.manifest(three_records)
    await accepted(client, node, liar.readings_batch(2, val=-20.0)[1])  # a signed fork
    _append_bypassing_ingest(store_of(client), three, three_records)
    code, text = verify_cli(node, tmp_path, capsys)
    assert code == 1
    assert "INCONSISTENT" in text and "truck-07 batch 3" in text and "broken-chain" in text


async def test_concurrent_out_of_order_batches_share_commits_and_all_link(
    client: Client, node: Node, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Arriving together they share group commits; each link is checked inside the
    # transaction against batches appended earlier in the same group.
    gw = node.gateway
    bodies = [gw.readings_batch(2)[1] for _ in range(8)]
    replies = await asyncio.gather(*(post(client, node, b) for b in reversed(bodies)))
    assert [r.status for r in replies] == [201] * 8
    code, text = verify_cli(node, tmp_path, capsys)
    assert code == 0 and "ledger OK: 8 batches, 16 records" in text and "WARNING" not in text

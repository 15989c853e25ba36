"""The anchor's HTTP API against the real app and a real SQLite file."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from anchor.http.app import create_app
from anchor.http.keys import STORE
from anchor.storage.sqlite.store import SqliteLedger
from proofs.merkle import verify_consistency, verify_inclusion
from proofs.note import Checkpoint, NoteVerifier, SignedNote
from proofs.receipt import verify_receipt
from support.batches import GatewaySim, Node, auth, make_node, register_and_enroll

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return make_node(tmp_path)


@pytest.fixture
async def client(node: Node, aiohttp_client: ClientFactory) -> AsyncIterator[TestClient[Any, Any]]:
    yield await aiohttp_client(create_app(node.config))


def counts(client: TestClient[Any, Any]) -> dict[str, int]:
    store = client.app[STORE]
    assert isinstance(store, SqliteLedger)
    return store.table_counts()


async def post(client: TestClient[Any, Any], token: str, body: Any, **kw: Any) -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **auth(token), **kw.pop("headers", {})}
    return await client.post("/v1/batches", data=data, headers=headers, **kw)


async def test_accepts_a_batch_and_returns_a_receipt_the_gateway_can_verify(
    client: TestClient[Any, Any], node: Node
) -> None:
    manifest, body = node.gateway.readings_batch(5)
    resp = await post(client, node.gateway_token, body)
    assert resp.status == 201, await resp.text()
    receipt, checkpoint = verify_receipt(await resp.json(), manifest, node.log_vkey)
    assert receipt.leaf_index == 0
    assert checkpoint.size == 1
    assert counts(client)["records"] == 5


async def test_resend_returns_the_same_stored_receipt_and_changes_nothing(
    client: TestClient[Any, Any], node: Node
) -> None:
    _, body = node.gateway.readings_batch(2)
    first = await post(client, node.gateway_token, body)
    assert first.status == 201
    before = counts(client)
    again = await post(client, node.gateway_token, body)
    assert again.status == 200
    assert await again.read() == await first.read()
    assert counts(client) == before


async def test_chain_of_batches_yields_consistent_checkpoints_and_proofs(
    client: TestClient[Any, Any], node: Node
) -> None:
    notes = []
    for _ in range(5):
        manifest, body = node.gateway.readings_batch(3)
        resp = await post(client, node.gateway_token, body)
        assert resp.status == 201
        verify_receipt(await resp.json(), manifest, node.log_vkey)
        notes.append((await resp.json())["receipt"]["checkpoint"])
    verifier = NoteVerifier.from_vkey(node.log_vkey)
    cps = []
    for text in notes:
        note = SignedNote.parse(text)
        note.verify([verifier])
        cps.append(Checkpoint.from_text(note.text))
    resp = await client.get("/v1/log/consistency", params={"from": 2, "to": 5})
    assert resp.status == 200
    data = await resp.json()
    proof = [base64.b64decode(p) for p in data["proof"]]
    verify_consistency(2, 5, proof, cps[1].root, cps[4].root)
    resp = await client.get("/v1/log/inclusion", params={"leaf": 3, "size": 5})
    data = await resp.json()
    verify_inclusion(
        base64.b64decode(data["leaf_hash"]),
        3,
        5,
        [base64.b64decode(p) for p in data["proof"]],
        cps[4].root,
    )


async def test_checkpoint_latest_as_note_and_json_and_blocks(
    client: TestClient[Any, Any], node: Node
) -> None:
    _, body = node.gateway.readings_batch(1)
    assert (await post(client, node.gateway_token, body)).status == 201
    resp = await client.get("/v1/checkpoints/latest")
    assert resp.content_type == "text/plain"
    note = SignedNote.parse(await resp.text())
    assert note.verify([NoteVerifier.from_vkey(node.log_vkey)]) == [node.config.log_origin]
    assert len(note.signatures) == 2  # the log signature and the member cosignature
    resp = await client.get("/v1/checkpoints/latest", headers={"Accept": "application/json"})
    block = await resp.json()
    assert (block["height"], block["size"], block["entries"], block["final"]) == (1, 1, 1, True)
    blocks = (await (await client.get("/v1/blocks")).json())["blocks"]
    assert [b["height"] for b in blocks] == [1, 0]
    one = await (await client.get("/v1/blocks/1")).json()
    assert one["hash"] == block["hash"]
    missing = await client.get("/v1/blocks/99")
    assert missing.status == 404
    assert (await missing.json())["code"] == "not-found"


async def test_leaf_and_gateway_batches(client: TestClient[Any, Any], node: Node) -> None:
    _, b1 = node.gateway.readings_batch(2)
    m2, b2 = node.gateway.readings_batch(2)
    for b in (b1, b2):
        assert (await post(client, node.gateway_token, b)).status == 201
    leaf = await (await client.get("/v1/log/leaves/1")).json()
    assert leaf["manifest"] == m2.to_dict()
    page = await (await client.get(f"/v1/gateways/{node.gateway.gw}/batches")).json()
    assert [b["batch_seq"] for b in page["batches"]] == [2, 1]
    assert page["gateway"]["key_id"] == node.gateway.key.key_id
    older = await client.get(f"/v1/gateways/{node.gateway.gw}/batches", params={"before": 2})
    assert [b["batch_seq"] for b in (await older.json())["batches"]] == [1]


async def test_health_metrics_and_openapi(client: TestClient[Any, Any], node: Node) -> None:
    health = await client.get("/healthz")
    assert health.status == 200
    assert (await health.json())["status"] == "ok"
    metrics = await client.get("/metrics")
    assert "coldtrail_anchor_log_size" in await metrics.text()
    doc = await (await client.get("/openapi.json")).json()
    assert doc["openapi"] == "3.1.0"
    assert "/v1/batches" in doc["paths"]


async def test_evicted_batch_and_gap_covered_hole(client: TestClient[Any, Any], node: Node) -> None:
    gw = node.gateway
    _, b1 = gw.readings_batch(2)
    assert (await post(client, node.gateway_token, b1)).status == 201
    _, evicted = gw.evicted_batch(3)
    resp = await post(client, node.gateway_token, evicted)
    assert resp.status == 201, await resp.text()
    lost_from, lost_to = gw.skip(4)
    _, b3 = gw.batch([gw.gap("evicted", lost_from, lost_to), gw.reading()])
    resp = await post(client, node.gateway_token, b3)
    assert resp.status == 201, await resp.text()
    leaf = await (await client.get("/v1/log/leaves/1")).json()
    assert leaf["records_evicted"] is True


async def test_scans_are_indexed_by_gs1_keys(client: TestClient[Any, Any], node: Node) -> None:
    gw = node.gateway
    _, b = gw.batch([gw.scan(lot="L1", sscc="376123450000000018"), gw.reading(), gw.scan(lot="L2")])
    assert (await post(client, node.gateway_token, b)).status == 201
    store = client.app[STORE]
    scans = store.scans(gtin="09506000134352", lot="L1")
    assert [(s.seq, s.sscc, s.asset) for s in scans] == [(1, "376123450000000018", gw.asset)]
    assert [s.seq for s in store.scans(sscc="376123450000000018")] == [1]
    assert gw.asset is not None
    readings = store.records_by_asset(gw.asset, 0, 2**62, type="reading")
    assert [r.seq for r in readings] == [2]
    record = store.record(gw.gw, 2)
    assert record is not None and record.batch_leaf == 0 and record.batch_index == 1
    stats = store.reading_stats(gw.asset, 0, 2**62)
    assert stats == [("temperature", "CEL", 1, 4.0, 4.0)]


async def test_two_gateways_interleave(
    client: TestClient[Any, Any], node: Node, tmp_path: Path
) -> None:
    other = GatewaySim(gw="coldroom-3", asset="coldroom-3")
    store = client.app[STORE]
    register_and_enroll(store, other.gw, "acme", other.public_key_b64, other.asset, 0)
    for sim in (node.gateway, other, node.gateway, other):
        _, body = sim.readings_batch(2)
        resp = await post(client, node.gateway_token, body)
        assert resp.status == 201, await resp.text()
    assert store.log_size() == 4


async def test_concurrent_ingests_share_commits_and_all_get_valid_receipts(
    client: TestClient[Any, Any], node: Node
) -> None:
    import asyncio

    store = client.app[STORE]
    sims = [GatewaySim(gw=f"van-{i:02d}", asset=f"van-{i:02d}") for i in range(8)]
    for sim in sims:
        register_and_enroll(store, sim.gw, "acme", sim.public_key_b64, sim.asset, 0)
    batches = [sim.readings_batch(4) for sim in sims]
    resps = await asyncio.gather(*(post(client, node.gateway_token, b) for _, b in batches))
    leaves = set()
    for (manifest, _), resp in zip(batches, resps, strict=True):
        assert resp.status == 201
        receipt, _cp = verify_receipt(await resp.json(), manifest, node.log_vkey)
        leaves.add(receipt.leaf_index)
    assert leaves == set(range(8))
    blocks = (await (await client.get("/v1/blocks")).json())["blocks"]
    assert sum(b["entries"] for b in blocks) == 8


async def test_racing_requests_for_one_batch_seq(client: TestClient[Any, Any], node: Node) -> None:
    import asyncio
    import dataclasses

    gw = node.gateway
    twin = dataclasses.replace(gw)
    _, body = gw.readings_batch(3)
    _, rival = twin.readings_batch(2)  # same batch_seq and prev, other records
    resps = await asyncio.gather(
        *(post(client, node.gateway_token, b) for b in (body, body, body, rival))
    )
    statuses = [r.status for r in resps]
    # Exactly one manifest wins batch_seq 1; the loser is a replay, the twins share a receipt.
    if statuses[3] == 201:
        assert statuses[:3] == [409, 409, 409]
    else:
        assert statuses[3] == 409 and sorted(statuses[:3]) == [200, 200, 201], statuses
    winners = {await r.read() for r in resps if r.status in (200, 201)}
    assert len(winners) == 1
    for r in resps:
        if r.status == 409:
            assert (await r.json())["code"] == "batch-replay"
    assert client.app[STORE].log_size() == 1

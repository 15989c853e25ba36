"""Large batches are verified across worker processes with the same verdicts."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from anchor.http.app import create_app
from anchor.http.keys import VERIFIER
from proofs.receipt import verify_receipt
from support.batches import auth, make_node

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


async def test_process_pool_verification(tmp_path: Path, aiohttp_client: ClientFactory) -> None:
    node = make_node(tmp_path, verify_parallel_min_records=16, verify_workers=2)
    client = await aiohttp_client(create_app(node.config))
    headers = {"Content-Type": "application/json", **auth(node.gateway_token)}
    gw = node.gateway
    forged_from = gw.seq
    _, bad = gw.readings_batch(40)
    bad["records"][37] = dict(bad["records"][37], val=99)
    resp = await client.post("/v1/batches", data=json.dumps(bad), headers=headers)
    assert resp.status == 422
    assert client.app[VERIFIER]._pool is not None  # the worker processes did the verifying
    problem = await resp.json()
    assert problem["code"] == "bad-signature"
    assert f"seq {forged_from + 38}" in problem["detail"]
    # The gateway rebuilds the batch it never got a receipt for (same chain position).
    gw.seq, gw.batch_seq, gw.prev = forged_from, 0, "0" * 64
    manifest, good = gw.readings_batch(40)
    resp = await client.post("/v1/batches", data=json.dumps(good), headers=headers)
    assert resp.status == 201, await resp.text()
    verify_receipt(await resp.json(), manifest, node.log_vkey)

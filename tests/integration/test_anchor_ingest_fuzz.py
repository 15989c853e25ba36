"""Fuzzed ingest: mutations of valid batches against the real app and a real SQLite ledger.

Every answer is either a documented 4xx problem with the ledger unchanged, or a
2xx only for a mutation that left the signed content as it was (the receipt names
the original manifest). Never a 5xx.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anchor.app import STORE, create_app
from anchor.errors import PROBLEM_TITLES
from anchor.store_sqlite import SqliteLedger
from support.batches import Node, auth, make_node
from support.bundle_flips import set_at

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]
Client = TestClient[Any, Any]
JsonPath = tuple[Any, ...]

_CONTRACT = Path(__file__).resolve().parents[2] / "docs" / "ingest-contract.md"
# The refusal codes docs/ingest-contract.md lists ("`code` (status)").
DOCUMENTED = {
    m[0]: int(m[1]) for m in re.findall(r"`([a-z][a-z-]+)` \((\d{3})\)", _CONTRACT.read_text())
}

NASTY: list[Any] = [
    None,
    "",
    0,
    -1,
    1.5,
    True,
    2**53,
    -(2**63),
    2**64,
    "<huge>",  # sent as a 5001-digit number: past Python's int-from-text digit limit
    float("nan"),
    float("inf"),
    1e308,
    "NaN",
    "-0",
    "0" * 64,
    "A" * 86 + "==",
    [],
    {},
    [None],
    {"a": {"b": []}},
    "é€😀",
    "\ud800",  # a lone surrogate, sent as the escape "\ud800"
    "x" * 70_000,  # longer than the body limit on its own
    "truck-07",
    "reading",
]

OPS = ["replace", "delete", "duplicate", "retype", "add-field", "truncate"]
OPS += ["swap-records", "duplicate-record", "drop-record", "count"]


def _containers(doc: Any, path: JsonPath = ()) -> list[JsonPath]:
    """Every path into ``doc`` (dict keys and list indexes at any depth)."""
    out = [path]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _containers(v, (*path, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _containers(v, (*path, i))
    return out


def _at(doc: Any, path: JsonPath) -> Any:
    for p in path:
        doc = doc[p]
    return doc


def _mutate(doc: dict[str, Any], data: st.DataObject) -> bytes:
    """Apply one drawn mutation to ``doc``; return the bytes to send."""
    op = data.draw(st.sampled_from(OPS), label="op")
    records = doc["records"]
    if op == "truncate":
        text = _dumps(doc)
        # A fraction, not an offset: the length varies with the numbers in the batch.
        return text[: len(text) * data.draw(st.integers(0, 999), label="cut/1000") // 1000]
    if op == "swap-records":
        records[0], records[-1] = records[-1], records[0]
    elif op == "duplicate-record":
        records.insert(data.draw(st.integers(0, len(records)), label="at"), dict(records[0]))
    elif op == "drop-record":
        records.pop(data.draw(st.integers(0, len(records) - 1), label="at"))
    elif op == "count":
        delta = data.draw(st.sampled_from([-1, 1, 1000, -(2**40)]), label="delta")
        doc["manifest"]["count"] += delta
    else:
        paths = [p for p in _containers(doc) if p]
        path = data.draw(st.sampled_from(paths), label="path")
        parent, key = _at(doc, path[:-1]), path[-1]
        if op == "replace":
            set_at(doc, path, data.draw(st.sampled_from(NASTY), label="value"))
        elif op == "delete":
            del parent[key]
        elif op == "duplicate" and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
        elif op == "duplicate":
            parent[f"{key}_"] = copy.deepcopy(parent[key])
        elif op == "retype":
            value = parent[key]
            parent[key] = data.draw(
                st.sampled_from([[value], {"v": value}, json.dumps(value), None]), label="as"
            )
        elif op == "add-field":
            target = _at(doc, data.draw(st.sampled_from(_dicts(doc)), label="into"))
            name = data.draw(st.sampled_from(["x", "sig", "v", "type", "", "\ud800"]))
            target[name] = data.draw(st.sampled_from(NASTY), label="value")
    return _dumps(doc)


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc).replace('"<huge>"', "1" + "0" * 5000).encode()


def _dicts(doc: Any) -> list[JsonPath]:
    return [p for p in _containers(doc) if isinstance(_at(doc, p), dict)]


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return make_node(tmp_path, ingest_max_body_bytes=64 * 1024, ingest_max_records=50)


@pytest.fixture
async def client(node: Node, aiohttp_client: ClientFactory) -> AsyncIterator[Client]:
    c = await aiohttp_client(create_app(node.config))
    _, first = node.gateway.readings_batch(2)
    resp = await c.post(
        "/v1/batches",
        data=json.dumps(first),
        headers={"Content-Type": "application/json", **auth(node.gateway_token)},
    )
    assert resp.status == 201
    yield c


def test_the_contract_lists_the_codes() -> None:
    # The fuzz below is only as strict as this list.
    assert {"malformed", "bad-signature", "implausible-value", "disk-full"} <= set(DOCUMENTED)
    for code, status in DOCUMENTED.items():
        assert PROBLEM_TITLES[code][0] == status, code


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_mutated_batches_never_get_a_5xx(client: Client, node: Node, data: Any) -> None:
    gw = dataclasses.replace(node.gateway)  # advanced only when a batch is accepted
    manifest, original = gw.batch([gw.reading(), gw.scan(), gw.gap(reason="restart")])
    payload = _mutate(copy.deepcopy(original), data)
    store = client.app[STORE]
    assert isinstance(store, SqliteLedger)
    before = store.table_counts()
    resp = await client.post(
        "/v1/batches",
        data=payload,
        headers={"Content-Type": "application/json", **auth(node.gateway_token)},
    )
    text = await resp.text()
    assert resp.status < 500, text
    if resp.status < 300:
        # Accepted only if nothing signed changed: the receipt is for the original.
        assert json.loads(text)["receipt"]["manifest_hash"] == manifest.hash_hex(), text
        node.gateway = gw
        return
    assert resp.content_type == "application/problem+json", text
    problem = json.loads(text)
    assert DOCUMENTED.get(problem["code"]) == resp.status, problem
    assert problem["detail"] and problem["status"] == resp.status
    assert store.table_counts() == before

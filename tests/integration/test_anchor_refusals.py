"""Bad input: each refusal is a problem response with its stable code and no ledger change.

The fuzz at the end posts mutated valid batches: never a 5xx, only documented codes."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anchor.auth import enroll_gateway, issue_token
from anchor.errors import PROBLEM_TITLES
from anchor.http.app import create_app
from anchor.http.keys import STORE
from anchor.storage.sqlite.store import SqliteLedger
from proofs.keys import SigningKey
from proofs.records import ZERO_HASH, Manifest, sign
from support.batches import T0, GatewaySim, Node, auth, body, make_node
from support.bundle_flips import set_at

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]
Client = TestClient[Any, Any]


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return make_node(tmp_path, ingest_max_body_bytes=64 * 1024, ingest_max_records=50)


@pytest.fixture
async def client(node: Node, aiohttp_client: ClientFactory) -> AsyncIterator[Client]:
    c = await aiohttp_client(create_app(node.config))
    # One accepted batch, so the gateway has a chain head to break.
    _, first = node.gateway.readings_batch(3)
    resp = await c.post(
        "/v1/batches",
        data=json.dumps(first),
        headers={"Content-Type": "application/json", **auth(node.gateway_token)},
    )
    assert resp.status == 201
    yield c


def store_of(client: Client) -> SqliteLedger:
    store = client.app[STORE]
    assert isinstance(store, SqliteLedger)
    return store


async def refused(
    client: Client,
    code: str,
    status: int,
    payload: Any,
    *,
    token: str | None,
    content_type: str = "application/json",
) -> dict[str, Any]:
    before = store_of(client).table_counts()
    headers = {"Content-Type": content_type}
    if token is not None:
        headers.update(auth(token))
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    resp = await client.post("/v1/batches", data=data, headers=headers)
    assert resp.content_type == "application/problem+json", await resp.text()
    problem = await resp.json()
    assert (resp.status, problem["code"]) == (status, code), problem
    assert problem["type"] == f"https://coldtrail.dev/problems/{code}"
    assert problem["detail"]
    assert store_of(client).table_counts() == before
    return problem


async def test_forged_manifest_signature(client: Client, node: Node) -> None:
    m, b = node.gateway.readings_batch(2)
    forged = dict(b["manifest"], closed=m.closed + 1)
    await refused(client, "bad-signature", 422, dict(b, manifest=forged), token=node.gateway_token)


async def test_forged_record_signature(client: Client, node: Node) -> None:
    _, b = node.gateway.readings_batch(3)
    b["records"][1] = dict(b["records"][1], val=-30.0)
    problem = await refused(client, "bad-signature", 422, b, token=node.gateway_token)
    assert "seq 5" in problem["detail"]


_DELETE = object()
_SIG_MUTATIONS = [
    (_DELETE, "bad-signature", 422),
    (None, "bad-signature", 422),
    ("", "bad-signature", 422),
    (5, "malformed", 400),
    (["AAAA"], "malformed", 400),
    ({"sig": "x"}, "malformed", 400),
    ("not base64!", "malformed", 400),
    ("AAAA", "malformed", 400),  # base64, but 3 bytes and not 64
    ("A" * 86 + "==", "bad-signature", 422),  # 64 zero bytes: the right shape, forged
]
_SIG_IDS = ["missing", "null", "empty", "int", "list", "object", "not-base64", "short", "zeros"]


def _with_sig(d: dict[str, Any], sig: Any) -> dict[str, Any]:
    out = dict(d)
    if sig is _DELETE:
        del out["sig"]
    else:
        out["sig"] = sig
    return out


@pytest.mark.parametrize(("sig", "code", "status"), _SIG_MUTATIONS, ids=_SIG_IDS)
async def test_record_sig_missing_or_mangled(
    client: Client, node: Node, sig: Any, code: str, status: int
) -> None:
    # A missing, null or empty record 'sig' used to escape as a 500 the gateway retried forever.
    _, b = node.gateway.readings_batch(3)
    b["records"][1] = _with_sig(b["records"][1], sig)
    problem = await refused(client, code, status, b, token=node.gateway_token)
    if code == "bad-signature":
        assert "seq 5" in problem["detail"]


@pytest.mark.parametrize(("sig", "code", "status"), _SIG_MUTATIONS, ids=_SIG_IDS)
async def test_manifest_sig_missing_or_mangled(
    client: Client, node: Node, sig: Any, code: str, status: int
) -> None:
    _, b = node.gateway.readings_batch(2)
    b["manifest"] = _with_sig(b["manifest"], sig)
    await refused(client, code, status, b, token=node.gateway_token)


@pytest.mark.parametrize(
    ("val", "q", "unit"),
    [
        (-300.0, "temperature", "CEL"),  # below absolute zero
        (1e9, "temperature", "CEL"),
        (140.0, "humidity", "P1"),
        (20.0, "temperature", "P1"),  # a temperature in percent
    ],
)
async def test_implausible_reading_is_refused(
    client: Client, node: Node, val: float, q: str, unit: str
) -> None:
    gw = node.gateway
    records = [gw.reading(), gw.reading(val=val, q=q, unit=unit), gw.reading()]
    _, b = gw.batch(records)
    problem = await refused(client, "implausible-value", 422, b, token=node.gateway_token)
    seq = records[1].seq
    assert f"seq {seq}" in problem["detail"] and q in problem["detail"]
    assert repr(val) in problem["detail"]


async def test_plausible_extremes_are_accepted(client: Client, node: Node) -> None:
    gw = node.gateway
    _, b = gw.batch([gw.reading(val=-273.15), gw.reading(val=100.0, q="humidity", unit="P1")])
    resp = await client.post(
        "/v1/batches",
        data=json.dumps(b),
        headers={"Content-Type": "application/json", **auth(node.gateway_token)},
    )
    assert resp.status == 201, await resp.text()


async def test_record_signed_by_another_key(client: Client, node: Node) -> None:
    gw = node.gateway
    impostor = GatewaySim(gw=gw.gw, seq=gw.seq)
    records = [impostor.reading()]
    gw.seq = impostor.seq
    _, b = gw.batch(records)
    await refused(client, "bad-signature", 422, b, token=node.gateway_token)


async def test_records_that_do_not_reproduce_the_root(client: Client, node: Node) -> None:
    gw = node.gateway
    records = [gw.reading(), gw.reading()]
    m = gw.manifest(records)
    wrong = sign(dataclasses.replace(m, root="ab" * 32, sig=""), gw.key)
    await refused(client, "root-mismatch", 422, body(wrong, records), token=node.gateway_token)


async def test_fewer_records_than_the_manifest_counts(client: Client, node: Node) -> None:
    _, b = node.gateway.readings_batch(3)
    b["records"].pop()
    await refused(client, "root-mismatch", 422, b, token=node.gateway_token)


async def test_replayed_batch_seq_with_another_manifest(client: Client, node: Node) -> None:
    gw = node.gateway
    gw.batch_seq, gw.prev = 0, ZERO_HASH
    _, b = gw.readings_batch(1)
    await refused(client, "batch-replay", 409, b, token=node.gateway_token)


async def test_reordered_batches_are_accepted(client: Client, node: Node) -> None:
    # Out of batch_seq order is allowed (docs/adr/0310); links are checked once both
    # sides are stored (tests/integration/test_anchor_out_of_order.py).
    gw = node.gateway
    _, second = gw.readings_batch(2)
    _, third = gw.readings_batch(2)
    for b in (third, second):
        resp = await client.post(
            "/v1/batches",
            data=json.dumps(b),
            headers={"Content-Type": "application/json", **auth(node.gateway_token)},
        )
        assert resp.status == 201, await resp.text()


async def test_batch_too_far_ahead(tmp_path: Path, aiohttp_client: ClientFactory) -> None:
    node = make_node(tmp_path, ingest_max_batch_lookahead=5)
    client = await aiohttp_client(create_app(node.config))
    gw = node.gateway
    gw.batch_seq = 5  # the next is 6: six ahead of nothing stored
    gw.seq = 10
    _, b = gw.readings_batch(1)
    problem = await refused(client, "batch-too-far-ahead", 409, b, token=node.gateway_token)
    assert "at most 5" in problem["detail"]


async def test_prev_not_the_previous_manifest(client: Client, node: Node) -> None:
    gw = node.gateway
    gw.prev = "cd" * 32
    _, b = gw.readings_batch(1)
    await refused(client, "broken-chain", 409, b, token=node.gateway_token)


async def test_seq_overlap(client: Client, node: Node) -> None:
    gw = node.gateway
    gw.seq -= 1
    _, b = gw.readings_batch(2)
    await refused(client, "seq-overlap", 409, b, token=node.gateway_token)


async def test_seq_hole_without_a_gap_record(client: Client, node: Node) -> None:
    gw = node.gateway
    gw.skip(2)
    _, b = gw.readings_batch(2)
    await refused(client, "seq-gap", 409, b, token=node.gateway_token)


async def test_revoked_gateway(client: Client, node: Node) -> None:
    store_of(client).revoke_gateway(
        node.gateway.gw, int(time.time() * 1000) - 1, "stolen", int(time.time() * 1000)
    )
    _, b = node.gateway.readings_batch(1)
    await refused(client, "revoked", 403, b, token=node.gateway_token)
    # The batch accepted before the revocation stays in the log.
    leaf = await client.get("/v1/log/leaves/0")
    assert leaf.status == 200


async def test_revocation_dated_ahead_still_admits_batches(client: Client, node: Node) -> None:
    store_of(client).revoke_gateway(
        node.gateway.gw, int(time.time() * 1000) + 3_600_000, "", int(time.time() * 1000)
    )
    _, b = node.gateway.readings_batch(1)
    resp = await client.post(
        "/v1/batches",
        data=json.dumps(b),
        headers={"Content-Type": "application/json", **auth(node.gateway_token)},
    )
    assert resp.status == 201


async def test_unknown_gateway(client: Client, node: Node) -> None:
    _, b = GatewaySim(gw="ghost-1").readings_batch(1)
    await refused(client, "unknown-gateway", 403, b, token=node.gateway_token)


async def test_gateway_of_another_organisation(client: Client, node: Node) -> None:
    store = store_of(client)
    store.add_organisation("rival", "Rival", T0)
    token, _ = issue_token(store, "rival", "gateway", T0)
    _, b = node.gateway.readings_batch(1)
    await refused(client, "forbidden", 403, b, token=token)


async def test_manifest_names_another_key(client: Client, node: Node) -> None:
    gw = node.gateway
    gw.key = SigningKey.generate()  # an unenrolled key, self-consistent signatures
    _, b = gw.readings_batch(1)
    await refused(client, "key-mismatch", 422, b, token=node.gateway_token)


@pytest.mark.parametrize("role", ["operator", "auditor"])
async def test_token_without_the_gateway_role(client: Client, node: Node, role: str) -> None:
    token = node.operator_token if role == "operator" else node.auditor_token
    _, b = node.gateway.readings_batch(1)
    await refused(client, "forbidden", 403, b, token=token)


@pytest.mark.parametrize(
    "token",
    [None, "not-a-token", "ct_0123456789abcdef_" + "A" * 43],
    ids=["missing", "garbage", "unknown"],
)
async def test_unauthenticated(client: Client, node: Node, token: str | None) -> None:
    _, b = node.gateway.readings_batch(1)
    await refused(client, "unauthenticated", 401, b, token=token)


async def test_revoked_token(client: Client, node: Node) -> None:
    token_id = node.gateway_token.split("_")[1]
    store_of(client).revoke_token(token_id, int(time.time() * 1000) - 1)
    _, b = node.gateway.readings_batch(1)
    await refused(client, "unauthenticated", 401, b, token=node.gateway_token)


async def test_wrong_content_type(client: Client, node: Node) -> None:
    _, b = node.gateway.readings_batch(1)
    await refused(
        client,
        "unsupported-media-type",
        415,
        b,
        token=node.gateway_token,
        content_type="text/plain",
    )


async def test_oversize_body(client: Client, node: Node) -> None:
    payload = b'{"manifest": {}, "records": [' + b'"x",' * 20_000 + b'"x"]}'
    await refused(client, "too-large", 413, payload, token=node.gateway_token)


async def test_too_many_records(client: Client, node: Node) -> None:
    _, b = node.gateway.readings_batch(51)
    await refused(client, "too-large", 413, b, token=node.gateway_token)


@pytest.mark.parametrize(
    "payload",
    [b"{not json", b"[]", b'"x"', b"{}", b'{"manifest": 1, "records": []}', b'{"records": 3}'],
)
async def test_malformed_bodies(client: Client, node: Node, payload: bytes) -> None:
    await refused(client, "malformed", 400, payload, token=node.gateway_token)


async def test_records_of_another_gateway_in_the_batch(client: Client, node: Node) -> None:
    gw = node.gateway
    store = store_of(client)
    # Signed with this gateway's own key, naming another gateway. (That other gateway
    # cannot be enrolled with the same key: a key is enrolled once, ever.)
    other = GatewaySim(gw="truck-08", key=gw.key, seq=gw.seq)
    with pytest.raises(ValueError, match="at most once"):
        enroll_gateway(store, "truck-08", "acme", other.public_key_b64, None, T0)
    records = [other.reading()]
    gw.seq = other.seq
    m = gw.manifest(records)
    await refused(client, "malformed", 400, body(m, records), token=node.gateway_token)


def _mutations() -> st.SearchStrategy[tuple[str, Any]]:
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
        ),
        max_leaves=6,
    )
    fields = st.sampled_from([f.name for f in dataclasses.fields(Manifest)] + ["v", "type", "x"])
    return st.tuples(fields, json_values)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(mutation=_mutations())
async def test_mutated_manifests_are_refused_without_change(
    client: Client, node: Node, mutation: tuple[str, Any]
) -> None:
    field, value = mutation
    gw = dataclasses.replace(node.gateway)  # do not advance the shared gateway
    _, b = gw.readings_batch(1)
    if b["manifest"].get(field) == value:
        return
    b["manifest"] = dict(b["manifest"], **{field: value})
    before = store_of(client).table_counts()
    resp = await client.post(
        "/v1/batches",
        data=json.dumps(b),
        headers={"Content-Type": "application/json", **auth(node.gateway_token)},
    )
    assert 400 <= resp.status < 500, await resp.text()
    assert resp.content_type == "application/problem+json"
    assert store_of(client).table_counts() == before


async def test_oversize_chunked_body_without_content_length(client: Client, node: Node) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b" " * 1024

    before = store_of(client).table_counts()
    resp = await client.post(
        "/v1/batches",
        data=chunks(),
        headers={"Content-Type": "application/json", **auth(node.gateway_token)},
    )
    assert resp.status == 413
    assert (await resp.json())["code"] == "too-large"
    assert store_of(client).table_counts() == before


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/v1/log/inclusion?leaf=1&size=1", "bad-parameter"),
        ("/v1/log/inclusion?leaf=0&size=99", "bad-parameter"),
        ("/v1/log/inclusion?leaf=-1", "bad-parameter"),
        ("/v1/log/inclusion", "bad-parameter"),
        ("/v1/log/consistency?from=2&to=1", "bad-parameter"),
        ("/v1/log/leaves/abc", "bad-parameter"),
        ("/v1/log/leaves/7", "not-found"),
        ("/v1/gateways/ghost/batches", "not-found"),
        ("/v1/nothing-here", "not-found"),
    ],
)
async def test_bad_queries_are_problems(client: Client, path: str, code: str) -> None:
    resp = await client.get(path)
    assert resp.content_type == "application/problem+json"
    assert (await resp.json())["code"] == code


async def test_wrong_method_is_a_problem_and_refusals_are_counted(client: Client) -> None:
    resp = await client.get("/v1/batches")
    assert resp.status == 405
    assert (await resp.json())["code"] == "method-not-allowed"
    await client.post("/v1/batches", data=b"{}", headers={"Content-Type": "text/csv"})
    metrics = await (await client.get("/metrics")).text()
    assert 'coldtrail_anchor_http_problems_total{code="unsupported-media-type"} 1.0' in metrics


# --- fuzz: mutations of valid batches ----------------------------------------------
# Every answer is a documented 4xx problem with the ledger unchanged, or a 2xx only for
# a mutation that left the signed content as it was (the receipt names the original
# manifest). Never a 5xx.

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
    store = store_of(client)
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

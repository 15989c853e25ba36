"""The aiohttp application: ``create_app(config) -> web.Application``.

State lives under :class:`web.AppKey` keys; the ledger, keys, verifier pool,
writer and background tasks are each a ``cleanup_ctx`` so they open in order
and close in reverse, also when start-up fails half way.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from anchor.auth import authenticate
from anchor.config import AnchorConfig
from anchor.consortium import witness as witness_mod
from anchor.consortium.checkpoints import CheckpointSigner, InProcessMember
from anchor.consortium.member import MemberNode
from anchor.consortium.policies import PolicyHistory
from anchor.consortium.policy_file import load_consortium
from anchor.consortium.status import consortium_status
from anchor.errors import AnchorError, ConfigError
from anchor.http.claims import CLAIMS, ClaimsContext, setup_claims
from anchor.http.documents import DOCUMENT_ATTEST, DOCUMENT_FILES, DOCUMENT_STORE, setup_documents
from anchor.http.exports import setup_exports
from anchor.http.keys import (
    CONFIG,
    DISPOSITIONS,
    INGESTOR,
    MEMBER,
    METRICS,
    OPENAPI,
    SIGNER,
    STARTED_AT,
    STORE,
    VERIFIER,
)
from anchor.http.limits import PUBLIC_GATE, PublicGate, PublicLimits, document_limits
from anchor.http.notifications import NOTIFIER, NOTIFY_CONFIG, setup_notifications
from anchor.http.openapi import openapi_document
from anchor.http.pages import (
    DISPOSITION_ANNOUNCE,
    DISPOSITION_ATTEST,
    DISPOSITION_STORE,
    PROVENANCE_CONFIG,
    PROVENANCE_SOURCE,
    setup_web,
)
from anchor.http.params import json_response, path_int, query_int
from anchor.http.peers import AiohttpPeers
from anchor.http.problems import problem_middleware
from anchor.http.report import setup_report
from anchor.ingest.pipeline import Ingestor
from anchor.ingest.verify import BatchVerifier
from anchor.ledger import tiles
from anchor.ledger import tree as log
from anchor.ledger.documents import DocumentFiles
from anchor.ledger.model import Checkpoint, StoredBatch
from anchor.ledger.ports import LedgerStore
from anchor.ledger.registry import attester
from anchor.metrics import AnchorMetrics
from anchor.notify.config import load_notify
from anchor.notify.deliver import Deliverer
from anchor.notify.outbox import claim_announcer, disposition_announcer
from anchor.provenance.answer import ProvenanceConfig
from anchor.provenance.claims import ClaimsConfig
from anchor.provenance.dispositions import DispositionWatcher
from anchor.storage import open_store
from proofs.claims import claims_origin
from proofs.errors import ProofsError
from proofs.identifiers import is_identifier
from proofs.keystore import load_signing_key
from proofs.note import ALG_COSIGNATURE_V1, NoteSigner

__all__ = [
    "CONFIG",
    "INGESTOR",
    "METRICS",
    "OPENAPI",
    "SIGNER",
    "STORE",
    "VERIFIER",
    "batch_json",
    "block_json",
    "create_app",
    "open_signer",
]


_log = logging.getLogger("coldtrail.anchor")
_JSON = "application/json"
_MAX_PAGE = 1000
T = TypeVar("T")


def open_signer(config: AnchorConfig, store: LedgerStore | None = None) -> CheckpointSigner:
    """The node's log key and how its checkpoints become final. A consortium member's
    policies are the genesis file and, given its ``store``, the changes applied since."""
    node_key = load_signing_key(config.node_key_file)
    if config.consortium_policy:
        # The members cosign over the network; none is in this process.
        history = PolicyHistory(config.log_origin, load_consortium(config).genesis_text)
        if store is not None:
            with store.transaction() as tx:
                rows = tx.policy_changes()
            try:
                history.load(rows)
            except (ValueError, ProofsError) as e:
                raise ConfigError(f"the stored policy changes do not verify: {e}") from e
        return CheckpointSigner(config.log_origin, node_key, [], 0, consortium=history)
    member_key = load_signing_key(config.cosigner_key_file)
    member = InProcessMember(config.member_name, member_key)
    return CheckpointSigner(config.log_origin, node_key, [member], config.quorum)


# --- JSON views ---------------------------------------------------------------


def block_json(cp: Checkpoint, *, with_note: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "height": cp.height,
        "hash": cp.root.hex(),
        "root": base64.b64encode(cp.root).decode(),
        "size": cp.size,
        "time": cp.signed_at,
        "entries": cp.entries,
        "cosignatures": cp.cosignatures,
        "final": cp.final,
    }
    if with_note:
        out["note"] = cp.note
    return out


def batch_json(b: StoredBatch) -> dict[str, Any]:
    return {
        "leaf_index": b.leaf_index,
        "gw": b.gw,
        "batch_seq": b.batch_seq,
        "manifest_hash": b.manifest_hash,
        "manifest": json.loads(b.manifest_json),
        "records_evicted": b.records_evicted,
        "accepted_at": b.accepted_at,
    }


def _wants_json(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return request.query.get("format") == "json" or (_JSON in accept and "text/plain" not in accept)


async def _public(request: web.Request, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
    """Public reads run in the public pool (anchor.http.limits), never beside ingest and health."""
    return await request.app[PUBLIC_GATE].run(functools.partial(fn, *args, **kw))


# --- handlers -----------------------------------------------------------------


async def post_batch(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    ctype = request.headers.get("Content-Type", "")
    if ctype.split(";")[0].strip().lower() != _JSON:
        raise AnchorError("unsupported-media-type", "send the batch as application/json")
    length = request.content_length
    if length is not None and length > config.ingest_max_body_bytes:
        raise AnchorError(
            "too-large", f"the body is larger than {config.ingest_max_body_bytes} bytes"
        )
    store = request.app[STORE]
    principal = await asyncio.to_thread(
        authenticate, store, request.headers.get("Authorization"), int(time.time() * 1000)
    )
    body = await request.read()
    ingestor = request.app[INGESTOR]
    try:
        outcome = await ingestor.ingest(principal, body)
    except AnchorError as e:
        request.app[METRICS].batches_refused.labels(e.code).inc()
        raise
    return web.Response(
        status=201 if outcome.created else 200,
        body=outcome.receipt_json,
        content_type=_JSON,
        charset=None,
        headers={"Location": f"/v1/log/leaves/{outcome.leaf_index}"},
    )


async def get_log_info(request: web.Request) -> web.Response:
    signer = request.app[SIGNER]
    size = await _public(request, request.app[STORE].log_size)
    return json_response(
        {
            "origin": signer.origin,
            "log_vkey": signer.log_vkey,
            "cosigner_vkeys": signer.member_vkeys,
            "quorum": signer.bundle_quorum,
            "size": size,
        }
    )


async def get_consortium(request: web.Request) -> web.Response:
    """The consortium as this member sees it (anchor.consortium.status)."""
    member = request.app.get(MEMBER)
    if member is None:
        raise AnchorError("not-found", "this node is a consortium of one; it has no members")
    limit = min(query_int(request, "limit", 20), 100)
    body = await _public(
        request,
        consortium_status,
        request.app[STORE],
        request.app[SIGNER],
        member.health(),
        limit=limit,
    )
    return json_response(body)


async def get_latest_checkpoint(request: web.Request) -> web.Response:
    final_only = request.query.get("final") in ("1", "true")
    cp = await _public(request, request.app[STORE].latest_checkpoint, final_only=final_only)
    if cp is None:
        raise AnchorError("not-found", "no checkpoint has been signed yet")
    if _wants_json(request):
        return json_response(block_json(cp))
    return web.Response(text=cp.note, content_type="text/plain", charset="utf-8")


async def get_blocks(request: web.Request) -> web.Response:
    limit = min(query_int(request, "limit", 20), _MAX_PAGE)
    before = request.query.get("before")
    before_height = None if before is None else query_int(request, "before")
    blocks = await _public(
        request, request.app[STORE].checkpoints, limit=limit, before_height=before_height
    )
    return json_response({"blocks": [block_json(b, with_note=False) for b in blocks]})


async def get_block(request: web.Request) -> web.Response:
    height = path_int(request, "height")
    cp = await _public(request, request.app[STORE].checkpoint, height)
    if cp is None:
        raise AnchorError("not-found", f"no block at height {height}")
    return json_response(block_json(cp))


async def get_inclusion(request: web.Request) -> web.Response:
    store = request.app[STORE]
    leaf = query_int(request, "leaf")
    size_given = request.query.get("size")

    def work() -> dict[str, Any]:
        size = store.log_size() if size_given is None else query_int(request, "size")
        if size > store.log_size():
            raise AnchorError("bad-parameter", f"the log has fewer than {size} leaves")
        if leaf >= size:
            raise AnchorError("bad-parameter", f"leaf {leaf} is not in a tree of size {size}")
        proof = log.inclusion_proof(leaf, size, store.get_node)
        return {
            "leaf_index": leaf,
            "tree_size": size,
            "leaf_hash": base64.b64encode(store.get_node(0, leaf)).decode(),
            "root": base64.b64encode(log.root_at(size, store.get_node)).decode(),
            "proof": [base64.b64encode(p).decode() for p in proof],
        }

    return json_response(await _public(request, work))


async def get_consistency(request: web.Request) -> web.Response:
    store = request.app[STORE]
    old = query_int(request, "from")
    new = query_int(request, "to")

    def work() -> dict[str, Any]:
        if old > new:
            raise AnchorError("bad-parameter", "'from' must not be larger than 'to'")
        if new > store.log_size():
            raise AnchorError("bad-parameter", f"the log has fewer than {new} leaves")
        proof = log.consistency_proof(old, new, store.get_node)
        return {
            "from": old,
            "to": new,
            "from_root": base64.b64encode(log.root_at(old, store.get_node)).decode(),
            "to_root": base64.b64encode(log.root_at(new, store.get_node)).decode(),
            "proof": [base64.b64encode(p).decode() for p in proof],
        }

    return json_response(await _public(request, work))


# C2SP tlog-tiles (anchor.ledger.tiles): tiles never change once served; the checkpoint does.
_IMMUTABLE = "public, max-age=31536000, immutable"
_CHECKPOINT_MAX_AGE = "public, max-age=2"


async def get_tlog_checkpoint(request: web.Request) -> web.Response:
    cp = await _public(request, request.app[STORE].latest_checkpoint)
    if cp is None or cp.size == 0:
        raise AnchorError("not-found", "no checkpoint has been signed yet")
    return web.Response(
        text=cp.note,
        content_type="text/plain",
        charset="utf-8",
        headers={"Cache-Control": _CHECKPOINT_MAX_AGE},
    )


async def get_tlog_tile(request: web.Request) -> web.Response:
    """A hash tile or an entry bundle, within the latest checkpoint's tree."""
    store = request.app[STORE]
    try:
        tile = tiles.parse_tile_path(request.match_info["level"], request.match_info["rest"])
    except tiles.TileError as e:
        raise AnchorError("not-found", f"not a tile: {e}") from e

    def entries(start: int, stop: int) -> list[bytes]:
        return [b.manifest_json for b in store.batches(start, stop)]

    def work() -> bytes:
        cp = store.latest_checkpoint()
        size = 0 if cp is None else cp.size
        if tile.level is None:
            return tiles.entry_bundle(tile, size, entries)
        return tiles.hash_tile(tile, size, store.get_node)

    try:
        body = await _public(request, work)
    except tiles.TileError as e:
        raise AnchorError("not-found", str(e)) from e
    return web.Response(
        body=body,
        content_type="application/octet-stream",
        headers={"Cache-Control": _IMMUTABLE},
    )


async def post_add_checkpoint(request: web.Request) -> web.Response:
    """C2SP tlog-witness add-checkpoint (anchor.consortium.witness): plain-text answers,
    as the spec prescribes, not problem documents."""
    body = await request.content.read(witness_mod.MAX_BODY + 1)
    try:
        lines = await asyncio.to_thread(request.app[_WITNESS].add_checkpoint, body)
    except witness_mod.WitnessError as e:
        return web.Response(
            status=e.status, body=e.text.encode(), content_type=e.content_type, charset="utf-8"
        )
    return web.Response(text=lines, content_type="text/plain", charset="utf-8")


async def get_leaf(request: web.Request) -> web.Response:
    index = path_int(request, "index")
    batch = await _public(request, request.app[STORE].batch, index)
    if batch is None:
        raise AnchorError("not-found", f"no log leaf {index}")
    return json_response(batch_json(batch))


async def get_gateway_batches(request: web.Request) -> web.Response:
    store = request.app[STORE]
    gw = request.match_info["gw"]
    limit = min(query_int(request, "limit", 50), _MAX_PAGE)
    before = request.query.get("before")
    before_seq = None if before is None else query_int(request, "before")
    gateway = await _public(request, store.gateway, gw)
    if gateway is None:
        raise AnchorError("not-found", f"no gateway {gw}")
    batches = await _public(
        request, store.batches_by_gateway, gw, limit=limit, before_batch_seq=before_seq
    )
    return json_response(
        {
            "gateway": {
                "id": gateway.id,
                "org": gateway.org_id,
                "asset": gateway.asset,
                "places": sorted(gateway.places),
                "key_id": gateway.key_id,
                "public_key": gateway.public_key,
                "enrolled_at": gateway.enrolled_at,
                "revoked_at": gateway.revoked_at,
            },
            "batches": [batch_json(b) for b in batches],
        }
    )


async def get_places(request: web.Request) -> web.Response:
    """Assets and read points with their owning organisation and the gateways that may
    report for each (docs/adr/0311): who can speak for a place is public."""
    store = request.app[STORE]
    org = request.query.get("org")
    if org is not None and not is_identifier(org):
        raise AnchorError("bad-parameter", "'org' is an organisation id")
    after = request.query.get("after", "")
    limit = min(query_int(request, "limit", 100), _MAX_PAGE)
    places = await asyncio.to_thread(store.places, org)
    gateways = await asyncio.to_thread(store.gateways, org)
    page = [p for p in places if p.id > after][: limit + 1]
    items = [
        {
            "id": p.id,
            "org": p.org_id,
            "kind": p.kind,
            "name": p.name,
            "registered_at": p.registered_at,
            "gateways": [g.id for g in gateways if g.may_name(p.id)],
        }
        for p in page[:limit]
    ]
    return json_response(
        {"places": items, "next": page[limit - 1].id if len(page) > limit else None}
    )


async def get_health(request: web.Request) -> web.Response:
    """200 when the service can take batches; 503 with the ``cause`` (a problem code or
    ``writer-stopped`` / ``ledger-unreadable``) when it cannot (docs/anchor.md)."""
    store = request.app[STORE]
    ingestor = request.app[INGESTOR]
    writer_ok = ingestor.running
    try:
        size = await asyncio.to_thread(store.log_size)
        store_ok = True
    except Exception:  # a health check reports, it does not raise
        size, store_ok = -1, False
    fault = ingestor.storage.fault
    member = request.app.get(MEMBER)
    refusing = member is not None and member.refusing is not None
    causes = [
        cause
        for cause, failing in (
            ("writer-stopped", not writer_ok),
            ("ledger-unreadable", not store_ok),
            (fault.cause if fault is not None else "", fault is not None),
            # Its own store failed its review: it cosigns nothing and its answers
            # cannot be trusted until it is restored (docs/consortium.md).
            ("store-disagrees", refusing),
        )
        if failing
    ]
    body: dict[str, Any] = {
        "status": "failing" if causes else "ok",
        "ledger": store_ok,
        "writer": writer_ok,
        "storage": {"ok": True} if fault is None else fault.to_dict(),
        "log_size": size,
        "uptime_s": round(time.monotonic() - request.app[STARTED_AT], 3),
    }
    if member is not None:
        body["consortium"] = member.health()
    if causes:
        body["cause"] = causes[0]
    return json_response(body, status=503 if causes else 200)


async def get_metrics(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    body = generate_latest(metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def get_openapi(request: web.Request) -> web.Response:
    return json_response(request.app[OPENAPI])


ROUTES = [
    web.post("/v1/batches", post_batch),
    web.get("/v1/log", get_log_info),
    web.get("/v1/checkpoints/latest", get_latest_checkpoint),
    web.get("/v1/blocks", get_blocks),
    web.get("/v1/blocks/{height}", get_block),
    web.get("/v1/log/inclusion", get_inclusion),
    web.get("/v1/log/consistency", get_consistency),
    web.get("/v1/log/leaves/{index}", get_leaf),
    web.get("/tlog/checkpoint", get_tlog_checkpoint),
    web.get("/v1/consortium", get_consortium),
    web.post("/witness/add-checkpoint", post_add_checkpoint),
    web.get("/tlog/tile/{level}/{rest:.+}", get_tlog_tile),
    # Gateway ids may contain "/" (proofs.records allows it).
    web.get("/v1/gateways/{gw:.+}/batches", get_gateway_batches),
    web.get("/v1/places", get_places),
    web.get("/healthz", get_health),
    web.get("/metrics", get_metrics),
    web.get("/openapi.json", get_openapi),
]


# --- resources ------------------------------------------------------------------


async def _public_gate_ctx(app: web.Application) -> AsyncIterator[None]:
    yield
    # Closed before the store (contexts close in reverse): no public read outlives it.
    await asyncio.to_thread(app[PUBLIC_GATE].close)


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    store = await asyncio.to_thread(open_store, app[CONFIG])
    app[STORE] = store
    yield
    store.close()


_WITNESS = web.AppKey("witness", witness_mod.Witness)


async def _signer_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    app[SIGNER] = open_signer(config, app[STORE])
    # This node's cosigning key also witnesses the logs the config names (C2SP) and,
    # in a consortium, every member's log.
    member = NoteSigner(
        config.member_name, load_signing_key(config.cosigner_key_file), ALG_COSIGNATURE_V1
    )
    logs = config.witness_verifiers()
    policies = app[SIGNER].consortium
    if policies is not None:
        logs += list(policies.latest.policy.logs)
    app[_WITNESS] = witness_mod.Witness(logs, member, app[STORE], time.time)
    yield


async def _verifier_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    verifier = BatchVerifier(config.verify_workers, config.verify_parallel_min_records)
    app[VERIFIER] = verifier
    yield
    await asyncio.to_thread(verifier.close)


async def _ingestor_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    ingestor = Ingestor(
        app[STORE],
        app[SIGNER],
        app[VERIFIER],
        app[METRICS],
        max_records=config.ingest_max_records,
        group_max_batches=config.commit_group_max_batches,
        max_batch_lookahead=config.ingest_max_batch_lookahead,
    )
    if config.consortium_policy:
        # A consortium member orders on the shared stream (anchor.consortium.member).
        node = MemberNode(ingestor, app[_WITNESS], load_consortium(config), AiohttpPeers())
        await node.open()
        app[_WITNESS].review = node.review
        ingestor.sequencer = node
        ingestor.remember_verified = True
        app[MEMBER] = node
    ingestor.start()
    app[INGESTOR] = ingestor
    # The empty log gets its genesis checkpoint; a log that grew while no
    # checkpoint was signed (a crash between commits cannot cause it, an
    # import could) is checkpointed before the first request.
    if MEMBER in app:
        await app[MEMBER].request_cut()  # applied in turn, after any backlog
    else:
        await ingestor.checkpoint_now()
    app[METRICS].log_size.set(await asyncio.to_thread(app[STORE].log_size))
    yield
    await ingestor.stop()


async def _checkpoint_interval_ctx(app: web.Application) -> AsyncIterator[None]:
    interval = app[CONFIG].checkpoint_interval_s
    ingestor = app[INGESTOR]

    async def tick() -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                if MEMBER in app:
                    await app[MEMBER].request_cut()
                else:
                    await ingestor.checkpoint_now()
            except Exception:  # the next tick retries; receipts sign their own
                _log.exception("interval checkpoint failed")

    task = asyncio.get_running_loop().create_task(tick(), name="checkpoint-interval")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _documents_ctx(app: web.Application) -> AsyncIterator[None]:
    """Documents behind verdicts (anchor.http.documents): the ledger, the file store
    and, on a node of its own, the log key's attestation; a consortium member attaches
    documents through the ordering stream (``coldtrail-anchor document add``)."""
    config = app[CONFIG]
    app[DOCUMENT_STORE] = app[STORE]
    app[DOCUMENT_FILES] = DocumentFiles(config.documents_dir)
    if not config.consortium_policy:
        app[DOCUMENT_ATTEST] = attester(app[SIGNER].log_key)
    yield


async def _notify_ctx(app: web.Application) -> AsyncIterator[None]:
    """Deliver the notification outbox (anchor.notify): every process with the ledger
    runs a loop; leases make one of them send each row."""
    deliverer = Deliverer(app[STORE], app[NOTIFY_CONFIG])
    app[NOTIFIER] = deliverer
    task = asyncio.get_running_loop().create_task(deliverer.run(), name="notifications")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _claims_ctx(app: web.Application) -> AsyncIterator[None]:
    """Consumer claims (anchor.http.claims): the claims log is signed by the log key
    under ``<origin>/claims``; photos and bundle snapshots are kept beside the ledger."""
    config, signer = app[CONFIG], app[SIGNER]
    app[CLAIMS] = ClaimsContext(
        store=app[STORE],
        source=app[PROVENANCE_SOURCE],
        provenance=app[PROVENANCE_CONFIG],
        files=DocumentFiles(config.resolve(Path("claims"))),
        signer=NoteSigner(claims_origin(signer.origin), signer.log_key),
        log_vkey=signer.log_vkey,
        attest=attester(signer.log_key),
        config=ClaimsConfig(
            answer_days=config.claims_answer_days,
            resolve_days=config.claims_resolve_days,
            per_lot_per_day=config.claims_per_lot_per_day,
            per_client_per_hour=config.claims_per_client_per_hour,
        ),
        client_of=app[PUBLIC_GATE].client_of,
        announce=claim_announcer(app[NOTIFY_CONFIG]),
    )
    yield


async def _dispositions_ctx(app: web.Application) -> AsyncIterator[None]:
    """Lots' dispositions follow their verdicts as batches are anchored
    (anchor.provenance.dispositions), every ``dispositions_interval_s``."""
    interval = app[CONFIG].dispositions_interval_s
    if interval <= 0:
        app[DISPOSITION_STORE] = app[STORE]
        app[DISPOSITION_ATTEST] = attester(app[SIGNER].log_key)
        app[DISPOSITION_ANNOUNCE] = disposition_announcer(app[NOTIFY_CONFIG])
        yield
        return
    attest = attester(app[SIGNER].log_key)
    app[DISPOSITION_STORE] = app[STORE]
    app[DISPOSITION_ATTEST] = attest
    announce = disposition_announcer(app[NOTIFY_CONFIG])
    app[DISPOSITION_ANNOUNCE] = announce
    watcher = DispositionWatcher(
        app[STORE], app[PROVENANCE_SOURCE], app[PROVENANCE_CONFIG], attest=attest,
        announce=announce,
    )  # fmt: skip
    app[DISPOSITIONS] = watcher

    async def tick() -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(watcher.run_once, int(time.time() * 1000))
            except Exception:  # the next tick retries; deciding again is a no-op
                _log.exception("disposition pass failed")

    task = asyncio.get_running_loop().create_task(tick(), name="dispositions")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def public_limits(config: AnchorConfig) -> PublicLimits:
    return PublicLimits(
        rate_per_s=config.public_rate_per_s,
        burst=config.public_burst_requests,
        workers=config.public_workers,
        queue_max=config.public_queue_max,
        retry_after_s=config.public_retry_after_s,
        clients_max=config.public_clients_max,
        cache_max_entries=config.public_cache_max_entries,
        cache_max_bytes=config.public_cache_max_bytes,
        trusted_proxies=config.trusted_proxy_networks(),
    )


CHANGE_COUNTER_TTL_S = 0.25


def create_app(config: AnchorConfig) -> web.Application:
    metrics = AnchorMetrics()

    # The store's change counter, read at most every CHANGE_COUNTER_TTL_S: on
    # PostgreSQL it is a round trip, and this runs on the event loop for every public
    # request. A change made elsewhere reaches cached answers within that time.
    counter = {"value": -1, "at": float("-inf")}

    def ledger_version() -> tuple[int, int, int]:
        # The writer's figures from memory, and the store's change counter: a
        # revocation or enrolment made with the CLI (another process), or a batch
        # appended by another worker, moves only the latter (docs/adr/0311).
        store = app.get(STORE)
        now = time.monotonic()
        if store is not None and now - counter["at"] >= CHANGE_COUNTER_TTL_S:
            counter["value"], counter["at"] = store.change_counter(), now
        return (*metrics.ledger_version(), int(counter["value"]))

    gate = PublicGate(public_limits(config), metrics, ledger_version)
    # Public reads get their own pool, queue bound and per-client limits; the ledger
    # version their cache keys on is read from memory (metrics the writer keeps).
    app = web.Application(
        client_max_size=config.ingest_max_body_bytes,
        middlewares=[
            problem_middleware(lambda code: metrics.http_problems.labels(code).inc()),
            gate.middleware(),
        ],
    )
    app[PUBLIC_GATE] = gate
    # Read before the first request: a bad notify_file stops the start, with its reason.
    app[NOTIFY_CONFIG] = load_notify(config.notify_path, config.data_dir)
    app[CONFIG] = config
    app[METRICS] = metrics
    app[STARTED_AT] = time.monotonic()
    app[OPENAPI] = openapi_document()
    app.cleanup_ctx.extend(
        [
            _store_ctx,
            _public_gate_ctx,
            _signer_ctx,
            _verifier_ctx,
            _ingestor_ctx,
            _checkpoint_interval_ctx,
        ]
    )
    app.router.add_routes(ROUTES)
    default_profile, profile_by_gtin = config.profiles()
    # provenance pages, API, bundles, explorer (anchor/http/pages.py)
    setup_web(
        app,
        config=ProvenanceConfig(
            default_profile=default_profile,
            profile_by_gtin=profile_by_gtin,
            use_rollups=config.provenance_rollups,
            require_calibration=config.require_calibration,
        ),
    )
    setup_documents(app)
    setup_notifications(app)
    setup_exports(app)
    setup_report(app)
    document_limits(app[OPENAPI])  # every public GET may answer 429 (anchor.http.limits)
    app.cleanup_ctx.append(_dispositions_ctx)  # after setup_web: it reads the source
    app.cleanup_ctx.append(_documents_ctx)
    app.cleanup_ctx.append(_claims_ctx)  # after setup_web: it reads the source
    setup_claims(app)
    app.cleanup_ctx.append(_notify_ctx)
    return app

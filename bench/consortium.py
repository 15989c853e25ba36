"""The consortium: three member nodes (each ``coldtrail-anchor serve`` with its own SQLite
ledger, keys and ``nats-server``, ordering on one R3 JetStream stream with an fsync per
write, cosigning over tlog-witness, final at 2 of 3) against one node, side by side.

(a) **Ingest**: records/s with a receipt over a *final* checkpoint, four gateway chains
    of 1000-record batches posted at once (round-robin over the members), against one
    node taking the same load. Every member verifies every record itself, so on this
    2-core machine three members share the cores three ways: the physical limit for
    the consortium is the ``openssl speed -multi 2 ed25519`` verify rate / 3.
(b) **Batch -> final checkpoint**: p50/p99 of the time from posting a batch to holding
    its receipt over a checkpoint the quorum has cosigned, three gateways (one per
    member) each posting a 50-record batch every 0.5 s; the target is p99 < 5 s. (The
    gateway's own batching, up to ``batch.max_age_s``, comes before this:
    ``bench.e2e_latency`` measures it.)
(c) **Catch-up**: one member is killed while the other two take batches; when it
    returns it reads the stream, verifies every entry and applies it. Entries/s (and
    records/s) until its log matches, against the verify limit of one node (it is the
    only one working then).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import urllib.error
from pathlib import Path

from firmware_sim.processes import (
    AnchorNode,
    ProcessGroup,
    compose_consortium,
    free_port,
    get_json,
    nats_cluster,
)

from . import anchor_common as ac
from ._harness import Table

MEMBERS = ("plant", "carrier", "warehouse")
ASSET = "truck-07"


def _quick() -> bool:
    return ac.quick()


class Bench:
    """A running consortium of three and the bench's gateways enrolled at the first."""

    def __init__(self, root: Path, group: ProcessGroup, nats_urls: list[str]) -> None:
        self.members: dict[str, AnchorNode] = {}
        for i, name in enumerate(MEMBERS):
            urls = [nats_urls[i], *(u for j, u in enumerate(nats_urls) if j != i)]
            m = AnchorNode(root / name, free_port(), nats_urls=urls,
                           member=f"{name}.bench/witness")  # fmt: skip
            m.init()
            self.members[name] = m
        compose_consortium(self.members, quorum=2)
        for m in self.members.values():
            m.serve(group, timeout_s=60)
        self.home = self.members[MEMBERS[0]]
        self.home.add_org(ac.ORG, "Bench")
        self.token = self.home.token(ac.ORG)

    @property
    def urls(self) -> list[str]:
        return [m.url for m in self.members.values()]

    def chains(self, gws: list[str], batches: int, per_batch: int) -> list[list[bytes]]:
        built = ac.build_chains(gws, batches, per_batch, ASSET)
        for gw, pub, _ in built:
            self.home.enroll(ac.ORG, gw, pub, ASSET)
        return [bodies for _, _, bodies in built]

    def log_size(self, m: AnchorNode) -> int:
        """The member's log size; polled under its public limit (5/s per client)."""
        for _ in range(50):
            try:
                return int(get_json(f"{m.url}/v1/log")["size"])
            except urllib.error.HTTPError as e:
                if e.code != 429:
                    raise
                time.sleep(1.0)
        raise RuntimeError(f"{m.url} kept answering 429")


# --- (a) ingest --------------------------------------------------------------------------


def _single_node_rate(
    root: Path, chains: list[list[bytes]], keys: list[tuple[str, str, list[bytes]]]
) -> float:
    """The same bodies to one node of its own (a fresh ledger): records/s."""
    root.mkdir(parents=True)
    node = ac.make_node(root)
    ac.enroll_keys(node, keys, ASSET)
    with ac.serve(node):
        warm = ac.build_chains(["single-warm"], 2, 100, ASSET)
        ac.enroll_keys(node, warm, ASSET)
        ac.post_chains_sync(node.url, node.token, [warm[0][2]])
        elapsed, receipts = ac.post_chains_sync(node.url, node.token, chains)
    n = sum(len(c) for c in chains)
    if len(receipts) != n:
        raise RuntimeError("the single node left batches without a receipt")
    return _records(chains) / elapsed


def _records(chains: list[list[bytes]]) -> int:
    import json

    return sum(len(json.loads(b)["records"]) for c in chains for b in c)


def ingest(b: Bench, root: Path, repeats: int, batches: int) -> tuple[float, float]:
    per_batch = 1000
    ours, single = [], []
    for r in range(repeats):
        gws = [f"ingest-r{r}-g{g}" for g in range(4)]
        built = ac.build_chains(gws, batches, per_batch, ASSET)
        for gw, pub, _ in built:
            b.home.enroll(ac.ORG, gw, pub, ASSET)
        chains = [bodies for _, _, bodies in built]
        elapsed, receipts = ac.post_chains_sync(b.urls, b.token, chains)
        if len(receipts) != sum(len(c) for c in chains):
            raise RuntimeError("the consortium left batches without a receipt")
        ours.append(_records(chains) / elapsed)
        single.append(_single_node_rate(root / f"single-{r}", chains, built))
    return statistics.median(ours), statistics.median(single)


# --- (b) latency ---------------------------------------------------------------------------


async def _paced(url: str, token: str, bodies: list[bytes], every_s: float) -> list[float]:
    import aiohttp

    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    out: list[float] = []
    async with aiohttp.ClientSession(headers=headers) as session:
        next_at = time.monotonic()
        for body in bodies:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at += every_s
            start = time.monotonic()
            async with session.post(f"{url}/v1/batches", data=body) as resp:
                await resp.read()
                if resp.status not in (200, 201):
                    raise RuntimeError(f"HTTP {resp.status}")
            out.append(time.monotonic() - start)
    return out


def latency(b: Bench, seconds: float) -> list[float]:
    every = 0.5
    n = int(seconds / every)
    gws = [f"latency-{name}" for name in MEMBERS]
    chains = b.chains(gws, n, 50)

    async def run() -> list[list[float]]:
        return await asyncio.gather(
            *(_paced(url, b.token, c, every) for url, c in zip(b.urls, chains, strict=True))
        )

    return [x for xs in asyncio.run(run()) for x in xs]


# --- (c) catch-up ---------------------------------------------------------------------------


def catch_up(b: Bench, group: ProcessGroup, batches: int) -> tuple[float, float]:
    returning = b.members[MEMBERS[2]]
    chains = b.chains(["catchup-0", "catchup-1"], batches // 2, 500)
    assert returning.child is not None
    returning.child.stop()
    others = b.urls[:2]
    ac.post_chains_sync(others, b.token, chains)
    target = b.log_size(b.home)
    start = time.monotonic()
    returning.restart(group, timeout_s=120)
    while b.log_size(returning) < target:
        if time.monotonic() - start > 600:
            raise RuntimeError("the returning member did not catch up in 10 minutes")
        time.sleep(0.25)
    elapsed = time.monotonic() - start
    return sum(len(c) for c in chains) / elapsed, _records(chains) / elapsed


def run() -> None:
    quick = _quick()
    limit = ac.openssl_verify_limit()
    with tempfile.TemporaryDirectory(prefix="bench-consortium-") as tmp:
        root = Path(tmp)
        group = ProcessGroup()
        try:
            with nats_cluster(root / "nats", group, list(MEMBERS)) as nats_urls:
                b = Bench(root, group, nats_urls)
                ours, single = ingest(b, root, 1 if quick else 3, 3 if quick else 10)
                lat = latency(b, 6 if quick else 30)
                entries_s, records_s = catch_up(b, group, 20 if quick else 200)
        finally:
            group.stop_all()
    lat.sort()
    p50 = statistics.median(lat)
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    t = Table("consortium of three (2 of 3 final) vs one node, this 2-core machine")
    t.add("ingest, 3 members (records/s, final receipts)", ours, single, "/s", None)
    t.add("ingest, 3 members vs verify limit / 3", ours, limit / 3, "/s", None)
    t.add("ingest, one node vs verify limit", single, limit, "/s", None)
    t.print("one node / limit")
    lt = Table("batch posted -> receipt over a final checkpoint (3 gateways, 2 batches/s each)")
    lt.add("p50 (ms)", p50 * 1000, 5000, "ms", None)
    lt.add("p99 (ms), target < 5000 ms", p99 * 1000, 5000, "ms", None)
    lt.print("target p99")
    ct = Table("a returning member's catch-up (stream -> verified, applied), 500-record batches")
    ct.add("records/s vs one node's ingest (same run)", records_s, single, "/s", None)
    ct.add("records/s vs the verify limit", records_s, limit, "/s", None)
    ct.add("entries/s vs the consortium's live ingest", entries_s, ours / 1000, "/s", None)
    ct.print("peer")

"""Anchor: verified ingest vs `openssl speed -multi 2`, provenance latency, proofs vs pymerkle.

(a) Verified readings/s at ingest: real signed batches (built with ``proofs`` before any
    timing: one Ed25519 signature per record, Merkle root, signed chained manifest) are
    POSTed over HTTP to a real ``coldtrail-anchor serve`` subprocess, four gateway chains
    at once; the figure is records accepted with a receipt / wall time. The limit is
    ``openssl speed -multi 2 ed25519`` verify on both cores, measured in the same run.
    Two batch sizes: 1000 records (the gateway's default batch) and 5000 records (at or
    above ``verify_parallel_min_records``, verified in worker processes).
(b) Provenance query p50/p99: a lot with 10k readings over three holders (packhouse,
    truck, cold room; four probes each) ingested through the same API; 20 concurrent aiohttp clients
    ask ``GET /v1/provenance?gtin=&lot=`` (public caller, JSON). "cold": every request names
    another lot with the same 10k-reading custody (the answer cache cannot help); "warm":
    all requests name one lot (the anchor caches answers per ledger version).
(d) Isolation: ``/healthz`` p50/p99 and a gateway's ingest latency (10-record batches),
    alone and while 20 clients keep heavy cold provenance queries in flight, as ratios
    (loaded / idle, medians). Public reads run in their own pool (anchor.public); the
    ratio shows how much the public load still costs health and ingest (the GIL, 2 cores).
(c) Inclusion proofs from the store (``anchor.log`` over ``SqliteLedger.get_node``) vs
    pymerkle 7.0 InmemoryTree over the same leaves; roots and paths compared first.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from . import anchor_common as ac
from ._harness import Table


def _med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else 0.0


# --------------------------------------------------------------------------------------
# (a) ingest
# --------------------------------------------------------------------------------------


def ingest_rates(
    records_per_run: int, per_batch: int, repeats: int, chains: int = 4
) -> tuple[list[float], int]:
    """Verified records/s over ``repeats`` runs against one running anchor."""
    batches = max(1, records_per_run // (per_batch * chains))
    rates = []
    with tempfile.TemporaryDirectory(prefix="anchor-ingest-") as tmp:
        node = ac.make_node(Path(tmp))
        warm = ac.build_chains([f"ingest-{per_batch}-warm"], 2, per_batch)
        ac.enroll_keys(node, warm, "truck-07")
        runs = []
        for r in range(repeats):
            gws = [f"ingest-{per_batch}-r{r}-g{g}" for g in range(chains)]
            built = ac.build_chains(gws, batches, per_batch)
            ac.enroll_keys(node, built, "truck-07")
            runs.append([bodies for _, _, bodies in built])
        with ac.serve(node):
            # Untimed warm-up: first connections, the verifier's worker processes.
            ac.post_chains_sync(node.url, node.token, [warm[0][2]])
            for bodies in runs:
                elapsed, receipts = ac.post_chains_sync(node.url, node.token, bodies)
                n = sum(len(b) for b in bodies) * per_batch
                if len(receipts) != sum(len(b) for b in bodies):
                    raise RuntimeError("some batches got no receipt")
                rates.append(n / elapsed)
    return rates, batches * chains * per_batch


# --------------------------------------------------------------------------------------
# (b) provenance queries
# --------------------------------------------------------------------------------------


# The three holders of a bench lot: its gateway, asset, and the scan that opens custody.
HOLDERS = (
    ("packhouse-gw", "packhouse-1", "packing"),
    ("truck-07-gw", "truck-07", "loading"),
    ("coldroom-gw", "coldroom-3", "receiving"),
)


def _lot_journey(readings: int, lots: int) -> list[tuple[str, str, str, list[bytes]]]:
    """Every lot packed at a packhouse, loaded on a truck, received in a cold room, with
    ``readings`` readings over the three stays (four probes each: two temperature, two
    humidity, every 30 s; 3.5-6.5 °C but for one ten-minute door opening on the truck);
    ``(gw, asset, public key, bodies)`` per holder."""
    chains = []
    t = 0
    for gw, asset, step in HOLDERS:
        sim = ac.GatewaySim(gw, asset, step_ms=30_000, t=t, probes=4)
        recs: list[Any] = [sim.scan(f"LOT-{i:04d}", step) for i in range(lots)]
        n = readings // len(HOLDERS)
        # The truck's door stays open for ten minutes once: one excursion, as on real trips.
        door = range(n // 2, n // 2 + 40) if step == "loading" else range(0)
        recs += [sim.reading(i, 10.5 if i in door and i % 2 == 0 else None) for i in range(n)]
        t = sim.t
        bodies = [sim.body(recs[i : i + 1000]) for i in range(0, len(recs), 1000)]
        chains.append((gw, asset, sim.public_key_b64, bodies))
    return chains


def _enroll_journey(node: ac.Node, chains: list[tuple[str, str, str, list[bytes]]]) -> None:
    for gw, asset, pub, bodies in chains:
        ac.enroll_keys(node, [(gw, pub, bodies)], asset)


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _query_load(
    url: str, paths: list[str], clients: int
) -> tuple[list[float], float, list[dict[str, Any]]]:
    import aiohttp

    latencies: list[float] = []
    samples: list[dict[str, Any]] = []
    queue: asyncio.Queue[str] = asyncio.Queue()
    for p in paths:
        queue.put_nowait(p)
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(
        headers={"Accept": "application/json"}, timeout=timeout
    ) as session:

        async def client() -> None:
            while not queue.empty():
                path = queue.get_nowait()
                t = time.perf_counter()
                async with session.get(url + path) as resp:
                    body = await resp.json()
                    if resp.status != 200:
                        raise RuntimeError(f"GET {path}: HTTP {resp.status}: {body}")
                latencies.append(time.perf_counter() - t)
                if len(samples) < 1:
                    samples.append(body)

        start = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        wall = time.perf_counter() - start
    return latencies, wall, samples


def _readings_in_answer(doc: dict[str, Any]) -> int:
    """Readings the answer aggregates over the whole custody (its overall stats)."""
    return sum(int(s.get("count", 0)) for s in doc.get("stats", []))


def provenance_latency(
    readings: int, cold_requests: int, warm_requests: int, store: str = "", rollups: bool = True
) -> dict[str, Any]:
    """``store``: a PostgreSQL URL, or empty for the embedded SQLite ledger; ``rollups``
    False: the anchor reads every reading for each answer (the reference path)."""
    clients = 20
    lots = cold_requests
    with tempfile.TemporaryDirectory(prefix="anchor-prov-") as tmp:
        # One address asks everything here: the per-client limit would measure itself.
        settings: dict[str, Any] = {"store": store} if store else {}
        node = ac.make_node(
            Path(tmp),
            public_rate_per_s=1e6,
            public_burst_requests=10**6,
            provenance_rollups=rollups,
            **settings,
        )
        chains = _lot_journey(readings, lots)
        _enroll_journey(node, chains)
        with ac.serve(node) as proc:
            ac.post_chains_sync(node.url, node.token, [bodies for *_, bodies in chains])
            q = f"/v1/provenance?gtin={ac.GTIN}&lot="
            cold_paths = [q + f"LOT-{i:04d}" for i in range(lots)]
            cpu0 = _cpu_s(proc.pid)
            cold, cold_wall, sample = asyncio.run(_query_load(node.url, cold_paths, clients))
            cpu1 = _cpu_s(proc.pid)
            warm_paths = [q + "LOT-0000"] * warm_requests
            warm, warm_wall, _ = asyncio.run(_query_load(node.url, warm_paths, clients))
    return {
        "clients": clients,
        "cold": cold,
        "cold_rps": len(cold) / cold_wall,
        "cold_cpu_ms": (cpu1 - cpu0) * 1000 / max(1, len(cold)),
        "warm": warm,
        "warm_rps": len(warm) / warm_wall,
        "answer_readings": _readings_in_answer(sample[0]) if sample else 0,
        "verdict": sample[0]["verdict"]["status"] if sample else "",
        "sample_keys": sorted(sample[0]) if sample else [],
    }


# --------------------------------------------------------------------------------------
# (d) health and ingest beside public load
# --------------------------------------------------------------------------------------


async def _probe_latencies(
    url: str, token: str, ingest_bodies: list[bytes], probes: int, load_paths: list[str] | None
) -> tuple[list[float], list[float], int]:
    """(healthz latencies, ingest latencies, public answers seen) with optional load."""
    import aiohttp

    health: list[float] = []
    ingest: list[float] = []
    answered = 0
    stop = asyncio.Event()
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def loader(k: int) -> None:
            nonlocal answered
            i = k
            while not stop.is_set() and load_paths:
                async with session.get(url + load_paths[i % len(load_paths)]) as resp:
                    await resp.read()
                    answered += resp.status == 200
                    if resp.status == 429:
                        await asyncio.sleep(0.05)
                i += 20

        loaders = [asyncio.create_task(loader(k)) for k in range(20 if load_paths else 0)]
        await asyncio.sleep(1.0 if load_paths else 0)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        for i in range(probes):
            t = time.perf_counter()
            async with session.get(url + "/healthz") as resp:
                await resp.read()
            health.append(time.perf_counter() - t)
            if i < len(ingest_bodies):
                t = time.perf_counter()
                async with session.post(
                    url + "/v1/batches", data=ingest_bodies[i], headers=headers
                ) as resp:
                    body = await resp.read()
                    if resp.status not in (200, 201):
                        raise RuntimeError(f"ingest refused: HTTP {resp.status}: {body[:300]!r}")
                ingest.append(time.perf_counter() - t)
            await asyncio.sleep(0.02)
        stop.set()
        await asyncio.gather(*loaders)
    return health, ingest, answered


def isolation(readings: int, probes: int) -> dict[str, Any]:
    lots = 200
    with tempfile.TemporaryDirectory(prefix="anchor-iso-") as tmp:
        node = ac.make_node(Path(tmp), public_rate_per_s=1e6, public_burst_requests=10**6)
        chains = _lot_journey(readings, lots)
        _enroll_journey(node, chains)
        probe_chains = ac.build_chains(["iso-idle", "iso-load"], probes, 10, asset="dock-1")
        ac.enroll_keys(node, probe_chains, "dock-1")
        with ac.serve(node):
            ac.post_chains_sync(node.url, node.token, [bodies for *_, bodies in chains])
            q = f"/v1/provenance?gtin={ac.GTIN}&lot="
            paths = [q + f"LOT-{i:04d}" for i in range(lots)]
            idle = asyncio.run(
                _probe_latencies(node.url, node.token, probe_chains[0][2], probes, None)
            )
            loaded = asyncio.run(
                _probe_latencies(node.url, node.token, probe_chains[1][2], probes, paths)
            )
    return {"idle": idle, "loaded": loaded}


# --------------------------------------------------------------------------------------
# (c) inclusion proofs from the store vs pymerkle
# --------------------------------------------------------------------------------------


def _entry(i: int) -> bytes:
    return b'{"bench-manifest":' + str(i).encode() + b"}"


def fill_log(db: Path, leaves: int, chunk: int = 5000) -> None:
    """``leaves`` manifests appended through the store's own API (evicted: no records)."""
    from anchor.ledger.model import NewBatch
    from anchor.storage.sqlite.store import SqliteLedger
    from proofs.merkle import leaf_hash

    store = SqliteLedger(db)
    try:
        for lo in range(0, leaves, chunk):
            with store.transaction() as tx:
                for i in range(lo, min(leaves, lo + chunk)):
                    entry = _entry(i)
                    tx.append_batch(
                        NewBatch(
                            gw="bench-log",
                            batch_seq=i + 1,
                            manifest_hash=hashlib.sha256(entry).hexdigest(),
                            manifest_json=entry,
                            leaf_hash=leaf_hash(entry),
                            first_seq=i + 1,
                            last_seq=i + 1,
                            count=1,
                            root="00" * 32,
                            opened=i,
                            closed=i,
                            records_evicted=True,
                            accepted_at=i,
                        )
                    )
    finally:
        store.close()


def proofs_vs_pymerkle(leaves: int, proofs: int, repeats: int) -> dict[str, float]:
    from pymerkle import InmemoryTree

    from anchor.ledger import tree as log
    from anchor.storage.sqlite.store import SqliteLedger
    from proofs.merkle import leaf_hash, verify_inclusion

    sample = random.Random(leaves).sample(range(leaves), proofs)
    with tempfile.TemporaryDirectory(prefix="anchor-log-") as tmp:
        db = Path(tmp) / "ledger.sqlite3"
        t = time.perf_counter()
        fill_log(db, leaves)
        fill_s = time.perf_counter() - t
        store = SqliteLedger(db)
        tree = InmemoryTree(algorithm="sha256")
        for i in range(leaves):
            tree.append_entry(_entry(i))
        try:
            if log.root_at(leaves, store.get_node) != tree.get_root():
                raise SystemExit("log root differs from pymerkle's: not comparable")
            root = tree.get_root()
            for i in sample[:50]:
                ours_path = log.inclusion_proof(i, leaves, store.get_node)
                verify_inclusion(leaf_hash(_entry(i)), i, leaves, ours_path, root)
                if len(tree.prove_inclusion(i + 1, leaves).path) - 1 != len(ours_path):
                    raise SystemExit("proof lengths differ from pymerkle's: not comparable")

            def ours() -> float:
                t = time.perf_counter()
                for i in sample:
                    log.inclusion_proof(i, leaves, store.get_node)
                return proofs / (time.perf_counter() - t)

            def peer() -> float:
                t = time.perf_counter()
                for i in sample:
                    tree.prove_inclusion(i + 1, leaves)
                return proofs / (time.perf_counter() - t)

            o = _med([ours() for _ in range(repeats)])
            p = _med([peer() for _ in range(repeats)])
            hashes = len(log.inclusion_proof(sample[0], leaves, store.get_node))
        finally:
            store.close()
    return {"ours": o, "peer": p, "fill_s": fill_s, "hashes": hashes}


# --------------------------------------------------------------------------------------


def run() -> list[Table]:
    q = ac.quick()
    repeats = 3
    print("  [anchor] openssl speed -multi 2 ed25519 (the limit) ...", flush=True)
    limit = _med([ac.openssl_verify_limit() for _ in range(1 if q else repeats)])
    tables = []

    per_run = 8_000 if q else 40_000
    print(f"  [anchor] (a) ingest: building + posting {repeats} x {per_run:,} records ...")
    r1000, n1000 = ingest_rates(per_run, 1000, repeats)
    r5000, n5000 = ingest_rates(per_run * 2 if not q else 20_000, 5000, repeats)
    t = Table(
        f"Anchor ingest: verified readings/s over HTTP (4 gateway chains at once, median of "
        f"{repeats}) vs openssl speed -multi 2 ed25519 verify"
    )
    t.add(f"batches of 1000 records ({n1000:,}/run)", _med(r1000), limit, "/s", 0.5)
    t.add(f"batches of 5000 records ({n5000:,}/run)", _med(r5000), limit, "/s", 0.5)
    t.print("openssl, 2 cores")
    tables.append(t)

    readings = 2_000 if q else 10_000
    cold_n, warm_n = (40, 200) if q else (200, 1000)
    print(f"  [anchor] (b) provenance: lot with {readings:,} readings, 20 clients ...")
    pv = provenance_latency(readings, cold_n, warm_n)
    t = Table(
        f"Anchor provenance: GET /v1/provenance?gtin=&lot= for a lot with {readings:,} "
        f"readings, {pv['clients']} concurrent clients (public JSON)"
    )

    def ms(xs: list[float], p: float) -> str:
        return f"{sorted(xs)[min(len(xs) - 1, round(p * (len(xs) - 1)))] * 1000:,.0f} ms"

    for name, lat, rps in (
        ("cold", pv["cold"], pv["cold_rps"]),
        ("warm", pv["warm"], pv["warm_rps"]),
    ):
        t.rows.append((f"{name}: {len(lat)} requests, p50", ms(lat, 0.5), "", ""))
        t.rows.append((f"{name}: p99", ms(lat, 0.99), "", ""))
        t.rows.append((f"{name}: throughput", f"{rps:,.1f} answers/s", "", ""))
    t.print("")
    print(
        f"   notes: cold = {cold_n} different lots sharing the same {readings:,}-reading custody"
        f" (no answer cache hit); warm = one lot {warm_n} times (answers are cached per"
        f" ledger version). readings the answer aggregates: {pv['answer_readings']:,}"
        " (temperature + humidity)."
    )
    tables.append(t)

    probes = 30 if q else 100
    print("  [anchor] (d) isolation: /healthz and ingest, idle and under public load ...")
    iso = isolation(readings, probes)
    (h0, i0, _), (h1, i1, answered) = iso["idle"], iso["loaded"]

    def pct(xs: list[float], p: float) -> float:
        return sorted(xs)[min(len(xs) - 1, round(p * (len(xs) - 1)))] * 1000

    t = Table(
        f"Anchor isolation: /healthz and 10-record ingest, idle vs 20 clients of cold lot"
        f" queries ({readings:,} readings each), {probes} probes, loaded / idle"
    )
    for name, a, b in (
        ("/healthz p50", pct(h1, 0.5), pct(h0, 0.5)),
        ("/healthz p99", pct(h1, 0.99), pct(h0, 0.99)),
        ("ingest p50", pct(i1, 0.5), pct(i0, 0.5)),
        ("ingest p99", pct(i1, 0.99), pct(i0, 0.99)),
    ):
        t.rows.append((name, f"{a:,.1f} ms", f"{b:,.1f} ms", f"x{a / b:,.2f}" if b else "-"))
    t.print("idle")
    print(
        f"   notes: {answered} public answers were served during the loaded probes; public"
        " reads run in their own pool (public_workers) with a bounded queue, health and"
        " ingest never wait in it."
    )
    tables.append(t)

    leaves, proofs = (10_000, 1_000) if q else (100_000, 5_000)
    print(f"  [anchor] (c) inclusion proofs: {leaves:,} log leaves ...")
    pr = proofs_vs_pymerkle(leaves, proofs, repeats)
    t = Table(
        f"Anchor log: inclusion proofs over {leaves:,} leaves from the SQLite store "
        f"(anchor.log + get_node) vs pymerkle 7.0 InmemoryTree (median of {repeats})"
    )
    t.add(f"{proofs:,} inclusion proofs", pr["ours"], pr["peer"], "proofs/s", None)
    t.print("pymerkle 7.0 (in memory)")
    print(
        f"   notes: the store was filled through SqliteLedger.append_batch ({leaves:,} evicted"
        f" manifests, {pr['fill_s']:.0f} s); roots equal; a proof is {pr['hashes']} hashes;"
        " pymerkle holds every leaf in RAM, the store reads O(log n) stored subtree nodes."
    )
    tables.append(t)
    return tables


if __name__ == "__main__":
    import sys

    if "--quick" in sys.argv:
        import os

        os.environ["COLDTRAIL_BENCH_QUICK"] = "1"
    run()

"""Anchor on PostgreSQL: verified ingest with 1 and 3 workers beside SQLite, against the
machine's two-core Ed25519 verify limits (issue 10).

The same signed batches (1000 records each, the gateway's default) are posted over HTTP
to real ``coldtrail-anchor serve`` processes: one on SQLite, one on PostgreSQL, three on
one PostgreSQL database (chains spread over the workers). The PostgreSQL server is the
tests' own throw-away cluster (``tests/support/postgres.py``: initdb + pg_ctl on a free
loopback port, ``fsync=on``, ``synchronous_commit=on``), stopped by PID. Two limits are
measured in the same run: ``openssl speed -multi 2 ed25519`` verify, and libsodium's own
verify (PyNaCl, what the anchor uses) on two processes, the faster of the two.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import anchor_common as ac
from ._harness import Table
from .anchor_ingest_query import provenance_latency

_TESTS = Path(__file__).resolve().parents[1] / "tests"


def _libsodium_verifies(seconds: float) -> int:
    from nacl.signing import SigningKey

    key = SigningKey.generate()
    signed = key.sign(b"x" * 300)
    vk = key.verify_key
    n, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(200):
            vk.verify(signed)
        n += 200
    return n


def libsodium_verify_limit(cores: int = 2, seconds: float = 3.0) -> float:
    """Ed25519 verifies/s of libsodium on ``cores`` processes at once."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(cores) as pool:
        counts = pool.map(_libsodium_verifies, [seconds] * cores)
    return sum(counts) / seconds


@contextlib.contextmanager
def workers(node: ac.Node, n: int, store: str) -> Iterator[list[str]]:
    """``n`` serve processes of one node on ``store``; yields their base URLs."""
    procs, urls = [], []
    try:
        for i in range(n):
            port = node.port if i == 0 else ac.free_port()
            log = open(node.root / f"anchor-{i}.log", "wb")  # noqa: SIM115 - the child owns it
            env = {**os.environ, "COLDTRAIL_ANCHOR_LISTEN_PORT": str(port)}
            if store:
                env["COLDTRAIL_ANCHOR_STORE"] = store
            argv = [str(ac.VENV_BIN / "coldtrail-anchor"), "--config", str(node.config_path)]
            procs.append(
                subprocess.Popen(
                    [*argv, "serve"], stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env
                )
            )
            log.close()
            deadline = time.monotonic() + 60
            while True:
                if procs[-1].poll() is not None:
                    raise RuntimeError(f"worker {i} exited; see {node.root}/anchor-{i}.log")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"worker {i} did not listen within 60 s")
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                    break
                time.sleep(0.05)
            urls.append(f"http://127.0.0.1:{port}")
        yield urls
    finally:
        for p in procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    os.kill(p.pid, signal.SIGKILL)
                    p.wait(5)


def ingest_rates(
    store: str, n_workers: int, records: int, repeats: int, chains: int
) -> list[float]:
    per_batch = 1000
    batches = max(1, records // (per_batch * chains))
    rates = []
    with tempfile.TemporaryDirectory(prefix="anchor-pg-") as tmp:
        settings = {"store": store} if store else {}
        node = ac.make_node(Path(tmp), **settings)
        # One warm chain per worker: each starts its own verifier processes.
        warm = ac.build_chains([f"pg-warm-{n_workers}-{w}" for w in range(n_workers)], 2, per_batch)
        ac.enroll_keys(node, warm, "truck-07")
        runs = []
        for r in range(repeats):
            gws = [f"pg-{n_workers}-r{r}-g{g}" for g in range(chains)]
            built = ac.build_chains(gws, batches, per_batch)
            ac.enroll_keys(node, built, "truck-07")
            runs.append([bodies for _, _, bodies in built])
        with workers(node, n_workers, store) as urls:
            ac.post_chains_sync(urls, node.token, [bodies for _, _, bodies in warm])
            for bodies in runs:
                elapsed, receipts = ac.post_chains_sync(urls, node.token, bodies)
                if len(receipts) != sum(len(b) for b in bodies):
                    raise RuntimeError("some batches got no receipt")
                rates.append(sum(len(b) for b in bodies) * per_batch / elapsed)
    return rates


def run() -> list[Table]:
    sys.path.insert(0, str(_TESTS))
    from support.postgres import PostgresCluster

    q = ac.quick()
    repeats = 1 if q else 3
    records = 8_000 if q else 24_000
    print("  [anchor-pg] limits: openssl speed -multi 2, libsodium on 2 processes ...")
    openssl = statistics.median([ac.openssl_verify_limit() for _ in range(repeats)])
    sodium = statistics.median([libsodium_verify_limit() for _ in range(repeats)])
    limit = max(openssl, sodium)
    rows = []
    readings, cold_n, warm_n = (2_000, 40, 200) if q else (10_000, 200, 1000)
    latency: dict[tuple[str, bool], dict[str, Any]] = {}
    with PostgresCluster() as cluster:
        for name in ("SQLite", "PostgreSQL"):
            for rollups in (True, False):
                store = cluster.create_database(f"prov{int(rollups)}") if name != "SQLite" else ""
                how = "rollups" if rollups else "every reading (reference)"
                print(f"  [anchor-pg] provenance on {name}, {how}: {readings:,} readings ...")
                latency[(name, rollups)] = provenance_latency(
                    readings, cold_n, warm_n, store, rollups
                )
        for name, store, n, chains in (
            ("SQLite, 1 worker", "", 1, 4),
            ("PostgreSQL, 1 worker", cluster.create_database("bench1"), 1, 4),
            ("PostgreSQL, 3 workers", cluster.create_database("bench3"), 3, 6),
        ):
            print(f"  [anchor-pg] ingest: {name}, {repeats} x {records:,} records ...", flush=True)
            rows.append((name, statistics.median(ingest_rates(store, n, records, repeats, chains))))
    t = Table(
        f"Anchor ingest on SQLite and PostgreSQL: verified records/s over HTTP, batches of"
        f" 1000, median of {repeats}, vs the faster 2-core verify limit"
        f" (openssl {openssl:,.0f}/s, libsodium {sodium:,.0f}/s)"
    )
    for name, rate in rows:
        t.add(name, rate, limit, "/s", None)
    t.print("limit")

    def pct(xs: list[float], p: float) -> float:
        return sorted(xs)[min(len(xs) - 1, round(p * (len(xs) - 1)))] * 1000

    lt = Table(
        f"Anchor provenance: a lot with {readings:,} readings over three holders, 20 clients;"
        " answers from rollups vs reading every reading (the reference, same run), ms"
    )
    for name in ("SQLite", "PostgreSQL"):
        fast, slow = latency[(name, True)], latency[(name, False)]
        if (fast["verdict"], fast["answer_readings"]) != (slow["verdict"], slow["answer_readings"]):
            raise RuntimeError(f"{name}: the two paths answered differently")
        for kind in ("cold", "warm"):
            for label, frac in (("p50", 0.5), ("p99", 0.99)):
                a, b = pct(fast[kind], frac), pct(slow[kind], frac)
                lt.rows.append(
                    (f"{name} {kind} {label}", f"{a:,.1f} ms", f"{b:,.1f} ms", f"x{b / a:,.1f}")
                )
            lt.rows.append(
                (
                    f"{name} {kind} answers/s",
                    f"{fast[kind + '_rps']:,.1f}",
                    f"{slow[kind + '_rps']:,.1f}",
                    "",
                )
            )
        lt.rows.append(
            (
                f"{name} cold CPU per answer",
                f"{fast['cold_cpu_ms']:,.1f} ms",
                f"{slow['cold_cpu_ms']:,.1f} ms",
                f"x{slow['cold_cpu_ms'] / max(fast['cold_cpu_ms'], 1e-9):,.1f}",
            )
        )
    lt.print("every reading (speed-up)")
    for name in ("SQLite", "PostgreSQL"):
        fast = latency[(name, True)]
        c99, w99 = pct(fast["cold"], 0.99), pct(fast["warm"], 0.99)
        print(
            f"   target on {name}: cold p99 {c99:,.1f} ms / 100 ms = {c99 / 100:.2f},"
            f" warm p99 {w99:,.1f} ms / 20 ms = {w99 / 20:.2f}"
            f" ({fast['answer_readings']:,} readings per answer, verdict {fast['verdict']})"
        )
    sqlite_rate = rows[0][1]
    print(
        "   notes: PostgreSQL / SQLite: "
        + ", ".join(f"{name} {rate / sqlite_rate:.2f}x" for name, rate in rows[1:])
        + "; vs openssl alone: "
        + ", ".join(f"{name} {rate / openssl:.2f}x" for name, rate in rows)
        + ". Two cores: three workers share them with PostgreSQL and the posting client."
    )
    return [t, lt]

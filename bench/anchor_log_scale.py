"""Anchor: ingest rate and proof size as the log grows from 10k to 1M (to 10M) readings,
on SQLite and on PostgreSQL.

For each size N the ledger is first pre-filled to N readings *through the store's own
API* (``transaction()`` + ``append_batch`` + the apply step's rollups: 1000-record
batches of another gateway, real-sized record JSON and every index the service keeps,
but not signed: the pre-fill is never verified again, and the service does not re-read
it at ingest). Then a
real ``coldtrail-anchor serve`` ingests fresh signed 1000-record batches over HTTP (four
gateway chains at once, median of 3 runs), and the receipts' log inclusion proofs are
measured. A reading's full proof = its path in its batch (ceil(log2 1000) = 10 hashes)
+ the batch's path in the log (ceil(log2 leaves)).

10M readings need ~6 GB of disk in $TMPDIR and about 2 minutes here (pre-fill ~90k
readings/s); they run by default and are skipped (with the estimate printed) under
``--quick``/``COLDTRAIL_BENCH_QUICK=1``, ``COLDTRAIL_BENCH_NO_10M=1`` or when less than
12 GB are free; ``python -m bench.anchor_log_scale --quick --ten-million`` forces them.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from . import anchor_common as ac
from ._harness import Table

PER_BATCH = 1000


def _open(address: str) -> Any:
    """The ledger store at ``address``: a SQLite file, or a ``postgresql://`` URL."""
    if address.startswith("postgresql://"):
        from anchor.storage.postgres.store import PostgresLedger

        return PostgresLedger(address)
    from anchor.storage.sqlite.store import SqliteLedger

    return SqliteLedger(address)


def prefill(address: str | Path, start: int, readings: int, chunk_batches: int = 50) -> float:
    """Add ``readings`` pre-fill readings after the first ``start`` through the store API,
    with their hourly rollups, as the apply step writes them. Returns readings/s.
    ``address``: a SQLite file or a ``postgresql://`` URL.
    """
    address = str(address)
    from anchor.ledger.derived import update_rollups
    from anchor.ledger.model import NewBatch, NewRecord
    from proofs.merkle import leaf_hash

    sim = ac.GatewaySim("prefill-gw", "truck-07")
    template = sim.reading(0).to_json()  # a real signed record: real size
    t0 = sim.t - 400 * ac.DAY_MS  # older than anything the bench ingests afterwards
    store = _open(address)
    began = time.perf_counter()
    try:
        b0, batches = start // PER_BATCH, (start + readings) // PER_BATCH
        for lo in range(b0, batches, chunk_batches):
            with store.transaction() as tx:
                for b in range(lo, min(batches, lo + chunk_batches)):
                    first = b * PER_BATCH + 1
                    recs = [
                        NewRecord(
                            gw="prefill-gw",
                            seq=s,
                            type="reading",
                            src=f"probe-{s % 20}",
                            asset="truck-07",
                            t=t0 + s * 1000,
                            json=template,
                            q="temperature" if s % 2 else "humidity",
                            val=4.0,
                            unit="CEL" if s % 2 else "P1",
                            clk=(True, "prefill", s * 1_000_000),
                        )
                        for s in range(first, first + PER_BATCH)
                    ]
                    entry = b"prefill-manifest-" + str(b).encode()
                    tx.append_batch(
                        NewBatch(
                            gw="prefill-gw",
                            batch_seq=b + 1,
                            manifest_hash=f"{b:064x}",
                            manifest_json=entry,
                            leaf_hash=leaf_hash(entry),
                            first_seq=first,
                            last_seq=first + PER_BATCH - 1,
                            count=PER_BATCH,
                            root="00" * 32,
                            opened=t0,
                            closed=t0,
                            records_evicted=False,
                            accepted_at=t0,
                            records=recs,
                        )
                    )
                    update_rollups(tx, "truck-07", recs)
    finally:
        store.close()
    rate = readings / (time.perf_counter() - began) if readings else 0.0
    _settle(address)
    return rate


def _settle(address: str) -> None:
    """Untimed housekeeping after a bulk pre-fill, so the timed ingest measures ingest.

    SQLite: fold the pre-fill's WAL into the database (otherwise a checkpoint of hundreds
    of MB lands inside the timed run). PostgreSQL: ANALYZE, what autovacuum would do
    soon after a bulk load, so the planner sees the tables as they are.
    """
    if address.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(address, autocommit=True) as conn:
            conn.execute(b"VACUUM ANALYZE")
        return
    with contextlib.closing(sqlite3.connect(address)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _size_mb(address: str) -> float:
    if address.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(address) as conn:
            row = conn.execute(b"SELECT pg_database_size(current_database())").fetchone()
            return int(row[0]) / 1e6 if row else 0.0
    db = Path(address)
    return sum(f.stat().st_size for f in db.parent.glob(db.name + "*")) / 1e6


def measure(
    sizes: list[int], per_run: int, repeats: int, store: str = ""
) -> dict[int, dict[str, float]]:
    """One ledger grown through ``sizes``: at each, ingest ``repeats`` x ``per_run`` readings.

    The service is stopped while the store API pre-fills (it checkpoints the imported
    leaves when it starts again, the path an import takes).
    """
    chains = 4
    batches = max(1, per_run // (PER_BATCH * chains))
    out: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="anchor-scale-") as tmp:
        # One address asks every proof here: the public per-client limit would refuse it.
        settings: dict[str, Any] = {"public_rate_per_s": 1e6, "public_burst_requests": 10**6}
        node = ac.make_node(Path(tmp), **settings, **({"store": store} if store else {}))
        address = store or str(node.config.db_file)
        prefilled = ingested = 0
        for size in sizes:
            fill = max(0, size - prefilled - ingested)
            fill -= fill % PER_BATCH
            fill_rate = prefill(address, prefilled, fill)
            prefilled += fill
            at_start = prefilled + ingested
            warm = ac.build_chains([f"scale-{size}-warm"], 2, PER_BATCH)
            ac.enroll_keys(node, warm, "truck-07")
            runs = []
            for r in range(repeats):
                gws = [f"scale-{size}-r{r}-g{g}" for g in range(chains)]
                built = ac.build_chains(gws, batches, PER_BATCH)
                ac.enroll_keys(node, built, "truck-07")
                runs.append([bodies for _, _, bodies in built])
            rates, proof_lens, leaves = [], [], 0
            with ac.serve(node):
                ac.post_chains_sync(node.url, node.token, [warm[0][2]])  # untimed warm-up
                ingested += 2 * PER_BATCH
                for bodies in runs:
                    elapsed, receipts = ac.post_chains_sync(node.url, node.token, bodies)
                    n = sum(len(b) for b in bodies) * PER_BATCH
                    ingested += n
                    rates.append(n / elapsed)
                    leaves = max(r["receipt"]["leaf_index"] for r in receipts) + 1
                # Proof size at this log size: inclusion proofs of leaves spread over the log.
                for leaf in random.Random(size).sample(range(leaves), min(leaves, 32)):
                    url = f"{node.url}/v1/log/inclusion?leaf={leaf}&size={leaves}"
                    with urllib.request.urlopen(url, timeout=30) as resp:
                        proof_lens.append(len(json.loads(resp.read())["proof"]))
            out[size] = {
                "rate": statistics.median(rates),
                "proof": statistics.median(proof_lens),
                "proof_max": max(proof_lens),
                "leaves": leaves,
                "at_start": at_start,
                "fill_rate": fill_rate,
                "fill": fill,
                "db_mb": _size_mb(address),
            }
    return out


def run(ten_million: bool | None = None) -> list[Table]:
    """10k, 1M and 10M readings (quick: 10k and 100k) on SQLite, then on PostgreSQL (the
    tests' own throw-away cluster); 10M is skipped when the disk is short or
    ``COLDTRAIL_BENCH_NO_10M=1``, with an estimate printed instead."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from support.postgres import PostgresCluster

    tables = [_run_on("SQLite", "", ten_million)]
    with PostgresCluster() as cluster:
        tables.append(_run_on("PostgreSQL", cluster.create_database("scale"), ten_million))
    return tables


def _run_on(driver: str, store: str, ten_million: bool | None) -> Table:
    q = ac.quick()
    free_gb = shutil.disk_usage(tempfile.gettempdir()).free / 1e9
    if ten_million is None:
        ten_million = not q and not os.environ.get("COLDTRAIL_BENCH_NO_10M") and free_gb > 12
    sizes = [10_000, 100_000] if q else [10_000, 1_000_000]
    if ten_million:
        sizes.append(10_000_000)
    per_run, repeats = (8_000, 3) if q else (20_000, 3)
    print(
        f"  [anchor-scale] {driver}: one ledger grown through {', '.join(f'{n:,}' for n in sizes)}"
        " readings: pre-fill + ingest at each ...",
        flush=True,
    )
    results = measure(sizes, per_run, repeats, store)
    base = results[sizes[0]]
    table = Table(
        f"Anchor at scale on {driver}: ingest of signed 1000-record batches (median of {repeats} x "
        f"{per_run:,}) and proof size, by readings in the log"
    )
    for n in sizes:
        r = results[n]
        table.add(
            f"{r['at_start']:>10,} readings ({r['leaves']:,} leaves): ingest",
            r["rate"],
            base["rate"],
            "/s",
            0.8 if n != sizes[0] else None,
        )
        in_batch = math.ceil(math.log2(PER_BATCH))
        expect = math.ceil(math.log2(max(2, r["leaves"])))
        table.rows.append(
            (
                f"{r['at_start']:>10,} readings: proof hashes, max (batch + log)",
                f"{in_batch} + {r['proof_max']:.0f} = {in_batch + r['proof_max']:.0f}",
                f"{in_batch} + {base['proof_max']:.0f}",
                f"log part <= ceil(log2 {r['leaves']:,}) = {expect}"
                + ("  ok" if r["proof_max"] <= expect else "  NOT LOGARITHMIC"),
            )
        )
    table.print(f"at {sizes[0]:,} readings")
    fill_rate = results[sizes[-1]]["fill_rate"]
    notes = [
        f"pre-fill through the {driver} store's append_batch and rollups (unsigned"
        " 1000-record batches of another gateway, real-sized JSON, all indexes), then signed"
        " batches over HTTP to `coldtrail-anchor serve`; target: the rate stays within"
        " 0.8x of the smallest log.",
        "pre-fill: "
        + ", ".join(f"{results[n]['fill']:,} at {results[n]['fill_rate']:,.0f}/s" for n in sizes)
        + "; readings = what the log held when the timed ingest started;"
        " ledger size after: "
        + ", ".join(f"{n:,} readings = {results[n]['db_mb']:,.0f} MB" for n in sizes)
        + ".",
    ]
    if not ten_million and fill_rate:
        est = 10_000_000 / fill_rate
        mb = results[sizes[-1]]["db_mb"] * 10_000_000 / sizes[-1]
        notes.append(
            f"10M readings skipped (quick mode, COLDTRAIL_BENCH_NO_10M or {free_gb:.0f} GB free"
            f" in {tempfile.gettempdir()}): the pre-fill runs at {fill_rate:,.0f} readings/s, so"
            f" 10M would add about {est / 60:.0f} min and {mb / 1000:.1f} GB of disk; run it"
            " with python -m bench.anchor_log_scale --ten-million."
        )
    for note in notes:
        print("   notes: " + note)
    return table


if __name__ == "__main__":
    if "--quick" in sys.argv:
        os.environ["COLDTRAIL_BENCH_QUICK"] = "1"
    run(ten_million=True if "--ten-million" in sys.argv else None)

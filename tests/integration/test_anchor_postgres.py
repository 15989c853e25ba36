"""The anchor end to end on PostgreSQL: real ``coldtrail-anchor serve`` processes with
``--store postgresql://...`` against the tests' own cluster (docs/postgresql.md).

Two serve processes share one database, as several workers will: batches of two
gateways go to both at once, every receipt verifies against the log key, the
provenance of a lot is answered from either, ``verify-ledger`` (the store given by
``COLDTRAIL_ANCHOR_STORE``) passes, and finds a row edited behind its back. The
database password never shows in any output.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest

from proofs.receipt import verify_receipt
from proofs.records import Manifest
from support.anchor_process import ANCHOR, call, get_json, post_batch, start_anchor_on, write_config
from support.batches import T0, GatewaySim, make_node, node_attester, register_and_enroll
from support.procs import stop_process

pytestmark = pytest.mark.integration

GTIN = "09506000134352"
PASSWORD = "s3cret-pw"  # trust authentication ignores it; it must never be printed


def _with_password(dsn: str) -> str:
    # postgresql://postgres@127.0.0.1:PORT/DB -> postgresql://postgres:PW@127.0.0.1:PORT/DB
    scheme, rest = dsn.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user}:{PASSWORD}@{host}"


def _cli(config_path: Path, dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ANCHOR, "--config", str(config_path), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "COLDTRAIL_ANCHOR_STORE": dsn},
    )


def test_two_serve_processes_on_one_postgresql_ledger(tmp_path: Path, pg_dsn: str) -> None:
    dsn = _with_password(pg_dsn)
    node = make_node(tmp_path, store=dsn)  # init, org acme, truck-07 enrolled: on PostgreSQL
    van = GatewaySim(gw="van-02", asset="van-02")
    from anchor.auth import issue_token
    from anchor.storage import open_store

    store = open_store(node.config)
    try:
        attest = node_attester(node.config)  # registry rows signed as the CLI signs them
        register_and_enroll(
            store, van.gw, "acme", van.public_key_b64, van.asset, T0, ["dock-3"], attest
        )
        van_token = issue_token(store, "acme", "gateway", T0)[0]
    finally:
        store.close()
    config_path = tmp_path / "anchor.toml"
    write_config(str(node.config.data_dir), config_path)
    procs = []
    try:
        first, port_a = start_anchor_on(config_path, dsn, tmp_path / "anchor-a.log")
        procs.append(first)
        second, port_b = start_anchor_on(config_path, dsn, tmp_path / "anchor-b.log")
        procs.append(second)

        receipts: list[tuple[Manifest, Any]] = []
        failures: list[str] = []
        lock = threading.Lock()

        def ingest(sim: GatewaySim, token: str, ports: tuple[int, int], lot: str) -> None:
            for i in range(12):
                records: list[Any] = []
                if i == 0:
                    records.append(sim.scan(gtin=GTIN, lot=lot, step="loading", rp="dock-3"))
                records += [sim.reading(3.0 + i / 10) for _ in range(5)]
                if i == 11:
                    records.append(sim.scan(gtin=GTIN, lot=lot, step="unloading", rp="dock-3"))
                manifest, body = sim.batch(records)
                status, raw = post_batch(ports[i % 2], token, body)  # both workers, in turn
                with lock:
                    if status != 201:
                        failures.append(f"{sim.gw} {i}: {status} {raw!r}")
                    else:
                        receipts.append((manifest, json.loads(raw)))

        threads = [
            threading.Thread(
                target=ingest, args=(node.gateway, node.gateway_token, (port_a, port_b), "PG1")
            ),
            threading.Thread(target=ingest, args=(van, van_token, (port_b, port_a), "PG2")),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert failures == []
        assert len(receipts) == 24
        leaves = set()
        for manifest, receipt in receipts:
            verify_receipt(receipt, manifest, node.log_vkey)
            leaves.add(receipt["receipt"]["leaf_index"])
        assert leaves == set(range(24))  # dense and unique across both processes
        for port in (port_a, port_b):
            assert get_json(port, "/v1/log")["size"] == 24
            leaf = get_json(port, "/v1/log/leaves/23")
            assert leaf["manifest"]["gw"] in (node.gateway.gw, van.gw)

        # Provenance of a lot, from either worker: custody, readings, a verdict.
        answer = get_json(port_b, f"/v1/provenance?gtin={GTIN}&lot=PG1")
        assert answer["verdict"]["status"] == "pass", answer["verdict"]
        assert answer["compromised"] == []
        assert json.dumps(answer).count("truck-07") > 0
        assert (
            get_json(port_a, f"/v1/provenance?gtin={GTIN}&lot=PG1")["verdict"]
            == (answer["verdict"])
        )
        bundle = call(port_a, f"/v1/provenance/bundle?gtin={GTIN}&lot=PG2")
        assert bundle.status == 200, bundle
        # A revocation made with the CLI (a third process) reaches both workers' answers.
        revoke = _cli(config_path, dsn, "gateway", "revoke", "--id", van.gw, "--reason", "lost")
        assert revoke.returncode == 0, revoke.stderr
        for port in (port_a, port_b):
            status, problem = post_batch(port, van_token, van.readings_batch(1)[1])
            assert status == 403 and json.loads(problem)["code"] == "revoked"
    finally:
        for proc in procs:
            stop_process(proc)

    result = _cli(config_path, dsn, "verify-ledger", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "ledger OK: 24 batches, 124 records" in result.stdout

    # An edit behind the anchor's back is found by verify-ledger on PostgreSQL too.
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("UPDATE records SET val = 30 WHERE type = 'reading' AND seq = 2")
    tampered = _cli(config_path, dsn, "verify-ledger", "--quiet")
    assert tampered.returncode == 1
    assert "INCONSISTENT" in tampered.stderr and "'val'" in tampered.stderr

    logs = "".join(p.read_text() for p in tmp_path.glob("anchor-*.log"))
    for output in (logs, revoke.stdout, revoke.stderr, result.stdout, tampered.stderr):
        assert PASSWORD not in output
    assert "listening on" in logs


def test_init_names_the_store_without_its_password(tmp_path: Path, pg_dsn: str) -> None:
    dsn = _with_password(pg_dsn)
    config_path = tmp_path / "anchor.toml"
    write_config(str(tmp_path / "node"), config_path)
    done = subprocess.run(
        [*ANCHOR, "--config", str(config_path), "--store", dsn, "init"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    assert "ledger:        postgresql://postgres:***@127.0.0.1:" in done.stdout
    assert not (tmp_path / "node" / "ledger.sqlite3").exists()  # nothing in SQLite
    checkpoint = _cli(config_path, dsn, "checkpoint")
    assert checkpoint.returncode == 0, checkpoint.stderr
    assert "height 0, size 0" in checkpoint.stderr  # the genesis, read back from PostgreSQL

"""Three ``coldtrail-anchor serve`` workers on one PostgreSQL ledger, one killed with -9
mid-ingest (issue 10): gateways fail over to the other workers and resend; every batch
is stored exactly once, every receipt verifies, leaves stay dense, and
``verify-ledger`` passes."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from anchor.auth import issue_token
from anchor.storage import open_store
from proofs.receipt import verify_receipt
from proofs.records import Manifest
from support.anchor_process import ANCHOR, get_json, post_batch, start_anchor_on, write_config
from support.batches import T0, GatewaySim, make_node, node_attester, register_and_enroll
from support.procs import stop_process

pytestmark = pytest.mark.integration

GATEWAYS = 6
BATCHES = 10  # per gateway
RECORDS = 20  # per batch


def test_three_workers_one_killed_mid_ingest_store_every_batch_once(
    tmp_path: Path, pg_dsn: str
) -> None:
    node = make_node(tmp_path, store=pg_dsn)
    sims = [GatewaySim(gw=f"van-{i:02d}", asset=f"van-{i:02d}") for i in range(GATEWAYS)]
    store = open_store(node.config)
    try:
        attest = node_attester(node.config)
        for sim in sims:
            register_and_enroll(
                store, sim.gw, "acme", sim.public_key_b64, sim.asset, T0, ["dock-3"], attest
            )
        token = issue_token(store, "acme", "gateway", T0)[0]
    finally:
        store.close()
    config_path = tmp_path / "anchor.toml"
    write_config(str(node.config.data_dir), config_path)
    workers = [start_anchor_on(config_path, pg_dsn, tmp_path / f"worker-{i}.log") for i in range(3)]
    ports = [port for _, port in workers]
    receipts: list[tuple[Manifest, Any]] = []
    failures: list[str] = []
    lock = threading.Lock()
    quarter = threading.Event()
    failovers: list[str] = []
    rng = random.Random(7)
    try:

        def ingest(n: int, sim: GatewaySim) -> None:
            """A gateway's uplink: its batches in order, to its worker; on a transport
            error or a 5xx, the next worker gets the same bytes again."""
            at = n % 3
            for _ in range(BATCHES):
                manifest, body = sim.readings_batch(RECORDS)
                deadline = time.monotonic() + 60
                while True:
                    try:
                        status, raw = post_batch(ports[at], token, body)
                    except OSError:  # the worker is gone (kill -9): fail over
                        status, raw = 0, b""
                    if status in (200, 201):
                        with lock:
                            receipts.append((manifest, json.loads(raw)))
                            if len(receipts) >= GATEWAYS * BATCHES // 4:
                                quarter.set()
                        break
                    if 400 <= status < 500 or time.monotonic() > deadline:
                        with lock:
                            failures.append(f"{sim.gw} {manifest.batch_seq}: {status} {raw!r}")
                        return
                    with lock:
                        failovers.append(f"{sim.gw} {manifest.batch_seq}: {status}")
                    at = (at + 1) % 3
                    time.sleep(0.05)

        threads = [threading.Thread(target=ingest, args=(n, s)) for n, s in enumerate(sims)]
        for t in threads:
            t.start()
        assert quarter.wait(60), "ingest did not get going"
        time.sleep(rng.uniform(0.0, 0.2))  # somewhere in the middle of a commit, or not
        victim = workers[0][0]
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)
        for t in threads:
            t.join(120)
        assert not any(t.is_alive() for t in threads)
        assert failures == []
        assert failovers, "the kill came after the traffic: nothing failed over"

        # Exactly once: one receipt per batch (a resend gets the stored one), leaves
        # dense and unique across the three workers, each receipt verifies.
        assert len(receipts) == GATEWAYS * BATCHES
        seen: dict[tuple[str, int], int] = {}
        for manifest, receipt in receipts:
            verify_receipt(receipt, manifest, node.log_vkey)
            seen[(manifest.gw, manifest.batch_seq)] = receipt["receipt"]["leaf_index"]
        assert len(seen) == GATEWAYS * BATCHES
        assert sorted(seen.values()) == list(range(GATEWAYS * BATCHES))
        for port in ports[1:]:
            assert get_json(port, "/v1/log")["size"] == GATEWAYS * BATCHES
        check = subprocess.run(
            [*ANCHOR, "--config", str(config_path), "verify-ledger", "--quiet"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env={**os.environ, "COLDTRAIL_ANCHOR_STORE": pg_dsn},
        )
        assert check.returncode == 0, check.stderr
        assert f"{GATEWAYS * BATCHES} batches, {GATEWAYS * BATCHES * RECORDS} records" in (
            check.stdout
        )
    finally:
        for proc, _ in workers:
            stop_process(proc)

"""A full disk under a real anchor: a coded 503 with Retry-After, health says why,
nothing half-written, and the same batch is accepted once space is back (no restart)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from anchor.storage.sqlite.store import SqliteLedger
from proofs.receipt import verify_receipt
from support.anchor_process import call, start_anchor, verify_ledger, write_config
from support.batches import make_node
from support.procs import free_port, stop_process
from support.small_fs import fill, small_tmpfs

pytestmark = pytest.mark.integration


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A real 6 MiB tmpfs, unmounted afterwards."""
    with small_tmpfs(tmp_path / "small-fs", "6m") as mnt:
        yield mnt


def counts(db_file: str) -> dict[str, int]:
    store = SqliteLedger(db_file)
    try:
        return store.table_counts()
    finally:
        store.close()


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def test_full_disk_is_a_coded_503_and_recovers_without_restart(
    small_fs: Path, tmp_path: Path
) -> None:
    node = make_node(small_fs)
    config_path = tmp_path / "anchor.toml"
    write_config(node.config.data_dir, config_path)
    port = free_port()
    gw = node.gateway
    proc = start_anchor(config_path, port, tmp_path / "anchor.log")  # the log is off the tmpfs
    try:
        _, first = gw.readings_batch(5)
        assert call(port, "/v1/batches", body=first, token=node.gateway_token).status == 201
        before = counts(node.config.db_file)
        filler = fill(small_fs)

        manifest, second = gw.readings_batch(200)
        reply = call(port, "/v1/batches", body=second, token=node.gateway_token)
        assert reply.status == 503, reply
        assert reply.headers["Content-Type"].startswith("application/problem+json")
        problem = reply.json()
        assert problem["code"] == "disk-full", problem
        assert problem["type"].endswith("/disk-full")
        assert "full" in problem["detail"] and "nothing" in problem["detail"]
        assert int(reply.headers["Retry-After"]) > 0

        health = call(port, "/healthz")
        assert health.status == 503
        body = health.json()
        assert body["status"] == "failing"
        assert body["cause"] == "disk-full"
        assert body["storage"]["ok"] is False and body["storage"]["cause"] == "disk-full"
        metrics = call(port, "/metrics").body.decode()
        assert metric(metrics, 'coldtrail_anchor_commit_failures_total{cause="disk-full"}') >= 1
        assert metric(metrics, "coldtrail_anchor_storage_ok") == 0.0

        # Space comes back: nothing of the refused batch was stored, the ledger verifies,
        # and the same bytes are accepted by the same process.
        filler.unlink()
        assert counts(node.config.db_file) == before
        checked = verify_ledger(config_path)
        assert checked.returncode == 0, checked.stderr
        assert "ledger OK" in checked.stdout
        assert call(port, "/healthz").status == 503  # no commit has succeeded yet

        reply = call(port, "/v1/batches", body=second, token=node.gateway_token)
        assert reply.status == 201, reply
        verify_receipt(json.loads(reply.body), manifest, node.log_vkey)
        health = call(port, "/healthz")
        assert health.status == 200, health
        assert health.json()["storage"] == {"ok": True}
        assert "cause" not in health.json()
        metrics = call(port, "/metrics").body.decode()
        assert metric(metrics, "coldtrail_anchor_storage_ok") == 1.0
        assert proc.poll() is None
    finally:
        stop_process(proc)
    checked = verify_ledger(config_path)
    assert checked.returncode == 0, checked.stderr
    after = counts(node.config.db_file)
    assert after["batches"] == before["batches"] + 1
    assert after["records"] == before["records"] + 200

"""kill -9 mid-ingest: no acknowledged batch is lost and verify-ledger passes after restart."""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from proofs.receipt import verify_receipt
from proofs.records import Manifest
from support.anchor_process import (
    get_json,
    post_batch,
    start_anchor,
    verify_ledger,
    write_config,
)
from support.batches import make_node
from support.procs import free_port, stop_process

pytestmark = pytest.mark.integration


def test_sigkill_mid_ingest_loses_no_acknowledged_batch(tmp_path: Path) -> None:
    node = make_node(tmp_path)
    config_path = tmp_path / "anchor.toml"
    write_config(node.config.data_dir, config_path)
    port = free_port()
    gw = node.gateway
    acknowledged: list[tuple[Manifest, bytes]] = []
    pending: tuple[Manifest, dict[str, Any]] | None = None
    rng = random.Random(7)
    for cycle in range(3):
        proc = start_anchor(config_path, port, tmp_path / "anchor.log")
        try:
            if pending is not None:
                # The batch in flight at the kill: committed or not, a resend settles it.
                status, receipt = post_batch(port, node.gateway_token, pending[1])
                assert status in (200, 201), receipt
                acknowledged.append((pending[0], receipt))
                pending = None
            killer = threading.Timer(rng.uniform(0.2, 0.6), os.kill, (proc.pid, signal.SIGKILL))
            killer.start()
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and proc.poll() is None:
                manifest, body = gw.readings_batch(rng.randint(1, 40))
                pending = (manifest, body)
                try:
                    status, receipt = post_batch(port, node.gateway_token, body)
                except (OSError, urllib.error.URLError):
                    break  # killed mid-request: the batch stays pending
                assert status == 201, receipt
                acknowledged.append((manifest, receipt))
                pending = None
            killer.join()
            proc.wait(10)
            assert proc.returncode == -signal.SIGKILL, f"cycle {cycle}"
        finally:
            stop_process(proc)

    proc = start_anchor(config_path, port, tmp_path / "anchor.log")
    try:
        assert len(acknowledged) >= 3, "the loop acknowledged too little before the kills"
        print(f"acknowledged {len(acknowledged)} batches across 3 kills")
        for manifest, receipt in acknowledged:
            verify_receipt(json.loads(receipt), manifest, node.log_vkey)
            leaf = get_json(port, f"/v1/log/leaves/{json.loads(receipt)['receipt']['leaf_index']}")
            assert leaf["manifest"] == manifest.to_dict()
        manifest, receipt = acknowledged[-1]
        leaf_index = json.loads(receipt)["receipt"]["leaf_index"]
        assert get_json(port, "/v1/log")["size"] >= leaf_index + 1
    finally:
        stop_process(proc)
    result = verify_ledger(config_path)
    assert result.returncode == 0, result.stderr
    assert "ledger OK" in result.stdout
    assert "100.0%" in result.stderr  # the progress bar ran to the end

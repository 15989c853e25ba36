"""kill -9 mid-ingest: no acknowledged batch is lost and verify-ledger passes after restart."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from proofs.receipt import verify_receipt
from proofs.records import Manifest
from support.batches import Node, make_node
from support.procs import free_port, stop_process, wait_for_port

pytestmark = pytest.mark.integration

ANCHOR = [sys.executable, "-m", "anchor.cli"]


def _post(port: int, token: str, body: dict[str, Any]) -> tuple[int, bytes]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/batches",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _get(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
        return json.loads(resp.read())


def _start(config_path: Path, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [*ANCHOR, "--config", str(config_path), "serve"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "COLDTRAIL_ANCHOR_LISTEN_PORT": str(port)},
        )
    wait_for_port(port, timeout_s=20, proc=proc)
    return proc


def _write_config(node: Node, path: Path) -> None:
    path.write_text(
        "[anchor]\n"
        f'data_dir = "{node.config.data_dir}"\n'
        'listen_host = "127.0.0.1"\n'
        "checkpoint_interval_s = 0.5\n"
    )


def test_sigkill_mid_ingest_loses_no_acknowledged_batch(tmp_path: Path) -> None:
    node = make_node(tmp_path)
    config_path = tmp_path / "anchor.toml"
    _write_config(node, config_path)
    port = free_port()
    gw = node.gateway
    acknowledged: list[tuple[Manifest, bytes]] = []
    pending: tuple[Manifest, dict[str, Any]] | None = None
    rng = random.Random(7)
    for cycle in range(3):
        proc = _start(config_path, port, tmp_path / "anchor.log")
        try:
            if pending is not None:
                # The batch in flight at the kill: committed or not, a resend settles it.
                status, receipt = _post(port, node.gateway_token, pending[1])
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
                    status, receipt = _post(port, node.gateway_token, body)
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

    proc = _start(config_path, port, tmp_path / "anchor.log")
    try:
        assert len(acknowledged) >= 3, "the loop acknowledged too little before the kills"
        print(f"acknowledged {len(acknowledged)} batches across 3 kills")
        for manifest, receipt in acknowledged:
            verify_receipt(json.loads(receipt), manifest, node.log_vkey)
            leaf = _get(port, f"/v1/log/leaves/{json.loads(receipt)['receipt']['leaf_index']}")
            assert leaf["manifest"] == manifest.to_dict()
        manifest, receipt = acknowledged[-1]
        leaf_index = json.loads(receipt)["receipt"]["leaf_index"]
        assert _get(port, "/v1/log")["size"] >= leaf_index + 1
    finally:
        stop_process(proc)
    result = subprocess.run(
        [*ANCHOR, "--config", str(config_path), "verify-ledger"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "ledger OK" in result.stdout
    assert "100.0%" in result.stderr  # the progress bar ran to the end

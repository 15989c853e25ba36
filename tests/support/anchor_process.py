"""A real ``coldtrail-anchor serve`` process for integration tests, and plain HTTP to it.

The process runs this worktree's interpreter (``sys.executable -m anchor.cli``) on a
free loopback port and is stopped by PID (:func:`support.procs.stop_process`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.procs import free_port, stop_process, wait_for_port

ANCHOR = [sys.executable, "-m", "anchor.cli"]


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def call(port: int, path: str, *, body: Any = None, token: str | None = None) -> Reply:
    """GET ``path``, or POST ``body`` as JSON when given; any status is returned, not raised."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers=headers,
        method="GET" if body is None else "POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return Reply(resp.status, dict(resp.headers.items()), resp.read())
    except urllib.error.HTTPError as e:
        return Reply(e.code, dict(e.headers.items()), e.read())


def call_raw(port: int, path: str, body: bytes, content_type: str = "text/plain") -> Reply:
    """POST raw bytes (a C2SP tlog-witness request, say); any status is returned."""
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=body,
        headers={"Content-Type": content_type},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return Reply(resp.status, dict(resp.headers.items()), resp.read())
    except urllib.error.HTTPError as e:
        return Reply(e.code, dict(e.headers.items()), e.read())


def post_batch(port: int, token: str, body: dict[str, Any]) -> tuple[int, bytes]:
    reply = call(port, "/v1/batches", body=body, token=token)
    return reply.status, reply.body


def get_json(port: int, path: str) -> Any:
    reply = call(port, path)
    assert reply.status == 200, reply
    return reply.json()


def start_anchor(config_path: Path, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [*ANCHOR, "--config", str(config_path), "serve"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "COLDTRAIL_ANCHOR_LISTEN_PORT": str(port)},
        )
    wait_for_port(port, timeout_s=20, proc=proc)
    return proc


def start_anchor_on(
    config_path: Path, store: str, log_path: Path
) -> tuple[subprocess.Popen[bytes], int]:
    """``serve --store STORE`` (e.g. a PostgreSQL URL) on a free port: (process, port)."""
    port = free_port()
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [*ANCHOR, "--config", str(config_path), "--store", store, "serve"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "COLDTRAIL_ANCHOR_LISTEN_PORT": str(port)},
        )
    wait_for_port(port, timeout_s=30, proc=proc)
    return proc, port


def write_config(data_dir: str, path: Path) -> None:
    # These tests read every leaf and proof back from one address: the per-client
    # public limit is not what they test (tests/integration/test_public_limits.py is).
    path.write_text(
        "[anchor]\n"
        f'data_dir = "{data_dir}"\n'
        'listen_host = "127.0.0.1"\n'
        "checkpoint_interval_s = 0.5\n"
        "public_rate_per_s = 100000.0\n"
        "public_burst_requests = 100000\n"
    )


def verify_ledger(config_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ANCHOR, "--config", str(config_path), "verify-ledger"],
        capture_output=True,
        text=True,
        timeout=120,
    )


class AnchorProcess:
    """``serve`` over a node made by ``support.batches.make_node``, as a context manager,
    with the CLI and HTTP calls the trust-boundary tests need."""

    def __init__(self, node: Any, workdir: Path) -> None:
        self.node = node
        self.config_path = workdir / "anchor.toml"
        write_config(str(node.config.data_dir), self.config_path)
        self.log_path = workdir / "anchor.log"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> AnchorProcess:
        self.proc = start_anchor(self.config_path, self.port, self.log_path)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*ANCHOR, "--config", str(self.config_path), *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def post(self, token: str, body: dict[str, Any]) -> tuple[int, Any]:
        reply = call(self.port, "/v1/batches", body=body, token=token)
        return reply.status, reply.json()

    def get(self, path: str) -> Any:
        return get_json(self.port, path)

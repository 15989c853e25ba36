"""A real ``coldtrail-anchor serve`` process over a node made by ``support.batches.make_node``:
started on a free loopback port, stopped by PID, with the CLI and HTTP calls tests need."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from support.batches import Node
from support.procs import free_port, stop_process, wait_for_port

ANCHOR = [sys.executable, "-m", "anchor.cli"]


class AnchorProcess:
    def __init__(self, node: Node, workdir: Path) -> None:
        self.node = node
        self.config_path = workdir / "anchor.toml"
        self.config_path.write_text(
            "[anchor]\n"
            f'data_dir = "{node.config.data_dir}"\n'
            'listen_host = "127.0.0.1"\n'
            "checkpoint_interval_s = 0.5\n"
        )
        self.log_path = workdir / "anchor.log"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> AnchorProcess:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [*ANCHOR, "--config", str(self.config_path), "serve"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "COLDTRAIL_ANCHOR_LISTEN_PORT": str(self.port)},
            )
        wait_for_port(self.port, timeout_s=30, proc=self.proc)
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
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/v1/batches",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=20) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def get(self, path: str, token: str | None = None) -> Any:
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", headers=headers)
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

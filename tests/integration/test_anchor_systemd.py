"""`serve` speaks sd_notify: READY=1 once listening, watchdog pings, STOPPING=1 on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.batches import make_node
from support.procs import free_port, stop_process, wait_for_port

pytestmark = pytest.mark.integration


def _messages(sock: socket.socket, until: bytes, timeout_s: float) -> list[bytes]:
    seen: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    while until not in seen and time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            seen.append(sock.recv(256))
        except TimeoutError:
            break
    return seen


def test_serve_notifies_systemd_and_stops_cleanly(tmp_path: Path) -> None:
    node = make_node(tmp_path)
    port = free_port()
    config = tmp_path / "anchor.toml"
    config.write_text(f'[anchor]\ndata_dir = "{node.config.data_dir}"\nlisten_port = {port}\n')
    notify_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(notify_path))
        env = {**os.environ, "NOTIFY_SOCKET": str(notify_path), "WATCHDOG_USEC": "200000"}
        env.pop("WATCHDOG_PID", None)
        with (tmp_path / "anchor.log").open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "anchor.cli", "--config", str(config), "serve"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        try:
            seen = _messages(sock, b"WATCHDOG=1", timeout_s=20)
            assert b"READY=1" in seen and b"WATCHDOG=1" in seen, seen
            wait_for_port(port, proc=proc)  # READY=1 came after the socket was listening
            os.kill(proc.pid, signal.SIGTERM)
            assert b"STOPPING=1" in _messages(sock, b"STOPPING=1", timeout_s=10)
            assert proc.wait(20) == 0
        finally:
            stop_process(proc)

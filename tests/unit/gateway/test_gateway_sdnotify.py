"""sd_notify over a real AF_UNIX datagram socket."""

from __future__ import annotations

import socket
from pathlib import Path

from gateway.sdnotify import Notifier


def test_notifier_sends_datagrams_and_halves_the_watchdog(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        server.settimeout(2)
        n = Notifier.from_env({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "4000000"})
        assert n.watchdog_interval_s == 2.0
        assert n.ready("ok") and n.watchdog() and n.stopping()
        got = [server.recv(4096).decode() for _ in range(3)]
    assert got == ["READY=1\nSTATUS=ok", "WATCHDOG=1", "STOPPING=1"]


def test_without_notify_socket_nothing_is_sent() -> None:
    n = Notifier.from_env({})
    assert not n.enabled and not n.ready() and n.watchdog_interval_s is None


def test_watchdog_for_another_pid_is_ignored(tmp_path: Path) -> None:
    n = Notifier.from_env({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "100", "WATCHDOG_PID": "1"})
    assert n.watchdog_interval_s is None


def test_unreachable_socket_is_a_warning_not_a_crash(tmp_path: Path) -> None:
    assert Notifier(str(tmp_path / "missing.sock")).ready() is False

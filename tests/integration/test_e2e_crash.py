"""Crash drills with real processes: kill -9 of the gateway, the anchor, or both.

A real `coldtrail-anchor serve` and a real gateway daemon, set up through their
CLIs (firmware_sim.processes), are killed with SIGKILL at random points under
load, in a bounded loop that cycles through the three drills, and restarted.
Afterwards every record a source saw acknowledged is in the anchor's ledger
exactly once, the gateway's seqs and batch chain have no hole and no repeat,
and `coldtrail-anchor verify-ledger` re-verifies every signature, root and
checkpoint.

Two sources: the Unix-socket line source of tests/support/line_source_gateway.py
(it acks after the spool commit), and MQTT through a real mosquitto with a QoS 1
publisher (acknowledged = the broker's PUBACK to the publisher).
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import sqlite3
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware_sim.mqtt_publisher import Publisher
from firmware_sim.processes import AnchorNode, GatewayNode, ProcessGroup, free_port, mosquitto

pytestmark = pytest.mark.integration

HELPER = Path(__file__).resolve().parents[1] / "support" / "line_source_gateway.py"
DRILLS = ("gateway", "anchor", "both", "gateway", "anchor", "both")
GW = "drill-gw"


class LineFeeder:
    """Writes numbered readings to the gateway's line socket and collects its acks,
    reconnecting whenever the gateway comes back after a kill."""

    def __init__(self, sock: Path) -> None:
        self.sock = sock
        self.next_id = 0
        self.acked: set[int] = set()
        self.stop = threading.Event()
        self._lock = threading.Lock()

    def _session(self, conn: socket.socket) -> None:
        sent = 0
        received = [0]

        def read_acks() -> None:
            buf = b""
            with contextlib.suppress(OSError):
                while chunk := conn.recv(65536):
                    buf += chunk
                    *lines, buf = buf.split(b"\n")
                    with self._lock:
                        for line in lines:
                            self.acked.add(int(line.split()[1]))
                            received[0] += 1

        reader = threading.Thread(target=read_acks, daemon=True)
        reader.start()
        try:
            while not self.stop.is_set() and reader.is_alive():
                if sent - received[0] > 2000:
                    time.sleep(0.005)
                    continue
                ids = range(self.next_id, self.next_id + 50)
                self.next_id += 50
                conn.sendall(b"".join(b'{"id":%d,"src":"line-1","val":%d}\n' % (i, i) for i in ids))
                sent += 50
                time.sleep(0.01)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_WR)  # let the last acks arrive
            reader.join(5)
            conn.close()

    def run(self) -> None:
        while not self.stop.is_set():
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                conn.connect(str(self.sock))
            except OSError:
                conn.close()
                time.sleep(0.05)
                continue
            self._session(conn)


class MqttFeeder:
    """A QoS 1 publisher: a message counts as acknowledged once the broker PUBACKed it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.acked: set[int] = set()
        self.stop = threading.Event()

    def run(self) -> None:
        with Publisher.connected("127.0.0.1", self.port, "drill-publisher") as pub:
            i = 0
            while not self.stop.is_set():
                body = {"q": "count", "val": i, "unit": "C62", "seq": i}
                pub.publish("sensors/probe-m", json.dumps(body).encode())
                self.acked.add(i)
                i += 1
                time.sleep(0.002)


def _ledger(anchor: AnchorNode, sql: str, *args: object) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{anchor.workdir / 'data' / 'ledger.sqlite3'}?mode=ro", uri=True)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


@contextlib.contextmanager
def _stack(
    tmp: Path, source: str
) -> Iterator[tuple[ProcessGroup, AnchorNode, GatewayNode, object]]:
    group = ProcessGroup()
    try:
        with contextlib.ExitStack() as stack:
            node_sources: list[dict[str, object]] = []
            feeder: LineFeeder | MqttFeeder
            if source == "mqtt":
                port = stack.enter_context(mosquitto(tmp / "mosquitto", group))
                node_sources.append(
                    {
                        "kind": "mqtt",
                        "name": "broker",
                        "host": "127.0.0.1",
                        "port": port,
                        "client_id": "coldtrail-drill",
                        "routes": [{"pattern": "sensors/+", "adapter": "json", "sensor": "{1}"}],
                    }
                )
                feeder = MqttFeeder(port)
            else:
                feeder = LineFeeder(tmp / "in.sock")
            anchor = AnchorNode(tmp / "anchor", free_port(), checkpoint_interval_s=0.5)
            anchor.init()
            anchor.add_org("acme", "Acme Foods")
            node = GatewayNode(
                GW,
                "acme",
                "truck-07",
                tmp / "gw",
                sources=node_sources,  # type: ignore[arg-type]
                settings={
                    "batch": {"max_records": 200, "max_age_s": 0.1},
                    "uplink": {"timeout_s": 5.0, "backoff_initial_s": 0.05, "backoff_max_s": 0.5},
                },
                metrics_port=free_port(),
            )
            node.init_and_enroll(anchor, anchor.token("acme"))
            anchor.serve(group)
            yield group, anchor, node, feeder
    finally:
        group.stop_all()


def _run_gateway(group: ProcessGroup, node: GatewayNode, source: str, tmp: Path) -> None:
    if source == "mqtt":
        node.run(group)
    else:
        argv = [sys.executable, str(HELPER), "--config", str(node.config_path),
                "--socket", str(tmp / "in.sock")]  # fmt: skip
        node.run(group, argv=argv)


def _wait_subscribed(node: GatewayNode, port: int) -> None:
    """Until the gateway's persistent session exists: the broker drops what nobody
    has subscribed to, and those messages were never the gateway's to lose."""
    with Publisher.connected("127.0.0.1", port, "drill-warmup") as pub:
        for _ in range(400):
            pub.publish("sensors/warmup", b'{"temperature": 1}')
            if node.metrics().get("coldtrail_observations_in_total", 0) > 0:
                return
            time.sleep(0.05)
    raise AssertionError("the gateway never received an MQTT message")


def _wait_drained(node: GatewayNode, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert node.child is not None and node.child.alive(), "the gateway died while draining"
        if node.drained():
            return
        time.sleep(0.1)
    raise AssertionError(f"the gateway did not drain: {node.status()}")


@pytest.mark.parametrize("source", ["line", "mqtt"])
def test_kill9_of_gateway_anchor_or_both_loses_and_duplicates_nothing(
    tmp_path: Path, source: str
) -> None:
    rng = random.Random(20261122 + len(source))
    with _stack(tmp_path, source) as (group, anchor, node, feeder):
        assert isinstance(feeder, LineFeeder | MqttFeeder)
        _run_gateway(group, node, source, tmp_path)
        if isinstance(feeder, MqttFeeder):
            _wait_subscribed(node, feeder.port)
        feeding = threading.Thread(target=feeder.run, daemon=True)
        feeding.start()
        gateway_kills = 0
        try:
            for drill in DRILLS:
                time.sleep(rng.uniform(0.4, 1.2))
                assert node.child is not None and anchor.child is not None
                if drill in ("anchor", "both"):
                    anchor.child.kill9()
                if drill in ("gateway", "both"):
                    node.child.kill9()
                    gateway_kills += 1
                time.sleep(rng.uniform(0.05, 0.5))  # sources keep reading meanwhile
                if drill in ("anchor", "both"):
                    anchor.restart()
                if drill in ("gateway", "both"):
                    node.child.start()
            time.sleep(0.5)
        finally:
            feeder.stop.set()
            feeding.join(30)
        acked = set(feeder.acked)
        _wait_drained(node)
        assert node.child is not None and node.child.stop() == 0
        assert anchor.child is not None and anchor.child.stop() == 0

    assert len(acked) > 500, "the drill acknowledged too little to mean anything"
    records = _ledger(anchor, "SELECT seq, type, json FROM records WHERE gw = ? ORDER BY seq", GW)
    seqs = [int(str(r[0])) for r in records]
    assert seqs == list(range(1, len(seqs) + 1)), "seq holes or repeats at the anchor"
    rows = _ledger(anchor, "SELECT batch_seq FROM batches WHERE gw = ? ORDER BY batch_seq", GW)
    batches = [int(str(r[0])) for r in rows]
    assert batches == list(range(1, len(batches) + 1)), "the batch chain has a hole or a repeat"
    bodies = [json.loads(r[2]) for r in records]  # type: ignore[arg-type]
    src = "line-1" if source == "line" else "probe-m"
    values = Counter(int(b["val"]) for b in bodies if b["type"] == "reading" and b["src"] == src)
    missing = acked - set(values)
    assert not missing, f"{len(missing)} acknowledged readings were never anchored"
    twice = {v: n for v, n in values.items() if n > 1}
    assert not twice, f"{len(twice)} readings anchored more than once (e.g. {sorted(twice)[:5]})"
    restarts = [b for b in bodies if b["type"] == "gap" and b["reason"] == "restart"]
    # A kill during the next start, before it wrote its gap, folds two kills into one gap.
    assert 1 <= len(restarts) <= gateway_kills
    result = anchor.verify_ledger()
    assert result.returncode == 0, result.stderr
    assert "ledger OK" in result.stdout

"""End to end, real processes: a reading at the sensor until a checkpoint covers it,
and the backlog drain rate after an outage.

A real mosquitto, `coldtrail-anchor serve` and one `coldtrail-gateway run` with an
MQTT source (set up through their CLIs, firmware_sim.processes). A QoS 1 publisher
plays the sensor.

- **Latency**: default gateway settings (batch closes at 1000 records or 10 s). A
  reading counts as covered when the gateway holds the anchor's signed receipt for it
  (the receipt carries the checkpoint that covers the batch, and the gateway counts
  it in ``coldtrail_records_anchored_total`` only after verifying it). Readings arrive
  at 10/s, so batches close on age: the peer column is the configured
  ``batch.max_age_s`` (p99) and half of it (p50: the mean wait of a reading that
  arrives at a random moment of an age-closed batch).
- **Drain**: the anchor is stopped, 20 000 readings are spooled, the anchor comes
  back; readings anchored per second until the spool is empty. The backlog is treated
  as backfill (``COLDTRAIL_UPLINK_LIVE_WINDOW_S=1``, as after an outage longer than the
  60 s live window); the peer column is the configured backfill cap,
  ``backfill_batches_per_s`` x ``batch.max_records`` (5 x 1000 readings/s).
"""

from __future__ import annotations

import contextlib
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

from bench._harness import Table
from firmware_sim.mqtt_publisher import Publisher
from firmware_sim.processes import AnchorNode, GatewayNode, ProcessGroup, free_port, mosquitto

BATCH_MAX_AGE_S = 10.0  # the gateway's default
BACKFILL_CAP = 5.0 * 1000  # default backfill_batches_per_s x batch.max_records
LATENCY_RATE_HZ = 10.0
LATENCY_SECONDS = 40.0
BACKLOG = 20_000


def _anchored(node: GatewayNode) -> float:
    return node.metrics().get("coldtrail_records_anchored_total", 0.0)


def _spooled(node: GatewayNode) -> float:
    return node.metrics().get("coldtrail_records_spooled_total", 0.0)


def _settle(node: GatewayNode, timeout_s: float = 60.0) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if node.drained():
            return _anchored(node)
        time.sleep(0.1)
    raise RuntimeError(f"gateway did not drain: {node.status()}")


def _payload(i: int) -> bytes:
    return json.dumps({"q": "count", "val": i, "unit": "C62", "seq": i}).encode()


def _latencies(node: GatewayNode, pub: Publisher) -> list[float]:
    base = _settle(node)
    published: list[float] = []
    done = threading.Event()

    def sensor() -> None:
        period = 1.0 / LATENCY_RATE_HZ
        start = time.monotonic()
        for i in range(int(LATENCY_SECONDS * LATENCY_RATE_HZ)):
            time.sleep(max(0.0, start + i * period - time.monotonic()))
            published.append(time.monotonic())
            pub.publish("sensors/probe-b", _payload(i))
        done.set()

    thread = threading.Thread(target=sensor)
    thread.start()
    covered_at: list[float] = []
    deadline = time.monotonic() + LATENCY_SECONDS + 4 * BATCH_MAX_AGE_S
    while time.monotonic() < deadline:
        n = int(_anchored(node) - base)
        now = time.monotonic()
        while len(covered_at) < min(n, len(published)):
            covered_at.append(now)
        if done.is_set() and len(covered_at) == len(published):
            break
        time.sleep(0.02)
    thread.join()
    return [c - p for c, p in zip(covered_at, published, strict=False)]


def _drain_rate(
    group: ProcessGroup, anchor: AnchorNode, node: GatewayNode, pub: Publisher
) -> float:
    _settle(node)
    assert anchor.child is not None and node.child is not None
    node.child.stop()  # back with the live window at 1 s: the whole backlog is backfill
    node.env = {"COLDTRAIL_UPLINK_LIVE_WINDOW_S": "1"}
    node.run(group)
    for _ in range(200):
        if node.status() is not None:
            break
        time.sleep(0.05)
    base = _anchored(node)
    anchor.child.stop()
    spooled0 = _spooled(node)
    for i in range(BACKLOG):
        pub.publish("sensors/probe-d", _payload(i))
    deadline = time.monotonic() + 120
    while _spooled(node) < spooled0 + BACKLOG and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(2.0)  # let every batch age past the 1 s live window: all of it is backfill
    target = base + (_spooled(node) - spooled0)
    anchor.restart()
    start = time.monotonic()
    while _anchored(node) < target:
        if time.monotonic() - start > 300:
            raise RuntimeError("the backlog did not drain in 5 minutes")
        time.sleep(0.02)
    return (target - base) / (time.monotonic() - start)


def run() -> None:
    with tempfile.TemporaryDirectory(prefix="coldtrail-e2e-bench-") as tmp:
        root = Path(tmp)
        group = ProcessGroup()
        try:
            with contextlib.ExitStack() as stack:
                port = stack.enter_context(mosquitto(root / "mosquitto", group))
                anchor = AnchorNode(root / "anchor", free_port())
                anchor.init()
                anchor.add_org("acme", "Acme Foods")
                node = GatewayNode(
                    "bench-gw",
                    "acme",
                    "truck-07",
                    root / "gw",
                    sources=[
                        {
                            "kind": "mqtt",
                            "name": "broker",
                            "host": "127.0.0.1",
                            "port": port,
                            "routes": [
                                {"pattern": "sensors/+", "adapter": "json", "sensor": "{1}"}
                            ],
                        }
                    ],
                    metrics_port=free_port(),
                )
                node.init_and_enroll(anchor, anchor.token("acme"))
                anchor.serve(group)
                node.run(group)
                pub = stack.enter_context(Publisher.connected("127.0.0.1", port, "bench-sensor"))
                for _ in range(400):  # until the gateway's subscription exists
                    pub.publish("sensors/warmup", _payload(0))
                    if node.metrics().get("coldtrail_observations_in_total", 0) > 0:
                        break
                    time.sleep(0.05)
                lat = _latencies(node, pub)
                rate = _drain_rate(group, anchor, node, pub)
        finally:
            group.stop_all()
    q = statistics.quantiles(lat, n=100)
    p50, p99 = statistics.median(lat), q[98]
    table = Table(
        f"end to end: sensor reading -> covered by a checkpoint ({len(lat)} readings at "
        f"{LATENCY_RATE_HZ:g}/s, default settings); backlog drain after an outage"
    )
    table.add("p50 reading -> checkpoint (ms)", p50 * 1000, BATCH_MAX_AGE_S / 2 * 1000, "ms", None)
    table.add("p99 reading -> checkpoint (ms)", p99 * 1000, BATCH_MAX_AGE_S * 1000, "ms", None)
    table.add(f"drain of {BACKLOG} readings (readings/s)", rate, BACKFILL_CAP, "/s", None)
    table.print("max_age/2, max_age; backfill cap")

"""kill -9 of the real gateway fed by a real mosquitto with a QoS 1 publisher.

Every message the broker acknowledged to the publisher reaches the anchor exactly
once after the restarts: none lost (the gateway PUBACKs only after the spool commit,
and its session persists), none twice (a message committed but not yet PUBACKed
when the process died is re-sent by the broker with DUP=1 and its packet id, and the
gateway recognises it from the delivery recorded in the commit: docs/adr/0210).

A kill lands between a commit and its PUBACKs only by chance (that window is short);
the test-only ``COLDTRAIL_TEST_FAULT=ack-delay-ms=N`` widens it so that the random
kills hit it often. The kills themselves still land at random points.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import threading
from collections import Counter
from pathlib import Path

import pytest

from firmware_sim.mqtt_publisher import Publisher
from gateway.sources.mqtt import FAULT_ACK_DELAY, FAULT_ENV
from gateway.spool import read_spool_report
from support.gateway_env import start_gateway, write_gateway_setup
from support.procs import Broker
from support.standin_anchor import StandinAnchor

pytestmark = pytest.mark.integration

KILLS = 5
ACK_DELAY_MS = 40  # commit -> PUBACK window widened for the test (see the docstring)
ACK_DELAY_ENV = {FAULT_ENV: f"{FAULT_ACK_DELAY}{ACK_DELAY_MS}"}


def dropped_duplicates(log: Path) -> int:
    """What the gateways logged as re-sent messages already committed (INFO lines)."""
    total = 0
    for line in log.read_text().splitlines():
        if "re-sent messages already committed" in line:
            total += int(line.split("mqtt source broker: ", 1)[1].split()[0])
    return total


def counted(anchor: StandinAnchor) -> list[int]:
    return [
        int(r["val"])
        for r in anchor.records_of("truck-07")
        if r["type"] == "reading" and r["src"] == "probe-m"
    ]


async def test_kill9_with_mqtt_qos1_loses_no_acknowledged_message(
    tmp_path: Path, mosquitto: Broker
) -> None:
    broker = mosquitto
    rng = random.Random(7)
    log = tmp_path / "gateway.log"
    async with StandinAnchor() as anchor:
        setup = write_gateway_setup(tmp_path, anchor, batch={"max_records": 200, "max_age_s": 0.1})
        with setup.config_path.open("a") as f:
            f.write(
                "\n[[sources]]\n"
                'kind = "mqtt"\nname = "broker"\n'
                f'host = "{broker.host}"\nport = {broker.port}\n'
                'client_id = "coldtrail-kill9"\n'
                "[[sources.routes]]\n"
                'pattern = "sensors/+"\nadapter = "json"\nsensor = "{1}"\n'
            )
        proc = await start_gateway(setup, log, ACK_DELAY_ENV, "INFO")
        with Publisher.connected(broker.host, broker.port, "kill9-warmup") as pub:
            for _ in range(300):  # until the gateway's persistent subscription exists
                await asyncio.to_thread(pub.publish, "sensors/warmup", b'{"temperature": 1}')
                if anchor.records_of("truck-07"):
                    break
                await asyncio.sleep(0.05)
        assert anchor.records_of("truck-07"), log.read_text()

        published: list[int] = []
        stop = threading.Event()

        def publish() -> None:
            with Publisher.connected(broker.host, broker.port, "kill9-publisher") as p:
                i = 0
                while not stop.is_set():
                    body = {"q": "count", "val": i, "unit": "C62", "seq": i}
                    p.publish("sensors/probe-m", json.dumps(body).encode())
                    published.append(i)  # the broker holds it now
                    i += 1

        publisher = threading.Thread(target=publish, daemon=True)
        publisher.start()
        try:
            for _ in range(KILLS):
                await asyncio.sleep(rng.uniform(0.5, 1.5))
                os.kill(proc.pid, signal.SIGKILL)
                assert await proc.wait() == -signal.SIGKILL
                await asyncio.sleep(rng.uniform(0.05, 0.4))  # the broker queues meanwhile
                proc = await start_gateway(setup, log, ACK_DELAY_ENV, "INFO")
            await asyncio.sleep(0.5)
        finally:
            stop.set()
            await asyncio.to_thread(publisher.join, 30)
        try:
            for _ in range(600):
                if set(published) <= set(counted(anchor)):
                    s = read_spool_report(setup.config.spool_file).stats
                    if s.records == 0 and s.batches == 0:
                        break
                await asyncio.sleep(0.05)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 20) == 0, log.read_text()[-3000:]

    records = anchor.records_of("truck-07")
    seqs = [r["seq"] for r in records]
    assert seqs == list(range(1, len(seqs) + 1))
    got = Counter(counted(anchor))
    missing = set(published) - set(got)
    assert not missing, f"{len(missing)} broker-acknowledged messages never anchored"
    duplicates = {val: n for val, n in got.items() if n > 1}
    assert not duplicates, f"{sum(duplicates.values()) - len(duplicates)} duplicates"
    assert not set(got) - set(published)
    assert len(published) > 1000
    # The window was hit, so the run proves the de-duplication and not just luck (with
    # 5 kills and the widened window, a run that never hits it is rare but possible).
    print(f"\nre-sent messages dropped as already committed: {dropped_duplicates(log)}")
    # A kill can land while the restarted process is still starting, before it wrote the
    # gap for the previous kill; the next start then writes one gap for both.
    restarts = [r for r in records if r["type"] == "gap" and r["reason"] == "restart"]
    assert 1 <= len(restarts) <= KILLS

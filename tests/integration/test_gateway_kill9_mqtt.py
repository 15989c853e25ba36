"""kill -9 of the real gateway fed by a real mosquitto with a QoS 1 publisher.

Every message the broker acknowledged to the publisher reaches the anchor after
the restarts (the gateway PUBACKs only after the spool commit, and its session
persists). MQTT QoS 1 is at-least-once: a message committed but not yet PUBACKed
when the process died is redelivered and recorded twice, with the same device
counter; the test bounds those duplicates by the in-flight window.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware_sim.mqtt_publisher import Publisher
from gateway.spool import read_spool_report
from support.gateway_env import GatewaySetup, write_gateway_setup
from support.procs import Broker, run_mosquitto
from support.standin_anchor import StandinAnchor

pytestmark = pytest.mark.integration

KILLS = 3
IN_FLIGHT = 256  # the MQTT source's receive_maximum and max_batch defaults


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    with run_mosquitto(tmp_path / "mosquitto") as b:
        try:
            yield b
        finally:
            b.stop()
            if b.proc.stderr is not None:
                b.proc.stderr.close()


async def start(setup: GatewaySetup, log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as err:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            "run",
            "--config",
            str(setup.config_path),
            "--log-level",
            "WARNING",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=err,
        )


def counted(anchor: StandinAnchor) -> list[int]:
    return [
        int(r["val"])
        for r in anchor.records_of("truck-07")
        if r["type"] == "reading" and r["src"] == "probe-m"
    ]


async def test_kill9_with_mqtt_qos1_loses_no_acknowledged_message(
    tmp_path: Path, broker: Broker
) -> None:
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
        proc = await start(setup, log)
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
                proc = await start(setup, log)
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
    duplicates = sum(n - 1 for n in got.values())
    assert duplicates <= KILLS * 2 * IN_FLIGHT, duplicates
    assert len(published) > 1000
    # A kill can land while the restarted process is still starting, before it wrote the
    # gap for the previous kill; the next start then writes one gap for both.
    restarts = [r for r in records if r["type"] == "gap" and r["reason"] == "restart"]
    assert 1 <= len(restarts) <= KILLS

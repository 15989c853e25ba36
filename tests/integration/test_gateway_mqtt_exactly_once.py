"""The exact crash window of MQTT QoS 1, provoked on purpose: commit done, PUBACK not sent.

A real gateway process with the test-only fault ``COLDTRAIL_TEST_FAULT=exit-after-commit``
(gateway/sources/mqtt.py, docs/adr/0210) commits its first batch of MQTT messages and
exits before any PUBACK. The broker (a real mosquitto) re-sends every one of them with
DUP=1 and its original packet id to the restarted gateway, which must store none of the
committed ones again and every one of the others.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import urllib.request
from pathlib import Path

import pytest

from firmware_sim.mqtt_publisher import Publisher
from gateway.sources.mqtt import FAULT_ENV, FAULT_EXIT_AFTER_COMMIT, IN_FLIGHT
from gateway.spool import read_spool_report
from support.gateway_env import start_gateway, write_gateway_setup
from support.procs import Broker, free_port
from support.standin_anchor import StandinAnchor

pytestmark = pytest.mark.integration

GW = "truck-07"
HANG_GUARD_S = 120  # only against a hang; nothing here depends on timing


def readings(anchor: StandinAnchor, src: str) -> list[int]:
    return [
        int(r["val"]) for r in anchor.records_of(GW) if r["type"] == "reading" and r["src"] == src
    ]


def last_ordinal(spool: Path) -> int:
    conn = sqlite3.connect(f"file:{spool}?mode=ro", uri=True)
    try:
        return int(
            conn.execute("SELECT COALESCE(MAX(ordinal), 0) FROM mqtt_inflight").fetchone()[0]
        )
    finally:
        conn.close()


def duplicates_dropped(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    for line in text.splitlines():
        if line.startswith('coldtrail_source_duplicates_dropped_total{source="broker"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def publish_all(broker: Broker, messages: list[tuple[str, bytes]]) -> None:
    with Publisher.connected(broker.host, broker.port, "exactly-once-pub") as pub:
        for topic, payload in messages:
            pub.publish(topic, payload)  # QoS 1: returns once the broker holds it


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_death_between_commit_and_puback_stores_nothing_twice(
    tmp_path: Path, mosquitto: Broker, protocol: str
) -> None:
    log = tmp_path / "gateway.log"
    metrics_port = free_port()
    async with StandinAnchor() as anchor:
        setup = write_gateway_setup(
            tmp_path,
            anchor,
            batch={"max_records": 20, "max_age_s": 0.1},
            metrics={"port": metrics_port},
        )
        with setup.config_path.open("a") as f:
            f.write(
                "\n[[sources]]\n"
                'kind = "mqtt"\nname = "broker"\n'
                f'host = "{mosquitto.host}"\nport = {mosquitto.port}\n'
                f'client_id = "coldtrail-once-{protocol}"\nprotocol = "{protocol}"\n'
                "max_batch = 10\n"  # the first commit holds some of the queue, not all
                "[[sources.routes]]\n"
                'pattern = "sensors/+"\nadapter = "json"\nsensor = "{1}"\n'
            )
        spool = setup.config.spool_file

        # 1. Create the persistent session (and its subscription) on the broker.
        proc = await start_gateway(setup, log, {FAULT_ENV: None}, "INFO")
        warmups = 0
        with Publisher.connected(mosquitto.host, mosquitto.port, "warmup") as pub:
            for _ in range(300):
                body = json.dumps({"q": "count", "val": warmups, "unit": "C62"}).encode()
                await asyncio.to_thread(pub.publish, "sensors/warmup", body)
                warmups += 1
                if readings_or_any(anchor):
                    break
                await asyncio.sleep(0.05)
        assert readings_or_any(anchor), log.read_text()
        # SIGKILL, not SIGTERM: a SIGTERM while records arrive can hit a lost cancellation
        # in the batcher's asyncio.wait_for (Python 3.11) and hang the shutdown.
        proc.kill()
        assert await stopped(proc) == -signal.SIGKILL

        # 2. While the gateway is down the broker queues these for its session. Repeated
        #    identical payloads on one topic are included on purpose: the digest alone
        #    cannot tell them apart, the packet id and the order can.
        distinct = [
            ("sensors/probe-x", json.dumps({"q": "count", "val": i, "unit": "C62"}).encode())
            for i in range(30)
        ]
        same = [("sensors/door", b'{"q": "count", "val": 1, "unit": "C62"}')] * 6
        messages = [m for pair in zip(distinct[:6], same, strict=True) for m in pair]
        messages += distinct[6:]
        await asyncio.to_thread(publish_all, mosquitto, messages)
        before = last_ordinal(spool)

        # 3. The faulty gateway commits its first group (at most IN_FLIGHT batches of 10,
        #    which one group commit may take together) and dies before any PUBACK: those
        #    are re-sent although committed, the others although not.
        proc = await start_gateway(setup, log, {FAULT_ENV: FAULT_EXIT_AFTER_COMMIT}, "INFO")
        assert await stopped(proc) == 70, log.read_text()[-3000:]
        committed = last_ordinal(spool) - before
        assert 1 <= committed <= 10 * IN_FLIGHT

        # 4. The broker re-sends all of them with DUP=1; the committed ones are dropped.
        proc = await start_gateway(setup, log, {FAULT_ENV: None}, "INFO")
        try:
            for _ in range(1200):
                done = len(readings(anchor, "probe-x")) >= 30 and len(readings(anchor, "door")) >= 6
                if done:
                    s = read_spool_report(spool).stats
                    if s.records == 0 and s.batches == 0:
                        break
                await asyncio.sleep(0.05)
            dropped = await asyncio.to_thread(duplicates_dropped, metrics_port)
        finally:
            proc.send_signal(signal.SIGTERM)
            code = await stopped(proc)
        assert code == 0, log.read_text()[-3000:]

    assert sorted(readings(anchor, "probe-x")) == list(range(30))
    assert readings(anchor, "door") == [1] * 6
    # Warm-up messages published before the subscription existed are not the gateway's;
    # every later one is anchored once.
    warm = sorted(readings(anchor, "warmup"))
    assert warm == list(range(warmups - len(warm), warmups))
    # Also a warm-up message committed but not acked when SIGTERM stopped the source
    # is re-sent and dropped, so at least the fault's commit.
    assert dropped >= committed, log.read_text()[-3000:]
    records = anchor.records_of(GW)
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))


async def stopped(proc: asyncio.subprocess.Process) -> int | None:
    """Its exit code; a process that outlives the hang guard is killed, never left over."""
    try:
        return await asyncio.wait_for(proc.wait(), HANG_GUARD_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return None


def readings_or_any(anchor: StandinAnchor) -> bool:
    return bool(anchor.records_of(GW))

"""The gateway as systemd runs it: `python -m gateway run`, sd_notify, SIGTERM, the unit file,
and the configured MQTT source against a real mosquitto."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from firmware_sim.mqtt_publisher import Publisher
from gateway.spool import Spool, read_spool_report
from support.gateway_env import start_gateway, write_gateway_setup
from support.procs import Broker
from support.standin_anchor import StandinAnchor

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


async def recv(sock: socket.socket, timeout_s: float = 15.0) -> str:
    loop = asyncio.get_running_loop()
    data = await asyncio.wait_for(loop.sock_recv(sock, 4096), timeout_s)
    return data.decode()


async def test_ready_watchdog_and_stopping_reach_a_fake_notify_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    log = tmp_path / "gateway.log"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        server.setblocking(False)
        async with StandinAnchor() as anchor:
            setup = write_gateway_setup(tmp_path, anchor)
            proc = await start_gateway(
                setup, log, {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "200000"}
            )
            try:
                messages = [await recv(server)]
                while sum(m == "WATCHDOG=1" for m in messages) < 2:
                    messages.append(await recv(server))
                assert messages[0].startswith("READY=1\nSTATUS=gateway truck-07")
                proc.send_signal(signal.SIGTERM)
                while messages[-1] != "STOPPING=1":
                    messages.append(await recv(server))
                assert await asyncio.wait_for(proc.wait(), 20) == 0, log.read_text()
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
    # SIGTERM is a clean end: the next start writes no restart gap.
    spool = await Spool.open(setup.config.spool_file, _SealerStub(), budget_bytes=10**9)
    assert spool.previous_run_clean
    await spool.close()


class _SealerStub:
    gw = "truck-07"
    key_id = "0" * 16


async def test_a_startup_refusal_exits_with_a_sentence(tmp_path: Path) -> None:
    async with StandinAnchor() as anchor:
        setup = write_gateway_setup(tmp_path, anchor)
    os.chmod(setup.state_dir / "gateway.key", 0o644)
    log = tmp_path / "gateway.log"
    proc = await start_gateway(setup, log)
    assert await asyncio.wait_for(proc.wait(), 20) == 2
    assert "chmod 600" in log.read_text()


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed on this machine")
    unit = (REPO / "systemd" / "coldtrail-gateway.service").read_text()
    assert "Type=notify" in unit and "WatchdogSec=" in unit
    # verify checks that ExecStart exists: point it at this checkout's console script.
    script = Path(sys.executable).with_name("coldtrail-gateway")
    assert script.exists()
    local = tmp_path / "coldtrail-gateway.service"
    local.write_text(unit.replace("/usr/bin/coldtrail-gateway", str(script)))
    result = subprocess.run(
        [analyze, "verify", str(local)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "coldtrail-gateway.service" not in result.stderr, result.stderr


async def test_configured_mqtt_source_end_to_end(tmp_path: Path, mosquitto: Broker) -> None:
    broker = mosquitto
    mosquitto = broker
    log = tmp_path / "gateway.log"
    async with StandinAnchor() as anchor:
        setup = write_gateway_setup(tmp_path, anchor, batch={"max_records": 100, "max_age_s": 0.1})
        with setup.config_path.open("a") as f:
            f.write(
                "\n[[sources]]\n"
                'kind = "mqtt"\nname = "broker"\n'
                f'host = "{mosquitto.host}"\nport = {mosquitto.port}\n'
                "[[sources.routes]]\n"
                'pattern = "zigbee2mqtt/+"\nadapter = "zigbee2mqtt"\nsensor = "z2m-{1}"\n'
            )
        proc = await start_gateway(setup, log)
        try:
            with Publisher.connected(mosquitto.host, mosquitto.port) as pub:
                # Until the gateway has subscribed, messages have nowhere to go.
                for _ in range(200):
                    payload = json.dumps({"temperature": -99.0}).encode()
                    await asyncio.to_thread(pub.publish, "zigbee2mqtt/fridge-1", payload)
                    if anchor.records_of("truck-07"):
                        break
                    await asyncio.sleep(0.1)
                values = [round(-20 + i / 100, 2) for i in range(300)]
                for v in values:
                    payload = json.dumps({"temperature": v, "humidity": 40}).encode()
                    await asyncio.to_thread(pub.publish, "zigbee2mqtt/fridge-1", payload)
            for _ in range(300):
                got = [
                    r["val"]
                    for r in anchor.records_of("truck-07")
                    if r["type"] == "reading" and r["q"] == "temperature" and r["val"] != -99.0
                ]
                if len(got) >= len(values):
                    break
                await asyncio.sleep(0.05)
            assert got == values, log.read_text()[-2000:]
            assert all(
                r["src"] == "z2m-fridge-1"
                for r in anchor.records_of("truck-07")
                if r["type"] == "reading"
            )
        finally:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 20)
    # Whatever was not batched yet at SIGTERM stays durable for the next start.
    report = read_spool_report(setup.config.spool_file)
    assert report.previous_run_clean
    assert report.stats.next_seq - 1 == len(anchor.records_of("truck-07")) + report.stats.records

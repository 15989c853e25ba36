"""The MQTT source over TLS against a real mosquitto: the broker's certificate is verified.

A throw-away CA (openssl) signs the broker's certificate for 127.0.0.1. The same
mosquitto also listens in plain text on another port for the test's publisher.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import subprocess
from pathlib import Path

import pytest
from test_sources_mqtt import RecordingSink, config, start

from firmware_sim.mqtt_publisher import Publisher
from gateway.sources.mqtt import MqttSource
from support.procs import Broker, free_port, run_mosquitto

pytestmark = pytest.mark.integration

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _ca(d: Path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
             "-subj", f"/CN={name}", cwd=d)  # fmt: skip


@pytest.fixture
def tls_broker(tmp_path: Path) -> tuple[Broker, int, Path, Path]:
    """(broker with its plain port, its TLS port, the right CA file, an unrelated CA file)."""
    if not Path(OPENSSL).exists():
        pytest.fail("openssl is not installed (make test installs it)")
    d = tmp_path / "pki"
    d.mkdir()
    _ca(d, "ca")
    _ca(d, "other-ca")
    (d / "san.ext").write_text("subjectAltName = IP:127.0.0.1, DNS:localhost\n")
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", "broker.key", "-out", "broker.csr", "-subj", "/CN=broker",
             cwd=d)  # fmt: skip
    _openssl("x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "broker.pem", "-days", "2", "-extfile", "san.ext",
             cwd=d)  # fmt: skip
    tls_port = free_port()
    extra = (
        "user root\n"  # read the key files in the test's private tmp dir
        f"listener {tls_port} 127.0.0.1\n"
        "allow_anonymous true\n"
        f"cafile {d / 'ca.pem'}\ncertfile {d / 'broker.pem'}\nkeyfile {d / 'broker.key'}\n"
    )
    with run_mosquitto(tmp_path / "mosquitto", extra_conf=extra) as broker:
        yield broker, tls_port, d / "ca.pem", d / "other-ca.pem"


def _tls_source(broker: Broker, tls_port: int, client_id: str, ca: Path) -> MqttSource:
    cfg = config(broker, client_id=client_id, tls_ca_file=str(ca))
    return MqttSource(dataclasses.replace(cfg, port=tls_port))


async def test_tls_with_the_brokers_ca_carries_readings(
    tls_broker: tuple[Broker, int, Path, Path],
) -> None:
    broker, tls_port, ca, _ = tls_broker
    sink = RecordingSink()
    source = _tls_source(broker, tls_port, "gw-tls-1", ca)
    task = await start(source, sink)
    try:
        with Publisher.connected(broker.host, broker.port, "tls-pub") as pub:
            for i in range(5):
                pub.publish(
                    "sensors/probe-t", b'{"q": "temperature", "val": %d, "unit": "CEL"}' % i
                )
        await sink.wait_for_temperatures(5)
        assert sorted(m.val for m in sink.temperatures()) == [0, 1, 2, 3, 4]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_tls_refuses_a_broker_whose_certificate_another_ca_signed(
    tls_broker: tuple[Broker, int, Path, Path],
) -> None:
    broker, tls_port, _, other_ca = tls_broker
    sink = RecordingSink()
    source = _tls_source(broker, tls_port, "gw-tls-2", other_ca)
    task = asyncio.create_task(source.run(sink))
    try:
        for _ in range(300):
            if source.counters.reconnects >= 2:
                break
            await asyncio.sleep(0.02)
        assert source.counters.reconnects >= 2, source.counters
        assert not source.counters.connected
        assert "CERTIFICATE_VERIFY_FAILED" in source.counters.last_error, source.counters
        assert sink.attempts == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        # A cancelled handshake's socket is closed by asyncio on a later loop turn.
        await asyncio.sleep(0.2)

"""Real device payloads through the real gateway daemon and a real mosquitto: Ruuvi
Gateway raw advertisements, Tasmota in Fahrenheit, null values and physically
impossible values. Every loss ends up as a signed gap record with its code."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from pathlib import Path
from typing import Any

import pytest

from firmware_sim.mqtt_publisher import Publisher
from firmware_sim.payloads import Sample, ruuvi_raw, tasmota
from proofs.records import record_from_dict, verify
from support.gateway_env import start_gateway, write_gateway_setup
from support.procs import Broker
from support.standin_anchor import StandinAnchor

pytestmark = pytest.mark.integration

ROUTES = (
    ("ruuvi/+/+", "ruuvi", "ruuvi-{2}"),
    ("tele/+/SENSOR", "tasmota", "{1}"),
    ("zigbee2mqtt/+", "zigbee2mqtt", "z2m-{1}"),
    ("sensors/+", "json", "{1}"),
)
RUUVI_TOPIC = "ruuvi/C8:25:2D:8E:9C:2C/tag-1"
GW = {"gw_mac": "C8:25:2D:8E:9C:2C", "rssi": -62, "aoa": [], "ts": "", "coords": ""}
INVALID_DF5 = "0201061BFF9904058000FFFFFFFF800080008000FFFFFFFFFFFFFFFFFFFFFF"


def _raw(data: str) -> bytes:
    return json.dumps({**GW, "data": data}).encode()


async def test_device_payloads_become_readings_or_coded_signed_gaps(
    tmp_path: Path, mosquitto: Broker
) -> None:
    log = tmp_path / "gateway.log"
    async with StandinAnchor() as anchor:
        setup = write_gateway_setup(tmp_path, anchor, batch={"max_records": 100, "max_age_s": 0.1})
        with setup.config_path.open("a") as f:
            f.write(
                f'\n[[sources]]\nkind = "mqtt"\nname = "broker"\n'
                f'host = "{mosquitto.host}"\nport = {mosquitto.port}\n'
            )
            for pattern, adapter, sensor in ROUTES:
                f.write(
                    f'[[sources.routes]]\npattern = "{pattern}"\n'
                    f'adapter = "{adapter}"\nsensor = "{sensor}"\n'
                )
        proc = await start_gateway(setup, log)
        try:
            with Publisher.connected(mosquitto.host, mosquitto.port) as pub:
                # Until the gateway has subscribed, messages have nowhere to go.
                for _ in range(200):
                    await asyncio.to_thread(pub.publish, "sensors/ping", b'{"temperature": 1}')
                    if anchor.records_of("truck-07"):
                        break
                    await asyncio.sleep(0.1)
                messages = [
                    *ruuvi_raw("tag-1", Sample(-18.25, 61.5, 7, None)),
                    (RUUVI_TOPIC, _raw(INVALID_DF5)),
                    (RUUVI_TOPIC, _raw("0201061BFF99040512FC53")),  # cut short
                    *[
                        (t, p.replace(b'"TempUnit":"C"', b'"TempUnit":"F"'))
                        for t, p in tasmota("cold3", Sample(39.2, 50, 1, None))
                    ],
                    ("zigbee2mqtt/fridge", b'{"temperature": null, "humidity": 40}'),
                    ("sensors/probe-9", b'{"temperature": 1e9}'),
                    ("sensors/probe-9", b'{"temperature": -300}'),
                    ("sensors/probe-9", b'{"humidity": 140}'),
                    ("sensors/done", b'{"temperature": 2}'),
                ]
                for topic, payload in messages:
                    await asyncio.to_thread(pub.publish, topic, payload)
            records = await _records_until(anchor, lambda r: r.get("src") == "done")
        finally:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 20)

    for r in records:
        verify(record_from_dict(r), setup.key.public_key)
    readings = {
        (r["src"], r["q"]): (r["val"], r["unit"]) for r in records if r["type"] == "reading"
    }
    gaps = [(r["src"], r["reason"], r["detail"]) for r in records if r["type"] == "gap"]
    assert readings[("ruuvi-tag-1", "temperature")] == (-18.25, "CEL")
    assert readings[("ruuvi-tag-1", "humidity")] == (61.5, "P1")
    assert readings[("ruuvi-tag-1", "pressure")] == (100044, "PAL")
    assert readings[("cold3", "temperature")] == (39.2, "FAH")
    assert readings[("z2m-fridge", "humidity")] == (40, "P1")
    assert ("z2m-fridge", "temperature") not in readings
    assert not any(src == "probe-9" for src, _ in readings), "an implausible value was signed"

    nulls = sorted(d.split()[1] for s, reason, d in gaps if reason == "null-value")
    assert nulls == ["humidity", "pressure", "temperature", "temperature", "voltage"]
    assert any(
        s == "ruuvi-tag-1" and reason == "bad-frame" and d.startswith("bad-length:")
        for s, reason, d in gaps
    )
    implausible = [d for s, reason, d in gaps if reason == "implausible-value"]
    assert [s for s, reason, _ in gaps if reason == "implausible-value"] == ["probe-9"] * 3
    assert "temperature 1e+09 CEL" in implausible[0]
    assert "temperature -300 CEL" in implausible[1]
    assert "humidity 140 P1" in implausible[2]


async def _records_until(anchor: StandinAnchor, last: Any) -> list[dict[str, Any]]:
    for _ in range(300):
        records = anchor.records_of("truck-07")
        if any(last(r) for r in records):
            return records
        await asyncio.sleep(0.05)
    raise AssertionError("the last message never reached the anchor")

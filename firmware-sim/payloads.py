"""MQTT payloads in the formats real device families publish.

Each function returns ``[(topic, payload bytes), ...]`` for one sample.
Formats follow the projects' own documentation: Zigbee2MQTT device messages,
Ruuvi Gateway's decoded JSON and its default raw JSON (the BLE advertisement in
hex, data format 5), Shelly Gen1 MQTT topics and Gen2 RPC notifications, and
Tasmota's tele/SENSOR.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import struct
from dataclasses import dataclass

__all__ = [
    "FORMATS",
    "Sample",
    "plain_json",
    "ruuvi",
    "ruuvi_df5",
    "ruuvi_raw",
    "shelly_gen1",
    "shelly_gen2",
    "tasmota",
    "zigbee2mqtt",
]

Message = tuple[str, bytes]


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True, slots=True)
class Sample:
    """One sensor sample: what every format encodes in its own way."""

    temperature_c: float
    humidity_pct: float
    seq: int
    device_ms: int | None  # None: the device has no clock, or it was not set
    battery_pct: int = 97


def zigbee2mqtt(device: str, s: Sample) -> list[Message]:
    # Zigbee2MQTT sends no device clock by default ('last_seen' is off).
    return [
        (
            f"zigbee2mqtt/{device}",
            _dumps(
                {
                    "battery": s.battery_pct,
                    "humidity": s.humidity_pct,
                    "linkquality": 142,
                    "temperature": s.temperature_c,
                    "voltage": 2900,
                }
            ),
        )
    ]


def ruuvi(device: str, s: Sample, gateway: str = "C8:25:2D:8E:9C:2C") -> list[Message]:
    tag = device
    ts = "" if s.device_ms is None else str(s.device_ms // 1000)  # firmware sends a string
    body = {
        "gw_mac": gateway,
        "rssi": -71,
        "aoa": [],
        "gwts": ts,
        "ts": ts,
        "data": "0201061BFF99040512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F",
        "coords": "",
        "dataFormat": 5,
        "temperature": s.temperature_c,
        "humidity": s.humidity_pct,
        "pressure": 100_044,
        "accelX": 0.004,
        "accelY": -0.004,
        "accelZ": 1.036,
        "movementCounter": 66,
        "voltage": 2.977,
        "txPower": 4,
        "measurementSequenceNumber": s.seq % 65_536,
        "id": tag,
    }
    return [(f"ruuvi/{gateway}/{tag}", _dumps(body))]


def ruuvi_df5(s: Sample, mac: bytes, battery_mv: int = 2977, tx_power_dbm: int = 4) -> bytes:
    """The 24-byte RAWv2 payload as a RuuviTag encodes it: fixed-point, clipped to
    the format's range (docs.ruuvi.com, data format 5)."""

    def clip(value: float, low: int, high: int) -> int:
        return max(low, min(high, round(value)))

    return struct.pack(
        ">BhHHhhhHBH6s",
        5,
        clip(s.temperature_c * 200, -32767, 32767),
        clip(s.humidity_pct * 400, 0, 65534),
        100_044 - 50_000,
        4, -4, 1036,  # acceleration mG: lying flat
        (battery_mv - 1600) << 5 | (tx_power_dbm + 40) // 2,
        66,
        s.seq % 65_535,  # 65535 means "not available"
        mac,
    )  # fmt: skip


def ruuvi_raw(device: str, s: Sample, gateway: str = "C8:25:2D:8E:9C:2C") -> list[Message]:
    """What a Ruuvi Gateway publishes by default: the advertisement, undecoded."""
    mac = hashlib.sha256(device.encode()).digest()[:6]
    manufacturer = b"\xff\x99\x04" + ruuvi_df5(s, mac)  # AD type 0xFF, company 0x0499 LE
    advertisement = b"\x02\x01\x06" + bytes([len(manufacturer)]) + manufacturer
    ts = "" if s.device_ms is None else str(s.device_ms // 1000)
    body = {
        "gw_mac": gateway,
        "rssi": -62,
        "aoa": [],
        "gwts": ts,
        "ts": ts,
        "data": advertisement.hex().upper(),
        "coords": "",
    }
    return [(f"ruuvi/{gateway}/{device}", _dumps(body))]


def shelly_gen1(device: str, s: Sample) -> list[Message]:
    base = f"shellies/{device}/sensor"
    return [
        (f"{base}/temperature", f"{s.temperature_c:.2f}".encode()),
        (f"{base}/humidity", f"{s.humidity_pct:.1f}".encode()),
        (f"{base}/battery", str(s.battery_pct).encode()),
    ]


def shelly_gen2(device: str, s: Sample) -> list[Message]:
    ts = None if s.device_ms is None else s.device_ms / 1000
    params = {
        "ts": ts,
        "temperature:0": {
            "id": 0,
            "tC": s.temperature_c,
            "tF": round(s.temperature_c * 9 / 5 + 32, 1),
        },
        "humidity:0": {"id": 0, "rh": s.humidity_pct},
        "devicepower:0": {
            "id": 0,
            "battery": {"V": 5.9, "percent": s.battery_pct},
            "external": {"present": False},
        },
        "sys": {"mac": "84FCE63AD204", "uptime": 6021, "unixtime": None if ts is None else int(ts)},
    }
    body = {
        "src": device,
        "dst": f"{device}/events",
        "method": "NotifyFullStatus",
        "params": params,
    }
    return [(f"{device}/events/rpc", _dumps(body))]


def tasmota(device: str, s: Sample, zone_offset_h: int = 1) -> list[Message]:
    # Tasmota prints its local time without an offset: the sim runs it at UTC+1.
    if s.device_ms is None:
        local = "1970-01-01T00:00:00"
    else:
        moment = dt.datetime.fromtimestamp(s.device_ms / 1000, dt.UTC)
        local = (
            (moment + dt.timedelta(hours=zone_offset_h))
            .replace(tzinfo=None)
            .isoformat(timespec="seconds")
        )
    body = {
        "Time": local,
        "DS18B20": {"Id": "01144A0CB2AA", "Temperature": s.temperature_c},
        "TempUnit": "C",
    }
    return [(f"tele/{device}/SENSOR", _dumps(body))]


def plain_json(device: str, s: Sample) -> list[Message]:
    body: dict[str, object] = {
        "temperature": s.temperature_c,
        "humidity": s.humidity_pct,
        "unit": "C",
        "seq": s.seq,
    }
    if s.device_ms is not None:
        body["t"] = s.device_ms
    return [(f"sensors/{device}", _dumps(body))]


FORMATS = {
    "zigbee2mqtt": zigbee2mqtt,
    "ruuvi": ruuvi,
    "ruuvi-raw": ruuvi_raw,
    "shelly-gen1": shelly_gen1,
    "shelly-gen2": shelly_gen2,
    "tasmota": tasmota,
    "json": plain_json,
}

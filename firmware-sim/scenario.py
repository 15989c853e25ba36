"""Deterministic generators for the simulated devices.

Tests and the demo drive these in-process; the CLI writes their output to a
pty or a broker. Every emission says what it is (``kind``) so a test can
compute what the gateway must accept and what it must reject.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from . import gs1
from .faults import EPOCH_RESET_MS, FaultPlan, corrupt_frame, garbage_bytes, scanner_noise
from .frames import encode_frame
from .payloads import FORMATS, Sample
from .thermal import ThermalModel

__all__ = [
    "DEFAULT_START_MS",
    "LoggerEmission",
    "MqttEmission",
    "ScanEmission",
    "custody_scans",
    "logger_stream",
    "mqtt_stream",
]

DEFAULT_START_MS = 1_795_248_000_000  # 2026-11-21T08:00:00Z: fixed so seeds replay exactly
NO_FAULTS = FaultPlan()


@dataclass(frozen=True, slots=True)
class LoggerEmission:
    data: bytes  # bytes to write to the serial line
    kind: str  # "frame" | "corrupt" | "garbage"
    sensor: str = ""
    seq: int = -1
    temperature_c: float | None = None
    humidity_pct: float | None = None
    device_ms: int | None = None  # as sent; 1970 values included


class _DeviceClock:
    """A device RTC that drifts with faults: jumps stay, 1970 resets are one-off."""

    def __init__(self, start_ms: int, period_ms: int, rng: random.Random, faults: FaultPlan):
        self._now = start_ms
        self._period = period_ms
        self._offset = 0
        self._rng = rng
        self._faults = faults

    def tick(self) -> int:
        self._now += self._period
        if self._rng.random() < self._faults.clock_jump:
            self._offset += self._rng.choice((-1, 1)) * self._rng.randrange(1, 48) * 3_600_000
        if self._rng.random() < self._faults.epoch_reset:
            return EPOCH_RESET_MS + self._rng.randrange(10**6)
        return self._now + self._offset


def logger_stream(
    seed: int,
    count: int,
    sensors: Sequence[str] = ("TH-01",),
    faults: FaultPlan = NO_FAULTS,
    start_ms: int = DEFAULT_START_MS,
    period_ms: int = 1000,
    ending: bytes = b"\r\n",
    with_clock: bool = True,
) -> Iterator[LoggerEmission]:
    """``count`` samples per sensor, round robin, with faults drawn from ``seed``."""
    rng = random.Random(seed)
    models = {s: ThermalModel(rng, excursion_rate=faults.excursion) for s in sensors}
    clocks = {s: _DeviceClock(start_ms, period_ms, rng, faults) for s in sensors}
    for seq in range(count):
        for sensor in sensors:
            temp, hum = models[sensor].step()
            dev = clocks[sensor].tick() if with_clock else None
            if rng.random() < faults.garbage:
                yield LoggerEmission(garbage_bytes(rng), "garbage")
            if rng.random() < faults.dropout:
                continue  # never sent: the receiver sees the seq jump
            frame = encode_frame(sensor, seq, temp, hum, dev, ending)
            if rng.random() < faults.noise:
                yield LoggerEmission(corrupt_frame(frame, rng), "corrupt", sensor, seq)
                continue
            yield LoggerEmission(frame, "frame", sensor, seq, temp, hum, dev)


@dataclass(frozen=True, slots=True)
class ScanEmission:
    step: str  # packing | loading | unloading | receiving
    read_point: str
    data: bytes  # as the scanner sends it, suffix included
    kind: str  # "gs1" | "label" | "garbage" | "misread"
    expect: dict[str, str] = field(default_factory=dict)  # AIs a parser must find


def custody_scans(
    seed: int,
    cases: int = 4,
    suffix: bytes = b"\r\n",
    faults: FaultPlan = NO_FAULTS,
    start: dt.date = dt.date(2026, 11, 21),
) -> list[ScanEmission]:
    """A lot packed at line 4, palletised, loaded on truck 07 and unloaded and
    received at cold room 3, as a scanner at each read point would read it."""
    rng = random.Random(seed)
    gtin = gs1.gtin14(1, f"{rng.randrange(100000):05d}")
    lot = f"L{start:%y%m%d}{rng.choice('ABCDEFGH')}"
    expiry = f"{start + dt.timedelta(days=21):%y%m%d}"
    pallet = gs1.sscc(rng.randrange(10**8, 10**9))
    max_c, min_c = 8.0, 2.0
    out: list[ScanEmission] = []

    def emit(
        step: str, rp: str, sym: str, data: str, expect: dict[str, str], kind: str = "gs1"
    ) -> None:
        if rng.random() < faults.garbage:
            out.append(ScanEmission(step, rp, scanner_noise(rng) + suffix, "garbage"))
        if kind == "gs1" and not data.startswith("http") and rng.random() < faults.noise:
            # A misread that slipped past the symbology check: one digit changed.
            i = rng.randrange(len(sym) + 2, len(sym) + 16)
            text = sym + data
            digit = str((int(text[i]) + 1) % 10)
            out.append(
                ScanEmission(
                    step, rp, (text[:i] + digit + text[i + 1 :]).encode() + suffix, "misread"
                )
            )
            return
        out.append(ScanEmission(step, rp, (sym + data).encode() + suffix, kind, expect))

    for case in range(cases):
        serial = f"{case + 1:06d}"
        pairs = [
            ("01", gtin),
            ("17", expiry),
            ("4331", gs1.pack_temperature(max_c)),
            ("4333", gs1.pack_temperature(min_c)),
            ("10", lot),
        ]
        emit(
            "packing",
            "line-4",
            "]C1",
            gs1.element_string(pairs),
            {
                "01": gtin,
                "17": expiry,
                "10": lot,
                "4331": "000800",
                "max_temp_CEL": "8.00",
                "4333": "000200",
                "min_temp_CEL": "2.00",
            },
        )
        if case % 2:
            dm = gs1.element_string([("01", gtin), ("17", expiry), ("10", lot), ("21", serial)])
            emit("packing", "line-4", "]d2", dm, {"01": gtin, "10": lot, "21": serial})
    emit(
        "packing",
        "line-4",
        "]C1",
        gs1.element_string([("00", pallet), ("02", gtin), ("37", str(cases)), ("10", lot)]),
        {"00": pallet, "02": gtin, "37": str(cases), "10": lot},
    )
    emit("loading", "truck-07", "]C0", "TRUCK-07", {}, kind="label")
    emit("loading", "truck-07", "]C1", "00" + pallet, {"00": pallet})
    emit("unloading", "cold-room-3", "]C1", "00" + pallet, {"00": pallet})
    for case in range(min(cases, 2)):
        serial = f"{case + 1:06d}"
        emit(
            "receiving",
            "cold-room-3",
            "]Q1",
            gs1.digital_link(gtin, lot, serial, expiry),
            {"01": gtin, "10": lot, "21": serial, "17": expiry},
        )
    return out


@dataclass(frozen=True, slots=True)
class MqttEmission:
    topic: str
    payload: bytes
    fmt: str
    device: str
    sample: Sample


def mqtt_stream(
    seed: int,
    count: int,
    formats: Sequence[str] = tuple(FORMATS),
    devices_per_format: int = 1,
    faults: FaultPlan = NO_FAULTS,
    start_ms: int = DEFAULT_START_MS,
    period_ms: int = 1000,
) -> Iterator[MqttEmission]:
    """``count`` samples from every device of every format, round robin."""
    rng = random.Random(seed)
    devices = [
        (fmt, f"{fmt.replace('-', '')}-{i + 1:02d}")
        for fmt in formats
        for i in range(devices_per_format)
    ]
    for fmt, _ in devices:
        if fmt not in FORMATS:
            raise ValueError(f"unknown MQTT format {fmt!r}; known: {', '.join(FORMATS)}")
    models = {d: ThermalModel(rng, excursion_rate=faults.excursion) for d in devices}
    clocks = {d: _DeviceClock(start_ms, period_ms, rng, faults) for d in devices}
    for seq in range(count):
        for fmt, name in devices:
            temp, hum = models[(fmt, name)].step()
            dev_ms = clocks[(fmt, name)].tick()
            if rng.random() < faults.dropout:
                continue
            sample = Sample(temp, hum, seq, dev_ms)
            for topic, payload in FORMATS[fmt](name, sample):
                yield MqttEmission(topic, payload, fmt, name, sample)

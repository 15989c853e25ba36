"""Serial sources reading real ptys through pyserial, fed by the firmware simulator."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from firmware_sim.faults import FaultPlan
from firmware_sim.pty_device import PtyDevice
from firmware_sim.scenario import custody_scans, logger_stream
from gateway.observations import BadInput, Measurement, Observation, ScanEvent
from gateway.sources.backoff import BackoffPolicy
from gateway.sources.scanner import SerialScannerConfig, SerialScannerSource
from gateway.sources.serial_sensor import SerialSensorConfig, SerialSensorSource

pytestmark = pytest.mark.integration

FAST = BackoffPolicy(initial_s=0.05, max_s=0.2)


class RecordingSink:
    def __init__(self) -> None:
        self.observations: list[Observation] = []
        self.changed = asyncio.Event()

    async def submit(self, observations: Sequence[Observation]) -> None:
        self.observations.extend(observations)
        self.changed.set()

    async def wait_until(self, predicate, timeout_s: float = 15.0) -> None:  # type: ignore[no-untyped-def]
        async def poll() -> None:
            while not predicate(self.observations):
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(poll(), timeout_s)


def measurements(obs: list[Observation]) -> list[Measurement]:
    return [o for o in obs if isinstance(o, Measurement)]


async def start(source, sink):  # type: ignore[no-untyped-def]
    task = asyncio.create_task(source.run(sink))
    # pyserial opens the port in a worker thread; wait until the source holds it.
    for _ in range(200):
        if source.counters.connected:
            return task
        await asyncio.sleep(0.02)
    task.cancel()
    raise TimeoutError("source never connected")


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_logger_on_a_pty_with_partial_lines_and_faults(tmp_path: Path) -> None:
    link = tmp_path / "ttyCT0"
    faults = FaultPlan(noise=0.2, garbage=0.2, dropout=0.1, epoch_reset=0.1)
    emissions = list(logger_stream(seed=11, count=30, sensors=("TH-01", "TH-02"), faults=faults))
    good = [e for e in emissions if e.kind == "frame"]
    assert len(good) < len(emissions)  # the seed does inject faults
    with PtyDevice(link) as dev:
        source = SerialSensorSource(
            SerialSensorConfig("serial-ct0", str(link), baudrate=115200, backoff=FAST)
        )
        sink = RecordingSink()
        task = await start(source, sink)
        try:
            # Awkward split sizes so frames straddle reads.
            await asyncio.to_thread(dev.write, b"".join(e.data for e in emissions), 7, 0.001)
            await sink.wait_until(lambda obs: len(measurements(obs)) >= 2 * len(good))
        finally:
            await stop(task)
    got = measurements(sink.observations)
    temps = [(m.src, m.dev_seq, m.val) for m in got if m.q == "temperature"]
    assert temps == [(e.sensor, e.seq, e.temperature_c) for e in good]
    for m, e in zip([m for m in got if m.q == "temperature"], good, strict=True):
        assert m.dev_t == (e.device_ms if e.device_ms and e.device_ms > 1.6e12 else None)
    bad = [o for o in sink.observations if isinstance(o, BadInput)]
    assert bad, "corrupted frames must surface as BadInput"
    assert source.counters.frames_ok == len(good)
    assert source.counters.device_seq_missed > 0  # dropouts and corrupted frames
    assert sum(source.counters.frames_bad.values()) == len(bad)


async def test_unplug_and_replug_through_the_symlink(tmp_path: Path) -> None:
    link = tmp_path / "ttyCT0"
    frames = [e.data for e in logger_stream(seed=1, count=6)]
    source = SerialSensorSource(SerialSensorConfig("serial-ct0", str(link), backoff=FAST))
    sink = RecordingSink()
    with PtyDevice(link) as dev:
        task = await start(source, sink)
        dev.write(b"".join(frames[:3]))
        await sink.wait_until(lambda obs: len(measurements(obs)) >= 6)
    # Unplugged: the source must notice, back off and reopen the new device.
    for _ in range(500):
        if not source.counters.connected:
            break
        await asyncio.sleep(0.01)
    assert not source.counters.connected
    with PtyDevice(link) as dev:
        for _ in range(500):
            if source.counters.connected:
                break
            await asyncio.sleep(0.01)
        assert source.counters.connected
        dev.write(b"".join(frames[3:]))
        await sink.wait_until(lambda obs: len(measurements(obs)) >= 12)
        await stop(task)
    assert [m.dev_seq for m in measurements(sink.observations) if m.q == "temperature"] == list(
        range(6)
    )
    assert source.counters.reconnects >= 1


async def test_scanner_on_a_pty_reads_the_custody_scenario(tmp_path: Path) -> None:
    link = tmp_path / "ttyCT1"
    emissions = custody_scans(seed=4, cases=4, suffix=b"\t", faults=FaultPlan(garbage=0.3))
    with PtyDevice(link) as dev:
        source = SerialScannerSource(SerialScannerConfig("scanner-line4", str(link), backoff=FAST))
        sink = RecordingSink()
        task = await start(source, sink)
        try:
            for e in emissions:
                dev.write(e.data, split_every=5)
            await sink.wait_until(lambda obs: len(obs) >= len(emissions))
        finally:
            await stop(task)
    assert len(sink.observations) == len(emissions)
    for e, obs in zip(emissions, sink.observations, strict=True):
        if e.kind == "garbage":
            assert isinstance(obs, BadInput)
        else:
            assert isinstance(obs, ScanEvent), (e, obs)
            assert all(obs.gs1[ai] == v for ai, v in e.expect.items())

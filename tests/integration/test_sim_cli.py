"""`coldtrail-sim` as a separate process: a pty logger and MQTT sensors."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from gateway.observations import Measurement, Observation, ScanEvent
from gateway.sources.backoff import BackoffPolicy
from gateway.sources.mqtt import MqttSource, MqttSourceConfig
from gateway.sources.mqtt_adapters import TopicRoute
from gateway.sources.scanner import SerialScannerConfig, SerialScannerSource
from gateway.sources.serial_sensor import SerialSensorConfig, SerialSensorSource
from support.procs import Broker, run_mosquitto, stop_process

pytestmark = pytest.mark.integration

SIM = str(Path(sys.executable).with_name("coldtrail-sim"))
FAST = BackoffPolicy(initial_s=0.05, max_s=0.2)


class RecordingSink:
    def __init__(self) -> None:
        self.observations: list[Observation] = []
        self.changed = asyncio.Event()

    async def submit(self, observations: Sequence[Observation]) -> None:
        self.observations.extend(observations)
        self.changed.set()

    async def wait_for(self, kind: type, n: int, timeout_s: float = 20.0) -> list[Observation]:
        async def poll() -> None:
            while sum(isinstance(o, kind) for o in self.observations) < n:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(poll(), timeout_s)
        return [o for o in self.observations if isinstance(o, kind)]


@contextlib.contextmanager
def sim(*args: str) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([SIM, *args], stdout=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        stop_process(proc)
        if proc.stdout is not None:
            proc.stdout.close()


async def wait_for_path(path: Path, proc: subprocess.Popen[str]) -> None:
    for _ in range(500):
        if path.exists():
            return
        assert proc.poll() is None, "simulator exited early"
        await asyncio.sleep(0.01)
    raise TimeoutError(f"{path} never appeared")


async def run_source(source, sink: RecordingSink, kind: type, n: int) -> list[Observation]:  # type: ignore[no-untyped-def]
    task = asyncio.create_task(source.run(sink))
    try:
        return await sink.wait_for(kind, n)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_logger_process_on_a_pty_link(tmp_path: Path) -> None:
    link = tmp_path / "ttyCT0"
    with sim("logger", "--link", str(link), "--count", "200", "--rate", "40", "--linger", "20",
             "--sensors", "TH-01,TH-02", "--ending", "lf", "--split", "4") as proc:  # fmt: skip
        await wait_for_path(link, proc)
        source = SerialSensorSource(SerialSensorConfig("serial-ct0", str(link), backoff=FAST))
        got = await run_source(source, RecordingSink(), Measurement, 16)
    temps = [(m.src, m.dev_seq) for m in got if isinstance(m, Measurement) and m.q == "temperature"]
    # The gateway may open the port after the first frames went out; what it
    # reads must be whole frames, in order, per sensor.
    for sensor in ("TH-01", "TH-02"):
        seqs = [s for src, s in temps if src == sensor]
        assert seqs == sorted(seqs) and seqs
    assert source.counters.frames_bad == {}


async def test_scanner_process_on_a_pty_link(tmp_path: Path) -> None:
    link = tmp_path / "ttyCT1"
    with sim("scanner", "--link", str(link), "--cases", "2", "--rate", "3",
             "--suffix", "tab", "--linger", "20") as proc:  # fmt: skip
        await wait_for_path(link, proc)
        source = SerialScannerSource(SerialScannerConfig("scanner-1", str(link), backoff=FAST))
        got = await run_source(source, RecordingSink(), ScanEvent, 3)
    assert all(isinstance(o, ScanEvent) and o.sym for o in got)


async def test_mqtt_process_publishes_every_format(tmp_path: Path) -> None:
    with run_mosquitto(tmp_path / "mosquitto") as broker:
        await _mqtt_round(broker)


async def _mqtt_round(broker: Broker) -> None:
    routes = (
        TopicRoute("zigbee2mqtt/+", "zigbee2mqtt", "{1}"),
        TopicRoute("ruuvi/+/+", "ruuvi", "{2}"),
        TopicRoute("shellies/+/sensor/+", "shelly-gen1", "{1}"),
        TopicRoute("+/events/rpc", "shelly-gen2", "{1}"),
        TopicRoute("tele/+/SENSOR", "tasmota", "{1}"),
        TopicRoute("sensors/+", "json", "{1}"),
    )
    source = MqttSource(
        MqttSourceConfig("mqtt-main", broker.host, routes, port=broker.port, backoff=FAST)
    )
    sink = RecordingSink()
    task = asyncio.create_task(source.run(sink))
    try:
        for _ in range(500):
            if source.counters.connected:
                break
            await asyncio.sleep(0.01)
        with sim("mqtt", "--host", broker.host, "--port", str(broker.port), "--count", "2",
                 "--rate", "0", "--clock-jump", "0.5", "--epoch-reset", "0.3") as proc:  # fmt: skip
            await sink.wait_for(Measurement, 1)
            await asyncio.to_thread(proc.wait, 20)
            assert proc.returncode == 0
        got = await sink.wait_for(Measurement, 1)
        for _ in range(200):
            temps = {o.src for o in got if isinstance(o, Measurement) and o.q == "temperature"}
            if len(temps) == 7:
                break
            await asyncio.sleep(0.02)
            got = [o for o in sink.observations if isinstance(o, Measurement)]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert temps == {
        "zigbee2mqtt-01", "ruuvi-01", "ruuviraw-01", "shellygen1-01", "shellygen2-01",
        "tasmota-01", "json-01",
    }  # fmt: skip
    assert all(o.dev_t is None or o.dev_t > 1_577_836_800_000 for o in got)  # no 1970 leaks
    assert source.counters.frames_bad == {}


async def test_scenario_creates_both_devices_and_cleans_up(tmp_path: Path) -> None:
    with sim("scenario", "--dir", str(tmp_path), "--count", "3", "--rate", "20",
             "--linger", "1") as proc:  # fmt: skip
        await wait_for_path(tmp_path / "ttyCT0", proc)
        await wait_for_path(tmp_path / "ttyCT1", proc)
        await asyncio.to_thread(proc.wait, 20)
        assert proc.returncode == 0
    assert not (tmp_path / "ttyCT0").exists() and not (tmp_path / "ttyCT1").exists()

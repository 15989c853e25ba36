"""The MQTT source against a real mosquitto: formats, ack after commit, reconnects."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from firmware_sim.mqtt_publisher import Publisher
from firmware_sim.payloads import FORMATS
from firmware_sim.scenario import mqtt_stream
from gateway.observations import Measurement, Observation
from gateway.sources.backoff import BackoffPolicy
from gateway.sources.mqtt import MqttSource, MqttSourceConfig
from gateway.sources.mqtt_adapters import TopicRoute
from support.procs import Broker, run_mosquitto

pytestmark = pytest.mark.integration

FAST = BackoffPolicy(initial_s=0.05, max_s=0.3)
ROUTES = (
    TopicRoute("zigbee2mqtt/+", "zigbee2mqtt", "{1}"),
    TopicRoute("ruuvi/+/+", "ruuvi", "{2}"),
    TopicRoute("shellies/+/sensor/+", "shelly-gen1", "{1}"),
    TopicRoute("+/events/rpc", "shelly-gen2", "{1}"),
    TopicRoute("tele/+/SENSOR", "tasmota", "{1}", device_zone="Etc/GMT-1"),
    TopicRoute("sensors/+", "json", "{1}"),
)


class RecordingSink:
    """Records submits; ``gate`` (when set up) holds submit until released, and
    ``fail_first`` makes the first submits raise, like a full disk."""

    def __init__(self, fail_first: int = 0, gated: bool = False) -> None:
        self.observations: list[Observation] = []
        self.attempts = 0
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()
        if not gated:
            self.gate.set()
        self._fail = fail_first
        self._changed = asyncio.Event()

    async def submit(self, observations: Sequence[Observation]) -> None:
        self.attempts += 1
        self.entered.set()
        await self.gate.wait()
        if self._fail:
            self._fail -= 1
            raise OSError("spool commit failed")
        self.observations.extend(observations)
        self._changed.set()

    def temperatures(self) -> list[Measurement]:
        return [o for o in self.observations if isinstance(o, Measurement) and o.q == "temperature"]

    async def wait_for_temperatures(self, n: int, timeout_s: float = 15.0) -> None:
        async def poll() -> None:
            while len(self.temperatures()) < n:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(poll(), timeout_s)


def config(broker: Broker, **kw) -> MqttSourceConfig:  # type: ignore[no-untyped-def]
    kw.setdefault("client_id", "gw-test-1")
    return MqttSourceConfig("mqtt-main", broker.host, ROUTES, port=broker.port, backoff=FAST, **kw)


async def start(source: MqttSource, sink: RecordingSink) -> asyncio.Task[None]:
    task = asyncio.create_task(source.run(sink))
    for _ in range(500):
        if source.counters.connected:
            return task
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    task.cancel()
    raise TimeoutError("MQTT source never subscribed")


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def publish(broker: Broker, messages: list[tuple[str, bytes]], retain: bool = False) -> None:
    def send() -> None:
        with Publisher.connected(broker.host, broker.port, "sim-pub") as pub:
            for topic, payload in messages:
                pub.publish(topic, payload, retain=retain)

    await asyncio.to_thread(send)


def sim_messages(count: int, seed: int = 3) -> list[tuple[str, bytes]]:
    return [(e.topic, e.payload) for e in mqtt_stream(seed, count)]


async def test_all_formats_end_to_end_from_the_simulator(mosquitto: Broker) -> None:
    source = MqttSource(config(mosquitto))
    sink = RecordingSink()
    task = await start(source, sink)
    emissions = list(mqtt_stream(seed=3, count=3))
    await publish(mosquitto, [(e.topic, e.payload) for e in emissions])
    samples = {(e.device, e.sample.seq): e.sample for e in emissions}
    await sink.wait_for_temperatures(len(samples))
    await stop(task)
    got = sorted((m.src, m.val) for m in sink.temperatures())
    assert got == sorted((dev, s.temperature_c) for (dev, _), s in samples.items())
    by_src = {m.src: m for m in sink.temperatures()}
    assert by_src["ruuvi-01"].dev_seq is not None  # measurementSequenceNumber
    assert by_src["tasmota-01"].dev_t is not None  # local time read in the configured zone
    assert by_src["zigbee2mqtt-01"].dev_t is None  # no device clock
    assert source.counters.frames_bad == {}
    assert source.acked == len(emissions)


async def test_puback_only_after_submit_returns(mosquitto: Broker) -> None:
    """The gateway dies while the spool commit is in progress: the broker must
    still hold the message and deliver it to the restarted gateway."""
    first = MqttSource(config(mosquitto))
    blocked = RecordingSink(gated=True)
    task = await start(first, blocked)
    await publish(mosquitto, [("sensors/probe-1", b'{"temperature": 3.25}')])
    await asyncio.wait_for(blocked.entered.wait(), 10)
    assert first.acked == 0
    await stop(task)  # "crash" before the commit returned: no PUBACK was sent
    assert blocked.observations == []

    second = MqttSource(config(mosquitto))
    sink = RecordingSink()
    task = await start(second, sink)
    await sink.wait_for_temperatures(1)
    await stop(task)
    assert [(m.src, m.val) for m in sink.temperatures()] == [("probe-1", 3.25)]
    assert second.acked == 1


async def test_failed_submit_disconnects_and_the_broker_redelivers(mosquitto: Broker) -> None:
    source = MqttSource(config(mosquitto))
    sink = RecordingSink(fail_first=2)
    task = await start(source, sink)
    await publish(mosquitto, [("zigbee2mqtt/fridge", b'{"temperature": 4.5, "humidity": 60}')])
    await sink.wait_for_temperatures(1)
    await stop(task)
    assert sink.attempts == 3
    assert [(m.src, m.val) for m in sink.temperatures()] == [("fridge", 4.5)]
    assert source.counters.reconnects >= 2
    assert source.counters.frames_ok == 1  # counted once, when committed
    assert "fridge" in source.counters.last_reading_mono


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_messages_sent_while_the_gateway_was_down_arrive(
    mosquitto: Broker, protocol: str
) -> None:
    source = MqttSource(config(mosquitto, protocol=protocol))
    task = await start(source, RecordingSink())
    await stop(task)  # gateway down; its persistent session stays on the broker
    await publish(mosquitto, sim_messages(2))
    source = MqttSource(config(mosquitto, protocol=protocol))
    sink = RecordingSink()
    task = await start(source, sink)
    await sink.wait_for_temperatures(2 * len(FORMATS))  # every format x 2 samples
    await stop(task)
    assert len(sink.temperatures()) == 2 * len(FORMATS)


async def test_reconnects_after_the_broker_restarts(tmp_path: Path) -> None:
    with run_mosquitto(tmp_path / "b1") as broker:
        port = broker.port
        source = MqttSource(config(broker))
        sink = RecordingSink()
        task = await start(source, sink)
        await publish(broker, [("sensors/p1", b'{"temperature": 1.5}')])
        await sink.wait_for_temperatures(1)
    # Broker gone: the source keeps retrying with backoff instead of dying.
    for _ in range(500):
        if not source.counters.connected:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.5)
    assert not task.done()
    with run_mosquitto(tmp_path / "b2", port=port) as broker:
        for _ in range(1000):
            if source.counters.connected:
                break
            await asyncio.sleep(0.01)
        assert source.counters.connected
        await publish(broker, [("sensors/p1", b'{"temperature": 2.5}')])
        await sink.wait_for_temperatures(2)
        await stop(task)
    assert [m.val for m in sink.temperatures()] == [1.5, 2.5]
    assert source.counters.reconnects >= 1


async def test_retained_values_are_acked_but_not_recorded(mosquitto: Broker) -> None:
    await publish(mosquitto, [("sensors/old", b'{"temperature": 9.9}')], retain=True)
    source = MqttSource(config(mosquitto))
    sink = RecordingSink()
    task = await start(source, sink)
    await publish(mosquitto, [("sensors/new", b'{"temperature": 1.0}')])
    await sink.wait_for_temperatures(1)
    await stop(task)
    assert [m.src for m in sink.temperatures()] == ["new"]
    assert source.retained_skipped == 1


async def test_bad_payloads_are_counted_and_acked(mosquitto: Broker) -> None:
    source = MqttSource(config(mosquitto))
    sink = RecordingSink()
    task = await start(source, sink)
    await publish(
        mosquitto,
        [
            ("sensors/p", b"\xff{"),
            ("tele/x/SENSOR", b"{nope"),
            ("sensors/p", b'{"temperature": 3}'),
        ],
    )
    await sink.wait_for_temperatures(1)
    await stop(task)
    assert source.counters.frames_bad == {"not-utf8": 1, "not-json": 1}
    assert source.acked == 3


class SlowSink(RecordingSink):
    """A spool that takes its time: a backlog builds while it commits."""

    async def submit(self, observations: Sequence[Observation]) -> None:
        await asyncio.sleep(0.004)
        await super().submit(observations)


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_a_backlog_waits_at_the_broker_not_in_gateway_memory(
    mosquitto: Broker, protocol: str
) -> None:
    """mosquitto 2.0.11 stops honouring Receive Maximum once PUBACKs flow; the source
    must still hold only a few batches in memory (docs/adr/0211)."""
    source = MqttSource(config(mosquitto, max_batch=32, protocol=protocol))
    task = await start(source, RecordingSink())
    await stop(task)  # the persistent session stays; the backlog queues for it
    n = 5000
    await publish(mosquitto, [(f"sensors/p{i % 20}", b'{"temperature": %d}' % i) for i in range(n)])
    source = MqttSource(config(mosquitto, max_batch=32, protocol=protocol))
    sink = SlowSink()
    task = await start(source, sink)
    await sink.wait_for_temperatures(n, timeout_s=90)
    await stop(task)
    assert sorted(int(m.val) for m in sink.temperatures()) == list(range(n))  # once each
    if protocol == "5":  # mosquitto floods an MQTT 5 session: only the gate holds it back
        assert source.read_pauses >= 1
    # Without the gate the whole backlog lands in memory (~n); with it, a few batches
    # plus what one socket read brings in.
    assert source.queued_high_water < n // 3, source.queued_high_water


async def test_a_route_added_in_the_config_takes_effect_on_a_resumed_session(
    mosquitto: Broker,
) -> None:
    first = (TopicRoute("sensors/+", "json", "{1}"),)
    source = MqttSource(
        MqttSourceConfig(
            "mqtt-main",
            mosquitto.host,
            first,
            port=mosquitto.port,
            client_id="gw-route",
            backoff=FAST,
        )
    )
    await stop(await start(source, RecordingSink()))  # the session persists at the broker
    both = (*first, TopicRoute("zigbee2mqtt/+", "zigbee2mqtt", "{1}"))
    source = MqttSource(
        MqttSourceConfig(
            "mqtt-main",
            mosquitto.host,
            both,
            port=mosquitto.port,
            client_id="gw-route",
            backoff=FAST,
        )
    )
    sink = RecordingSink()
    task = await start(source, sink)
    await publish(mosquitto, [("zigbee2mqtt/fridge", b'{"temperature": 4.5}')])
    await sink.wait_for_temperatures(1)
    await stop(task)
    assert [m.src for m in sink.temperatures()] == ["fridge"]

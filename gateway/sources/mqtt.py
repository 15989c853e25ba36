"""MQTT sensors through aiomqtt, acknowledged only after the spool commit.

Each session connects with a stable client id and a persistent session
(MQTT 5: clean start off and a session expiry; 3.1.1: clean session off),
subscribes to every route's filter at QoS 1 and turns messages into
observations. The PUBACK for a message is sent only after ``sink.submit()``
has returned for it, so the broker keeps (and after a reconnect redelivers)
anything the gateway has not made durable. aiomqtt 2.5 has no public manual
ack, so the ack goes through the paho client it wraps, in this module only:
see docs/adr/0103-mqtt-ack-after-commit.md.

Exactly once across crashes (docs/adr/0210-mqtt-exactly-once.md): with a sink
that implements ``DeliverySink`` (the gateway's), each QoS 1 message's identity
(session, packet id, DUP flag, digest of topic and payload) is committed with its
records; a re-send of a committed message after a reconnect is recognised by
:func:`gateway.sources.mqtt_dedupe.plan_deliveries`, acknowledged and not stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.observations import Delivery, DeliverySink, Observation, RecordedDelivery, Sink

from .backoff import BackoffPolicy, SourceCounters, reconnect_forever
from .mqtt_adapters import TopicRoute, adapt
from .mqtt_dedupe import plan_deliveries
from .serial_sensor import SOURCE_NAME

__all__ = ["MqttSource", "MqttSourceConfig"]

log = logging.getLogger("coldtrail.gateway.sources.mqtt")

# Test-only fault injection (docs/adr/0210), for the window between the spool commit and
# the PUBACKs, which a kill -9 hits only by chance: COLDTRAIL_TEST_FAULT=exit-after-commit
# exits the process right after its first commit of MQTT messages, before any PUBACK;
# COLDTRAIL_TEST_FAULT=ack-delay-ms=N waits N ms there. Never set it in production.
FAULT_ENV = "COLDTRAIL_TEST_FAULT"
FAULT_EXIT_AFTER_COMMIT = "exit-after-commit"
FAULT_ACK_DELAY = "ack-delay-ms="


@dataclass(frozen=True, slots=True)
class MqttSourceConfig:
    """One broker connection and the routes that map its topics to sensors."""

    name: str
    host: str
    routes: tuple[TopicRoute, ...]
    port: int = 1883
    client_id: str = ""  # stable across restarts; default "coldtrail-<name>"
    username: str | None = None
    password: str | None = None
    tls_ca_file: str | None = None  # TLS with server verification against this CA
    # 3.1.1 by default: MQTT 5 costs paho a Properties object per message (a third of
    # the gateway's CPU at a burst) and buys nothing here, since the read gate bounds
    # memory and mosquitto 2.0 ignores Receive Maximum once acks flow (ADR 0211).
    protocol: Literal["5", "3.1.1"] = "3.1.1"
    keepalive_s: int = 30
    session_expiry_s: int = 7 * 24 * 3600  # how long the broker keeps our queue (MQTT 5)
    receive_maximum: int = 256  # MQTT 5 flow control: unacked QoS 1 messages in flight
    max_batch: int = 256  # messages per submit when a backlog is queued
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)

    def __post_init__(self) -> None:
        if not SOURCE_NAME.fullmatch(self.name):
            raise ValueError(f"mqtt source name {self.name!r} is not a valid id")
        if not self.routes:
            raise ValueError(f"mqtt source {self.name}: needs at least one route")
        object.__setattr__(self, "routes", tuple(self.routes))
        if not 0 < self.port < 65536:
            raise ValueError(f"mqtt source {self.name}: bad port {self.port}")
        if self.protocol not in ("5", "3.1.1"):
            raise ValueError(f"mqtt source {self.name}: protocol must be '5' or '3.1.1'")
        if not 1 <= self.receive_maximum <= 65535 or self.max_batch < 1:
            raise ValueError(f"mqtt source {self.name}: bad receive_maximum or max_batch")
        if self.keepalive_s < 5 or self.session_expiry_s < 0:
            raise ValueError(f"mqtt source {self.name}: bad keepalive_s or session_expiry_s")
        if not self.client_id:
            object.__setattr__(self, "client_id", f"coldtrail-{self.name}")

    @property
    def filters(self) -> tuple[str, ...]:
        """Distinct topic filters to subscribe to, in route order."""
        return tuple(dict.fromkeys(r.pattern for r in self.routes))


class MqttSource:
    """Implements :class:`gateway.observations.Source` for one broker.

    Counters: ``frames_ok`` and ``frames_bad`` count messages, ``reconnects``
    sessions, ``retained_skipped`` retained messages (stale values replayed by
    the broker on subscribe, whose age is unknown), ``acked`` PUBACKs sent and
    ``duplicates_dropped`` re-sends of already committed messages, ``read_pauses``
    how often reading from the broker was paused because ``queued_high_water``
    messages were waiting in memory (docs/adr/0211).
    """

    def __init__(self, config: MqttSourceConfig, rng: random.Random | None = None) -> None:
        self.config = config
        self.name = config.name
        self.counters = SourceCounters()
        self.retained_skipped = 0
        self.acked = 0
        self.duplicates_dropped = 0
        self.read_pauses = 0
        self._read_pauses_before = 0  # pauses of earlier sessions
        self.queued_high_water = 0  # most messages ever waiting in memory at once
        self._rng = rng
        fault = os.environ.get(FAULT_ENV, "")
        self._fault_exit_after_commit = fault == FAULT_EXIT_AFTER_COMMIT
        self._fault_ack_delay_s = (
            int(fault.removeprefix(FAULT_ACK_DELAY)) / 1000
            if fault.startswith(FAULT_ACK_DELAY)
            else 0
        )

    @property
    def session_id(self) -> str:
        """The broker session: packet ids are unique only within it."""
        return f"{self.config.client_id}@{self.config.host}:{self.config.port}"

    def decode(self, topic: str, payload: bytes) -> list[Observation]:
        return adapt(self.config.routes, self.name, topic, payload)

    async def run(self, sink: Sink) -> None:
        await reconnect_forever(
            self.name,
            lambda: self._session(sink),
            self.config.backoff,
            self.counters,
            log,
            self._rng,
        )

    def _client(self) -> aiomqtt.Client:
        c = self.config
        kwargs: dict[str, Any] = {
            "identifier": c.client_id,
            "username": c.username,
            "password": c.password,
            "keepalive": c.keepalive_s,
            "timeout": 10,
        }
        if c.tls_ca_file:
            kwargs["tls_params"] = aiomqtt.TLSParameters(ca_certs=c.tls_ca_file)
        if c.protocol == "5":
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = c.session_expiry_s
            props.ReceiveMaximum = c.receive_maximum
            kwargs.update(protocol=aiomqtt.ProtocolVersion.V5, clean_start=False, properties=props)
        else:
            kwargs.update(protocol=aiomqtt.ProtocolVersion.V311, clean_session=False)
        return aiomqtt.Client(c.host, c.port, **kwargs)

    async def _session(self, sink: Sink) -> None:
        client = self._client()
        wrapped = _paho_of(client)
        wrapped.manual_ack_set(True)  # before connecting: the broker may resend at once
        state: _Connection | None = None
        if isinstance(sink, DeliverySink):
            # The session's last committed ordinal *before* this connection: re-sends of
            # committed messages end there (docs/adr/0210).
            _, last = await sink.recorded_deliveries(self.session_id, ())
            state = _Connection(sink, last, _watch_dup_flags(wrapped))
        # Read ahead at most a few batches: enough to keep the spool busy, bounded
        # so a burst stays at the broker instead of in our memory.
        gate = _ReadGate(
            wrapped,
            asyncio.get_running_loop(),
            lambda: len(client.messages),
            4 * self.config.max_batch,
        )
        self._read_pauses_before = self.read_pauses
        async with client:
            # A new session (first start, or a broker restarted without persistence)
            # is subscribed before anything else; "connected" means ready for data.
            # A resumed one is subscribed again too, since routes may have changed in
            # the config, but without waiting: its SUBACK comes after the backlog the
            # broker sends at once, which the loop below drains through the gate.
            filters = [(f, 1) for f in self.config.filters]
            resubscribed: asyncio.Task[Any] | None = None
            if gate.session_present:
                resubscribed = asyncio.create_task(client.subscribe(filters))
            else:
                await client.subscribe(filters)
                gate.armed = True
            self.counters.connected = True
            try:
                await self._consume(client, gate, sink, state, wrapped, resubscribed)
            finally:
                if resubscribed is not None:
                    resubscribed.cancel()

    async def _consume(
        self,
        client: aiomqtt.Client,
        gate: _ReadGate,
        sink: Sink,
        state: _Connection | None,
        wrapped: paho.Client,
        resubscribed: asyncio.Task[Any] | None,
    ) -> None:
        """Commit-then-ack batches for as long as the session lasts."""
        messages = client.messages
        while True:
            if resubscribed is not None and resubscribed.done():
                resubscribed.result()  # a refused subscription ends the session
                resubscribed = None
            if gate.paused and len(messages) <= self.config.max_batch:
                gate.resume()
            batch = [await anext(messages)]
            while len(messages) and len(batch) < self.config.max_batch:
                batch.append(await anext(messages))
            self.queued_high_water = max(self.queued_high_water, len(messages) + len(batch))
            self.read_pauses = self._read_pauses_before + gate.pauses
            if state is None:
                await self._commit_then_ack(sink, wrapped, batch)
            else:
                await self._dedupe_commit_then_ack(state, wrapped, batch)

    def _identify(self, message: aiomqtt.Message, dup: bool) -> Delivery:
        payload = message.payload if isinstance(message.payload, bytes) else b""
        digest = hashlib.sha256(message.topic.value.encode() + b"\0" + payload).digest()
        return Delivery(self.name, self.session_id, message.mid, dup, digest)

    async def _dedupe_commit_then_ack(
        self, state: _Connection, wrapped: paho.Client, batch: list[aiomqtt.Message]
    ) -> None:
        for message in batch:
            qos1 = message.qos > 0 and not message.retain
            dup = state.dup_flags.take(message.mid) if message.qos > 0 else False
            state.pending.append((message, self._identify(message, dup) if qos1 else None))
        pending = state.pending
        deliveries = [d for _, d in pending]
        resent = [d.packet_id for d in deliveries if d is not None and d.dup]
        recorded: dict[int, RecordedDelivery] = {}
        if resent:
            recorded, _ = await state.sink.recorded_deliveries(self.session_id, resent)
        plan = plan_deliveries(deliveries, recorded, state.start_ordinal, state.resends_over)
        decided = pending[: plan.decided]
        if not decided:
            return  # a run of re-sends waits for the message that decides it
        kept = [(m, d) for (m, d), dropped in zip(decided, plan.drop, strict=True) if not dropped]
        dropped = len(decided) - len(kept)
        await self._commit_then_ack(
            state.sink,
            wrapped,
            [m for m, _ in decided],
            keep=[m for m, _ in kept],
            deliveries=[d for _, d in kept if d is not None],
        )
        # Only now (committed, acked): a failure above leaves everything to the re-send.
        state.pending = pending[plan.decided :]
        state.resends_over = plan.resends_over
        if dropped:
            self.duplicates_dropped += dropped
            state.sink.duplicates_dropped(self.name, dropped)
            log.info("mqtt source %s: %d re-sent messages already committed", self.name, dropped)

    async def _commit_then_ack(
        self,
        sink: Sink,
        wrapped: paho.Client,
        batch: list[aiomqtt.Message],
        *,
        keep: list[aiomqtt.Message] | None = None,
        deliveries: list[Delivery] | None = None,
    ) -> None:
        """Store ``keep`` (default: all of ``batch``), then ack all of ``batch``."""
        per_message: list[list[Observation]] = []
        retained = 0
        for message in batch if keep is None else keep:
            if message.retain:
                retained += 1
                continue
            payload = message.payload if isinstance(message.payload, bytes) else b""
            per_message.append(self.decode(message.topic.value, payload))
        observations = [obs for decoded in per_message for obs in decoded]
        # If submit raises, nothing below runs: no PUBACK, the session ends and
        # the broker redelivers the whole batch after the reconnect.
        if deliveries:
            assert isinstance(sink, DeliverySink)
            await sink.submit(observations, deliveries)
        elif observations:
            await sink.submit(observations)
        if (self._fault_exit_after_commit or self._fault_ack_delay_s) and (
            observations or deliveries
        ):
            await self._after_commit_fault()
        # Counted only once committed, so a redelivered batch is not counted twice.
        self.retained_skipped += retained
        for decoded in per_message:
            self.counters.count_frame(decoded)
        for message in batch:
            if message.qos > 0:
                # PUBACKs go out in receive order, as MQTT requires.
                wrapped.ack(message.mid, message.qos)
                self.acked += 1

    async def _after_commit_fault(self) -> None:
        if self._fault_exit_after_commit:
            log.warning("%s=%s: exiting before the PUBACKs", FAULT_ENV, FAULT_EXIT_AFTER_COMMIT)
            logging.shutdown()
            os._exit(70)
        await asyncio.sleep(self._fault_ack_delay_s)


class _ReadGate:
    """Stops reading the broker's socket while too many messages wait in memory.

    MQTT 5's Receive Maximum should bound what a broker sends before our PUBACKs,
    but mosquitto 2.0.11 keeps to it only until the first PUBACK arrives; after
    that it streams its whole queue, and a 100k burst took the gateway to 717 MB
    (docs/adr/0211). Taking the socket off the event loop lets TCP push back, so
    the backlog waits at the broker, which is there to hold it.

    aiomqtt registers its socket reader from paho's public ``on_socket_open``
    callback. The gate lets it (aiomqtt also starts its keep-alive task there),
    then puts its own reader in place, one that does what aiomqtt's does (drain
    ``loop_read``) and that it can take off and put back.
    """

    def __init__(
        self,
        wrapped: paho.Client,
        loop: asyncio.AbstractEventLoop,
        backlog: Callable[[], int],
        high_water: int,
    ) -> None:
        register = wrapped.on_socket_open
        if register is None:
            raise RuntimeError("aiomqtt no longer sets paho's on_socket_open; see ADR 0211")
        self._client = wrapped
        self._loop = loop
        self._fd = -1
        self._backlog = backlog
        self._high_water = high_water
        self.paused = False
        self.pauses = 0
        # A resumed session (CONNACK session-present) keeps its subscriptions, and its
        # backlog arrives at once: the gate must hold from the first byte. A new
        # session is subscribed first (nothing is queued for it yet): pausing before
        # its SUBACK is read would leave the subscription hanging.
        self.armed = True
        self.session_present = False
        connected = wrapped.on_connect
        if connected is None:
            raise RuntimeError("aiomqtt no longer sets paho's on_connect; see ADR 0211")

        def on_connect(client: paho.Client, userdata: Any, flags: Any, *rest: Any) -> None:
            self.session_present = bool(getattr(flags, "session_present", False))
            self.armed = self.session_present
            connected(client, userdata, flags, *rest)

        wrapped.on_connect = on_connect

        def on_socket_open(client: paho.Client, userdata: Any, sock: Any) -> None:
            register(client, userdata, sock)
            # paho calls this from the connecting thread; aiomqtt schedules its reader
            # with call_soon_threadsafe, so ours, scheduled after it, replaces it.
            loop.call_soon_threadsafe(self._install, sock.fileno())

        wrapped.on_socket_open = on_socket_open

    def _install(self, fd: int) -> None:
        self._fd, self.paused = fd, False
        self._loop.add_reader(fd, self._read)

    def _read(self) -> None:
        try:
            while True:
                self._client.loop_read()
                pending = getattr(self._client.socket(), "pending", None)
                if pending is None or pending() <= 0:
                    break  # an SSL socket may hold decoded bytes loop_read did not take
            # Checked here, on every read, not only between batches: while a batch
            # is being committed the loop keeps reading, and a burst would pile up.
            if self.armed and self._backlog() >= self._high_water:
                self.pause()
        except Exception:  # a broken socket: end the session, the outer loop reconnects
            log.warning("mqtt socket read failed; disconnecting", exc_info=True)
            self._loop.remove_reader(self._fd)
            self._client.disconnect()

    def pause(self) -> bool:
        if self.paused or self._fd < 0:
            return False
        self._loop.remove_reader(self._fd)
        self.paused = True
        self.pauses += 1
        return True

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            self._loop.add_reader(self._fd, self._read)


class _DupFlags:
    """The DUP flag of each received QoS>0 PUBLISH, which aiomqtt's ``Message`` drops.

    Filled by paho's ``on_message`` (on the event loop thread, before aiomqtt queues
    the message) and taken in receive order per packet id.
    """

    def __init__(self) -> None:
        self._by_mid: dict[int, deque[bool]] = {}

    def put(self, mid: int, dup: bool) -> None:
        self._by_mid.setdefault(mid, deque()).append(dup)

    def take(self, mid: int) -> bool:
        flags = self._by_mid.get(mid)
        if not flags:
            # Cannot happen with aiomqtt 2.5 (one on_message per queued message). DUP=0 is
            # the safe reading: it is never de-duplicated, at worst stored twice.
            log.warning("no DUP flag seen for packet id %d; treating it as a first delivery", mid)
            return False
        dup = flags.popleft()
        if not flags:
            del self._by_mid[mid]
        return dup


def _watch_dup_flags(wrapped: paho.Client) -> _DupFlags:
    flags = _DupFlags()
    deliver = wrapped.on_message  # aiomqtt's callback: converts and queues the message
    if deliver is None:
        raise RuntimeError("aiomqtt no longer sets paho's on_message; see ADR 0103")

    def on_message(client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        if message.qos > 0:
            flags.put(message.mid, bool(message.dup))
        deliver(client, userdata, message)

    wrapped.on_message = on_message
    return flags


@dataclass
class _Connection:
    """De-duplication state of one connection (docs/adr/0210)."""

    sink: DeliverySink
    start_ordinal: int
    dup_flags: _DupFlags
    resends_over: bool = False
    pending: list[tuple[aiomqtt.Message, Delivery | None]] = field(default_factory=list)


def _paho_of(client: aiomqtt.Client) -> paho.Client:
    # aiomqtt exposes no manual ack; its paho client is the private ``_client``.
    # Fail loudly (and in the tests) if a new aiomqtt release moves it.
    inner = getattr(client, "_client", None)
    if not isinstance(inner, paho.Client):
        raise RuntimeError("aiomqtt no longer exposes its paho client; see ADR 0103")
    return inner

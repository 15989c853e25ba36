"""MQTT sensors, acknowledged only after the spool commit.

Each session connects with a stable client id and a persistent session
(MQTT 5: clean start off and a session expiry; 3.1.1: clean session off),
subscribes to every route's filter at QoS 1 and turns messages into
observations. The PUBACK for a message is sent only after ``sink.submit()``
has returned for it, so the broker keeps (and after a reconnect redelivers)
anything the gateway has not made durable (docs/adr/0103).

The connection itself is :mod:`gateway.sources.mqtt_wire`, the subscriber side of
MQTT written for this path (docs/adr/0212): it hands over messages in batches with
their DUP flags, writes a batch's PUBACKs at once and stops reading the socket
while too much waits in memory (docs/adr/0211).

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
import ssl
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.observations import Delivery, DeliverySink, Observation, RecordedDelivery, Sink

from .backoff import BackoffPolicy, SourceCounters, reconnect_forever
from .mqtt_adapters import TopicRoute, adapt
from .mqtt_dedupe import plan_deliveries
from .mqtt_wire import MqttWire, Publish, connect
from .serial_sensor import SOURCE_NAME

__all__ = ["IN_FLIGHT", "MqttSource", "MqttSourceConfig"]

log = logging.getLogger("coldtrail.gateway.sources.mqtt")

# Test-only fault injection (docs/adr/0210), for the window between the spool commit and
# the PUBACKs, which a kill -9 hits only by chance: COLDTRAIL_TEST_FAULT=exit-after-commit
# exits the process right after its first commit of MQTT messages, before any PUBACK;
# COLDTRAIL_TEST_FAULT=ack-delay-ms=N waits N ms there. Never set it in production.
FAULT_ENV = "COLDTRAIL_TEST_FAULT"
FAULT_EXIT_AFTER_COMMIT = "exit-after-commit"
FAULT_ACK_DELAY = "ack-delay-ms="
# Batches committing at once per session: two keep the spool writer and the event
# loop busy at the same time; more only add memory (docs/adr/0212).
IN_FLIGHT = 2


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
    # 3.1.1 by default: MQTT 5 buys nothing here, since the read gate bounds memory
    # and mosquitto 2.0 ignores Receive Maximum once acks flow (ADR 0211).
    protocol: Literal["5", "3.1.1"] = "3.1.1"
    keepalive_s: int = 30
    session_expiry_s: int = 7 * 24 * 3600  # how long the broker keeps our queue (MQTT 5)
    # MQTT 5 flow control: unacked QoS 1 messages in flight; room for the read-ahead
    # (4 batches) so that commits can overlap (ADR 0212)
    receive_maximum: int = 1024
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

    def _tls(self) -> ssl.SSLContext | None:
        if not self.config.tls_ca_file:
            return None
        # Verifies the broker's certificate chain and host name against this CA only.
        return ssl.create_default_context(cafile=self.config.tls_ca_file)

    async def _connect(self) -> MqttWire:
        c = self.config
        return await connect(
            c.host,
            c.port,
            client_id=c.client_id,
            protocol=c.protocol,
            keepalive_s=c.keepalive_s,
            username=c.username,
            password=c.password,
            tls=self._tls(),
            session_expiry_s=c.session_expiry_s,
            receive_maximum=c.receive_maximum,
            # Read ahead at most a few batches: enough to keep the spool busy, bounded
            # so a burst stays at the broker instead of in our memory (ADR 0211).
            high_water=4 * c.max_batch,
        )

    async def _session(self, sink: Sink) -> None:
        state: _Connection | None = None
        if isinstance(sink, DeliverySink):
            # The session's last committed ordinal *before* this connection: re-sends of
            # committed messages end there (docs/adr/0210).
            _, last = await sink.recorded_deliveries(self.session_id, ())
            state = _Connection(sink, last)
        wire = await self._connect()
        self._read_pauses_before = self.read_pauses
        try:
            # A new session (first start, or a broker restarted without persistence)
            # is subscribed before anything else; "connected" means ready for data.
            # A resumed one is subscribed again too, since routes may have changed in
            # the config, but without waiting: its SUBACK comes after the backlog the
            # broker sends at once, which the loop below drains.
            filters = [(f, 1) for f in self.config.filters]
            resubscribed: asyncio.Task[Any] | None = None
            if wire.session_present:
                resubscribed = asyncio.create_task(wire.subscribe(filters))
            else:
                await wire.subscribe(filters)
            self.counters.connected = True
            try:
                await self._consume(wire, sink, state, resubscribed)
            finally:
                if resubscribed is not None:
                    resubscribed.cancel()
                    await asyncio.gather(resubscribed, return_exceptions=True)
        finally:
            await wire.close()

    async def _consume(
        self,
        wire: MqttWire,
        sink: Sink,
        state: _Connection | None,
        resubscribed: asyncio.Task[Any] | None,
    ) -> None:
        """Commit-then-ack batches for as long as the session lasts.

        Up to ``IN_FLIGHT`` batches are committing at once: while the spool signs and
        fsyncs one, the next is decoded and queued behind it (one group commit may
        take both). Each batch's PUBACKs still wait for its own commit and for the
        batch before it, so they go out in receive order (docs/adr/0212).
        """
        inflight: deque[asyncio.Task[None]] = deque()
        try:
            while True:
                if resubscribed is not None and resubscribed.done():
                    resubscribed.result()  # a refused subscription ends the session
                    resubscribed = None
                if inflight and (inflight[0].done() or not wire.queued):
                    await inflight.popleft()  # re-raises a failed commit: the session ends
                    continue
                batch = await wire.batch(self.config.max_batch)
                self.queued_high_water = max(self.queued_high_water, wire.queued + len(batch))
                self.read_pauses = self._read_pauses_before + wire.pauses
                after = inflight[-1] if inflight else None
                job: Coroutine[Any, Any, None] | None
                if state is None:
                    job = self._commit_then_ack(sink, wire, batch, after=after)
                else:
                    job = await self._dedupe(state, wire, batch, after)
                if job is not None:
                    inflight.append(asyncio.create_task(job))
                while len(inflight) >= IN_FLIGHT:
                    await inflight.popleft()
        finally:
            for task in inflight:
                task.cancel()
            # Retrieve their outcomes (the session is over either way): nothing is acked
            # that was not committed, and the broker re-sends the rest.
            await asyncio.gather(*inflight, return_exceptions=True)

    def _identify(self, message: Publish) -> Delivery:
        digest = hashlib.sha256(message.topic.encode() + b"\0" + message.payload).digest()
        return Delivery(self.name, self.session_id, message.packet_id, message.dup, digest)

    async def _dedupe(
        self,
        state: _Connection,
        wire: MqttWire,
        batch: list[Publish],
        after: asyncio.Task[None] | None,
    ) -> Coroutine[Any, Any, None] | None:
        """Plan ``batch`` against what is committed; the commit (and acks) to run, if any."""
        for message in batch:
            qos1 = message.qos > 0 and not message.retain
            state.pending.append((message, self._identify(message) if qos1 else None))
        pending = state.pending
        deliveries = [d for _, d in pending]
        resent = [d.packet_id for d in deliveries if d is not None and d.dup]
        recorded: dict[int, RecordedDelivery] = {}
        if resent:
            # Queued behind every earlier commit of this connection, so it sees them.
            recorded, _ = await state.sink.recorded_deliveries(self.session_id, resent)
        plan = plan_deliveries(deliveries, recorded, state.start_ordinal, state.resends_over)
        decided = pending[: plan.decided]
        if not decided:
            return None  # a run of re-sends waits for the message that decides it
        kept = [(m, d) for (m, d), dropped in zip(decided, plan.drop, strict=True) if not dropped]
        dropped = len(decided) - len(kept)
        # The plan moves on now, before the commit: a commit that fails ends the
        # session, and this per-connection state with it.
        state.pending = pending[plan.decided :]
        state.resends_over = plan.resends_over

        async def commit() -> None:
            await self._commit_then_ack(
                state.sink,
                wire,
                [m for m, _ in decided],
                keep=[m for m, _ in kept],
                deliveries=[d for _, d in kept if d is not None],
                after=after,
            )
            if dropped:
                self.duplicates_dropped += dropped
                state.sink.duplicates_dropped(self.name, dropped)
                log.info(
                    "mqtt source %s: %d re-sent messages already committed", self.name, dropped
                )

        return commit()

    async def _commit_then_ack(
        self,
        sink: Sink,
        wire: MqttWire,
        batch: list[Publish],
        *,
        keep: list[Publish] | None = None,
        deliveries: list[Delivery] | None = None,
        after: asyncio.Task[None] | None = None,
    ) -> None:
        """Store ``keep`` (default: all of ``batch``), then, once the batch before it
        (``after``) is acknowledged, ack all of ``batch``."""
        per_message: list[list[Observation]] = []
        retained = 0
        for message in batch if keep is None else keep:
            if message.retain:
                retained += 1
                continue
            per_message.append(self.decode(message.topic, message.payload))
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
        if after is not None:
            await after  # its PUBACKs first; if its commit failed, none of ours go out
        # Counted only once committed, so a redelivered batch is not counted twice.
        self.retained_skipped += retained
        for decoded in per_message:
            self.counters.count_frame(decoded)
        # PUBACKs go out in receive order, as MQTT requires, in one write.
        self.acked += wire.ack(batch)

    async def _after_commit_fault(self) -> None:
        if self._fault_exit_after_commit:
            log.warning("%s=%s: exiting before the PUBACKs", FAULT_ENV, FAULT_EXIT_AFTER_COMMIT)
            logging.shutdown()
            os._exit(70)
        await asyncio.sleep(self._fault_ack_delay_s)


@dataclass
class _Connection:
    """De-duplication state of one connection (docs/adr/0210)."""

    sink: DeliverySink
    start_ordinal: int
    resends_over: bool = False
    pending: list[tuple[Publish, Delivery | None]] = field(default_factory=list)

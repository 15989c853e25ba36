"""MQTT sensors through aiomqtt, acknowledged only after the spool commit.

Each session connects with a stable client id and a persistent session
(MQTT 5: clean start off and a session expiry; 3.1.1: clean session off),
subscribes to every route's filter at QoS 1 and turns messages into
observations. The PUBACK for a message is sent only after ``sink.submit()``
has returned for it, so the broker keeps (and after a reconnect redelivers)
anything the gateway has not made durable. aiomqtt 2.5 has no public manual
ack, so the ack goes through the paho client it wraps, in this module only:
see docs/adr/0103-mqtt-ack-after-commit.md.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from typing import Any, Literal

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.observations import Observation, Sink

from .backoff import BackoffPolicy, SourceCounters, reconnect_forever
from .mqtt_adapters import TopicRoute, adapt
from .serial_sensor import SOURCE_NAME

__all__ = ["MqttSource", "MqttSourceConfig"]

log = logging.getLogger("coldtrail.gateway.sources.mqtt")


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
    protocol: Literal["5", "3.1.1"] = "5"
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
    the broker on subscribe, whose age is unknown) and ``acked`` PUBACKs sent.
    """

    def __init__(self, config: MqttSourceConfig, rng: random.Random | None = None) -> None:
        self.config = config
        self.name = config.name
        self.counters = SourceCounters()
        self.retained_skipped = 0
        self.acked = 0
        self._rng = rng

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
        async with client:
            # Subscribing again on every session is harmless with a resumed
            # session and necessary when the broker lost it (restart without
            # persistence); "connected" means subscribed, i.e. ready for data.
            await client.subscribe([(f, 1) for f in self.config.filters])
            self.counters.connected = True
            messages = client.messages
            while True:
                batch = [await anext(messages)]
                while len(messages) and len(batch) < self.config.max_batch:
                    batch.append(await anext(messages))
                await self._commit_then_ack(sink, wrapped, batch)

    async def _commit_then_ack(
        self, sink: Sink, wrapped: paho.Client, batch: list[aiomqtt.Message]
    ) -> None:
        per_message: list[list[Observation]] = []
        retained = 0
        for message in batch:
            if message.retain:
                retained += 1
                continue
            payload = message.payload if isinstance(message.payload, bytes) else b""
            per_message.append(self.decode(message.topic.value, payload))
        observations = [obs for decoded in per_message for obs in decoded]
        if observations:
            # If this raises, nothing below runs: no PUBACK, the session ends and
            # the broker redelivers the whole batch after the reconnect.
            await sink.submit(observations)
        # Counted only once committed, so a redelivered batch is not counted twice.
        self.retained_skipped += retained
        for decoded in per_message:
            self.counters.count_frame(decoded)
        for message in batch:
            if message.qos > 0:
                # PUBACKs go out in receive order, as MQTT requires.
                wrapped.ack(message.mid, message.qos)
                self.acked += 1


def _paho_of(client: aiomqtt.Client) -> paho.Client:
    # aiomqtt exposes no manual ack; its paho client is the private ``_client``.
    # Fail loudly (and in the tests) if a new aiomqtt release moves it.
    inner = getattr(client, "_client", None)
    if not isinstance(inner, paho.Client):
        raise RuntimeError("aiomqtt no longer exposes its paho client; see ADR 0103")
    return inner

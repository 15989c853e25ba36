"""The subscriber side of MQTT 3.1.1 and 5 over asyncio: the gateway's hot path.

Only what a QoS 1 subscriber with a persistent session needs: CONNECT (clean
session off, credentials, keep-alive; MQTT 5 adds Session Expiry and Receive
Maximum), SUBSCRIBE, inbound PUBLISH at QoS 0 and 1, PUBACK, PINGREQ and
DISCONNECT. Why it is not aiomqtt/paho any more: docs/adr/0212-mqtt-wire.md
(paho alone costs 97 µs of CPU per message here, ten times this module, and
aiomqtt hides the three things exactly-once needs: manual acks, the DUP flag and
flow control).

What the caller gets:

* :meth:`MqttWire.batch` returns every PUBLISH received so far (at least one), in
  receive order, each with its DUP flag and packet id;
* :meth:`MqttWire.ack` writes the PUBACKs of a list of messages in one write, in
  the order given (the caller gives receive order, after its commit);
* flow control: once ``high_water`` messages wait unread by the caller, the socket
  is paused (the transport stops reading, TCP pushes back, the backlog stays at
  the broker) and resumed when the caller has taken them (docs/adr/0211);
* every broken invariant of the broker's bytes ends the connection with a
  :class:`WireError` carrying a stable code; the source's outer loop reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
import time
from collections import deque
from dataclasses import dataclass
from typing import Literal

from gateway.errors import GatewayError

__all__ = ["MqttWire", "Publish", "WireError", "connect"]

MAX_PACKET = 16 * 1024 * 1024  # bigger than any sensor message; a guard, not a limit in use
_CONNECT, _CONNACK, _PUBLISH, _PUBACK = 1, 2, 3, 4
_SUBSCRIBE, _SUBACK, _PINGREQ, _PINGRESP, _DISCONNECT = 8, 9, 12, 13, 14
_PINGREQ_BYTES = b"\xc0\x00"
_DISCONNECT_BYTES = b"\xe0\x00"
_CONNACK_REFUSALS = {
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorised",
}


class WireError(GatewayError):
    """The connection cannot go on; ``code`` is stable, the message is for people."""

    default_code = "mqtt-wire"


@dataclass(frozen=True, slots=True)
class Publish:
    """One received PUBLISH. ``packet_id`` is 0 at QoS 0."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    dup: bool
    packet_id: int


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _utf8(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("!H", len(raw)) + raw


def _packet(first: int, body: bytes) -> bytes:
    return bytes((first,)) + _varint(len(body)) + body


def connect_packet(
    client_id: str,
    *,
    protocol: Literal["5", "3.1.1"],
    keepalive_s: int,
    username: str | None = None,
    password: str | None = None,
    session_expiry_s: int = 0,
    receive_maximum: int = 65535,
) -> bytes:
    """CONNECT for a persistent session (clean session / clean start off)."""
    flags = (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    level = 5 if protocol == "5" else 4
    body = _utf8("MQTT") + bytes((level, flags)) + struct.pack("!H", keepalive_s)
    if level == 5:
        props = b"\x11" + struct.pack("!I", session_expiry_s)
        props += b"\x21" + struct.pack("!H", receive_maximum)
        body += _varint(len(props)) + props
    body += _utf8(client_id)
    if username is not None:
        body += _utf8(username)
    if password is not None:
        raw = password.encode()
        body += struct.pack("!H", len(raw)) + raw
    return _packet(_CONNECT << 4, body)


def subscribe_packet(packet_id: int, filters: list[tuple[str, int]], protocol: str) -> bytes:
    body = struct.pack("!H", packet_id)
    if protocol == "5":
        body += b"\x00"  # no properties
    for topic_filter, qos in filters:
        body += _utf8(topic_filter) + bytes((qos,))
    return _packet((_SUBSCRIBE << 4) | 0x02, body)


class _Protocol(asyncio.Protocol):
    """Frames the broker's bytes into packets; PUBLISHes queue for the caller."""

    def __init__(self, wire: MqttWire) -> None:
        self._wire = wire
        self._buf = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._wire._transport = transport
        self._wire._protocol = self

    def data_received(self, data: bytes) -> None:
        self._buf += data
        self._wire.last_received = time.monotonic()
        self.parse()

    def parse(self) -> None:
        """Frame what is buffered, up to the read-ahead limit: past it, the bytes wait
        here unparsed (at most one socket read) and the socket is paused."""
        buf = self._buf
        wire = self._wire
        queue = wire._queue
        limit = wire._high_water
        end = len(buf)
        i = 0
        try:
            while end - i >= 2 and len(queue) < limit:
                # Remaining length: 1-4 bytes, 7 bits each, low first.
                length = 0
                shift = 0
                j = i + 1
                while True:
                    if j >= end:
                        length = -1
                        break
                    byte = buf[j]
                    length |= (byte & 0x7F) << shift
                    j += 1
                    if not byte & 0x80:
                        break
                    shift += 7
                    if shift > 21:
                        raise WireError("remaining length longer than 4 bytes", code="bad-length")
                if length < 0:
                    break  # the length itself is not complete yet
                if length > MAX_PACKET:
                    raise WireError(f"packet of {length} bytes", code="packet-too-large")
                if j + length > end:
                    break
                first = buf[i]
                if first >> 4 == _PUBLISH:
                    wire._publish(first, bytes(buf[j : j + length]))
                else:
                    wire._control(first, bytes(buf[j : j + length]))
                i = j + length
        except WireError as e:
            wire._fail(e)
            return
        finally:
            del buf[:i]
        wire._received()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._wire._closed.done():
            self._wire._closed.set_result(None)
        self._wire._fail(
            WireError(f"connection lost: {exc}" if exc else "connection closed", code="closed")
        )


class MqttWire:
    """One MQTT connection. Create with :func:`connect`."""

    def __init__(self, protocol: Literal["5", "3.1.1"], high_water: int, keepalive_s: int) -> None:
        self.protocol = protocol
        self.session_present = False
        self.paused = False
        self.pauses = 0
        self.last_received = time.monotonic()
        self._high_water = high_water
        self._keepalive_s = keepalive_s
        self._transport: asyncio.Transport | None = None
        self._protocol: _Protocol | None = None
        self._queue: deque[Publish] = deque()
        self._arrived = asyncio.Event()
        self._error: WireError | None = None
        self._connack: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._subacks: dict[int, asyncio.Future[list[int]]] = {}
        self._next_id = 0
        self._last_sent = time.monotonic()
        self._pinger: asyncio.Task[None] | None = None

    # --- for the caller ---------------------------------------------------------

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def subscribe(self, filters: list[tuple[str, int]]) -> list[int]:
        """Send SUBSCRIBE and wait for its SUBACK; refused filters raise."""
        self._next_id = self._next_id % 65535 + 1
        packet_id = self._next_id
        done: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self._subacks[packet_id] = done
        self._write(subscribe_packet(packet_id, filters, self.protocol))
        granted = await done
        refused = [f for (f, _), code in zip(filters, granted, strict=False) if code >= 0x80]
        if refused or len(granted) != len(filters):
            raise WireError(f"subscription refused for {', '.join(refused)}", code="suback-refused")
        return granted

    async def batch(self, limit: int) -> list[Publish]:
        """At least one and at most ``limit`` received messages, in receive order."""
        while not self._queue:
            if self._error is not None:
                raise self._error
            self._arrived.clear()
            await self._arrived.wait()
        queue = self._queue
        n = min(limit, len(queue))
        out = [queue.popleft() for _ in range(n)]
        if self.paused and self._protocol is not None:
            self._protocol.parse()  # bytes held back at the limit
        if self.paused and len(queue) < self._high_water // 2 and self._transport is not None:
            self.paused = False
            self.last_received = time.monotonic()  # nothing could arrive while paused
            self._transport.resume_reading()
        return out

    def ack(self, messages: list[Publish]) -> int:
        """PUBACK every QoS 1 message of ``messages``, in the order given, in one write."""
        ids = [m.packet_id for m in messages if m.qos == 1]
        if ids:
            self._write(b"".join(b"\x40\x02" + struct.pack("!H", i) for i in ids))
        return len(ids)

    def check(self) -> None:
        """Raise the error that ended the connection, if it has ended."""
        if self._error is not None:
            raise self._error

    async def close(self) -> None:
        """DISCONNECT and close; returns once the socket is closed (TLS included, whose
        shutdown takes a few loop turns), or after 2 s."""
        if self._pinger is not None:
            self._pinger.cancel()
        transport = self._transport
        if transport is not None and not transport.is_closing():
            if self._error is None:
                transport.write(_DISCONNECT_BYTES)
            transport.close()
        self._fail(WireError("closed by the gateway", code="closed"))
        if transport is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._closed), 2.0)

    # --- from the protocol ------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self._error is not None:
            raise self._error
        assert self._transport is not None
        self._transport.write(data)
        self._last_sent = time.monotonic()

    def _publish(self, first: int, body: bytes) -> None:
        qos = (first >> 1) & 0x03
        if qos > 1:
            # We subscribe at QoS 1, so the broker must downgrade: anything else breaks
            # the ack bookkeeping, so the connection ends rather than guess.
            raise WireError(f"PUBLISH at QoS {qos} on a QoS 1 subscription", code="bad-qos")
        if len(body) < 2:
            raise WireError("PUBLISH without a topic", code="bad-publish")
        topic_len = (body[0] << 8) | body[1]
        pos = 2 + topic_len
        try:
            topic = body[2:pos].decode()
        except UnicodeDecodeError as e:
            raise WireError(f"PUBLISH topic is not UTF-8: {e}", code="bad-topic") from e
        packet_id = 0
        if qos:
            if len(body) < pos + 2:
                raise WireError("PUBLISH without a packet id", code="bad-publish")
            packet_id = (body[pos] << 8) | body[pos + 1]
            pos += 2
        if self.protocol == "5":
            _, pos = _skip_properties(body, pos)
        if pos > len(body) or not topic:
            # An empty topic means a topic alias, which we never allow (no Topic Alias
            # Maximum in CONNECT), so the broker must not send one.
            raise WireError("PUBLISH with an empty or cut topic", code="bad-publish")
        self._queue.append(
            Publish(topic, body[pos:], qos, bool(first & 0x01), bool(first & 0x08), packet_id)
        )

    def _received(self) -> None:
        if self._queue:
            self._arrived.set()
            if (
                not self.paused
                and len(self._queue) >= self._high_water
                and self._transport is not None
            ):
                self.paused = True
                self.pauses += 1
                self._transport.pause_reading()

    def _control(self, first: int, body: bytes) -> None:
        kind = first >> 4
        if kind == _CONNACK:
            if len(body) < 2:
                raise WireError("short CONNACK", code="bad-connack")
            code = body[1]
            if code:
                reason = _CONNACK_REFUSALS.get(code, f"reason code {code:#04x}")
                self._fail(WireError(f"broker refused the connection: {reason}", code="refused"))
                return
            if not self._connack.done():
                self._connack.set_result(bool(body[0] & 0x01))
        elif kind == _SUBACK:
            if len(body) < 2:
                raise WireError("short SUBACK", code="bad-suback")
            packet_id = (body[0] << 8) | body[1]
            pos = 2
            if self.protocol == "5":
                _, pos = _skip_properties(body, pos)
            future = self._subacks.pop(packet_id, None)
            if future is not None and not future.done():
                future.set_result(list(body[pos:]))
        elif kind == _PINGRESP:
            pass
        elif kind == _DISCONNECT:
            reason = f" (reason code {body[0]:#04x})" if body else ""
            raise WireError(f"broker disconnected{reason}", code="server-disconnect")
        elif kind == _PUBACK:
            pass  # we never publish; a stray ack is harmless
        else:
            raise WireError(f"unexpected packet type {kind}", code="bad-packet")

    def _fail(self, error: WireError) -> None:
        if self._error is None:
            self._error = error
        if not self._connack.done():
            self._connack.set_exception(self._error)
            self._connack.exception()  # retrieved: connect() re-raises it where awaited
        for future in self._subacks.values():
            if not future.done():
                future.set_exception(self._error)
                future.exception()
        self._subacks.clear()
        self._arrived.set()
        if self._pinger is not None:
            self._pinger.cancel()
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.close()

    async def _keepalive(self) -> None:
        """PINGREQ when nothing was sent for half the keep-alive; a silent broker
        (nothing received for 1.5 keep-alives while we were reading) ends it."""
        interval = self._keepalive_s
        while self._error is None:
            await asyncio.sleep(interval / 4)
            now = time.monotonic()
            if now - self._last_sent >= interval / 2:
                self._write(_PINGREQ_BYTES)
            if not self.paused and now - self.last_received > 1.5 * interval:
                self._fail(WireError("no packet from the broker", code="keepalive-timeout"))


def _skip_properties(body: bytes, pos: int) -> tuple[int, int]:
    """MQTT 5 properties: returns (length, position after them)."""
    length = 0
    shift = 0
    while True:
        if pos >= len(body) or shift > 21:
            raise WireError("cut or overlong properties length", code="bad-properties")
        byte = body[pos]
        pos += 1
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
    if pos + length > len(body):
        raise WireError("properties longer than the packet", code="bad-properties")
    return length, pos + length


async def connect(
    host: str,
    port: int,
    *,
    client_id: str,
    protocol: Literal["5", "3.1.1"] = "3.1.1",
    keepalive_s: int = 30,
    username: str | None = None,
    password: str | None = None,
    tls: ssl.SSLContext | None = None,
    session_expiry_s: int = 0,
    receive_maximum: int = 65535,
    high_water: int = 1024,
    timeout_s: float = 10.0,
) -> MqttWire:
    """Open a connection and complete CONNECT/CONNACK; ``session_present`` is set."""
    loop = asyncio.get_running_loop()
    wire = MqttWire(protocol, high_water, keepalive_s)
    try:
        async with asyncio.timeout(timeout_s):
            await loop.create_connection(
                lambda: _Protocol(wire),
                host,
                port,
                ssl=tls,
                server_hostname=host if tls is not None else None,
            )
            wire._write(
                connect_packet(
                    client_id,
                    protocol=protocol,
                    keepalive_s=keepalive_s,
                    username=username,
                    password=password,
                    session_expiry_s=session_expiry_s,
                    receive_maximum=receive_maximum,
                )
            )
            wire.session_present = await wire._connack
    except TimeoutError:
        await wire.close()
        raise WireError(
            f"no CONNACK from {host}:{port} in {timeout_s:g} s", code="timeout"
        ) from None
    except BaseException:
        await wire.close()
        raise
    wire._pinger = asyncio.create_task(wire._keepalive())
    return wire

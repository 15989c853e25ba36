"""MQTT framing of the gateway's subscriber (gateway/sources/mqtt_wire.py), byte by byte.

These drive the protocol object with bytes as a broker would send them, through an
in-memory transport; the real broker is in tests/integration/test_sources_mqtt.py.
"""

from __future__ import annotations

import asyncio
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.sources.mqtt_wire import (
    MqttWire,
    Publish,
    WireError,
    _Protocol,
    _varint,
    connect_packet,
    subscribe_packet,
)


class Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.reading = True
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


def publish_bytes(
    topic: str,
    payload: bytes,
    *,
    qos: int = 1,
    packet_id: int = 1,
    dup: bool = False,
    retain: bool = False,
    props: bytes | None = None,
) -> bytes:
    body = struct.pack("!H", len(topic.encode())) + topic.encode()
    if qos:
        body += struct.pack("!H", packet_id)
    if props is not None:
        body += _varint(len(props)) + props
    body += payload
    first = 0x30 | (qos << 1) | (0x08 if dup else 0) | (0x01 if retain else 0)
    return bytes((first,)) + _varint(len(body)) + body


def wire(protocol: str = "3.1.1", high_water: int = 100) -> tuple[MqttWire, _Protocol, Transport]:
    w = MqttWire(protocol, high_water, keepalive_s=30)  # type: ignore[arg-type]
    p = _Protocol(w)
    t = Transport()
    p.connection_made(t)
    return w, p, t


async def test_publishes_arrive_whole_however_the_bytes_are_cut() -> None:
    w, p, _ = wire()
    stream = b"".join(
        publish_bytes(f"zigbee2mqtt/probe-{i}", b'{"temperature":4.5}' * (i + 1), packet_id=i + 1)
        for i in range(5)
    )
    for i in range(len(stream)):  # one byte at a time
        p.data_received(stream[i : i + 1])
    got = await w.batch(10)
    assert [m.topic for m in got] == [f"zigbee2mqtt/probe-{i}" for i in range(5)]
    assert [m.packet_id for m in got] == [1, 2, 3, 4, 5]
    assert got[4].payload == b'{"temperature":4.5}' * 5


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.text(min_size=1, max_size=30).filter(lambda s: "\0" not in s),
            st.binary(max_size=300),
            st.sampled_from([0, 1]),
            st.booleans(),
            st.booleans(),
        ),
        min_size=1,
        max_size=8,
    ),
    st.data(),
)
def test_any_split_of_any_publishes_round_trips(messages, data) -> None:  # type: ignore[no-untyped-def]
    async def run() -> None:
        w, p, _ = wire()
        stream = b"".join(
            publish_bytes(t, pl, qos=q, packet_id=n + 1, dup=d, retain=r)
            for n, (t, pl, q, d, r) in enumerate(messages)
        )
        cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(stream) - 1)), max_size=6)))
        start = 0
        for cut in [*cuts, len(stream)]:
            p.data_received(stream[start:cut])
            start = cut
        got = await w.batch(100)
        want = [
            Publish(t, pl, q, r, d, n + 1 if q else 0)
            for n, (t, pl, q, d, r) in enumerate(messages)
        ]
        assert got == want

    asyncio.run(run())


async def test_mqtt5_properties_are_skipped_and_dup_and_retain_kept() -> None:
    w, p, _ = wire("5")
    props = b"\x01\x01" + b"\x23\x00\x05"  # payload format indicator, topic alias 5
    p.data_received(publish_bytes("t/1", b"42", packet_id=7, dup=True, retain=True, props=props))
    p.data_received(publish_bytes("t/2", b"", qos=0, props=b""))
    got = await w.batch(10)
    assert got == [Publish("t/1", b"42", 1, True, True, 7), Publish("t/2", b"", 0, False, False, 0)]


async def test_acks_are_one_write_in_the_order_given_and_only_for_qos1() -> None:
    w, _, t = wire()
    msgs = [Publish("a", b"", 1, False, False, 300), Publish("b", b"", 0, False, False, 0)]
    msgs.append(Publish("c", b"", 1, False, True, 2))
    assert w.ack(msgs) == 2
    assert bytes(t.written) == b"\x40\x02\x01\x2c" + b"\x40\x02\x00\x02"


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (bytes((0x34,)) + _varint(5) + b"\x00\x01t\x00\x01", "bad-qos"),  # QoS 2
        (b"\x30\x01\x00", "bad-publish"),  # no room for a topic
        (b"\x32\x03\x00\x01t", "bad-publish"),  # QoS 1 without a packet id
        (b"\x30\x04\x00\x02\xff\xfe", "bad-topic"),  # not UTF-8
        (b"\x30\x02\x00\x00", "bad-publish"),  # empty topic (an alias we never allowed)
        (b"\x30\xff\xff\xff\xff\x01", "bad-length"),  # 5-byte remaining length
        (b"\x30\xff\xff\xff\x7f", "packet-too-large"),
        (b"\x70\x00", "bad-packet"),  # PUBCOMP: we never sent a QoS 2 publish
        (b"\xe0\x01\x8e", "server-disconnect"),  # MQTT 5 DISCONNECT, session taken over
    ],
)
async def test_broken_broker_bytes_end_the_connection_with_a_stable_code(
    data: bytes, code: str
) -> None:
    w, p, t = wire()
    p.data_received(publish_bytes("ok/1", b"1"))  # what came before is still handed over
    p.data_received(data)
    assert t.closed
    assert [m.topic for m in await w.batch(10)] == ["ok/1"]
    with pytest.raises(WireError) as e:
        await w.batch(10)
    assert e.value.code == code


async def test_bad_mqtt5_property_lengths_are_refused() -> None:
    w, p, t = wire("5")
    p.data_received(publish_bytes("t", b"", props=None) + b"")  # no property length at all
    with pytest.raises(WireError) as e:
        await w.batch(10)
    assert e.value.code == "bad-properties" and t.closed


async def test_reading_pauses_at_high_water_and_resumes_when_taken() -> None:
    w, p, t = wire(high_water=10)
    p.data_received(b"".join(publish_bytes("t", b"x", packet_id=i + 1) for i in range(12)))
    assert not t.reading and w.paused and w.pauses == 1
    assert w.queued == 10  # the other two wait as bytes, not as messages
    await w.batch(4)  # 6 left, then the 2 held back: 8, not yet below half
    assert not t.reading
    await w.batch(4)  # 4 left
    assert t.reading and not w.paused


async def test_connack_refusal_and_connection_loss_reach_the_waiter() -> None:
    w, p, _ = wire()
    p.data_received(b"\x20\x02\x00\x05")
    with pytest.raises(WireError) as e:
        await w._connack
    assert e.value.code == "refused" and "not authorised" in str(e.value)
    w2, p2, _ = wire()
    waiter = asyncio.ensure_future(w2.batch(1))
    await asyncio.sleep(0)
    p2.connection_lost(ConnectionResetError("reset by peer"))
    with pytest.raises(WireError) as e:
        await waiter
    assert e.value.code == "closed"


async def test_suback_with_a_refused_filter_raises() -> None:
    w, p, t = wire()
    sub = asyncio.ensure_future(w.subscribe([("a/+", 1), ("b/#", 1)]))
    await asyncio.sleep(0)
    assert bytes(t.written) == subscribe_packet(1, [("a/+", 1), ("b/#", 1)], "3.1.1")
    p.data_received(b"\x90\x04\x00\x01\x01\x80")
    with pytest.raises(WireError) as e:
        await sub
    assert e.value.code == "suback-refused" and "b/#" in str(e.value)


def test_connect_packets_carry_a_persistent_session_and_credentials() -> None:
    v3 = connect_packet("gw-1", protocol="3.1.1", keepalive_s=30, username="u", password="p")
    assert v3 == (
        b"\x10\x16\x00\x04MQTT\x04\xc0\x00\x1e" + b"\x00\x04gw-1" + b"\x00\x01u" + b"\x00\x01p"
    )
    v5 = connect_packet(
        "gw-1", protocol="5", keepalive_s=30, session_expiry_s=604800, receive_maximum=1024
    )
    # level 5, no flags (clean start off), keep-alive, 8 bytes of properties
    assert v5[2:12] == b"\x00\x04MQTT\x05\x00\x00\x1e"
    assert v5[12:21] == b"\x08\x11" + struct.pack("!I", 604800) + b"\x21\x04\x00"

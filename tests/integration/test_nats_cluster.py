"""The ordering substrate issue 11 builds on, checked on real servers: a JetStream stream
replicated on three ``nats-server`` processes (one per member), fsync on every write.

What the ledger will rely on: a resent batch (same ``Nats-Msg-Id``, the manifest hash)
is stored once; an acknowledged message survives kill -9 of the node that took it; the
stream keeps taking writes with one node of three down; and a client of every member's
server (the killed one restarted) reads the same messages in the same order. The ledger's
own JetStream sequencer (``ordering/jetstream.py``) is the next step of issue 11."""

from __future__ import annotations

import asyncio

import nats
import pytest

from support.nats import NatsCluster

pytestmark = pytest.mark.integration


async def _stream(urls: list[str]) -> tuple[object, object]:
    from nats.js.api import StreamConfig

    nc = await nats.connect(urls, connect_timeout=2)
    js = nc.jetstream()
    await js.add_stream(
        StreamConfig(
            name="LEDGER", subjects=["ledger.batches"], num_replicas=3, duplicate_window=600
        )
    )
    return nc, js


async def _publish_until_acked(js: object, data: bytes, msg_id: str) -> None:
    for _ in range(60):  # bounded: 60 tries of up to 2 s
        try:
            await js.publish(  # type: ignore[attr-defined]
                "ledger.batches", data, headers={"Nats-Msg-Id": msg_id}, timeout=2
            )
            return
        # A leader election answers "no responders" or "no response from stream" (a
        # nats.errors.Error) for a moment: the same entry is sent again, as the member does.
        except (TimeoutError, nats.errors.Error):
            await asyncio.sleep(0.2)
    pytest.fail(f"{msg_id} was never acknowledged with two of three servers up")


async def _read_all(url: str, n: int) -> list[bytes]:
    nc = await nats.connect([url], connect_timeout=2)
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe("ledger.batches", durable=None, stream="LEDGER")
        got: list[bytes] = []
        while len(got) < n:
            for m in await sub.fetch(n - len(got), timeout=5):
                got.append(m.data)
                await m.ack()
        return got
    finally:
        await nc.close()


def test_a_replicated_stream_dedups_survives_a_kill_and_orders_alike() -> None:
    with NatsCluster() as cluster:

        async def scenario() -> None:
            nc, js = await _stream(cluster.urls)
            try:
                first = await js.publish(
                    "ledger.batches", b"batch-1", headers={"Nats-Msg-Id": "h1"}
                )
                again = await js.publish(
                    "ledger.batches", b"batch-1", headers={"Nats-Msg-Id": "h1"}
                )
                assert again.duplicate and again.seq == first.seq
                # kill -9 one member's server: two of three still make a majority.
                cluster.kill(cluster.nodes[2])
                # The client may have been on that server, or the stream's leader may have
                # been: publishes time out until a new leader is elected. Resending with the
                # same Nats-Msg-Id is safe (what the sequencer does); nothing is stored twice.
                for i in range(2, 12):
                    await _publish_until_acked(js, f"batch-{i}".encode(), f"h{i}")
                info = await js.stream_info("LEDGER")
                assert info.state.messages == 11
            finally:
                await nc.close()

        asyncio.run(scenario())
        cluster.start(cluster.nodes[2])  # it catches up from the others
        expected = [f"batch-{i}".encode() for i in range(1, 12)]

        async def every_member_reads_the_same() -> None:
            for url in cluster.urls:
                for _ in range(50):  # the restarted node may still be catching up
                    try:
                        assert await _read_all(url, 11) == expected
                        break
                    except (TimeoutError, nats.errors.Error):
                        await asyncio.sleep(0.2)
                else:
                    pytest.fail(f"{url} never served the whole stream")

        asyncio.run(every_member_reads_the_same())

"""The consortium's ordering: one NATS JetStream stream that every member reads in order.

This module is the only one that speaks NATS (nats-py, docs/adr/0317). It does two
things and knows nothing of the ledger:

- :meth:`OrderingStream.publish` puts an entry on the stream and returns its sequence
  once the stream has acknowledged it, which with R3 and ``sync_interval: always`` means
  it is fsynced on a majority of the servers. ``Nats-Msg-Id`` makes a resend within the
  duplicate window a no-op that answers with the first sequence; a publish that times
  out (a leader election, a killed server) is sent again with the same id, for a bounded
  time, then refused with a coded 503 so the gateway sends it later.
- :meth:`OrderingStream.entries` yields every entry from a given sequence on, in stream
  order, with the stream's own timestamp (set once by the stream leader, the same for
  every reader: the deterministic "accepted at"). It survives a server's death: the
  client reconnects to another server and the reader resumes after the last entry it
  yielded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from anchor.errors import AnchorError

__all__ = ["KIND_HEADER", "MEMBER_HEADER", "OrderingStream", "StreamEntry"]

KIND_HEADER = "Coldtrail-Kind"
MEMBER_HEADER = "Coldtrail-Member"
_log = logging.getLogger("coldtrail.anchor.ordering")


@dataclass(frozen=True, slots=True)
class StreamEntry:
    seq: int
    kind: str
    headers: Mapping[str, str]
    data: bytes
    timestamp_ms: int  # assigned by the stream when it stored the entry

    @property
    def msg_id(self) -> str:
        return self.headers.get("Nats-Msg-Id", "")


class OrderingStream:
    """A connection to the consortium's stream (create it with :meth:`connect`)."""

    def __init__(self, nc: Any, stream: str, subject: str, *, publish_timeout_s: float) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self.stream = stream
        self.subject = subject
        self.publish_timeout_s = publish_timeout_s

    @classmethod
    async def connect(
        cls,
        urls: list[str],
        stream: str,
        subject: str,
        *,
        replicas: int,
        publish_timeout_s: float = 20.0,
        name: str = "coldtrail-anchor",
    ) -> OrderingStream:
        import nats

        async def disconnected() -> None:
            _log.warning("disconnected from NATS; reconnecting")

        async def reconnected() -> None:
            _log.info("reconnected to NATS")

        async def error(e: Exception) -> None:
            _log.warning("NATS: %s", e)

        nc = await nats.connect(
            urls,
            name=name,
            connect_timeout=2,
            reconnect_time_wait=0.5,
            max_reconnect_attempts=-1,
            allow_reconnect=True,
            disconnected_cb=disconnected,
            reconnected_cb=reconnected,
            error_cb=error,
        )
        self = cls(nc, stream, subject, publish_timeout_s=publish_timeout_s)
        await self._ensure_stream(replicas)
        return self

    async def _ensure_stream(self, replicas: int) -> None:
        from nats.js.api import StorageType, StreamConfig
        from nats.js.errors import NotFoundError

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30.0
        while True:
            try:
                try:
                    await self._js.stream_info(self.stream)
                    return
                except NotFoundError:
                    pass
                await self._js.add_stream(
                    StreamConfig(
                        name=self.stream,
                        subjects=[self.subject],
                        num_replicas=replicas,
                        storage=StorageType.FILE,
                        duplicate_window=600.0,  # seconds: ten minutes of resends
                    )
                )
                return
            except Exception as e:  # no JetStream leader yet, or a member created it meanwhile
                if loop.time() > deadline:
                    raise AnchorError(
                        "unavailable", f"the ordering stream {self.stream} is not available: {e}"
                    ) from e
                await asyncio.sleep(0.5)

    async def close(self, timeout_s: float = 5.0) -> None:
        """Drain, but never wait on servers that are gone: a stopping member must stop."""
        try:
            await asyncio.wait_for(self._nc.drain(), timeout_s)
        except Exception:  # already closed, the servers are gone, or the drain hung
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._nc.close(), timeout_s)

    @property
    def connected(self) -> bool:
        return bool(self._nc.is_connected)

    async def publish(
        self,
        kind: str,
        data: bytes,
        msg_id: str,
        member: str,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, bool]:
        """``(sequence, duplicate)`` once the stream has stored the entry (or had it)."""
        import nats.errors
        from nats.js.errors import APIError

        headers = {
            **(headers or {}),
            "Nats-Msg-Id": msg_id,
            KIND_HEADER: kind,
            MEMBER_HEADER: member,
        }
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.publish_timeout_s
        while True:
            try:
                ack = await self._js.publish(
                    self.subject, data, timeout=2.0, stream=self.stream, headers=headers
                )
                return int(ack.seq), bool(ack.duplicate)
            except (TimeoutError, nats.errors.Error, APIError) as e:
                if loop.time() > deadline:
                    raise AnchorError(
                        "unavailable",
                        "the ordering stream did not acknowledge the entry in time",
                        retry_after_s=5,
                    ) from e
                await asyncio.sleep(0.2)

    async def last_seq(self) -> int:
        info = await self._js.stream_info(self.stream)
        return int(info.state.last_seq)

    async def entries(self, after: int, batch: int = 256) -> AsyncIterator[list[StreamEntry]]:
        """Lists of consecutive entries after sequence ``after``, forever, in order."""
        import nats.errors
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        position = after
        while True:
            try:
                sub = await self._js.pull_subscribe(
                    self.subject,
                    durable=None,
                    stream=self.stream,
                    config=ConsumerConfig(
                        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                        opt_start_seq=position + 1,
                        ack_policy=AckPolicy.NONE,
                        inactive_threshold=30.0,
                        mem_storage=True,
                        num_replicas=1,
                    ),
                )
            except Exception as e:  # no leader, or the connection is down: try again
                _log.debug("cannot read the stream from %d yet: %s", position + 1, e)
                await asyncio.sleep(0.5)
                continue
            try:
                while True:
                    try:
                        msgs = await sub.fetch(batch, timeout=1.0)
                    except (TimeoutError, nats.errors.TimeoutError):
                        continue
                    out: list[StreamEntry] = []
                    for m in msgs:
                        meta = m.metadata
                        seq = int(meta.sequence.stream)
                        if seq <= position:
                            continue
                        if seq != position + 1:
                            # The stream never skips; a jump means the consumer lost track.
                            raise _Resubscribe(f"expected entry {position + 1}, got {seq}")
                        headers = dict(m.headers or {})
                        out.append(
                            StreamEntry(
                                seq,
                                headers.get(KIND_HEADER, ""),
                                headers,
                                bytes(m.data),
                                int(meta.timestamp.timestamp() * 1000),
                            )
                        )
                        position = seq
                    if out:
                        yield out
            except _Resubscribe as e:
                _log.warning("re-reading the stream: %s", e)
            except (nats.errors.Error, OSError) as e:
                _log.warning("the stream reader lost its consumer (%s); resubscribing", e)
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):  # the consumer expires by itself
                    await sub.unsubscribe()


class _Resubscribe(Exception):
    pass

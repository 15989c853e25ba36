"""Reading a serial device off the event loop, shared by sensors and scanners.

pyserial blocks, so every read runs in a worker thread (``asyncio.to_thread``)
with a short timeout: the loop never blocks, and cancellation takes effect
within one timeout. :class:`ByteStream` is the seam: the real port in
production, an in-memory twin in unit tests.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence
from typing import Protocol

import serial

from gateway.observations import Observation, Sink

from .backoff import BackoffPolicy, SourceCounters, reconnect_forever
from .line_framer import LineFramer, Overflow, Resync

__all__ = ["ByteStream", "PySerialStream", "read_lines_forever"]

log = logging.getLogger("coldtrail.gateway.sources.serial")

_CHUNK_BYTES = 4096


class ByteStream(Protocol):
    def read_chunk(self) -> bytes:
        """Block until some bytes arrive or the read timeout passes (then ``b""``)."""

    def close(self) -> None: ...


class PySerialStream:
    """A real serial port (USB adapter, UART or pty) through pyserial."""

    def __init__(self, port: str, baudrate: int, read_timeout_s: float) -> None:
        # exclusive=True: a second process opening the same logger would steal
        # half of its bytes and turn good frames into bad ones.
        self._port = serial.Serial(port, baudrate, timeout=read_timeout_s, exclusive=True)

    def read_chunk(self) -> bytes:
        first = bytes(self._port.read(1))
        if not first:
            return b""
        waiting = int(self._port.in_waiting)
        return first + (bytes(self._port.read(min(waiting, _CHUNK_BYTES))) if waiting else b"")

    def close(self) -> None:
        self._port.close()


OpenStream = Callable[[], ByteStream]
DecodeLine = Callable[[bytes | Overflow], list[Observation]]


async def read_lines_forever(
    name: str,
    open_stream: OpenStream,
    framer_factory: Callable[[], LineFramer],
    decode: DecodeLine,
    sink: Sink,
    counters: SourceCounters,
    backoff: BackoffPolicy,
    rng: random.Random | None = None,
) -> None:
    """Open, read, frame, decode and submit until cancelled, reopening on failure."""

    async def session() -> None:
        stream = await asyncio.to_thread(open_stream)
        framer = framer_factory()  # a reopened port starts mid-line: fresh buffer
        counters.connected = True
        try:
            while True:
                chunk = await asyncio.to_thread(stream.read_chunk)
                if not chunk:
                    continue
                observations: list[Observation] = []
                for line in framer.feed(chunk):
                    if isinstance(line, Resync):
                        counters.partial_at_open += 1
                        continue
                    decoded = decode(line)
                    counters.count_frame(decoded)
                    observations.extend(decoded)
                if observations:
                    await _submit_until_durable(name, sink, observations, backoff, rng)
        finally:
            counters.connected = False
            await asyncio.to_thread(stream.close)

    await reconnect_forever(name, session, backoff, counters, log, rng)


async def _submit_until_durable(
    name: str,
    sink: Sink,
    observations: Sequence[Observation],
    backoff: BackoffPolicy,
    rng: random.Random | None,
) -> None:
    # A serial device cannot resend, so a failed submit is retried with the same
    # observations instead of dropping them; meanwhile the kernel buffers the port.
    rng = rng or random.Random()
    attempt = 0
    while True:
        try:
            await sink.submit(observations)
            return
        except asyncio.CancelledError:
            raise
        except Exception as e:
            delay = backoff.delay(attempt, rng)
            attempt += 1
            log.warning("source %s: submit failed (%s), retrying in %.2fs", name, e, delay)
            await asyncio.sleep(delay)


class SerialPortConfig(Protocol):
    """What a serial line source needs from its config."""

    @property
    def name(self) -> str: ...
    @property
    def port(self) -> str: ...
    @property
    def baudrate(self) -> int: ...
    @property
    def read_timeout_s(self) -> float: ...
    @property
    def backoff(self) -> BackoffPolicy: ...


class SerialLineSource:
    """A :class:`gateway.observations.Source` reading framed lines from one serial port.

    Subclasses say how lines are framed (``framer``) and parsed (``decode``); reading
    off the event loop, reconnecting and submitting are the same for every device.
    """

    def __init__(
        self,
        config: SerialPortConfig,
        open_stream: OpenStream | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.name = config.name
        self.counters = SourceCounters()
        self._port_config = config
        self._open: OpenStream = open_stream or self._open_pyserial
        self._rng = rng

    def _open_pyserial(self) -> ByteStream:
        c = self._port_config
        return PySerialStream(c.port, c.baudrate, c.read_timeout_s)

    def framer(self) -> LineFramer:
        raise NotImplementedError

    def decode(self, line: bytes | Overflow) -> list[Observation]:
        raise NotImplementedError

    async def run(self, sink: Sink) -> None:
        await read_lines_forever(
            self.name,
            self._open,
            self.framer,
            self.decode,
            sink,
            self.counters,
            self._port_config.backoff,
            self._rng,
        )

"""Serial sources against an in-memory port twin: framing, counting, retry, reconnect."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Sequence

import pytest

from firmware_sim.frames import encode_frame
from gateway.observations import BadInput, Measurement, Observation, ScanEvent
from gateway.sources.backoff import BackoffPolicy, SourceCounters, reconnect_forever
from gateway.sources.scanner import SerialScannerConfig, SerialScannerSource
from gateway.sources.serial_sensor import SerialSensorConfig, SerialSensorSource

FAST = BackoffPolicy(initial_s=0.001, max_s=0.01, healthy_after_s=60)


class RecordingSink:
    """In-memory Sink: records what was submitted; can fail the first N submits."""

    def __init__(self, fail_first: int = 0) -> None:
        self.observations: list[Observation] = []
        self.calls = 0
        self._fail = fail_first
        self.changed = asyncio.Event()

    async def submit(self, observations: Sequence[Observation]) -> None:
        self.calls += 1
        if self._fail:
            self._fail -= 1
            raise OSError("disk full")
        self.observations.extend(observations)
        self.changed.set()

    async def wait_for(self, n: int, timeout_s: float = 10.0) -> None:
        async def enough() -> None:
            while len(self.observations) < n:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(enough(), timeout_s)


class ScriptedStream:
    """ByteStream twin: hands out scripted chunks, then raises to simulate an unplug."""

    def __init__(self, chunks: list[bytes], then_fail: bool = True) -> None:
        self._chunks = list(chunks)
        self._then_fail = then_fail
        self.closed = threading.Event()

    def read_chunk(self) -> bytes:
        if self._chunks:
            return self._chunks.pop(0)
        if self._then_fail:
            raise OSError("device disconnected")
        self.closed.wait(0.01)
        return b""

    def close(self) -> None:
        self.closed.set()


async def run_until(source, sink: RecordingSink, n: int) -> None:  # type: ignore[no-untyped-def]
    task = asyncio.create_task(source.run(sink))
    try:
        await sink.wait_for(n)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_sensor_source_frames_counts_and_reconnects() -> None:
    f1 = encode_frame("TH-01", 1, 4.0, 50.0, None)
    f2 = encode_frame("TH-01", 2, 4.5, None, None)
    sessions = [
        # first session: a frame split across reads, noise, then the port dies mid-frame
        ScriptedStream([f1[:5], f1[5:] + b"\x00\xffjunk\r\n", f2[:10]]),
        # second session: the tail of the old frame is gone; a fresh frame arrives
        ScriptedStream([f2[10:], f2], then_fail=False),
    ]
    source = SerialSensorSource(
        SerialSensorConfig("serial-a", "/dev/null", backoff=FAST),
        open_stream=lambda: sessions.pop(0),
        rng=random.Random(1),
    )
    sink = RecordingSink()
    await run_until(source, sink, 4)
    kinds = [(type(o).__name__, getattr(o, "code", getattr(o, "q", ""))) for o in sink.observations]
    assert kinds == [
        ("Measurement", "temperature"),
        ("Measurement", "humidity"),
        ("BadInput", "garbage"),
        ("Measurement", "temperature"),  # the tail of the cut frame is a resync, not noise
    ]
    assert source.counters.frames_ok == 2
    assert source.counters.frames_bad == {"garbage": 1}
    assert source.counters.partial_at_open == 1
    assert set(source.counters.last_reading_mono) == {"TH-01"}
    assert source.counters.reconnects == 1
    assert "device disconnected" in source.counters.last_error


async def test_failed_submit_is_retried_with_the_same_observations() -> None:
    stream = ScriptedStream([encode_frame("TH-01", 1, 4.0, None, None)], then_fail=False)
    source = SerialSensorSource(
        SerialSensorConfig("serial-a", "/dev/null", backoff=FAST), open_stream=lambda: stream
    )
    sink = RecordingSink(fail_first=3)
    await run_until(source, sink, 1)
    assert sink.calls == 4
    assert sink.observations == [Measurement("TH-01", "temperature", 4.0, "CEL", None, 1)]


async def test_scanner_source_with_tab_suffix_and_garbage() -> None:
    stream = ScriptedStream([b"]C10109506000134352\t", b"\xff\xfe\t]C0TRUCK-07\t"], then_fail=False)
    source = SerialScannerSource(
        SerialScannerConfig("scanner-1", "/dev/null", backoff=FAST), open_stream=lambda: stream
    )
    sink = RecordingSink()
    await run_until(source, sink, 3)
    first, second, third = sink.observations
    assert isinstance(first, ScanEvent) and first.gs1 == {"01": "09506000134352"}
    assert isinstance(second, BadInput) and second.code == "bad-encoding"
    assert isinstance(third, ScanEvent) and third.raw == "TRUCK-07"
    assert source.counters.frames_ok == 2 and source.counters.frames_bad == {"bad-encoding": 1}


def test_configs_refuse_bad_values() -> None:
    with pytest.raises(ValueError):
        SerialSensorConfig("bad name", "/dev/ttyUSB0")
    with pytest.raises(ValueError):
        SerialSensorConfig("s", "")
    with pytest.raises(ValueError):
        SerialScannerConfig("s", "/dev/ttyUSB0", max_scan_bytes=10_000)
    config = SerialSensorConfig("s", "/dev/x", sensor_ids={"a": "b"})
    with pytest.raises(TypeError):
        config.sensor_ids["a"] = "c"  # type: ignore[index]


# --- backoff ------------------------------------------------------------------------


def test_backoff_bounds_grow_exponentially_and_cap() -> None:
    policy = BackoffPolicy(initial_s=0.5, max_s=30.0)
    assert [policy.bound(n) for n in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert policy.bound(10**9) == 30.0
    rng = random.Random(7)
    delays = [policy.delay(3, rng) for _ in range(200)]
    assert all(0 <= d <= 4 for d in delays)
    assert len(set(delays)) > 100  # jittered, not lockstep


@pytest.mark.parametrize(
    "kwargs", [{"initial_s": 0}, {"initial_s": 5, "max_s": 1}, {"multiplier": 0.5}]
)
def test_backoff_refuses_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BackoffPolicy(**kwargs)


async def test_reconnect_loop_survives_any_exception_until_cancelled() -> None:
    import logging

    counters = SourceCounters()
    attempts: list[int] = []
    done = asyncio.Event()

    async def session() -> None:
        attempts.append(1)
        if len(attempts) == 4:
            done.set()
        raise [OSError("gone"), ValueError("bug"), KeyError("x")][len(attempts) % 3]

    task = asyncio.create_task(
        reconnect_forever("s", session, FAST, counters, logging.getLogger("t"), random.Random(1))
    )
    await asyncio.wait_for(done.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert counters.reconnects >= 3
    assert counters.connected is False


def test_device_sequence_jumps_are_counted_as_missed_samples() -> None:
    counters = SourceCounters()
    for seq in (1, 2, 5, 5, 6, 0, 3, 100_000, 100_001):  # 2 missed, reboot, 2 missed, wrap
        counters.count_frame([Measurement("TH-01", "temperature", 4.0, "CEL", None, seq)])
    counters.count_frame([Measurement("TH-02", "temperature", 4.0, "CEL", None, 9)])
    assert counters.device_seq_missed == 4

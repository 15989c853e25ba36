"""Uplink against the stand-in anchor over real HTTP, with the real SQLite spool.

Records leave the spool only after a receipt that verifies against the anchor's
configured key; forged or mismatched receipts, refusals and failures keep them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import random
import time
from pathlib import Path

import pytest
from gateway_twins import make_signer

from gateway.manifests import batch_payload
from gateway.metrics import GatewayMetrics
from gateway.observations import Measurement
from gateway.spool import Spool
from gateway.uplink import (
    AnchorLink,
    Backoff,
    HttpAnchorTransport,
    Outcome,
    Uplink,
    parse_retry_after,
)
from support.standin_anchor import StandinAnchor


@pytest.fixture
async def anchor():
    async with StandinAnchor() as a:
        yield a


async def filled_spool(tmp_path: Path, anchor: StandinAnchor, batches: int = 2) -> Spool:
    signer, key, _ = make_signer()
    anchor.enroll("truck-07", key.public_key)
    spool = await Spool.open(tmp_path / "s.db", signer, budget_bytes=10**9, batch_max_records=5)
    await spool.append(
        signer.drafts([Measurement("probe-1", "temperature", i, "CEL") for i in range(5 * batches)])
    )
    for _ in range(batches):
        await spool.seal_batch()
    return spool


def uplink(spool, transport, anchor, metrics=None, **kw) -> Uplink:
    kw.setdefault("backfill_batches_per_s", 1000.0)
    kw.setdefault("live_window_s", 60.0)
    return Uplink(
        spool,
        [AnchorLink(anchor.url, transport, anchor.vkey)],
        backoff=Backoff(0.01, 0.05),
        metrics=metrics,
        rng=random.Random(1),
        **kw,
    )


async def test_verified_receipt_deletes_and_records_arrive_once(tmp_path, anchor) -> None:
    spool = await filled_spool(tmp_path, anchor)
    async with HttpAnchorTransport(anchor.url, anchor.token) as transport:
        up = uplink(spool, transport, anchor)
        assert await up.step() is Outcome.SENT
        assert await up.step() is Outcome.SENT
        assert await up.step() is Outcome.IDLE
    assert spool.stats.records == 0 and spool.stats.batches == 0
    # Both closed just now, so both are live: the newest goes first.
    assert [a.manifest.batch_seq for a in anchor.accepted] == [2, 1]
    assert [r["seq"] for r in anchor.records_of("truck-07")] == list(range(1, 11))
    await spool.close()


async def test_resend_after_a_lost_reply_gets_the_same_receipt(tmp_path, anchor) -> None:
    spool = await filled_spool(tmp_path, anchor, batches=1)
    head = await spool.head_batch(mark_in_flight=False)
    async with HttpAnchorTransport(anchor.url, anchor.token) as transport:
        # The anchor accepted it but the gateway died before it read the reply.
        first = await transport.post_batch(batch_payload(head.manifest_json, head.records, False))
        assert first.status == 201
        up = uplink(spool, transport, anchor)
        assert await up.step() is Outcome.SENT
    assert anchor.requests[-1][1] == 200
    assert len(anchor.accepted) == 1 and spool.stats.records == 0
    await spool.close()


@pytest.mark.parametrize("mode", ["forged", "other-batch"])
async def test_bad_receipt_never_deletes(tmp_path, anchor, mode) -> None:
    spool = await filled_spool(tmp_path, anchor, batches=1)
    anchor.receipt_mode = mode
    metrics = GatewayMetrics(lambda: spool.stats)
    async with HttpAnchorTransport(anchor.url, anchor.token) as transport:
        up = uplink(spool, transport, anchor, metrics)
        assert await up.step() is Outcome.RETRY
        assert await up.step() is Outcome.RETRY
        assert "receipt rejected" in up.status.last_error
        assert spool.stats.records == 5 and spool.stats.batches == 1
        assert metrics.bad_receipts._value.get() == 2
        anchor.receipt_mode = "honest"
        assert await up.step() is Outcome.SENT
    assert spool.stats.records == 0
    await spool.close()


async def test_receipt_from_an_untrusted_anchor_key_never_deletes(tmp_path, anchor) -> None:
    spool = await filled_spool(tmp_path, anchor, batches=1)
    other = StandinAnchor()
    async with HttpAnchorTransport(anchor.url, anchor.token) as transport:
        up = Uplink(
            spool,
            [AnchorLink(anchor.url, transport, other.vkey)],
            backoff=Backoff(0.01, 0.05),
            backfill_batches_per_s=100,
            live_window_s=60,
        )
        assert await up.step() is Outcome.RETRY
    assert spool.stats.records == 5
    await spool.close()


async def test_a_4xx_refusal_is_kept_surfaced_and_not_retried(tmp_path, anchor) -> None:
    spool = await filled_spool(tmp_path, anchor, batches=1)
    anchor.refuse_with = (403, "revoked")
    metrics = GatewayMetrics(lambda: spool.stats)
    async with HttpAnchorTransport(anchor.url, anchor.token) as transport:
        up = uplink(spool, transport, anchor, metrics)
        assert await up.step() is Outcome.REFUSED
        sent = len(anchor.requests)
        assert await up.step() is Outcome.HELD
        assert len(anchor.requests) == sent  # a refused batch is not resent by itself
    head = await spool.head_batch(mark_in_flight=False)
    assert head.refusal.code == "revoked" and head.refusal.status == 403
    assert spool.stats.refused_batches == 1 and spool.stats.records == 5
    assert metrics.uplink_refused.labels("revoked")._value.get() == 1
    await spool.close()


async def test_5xx_and_unreachable_anchor_are_retried_and_keep_records(tmp_path, anchor) -> None:
    spool = await filled_spool(tmp_path, anchor, batches=1)
    async with HttpAnchorTransport(anchor.url, anchor.token, timeout_s=2) as transport:
        up = uplink(spool, transport, anchor)
        anchor.refuse_with = (503, "unavailable")
        assert await up.step() is Outcome.RETRY
        anchor.refuse_with = None
        await anchor.stop()
        assert await up.step() is Outcome.RETRY
        assert "unreachable" in up.status.last_error
        await anchor.start()
        assert await up.step() is Outcome.SENT
    assert spool.stats.refused_batches == 0 and spool.stats.records == 0
    await spool.close()


async def test_a_503_with_retry_after_is_waited_out(tmp_path, anchor) -> None:
    # A full ledger disk answers 503 disk-full with Retry-After; backoff alone (10-50 ms
    # here) would hammer it.
    spool = await filled_spool(tmp_path, anchor, batches=1)
    delays: list[float] = []

    async def sleep(s: float) -> None:
        delays.append(s)
        anchor.refuse_with = None  # space is back

    anchor.refuse_with, anchor.retry_after = (503, "disk-full"), "7"
    async with HttpAnchorTransport(anchor.url, anchor.token, timeout_s=2) as transport:
        up = uplink(spool, transport, anchor, sleep=sleep)
        task = asyncio.create_task(up.run())
        for _ in range(500):
            if anchor.accepted:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert len(anchor.accepted) == 1
    assert delays == [7.0]
    assert "disk-full" in up.status.last_error
    await spool.close()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("30", 30.0),
        ("999999999999999", 3600.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        ("Wed, 21 Oct 2015 07:29:00 GMT", 60.0),
        ("soon", None),
    ],
)
def test_retry_after_values(header: str | None, expected: float | None) -> None:
    now = datetime.datetime(2015, 10, 21, 7, 28, tzinfo=datetime.UTC).timestamp()
    assert parse_retry_after(header, now) == expected


async def test_live_first_then_backfill_oldest_first_and_paced(tmp_path, anchor) -> None:
    spool = await filled_spool(tmp_path, anchor, batches=3)
    wall = [time.time_ns() // 1_000_000]
    clock = [0.0]
    async with HttpAnchorTransport(anchor.url, anchor.token) as transport:
        up = uplink(
            spool,
            transport,
            anchor,
            backfill_batches_per_s=2.0,
            live_window_s=60.0,
            clock=lambda: clock[0],
            wall_ms=lambda: wall[0],
        )
        assert await up.step() is Outcome.SENT  # all closed just now: the newest goes first
        wall[0] += 3_600_000  # an hour later the rest is backfill, oldest first
        assert await up.step() is Outcome.SENT
        assert await up.step() is Outcome.PACED  # the next backfill slot is 0.5 s away
        assert up.pace_wait_s == 0.5
        clock[0] = 0.5
        assert await up.step() is Outcome.SENT
        assert await up.step() is Outcome.IDLE
    assert [a.manifest.batch_seq for a in anchor.accepted] == [3, 1, 2]
    assert [r["seq"] for r in anchor.records_of("truck-07")] == list(range(1, 16))
    assert spool.stats.records == 0 and spool.stats.batches == 0
    await spool.close()


async def test_a_refused_backfill_batch_does_not_block_live_batches(tmp_path, anchor) -> None:
    spool = await filled_spool(tmp_path, anchor, batches=3)
    signer = spool._sealer
    anchor.refuse_batches[1] = (409, "broken-chain")
    wall = [time.time_ns() // 1_000_000 + 3_600_000]  # batches 1-3 are an hour old
    clock = [0.0]
    async with HttpAnchorTransport(anchor.url, anchor.token) as transport:
        up = uplink(
            spool,
            transport,
            anchor,
            backfill_batches_per_s=1.0,
            clock=lambda: clock[0],
            wall_ms=lambda: wall[0],
        )
        assert await up.step() is Outcome.REFUSED  # backfill batch 1, kept
        clock[0] += 1
        assert await up.step() is Outcome.SENT  # backfill batch 2 goes on
        await spool.append(signer.drafts([Measurement("probe-1", "temperature", 99, "CEL")]))
        await spool.seal_batch()  # batch 4, live
        wall[0] = time.time_ns() // 1_000_000
        assert await up.step() is Outcome.SENT  # live batch 4 before backfill batch 3
        wall[0] += 3_600_000
        clock[0] += 1
        assert await up.step() is Outcome.SENT
        assert await up.step() is Outcome.HELD  # only the refused batch is left
    assert [a.manifest.batch_seq for a in anchor.accepted] == [2, 4, 3]
    assert spool.stats.refused_batches == 1 and spool.stats.records == 5
    head = await spool.head_batch(mark_in_flight=False)
    assert head.manifest.batch_seq == 1 and head.refusal.code == "broken-chain"
    await spool.close()


def test_backoff_grows_caps_and_jitters() -> None:
    b = Backoff(1.0, 8.0)
    rng = random.Random(7)
    delays = [b.delay_s(n, rng) for n in range(1, 8)]
    assert 0.5 <= delays[0] <= 1.0
    assert all(4.0 <= d <= 8.0 for d in delays[4:])
    assert b.delay_s(0, rng) == 0.0

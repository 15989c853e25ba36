"""The gateway in-process against the stand-in anchor: long outage, disk budget, status.

Sources are an in-memory twin that submits through the real sink, so these tests
exercise the real spool (SQLite), batcher, uplink (HTTP) and metrics endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.cli import main as cli_main
from gateway.daemon import run_gateway
from gateway.observations import Measurement, Sink
from gateway.spool import read_spool_report
from support.gateway_env import GatewaySetup, write_gateway_setup
from support.procs import free_port
from support.standin_anchor import StandinAnchor

pytestmark = pytest.mark.integration


class PushSource:
    """A source the test drives: ``push`` returns once the gateway made it durable."""

    name = "push"

    def __init__(self) -> None:
        self._sink: Sink | None = None
        self.ready = asyncio.Event()
        self.next_val = 0

    async def run(self, sink: Sink) -> None:
        self._sink = sink
        self.ready.set()
        await asyncio.Event().wait()

    async def push(self, n: int) -> list[int]:
        assert self._sink is not None
        vals = list(range(self.next_val, self.next_val + n))
        self.next_val += n
        # Values are ids here: a plain count (C62) has no physical limits to trip.
        await self._sink.submit([Measurement("line-1", "count", v, "C62") for v in vals])
        return vals


@contextlib.asynccontextmanager
async def running(setup: GatewaySetup) -> AsyncIterator[tuple[PushSource, asyncio.Task[None]]]:
    source = PushSource()
    stop = asyncio.Event()
    task = asyncio.create_task(run_gateway(setup.config, extra_sources=[source], stop=stop))
    ready = asyncio.create_task(source.ready.wait())
    await asyncio.wait([task, ready], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()
    try:
        yield source, task
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def drained(setup: GatewaySetup, task: asyncio.Task[None], timeout_s: float = 30) -> None:
    for _ in range(int(timeout_s / 0.05)):
        assert not task.done(), task
        s = read_spool_report(setup.config.spool_file).stats
        if s.records == 0 and s.batches == 0 and s.unbatched == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"spool did not drain: {s}")


def contiguous(records: list[dict[str, Any]], evicted: list[Any]) -> list[int]:
    seqs = [r["seq"] for r in records]
    seqs += [s for m in evicted for s in range(m.first_seq, m.last_seq + 1)]
    return sorted(seqs)


def spool_batches(setup: GatewaySetup) -> list[tuple[int, int, int]]:
    """(batch_seq, first_seq, last_seq) of the sealed, unsent batches, read-only."""
    conn = sqlite3.connect(f"file:{setup.config.spool_file}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT batch_seq, first_seq, last_seq FROM batches ORDER BY 1")
        return [tuple(r) for r in rows]
    finally:
        conn.close()


async def sealed(setup: GatewaySetup, task: asyncio.Task[None]) -> None:
    for _ in range(600):
        assert not task.done(), task
        if read_spool_report(setup.config.spool_file).stats.unbatched == 0:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("records were not sealed into batches")


LIVE_WINDOW_S = 2.0


async def test_long_outage_live_first_then_backlog_in_seq_order(tmp_path: Path) -> None:
    port = free_port()
    async with StandinAnchor() as anchor:
        # Every push is whole batches (the link is down: batches close by count only),
        # so the backlog and the live readings never share a batch.
        setup = write_gateway_setup(
            tmp_path,
            anchor,
            batch={"max_records": 50, "max_age_s": 0.05},
            uplink={
                "backfill_batches_per_s": 100.0,
                "live_window_s": LIVE_WINDOW_S,
                "backoff_max_s": 0.2,
            },
            metrics={"port": port},
        )
        gw = setup.config.gateway_id
        async with running(setup) as (source, task):
            before = await source.push(100)
            await drained(setup, task)

            await anchor.stop()  # the long stretch, scaled down
            during: list[int] = []
            for _ in range(20):
                during += await source.push(50)  # returns: durable although the anchor is gone
                await asyncio.sleep(0.05)
            stats = read_spool_report(setup.config.spool_file).stats
            assert stats.records >= 1000 and stats.batches >= 20
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                    text = await resp.text()
                async with http.get(f"http://127.0.0.1:{port}/status") as resp:
                    live_status = await resp.json()
            assert "coldtrail_spool_records" in text and "coldtrail_uplink_lag_seconds" in text
            assert "coldtrail_uplink_failures_total" in text
            assert live_status["uplink"]["consecutive_failures"] >= 1
            await sealed(setup, task)
            # Let the backlog age out of the live window (a wait, not a timed assertion).
            await asyncio.sleep(LIVE_WINDOW_S + 0.5)
            backlog = spool_batches(setup)
            live = await source.push(100)  # the newest readings, taken just before the link is back
            await sealed(setup, task)
            live_batches = [b for b in spool_batches(setup) if b not in backlog]
            assert live_batches, "the live readings were not sealed into their own batches"
            accepted_before = len(anchor.accepted)
            await anchor.start()
            await drained(setup, task)

    after = anchor.accepted[accepted_before:]
    order = [a.manifest.batch_seq for a in after]
    live_seqs = sorted((b[0] for b in live_batches), reverse=True)
    backlog_seqs = [b[0] for b in backlog]
    # Live first: the first batch anchored after the outage is the newest one, and
    # it holds the readings taken last; every live batch precedes the backlog.
    assert order[0] == max(b[0] for b in backlog + live_batches)
    first_vals = {r["val"] for r in after[0].records if r["type"] == "reading"}
    assert first_vals and first_vals <= set(live)
    assert order[: len(live_seqs)] == live_seqs
    # The backlog drains behind them in seq order, all of it.
    assert order[len(live_seqs) :] == backlog_seqs
    # Nothing lost, nothing twice: in chain order every seq once, every reading once.
    batch_seqs = sorted(anchor.chains[gw].by_batch)
    assert batch_seqs == list(range(1, len(batch_seqs) + 1))
    assert len(anchor.accepted) == len(batch_seqs)
    records = anchor.records_of(gw)
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    vals = [r["val"] for r in records if r["type"] == "reading"]
    assert vals == before + during + live


async def test_disk_budget_exhausted_writes_gaps_and_keeps_running(tmp_path: Path) -> None:
    async with StandinAnchor() as anchor:
        setup = write_gateway_setup(
            tmp_path,
            anchor,
            spool={"budget_bytes": 65536},
            batch={"max_records": 20, "max_age_s": 0.05},
        )
        await anchor.stop()
        async with running(setup) as (source, task):
            for _ in range(30):
                await source.push(100)
            report = read_spool_report(setup.config.spool_file)
            assert report.stats.evicted_records_total > 0
            # Records stay within the budget; the small signed manifests of evicted
            # batches stay too (the chain needs them), docs/adr/0203.
            assert report.stats.records * 300 <= 65536
            assert not task.done()
            await anchor.start()
            await source.push(10)
            await drained(setup, task)

    gw = setup.config.gateway_id
    records = anchor.records_of(gw)
    evicted = anchor.evicted_of(gw)
    assert evicted, "the budget never evicted anything"
    seqs = contiguous(records, evicted)
    assert seqs == list(range(1, len(seqs) + 1))  # nothing missing, nothing twice
    evicted_seqs = {s for m in evicted for s in range(m.first_seq, m.last_seq + 1)}
    gaps = [r for r in records if r["type"] == "gap" and r["reason"] == "evicted"]
    assert gaps
    for g in gaps:
        assert set(range(g["lost_from"], g["lost_to"] + 1)) <= evicted_seqs
    assert max(evicted_seqs) in {s for g in gaps for s in range(g["lost_from"], g["lost_to"] + 1)}
    # The last readings pushed (after the budget bit) all arrived.
    vals = {r["val"] for r in records if r["type"] == "reading"}
    assert set(range(3000, 3010)) <= vals


async def test_status_command_shows_spool_and_refusals(tmp_path: Path, capsys) -> None:
    async with StandinAnchor() as anchor:
        setup = write_gateway_setup(tmp_path, anchor, batch={"max_records": 10, "max_age_s": 0.05})
        anchor.refuse_with = (403, "revoked")
        async with running(setup) as (source, _task):
            await source.push(10)
            for _ in range(200):
                if read_spool_report(setup.config.spool_file).refusals:
                    break
                await asyncio.sleep(0.05)
        code = await asyncio.to_thread(cli_main, ["status", "--config", str(setup.config_path)])
    out = capsys.readouterr().out
    assert code == 1
    assert "REFUSED" in out and "revoked" in out and "batch 1" in out
    assert "coldtrail-gateway retry" in out
    assert await asyncio.to_thread(cli_main, ["retry", "--config", str(setup.config_path)]) == 0
    assert not read_spool_report(setup.config.spool_file).refusals

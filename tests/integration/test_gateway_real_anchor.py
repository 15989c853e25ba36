"""The gateway against the real anchor app (anchor/), not the stand-in: the contract
as both sides implement it, including evicted batches and their gap records."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from anchor.cli import main as anchor_main
from anchor.http.app import create_app
from gateway.daemon import run_gateway
from gateway.observations import Measurement, Sink
from gateway.spool import read_spool_report
from proofs.keys import PublicKey, SigningKey
from support.batches import GatewaySim, Node, make_node
from support.gateway_env import GatewaySetup, write_gateway_setup
from support.procs import free_port

pytestmark = pytest.mark.integration


@dataclass
class RealAnchor:
    node: Node
    port: int
    runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token(self) -> str:
        return self.node.gateway_token

    @property
    def vkey(self) -> str:
        return self.node.log_vkey

    def enroll(self, gw: str, public_key: PublicKey) -> None:
        assert public_key == self.node.gateway.key.public_key  # make_node enrolled it

    async def start(self) -> None:
        self.runner = web.AppRunner(create_app(self.node.config), access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


@contextlib.asynccontextmanager
async def real_anchor(tmp_path: Path, key: SigningKey) -> AsyncIterator[RealAnchor]:
    anchor = RealAnchor(make_node(tmp_path, GatewaySim(gw="truck-07", key=key)), free_port())
    await anchor.start()
    try:
        yield anchor
    finally:
        await anchor.stop()


class PushSource:
    name = "push"

    def __init__(self) -> None:
        self.sink: Sink | None = None
        self.ready = asyncio.Event()

    async def run(self, sink: Sink) -> None:
        self.sink = sink
        self.ready.set()
        await asyncio.Event().wait()

    async def push(self, vals: range) -> None:
        assert self.sink is not None
        # Values are ids here: a plain count (C62) has no physical limits to trip.
        await self.sink.submit([Measurement("line-1", "count", v, "C62") for v in vals])


async def drain(setup: GatewaySetup, task: asyncio.Task[None]) -> None:
    for _ in range(600):
        assert not task.done(), task
        s = read_spool_report(setup.config.spool_file).stats
        if s.records == 0 and s.batches == 0 and s.unbatched == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not drained: {read_spool_report(setup.config.spool_file)}")


def ledger_rows(anchor: RealAnchor, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{anchor.node.config.db_file}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def test_real_anchor_accepts_batches_evictions_and_gaps(tmp_path: Path) -> None:
    key = SigningKey.generate()
    async with real_anchor(tmp_path, key) as anchor:
        setup = write_gateway_setup(
            tmp_path,
            anchor,
            key=key,
            spool={"budget_bytes": 65536},
            batch={"max_records": 20, "max_age_s": 0.05},
        )
        source = PushSource()
        stop = asyncio.Event()
        task = asyncio.create_task(run_gateway(setup.config, extra_sources=[source], stop=stop))
        await asyncio.wait_for(source.ready.wait(), 10)
        try:
            await source.push(range(100))
            await drain(setup, task)
            await anchor.stop()  # an outage long enough to exhaust the budget
            for k in range(20):
                await source.push(range(1000 + 100 * k, 1100 + 100 * k))
            report = read_spool_report(setup.config.spool_file)
            assert report.stats.evicted_records_total > 0
            await anchor.start()
            await source.push(range(9000, 9010))
            await drain(setup, task)
            assert not read_spool_report(setup.config.spool_file).refusals
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
    batches = ledger_rows(
        anchor,
        "SELECT batch_seq, first_seq, last_seq, records_evicted FROM batches"
        " WHERE gw = 'truck-07' ORDER BY batch_seq",
    )
    assert [b[0] for b in batches] == list(range(1, len(batches) + 1))
    assert any(b[3] for b in batches), "no batch was logged as records_evicted"
    covered = [s for b in batches for s in range(b[1], b[2] + 1)]
    assert covered == list(range(1, len(covered) + 1))
    stored = {r[0] for r in ledger_rows(anchor, "SELECT seq FROM records WHERE gw = 'truck-07'")}
    evicted = {s for b in batches if b[3] for s in range(b[1], b[2] + 1)}
    assert stored | evicted == set(covered) and not stored & evicted
    gaps = ledger_rows(anchor, "SELECT json FROM records WHERE type = 'gap'")
    assert any(json.loads(g[0])["reason"] == "evicted" for g in gaps)
    vals = {r[0] for r in ledger_rows(anchor, "SELECT val FROM records WHERE type = 'reading'")}
    assert set(range(9000, 9010)) <= vals and set(range(100)) <= vals


async def test_real_anchor_outage_live_first_then_backlog_in_seq_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    live_window_s = 2.0
    key = SigningKey.generate()
    async with real_anchor(tmp_path, key) as anchor:
        # Pushes are whole batches: while the anchor is down batches close by count only.
        setup = write_gateway_setup(
            tmp_path,
            anchor,
            key=key,
            batch={"max_records": 50, "max_age_s": 0.05},
            uplink={
                "backfill_batches_per_s": 100.0,
                "live_window_s": live_window_s,
                "backoff_max_s": 0.2,
            },
        )
        source = PushSource()
        stop = asyncio.Event()
        task = asyncio.create_task(run_gateway(setup.config, extra_sources=[source], stop=stop))
        await asyncio.wait_for(source.ready.wait(), 10)
        try:
            await source.push(range(100))
            await drain(setup, task)
            await anchor.stop()
            for k in range(10):
                await source.push(range(1000 + 50 * k, 1050 + 50 * k))
            while read_spool_report(setup.config.spool_file).stats.unbatched:
                await asyncio.sleep(0.02)
            await asyncio.sleep(live_window_s + 0.5)  # the backlog ages out of the live window
            backlog_top = read_spool_report(setup.config.spool_file).stats.batches + 2
            await source.push(range(9000, 9100))  # live: two batches, the newest
            while read_spool_report(setup.config.spool_file).stats.unbatched:
                await asyncio.sleep(0.02)
            await anchor.start()
            await drain(setup, task)
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
    order = [
        r[0]
        for r in ledger_rows(
            anchor, "SELECT batch_seq FROM batches WHERE gw = 'truck-07' ORDER BY leaf_index"
        )
    ]
    # Before the outage 1, 2; then the live batches newest first; then the backlog
    # in seq order behind them.
    assert order == [1, 2, backlog_top + 2, backlog_top + 1, *range(3, backlog_top + 1)]
    covered = ledger_rows(
        anchor,
        "SELECT first_seq, last_seq FROM batches WHERE gw = 'truck-07' ORDER BY batch_seq",
    )
    seqs = [s for a, b in covered for s in range(a, b + 1)]
    assert seqs == list(range(1, len(seqs) + 1))
    vals = [r[0] for r in ledger_rows(anchor, "SELECT val FROM records ORDER BY seq")]
    assert vals == [*range(100), *range(1000, 1500), *range(9000, 9100)]
    config = tmp_path / "anchor.toml"
    config.write_text(f'[anchor]\ndata_dir = "{anchor.node.config.data_dir}"\n')
    assert anchor_main(["--config", str(config), "verify-ledger", "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert "ledger OK" in out and "WARNING" not in err

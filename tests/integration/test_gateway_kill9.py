"""kill -9 of the real gateway process during heavy input, then restart and drain.

Every record acknowledged to the source is anchored exactly once; seqs are
contiguous from 1; each unclean restart is itself a signed gap record.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
from collections import Counter
from pathlib import Path

import pytest

from gateway.spool import read_spool_report
from support.gateway_env import GatewaySetup, write_gateway_setup
from support.line_source_gateway import connect_line_socket, start_line_gateway
from support.standin_anchor import StandinAnchor

pytestmark = pytest.mark.integration

KILLS = 4


class Feeder:
    """Writes numbered readings as fast as the gateway takes them; collects acks."""

    def __init__(self) -> None:
        self.next_id = 0
        self.acked: set[int] = set()

    async def feed(self, reader, writer, window: int = 4000) -> None:
        sent = 0
        acked = 0

        async def read_acks() -> None:
            nonlocal acked
            while line := await reader.readline():
                self.acked.add(int(line.split()[1]))
                acked += 1

        acks = asyncio.create_task(read_acks())
        try:
            while not acks.done():
                if sent - acked > window:
                    await asyncio.sleep(0.005)
                    continue
                ids = range(self.next_id, self.next_id + 100)
                self.next_id += 100
                sent += 100
                writer.write(b"".join(b'{"id":%d,"src":"line-1","val":%d}\n' % (i, i) for i in ids))
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                await acks
            writer.close()


async def wait_drained(setup: GatewaySetup, proc, timeout_s: float = 60.0) -> None:
    for _ in range(int(timeout_s / 0.1)):
        assert proc.returncode is None, "gateway died while draining"
        s = read_spool_report(setup.config.spool_file).stats
        if s.records == 0 and s.batches == 0 and s.unbatched == 0:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"spool did not drain: {s}")


async def test_kill9_at_random_points_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    rng = random.Random(20261122)
    log = tmp_path / "gateway.log"
    sock = tmp_path / "in.sock"
    feeder = Feeder()
    async with StandinAnchor() as anchor:
        setup = write_gateway_setup(tmp_path, anchor, batch={"max_records": 200, "max_age_s": 0.1})
        acked_per_run = []
        for _ in range(KILLS):
            proc = await start_line_gateway(setup.config_path, sock, log)
            reader, writer = await connect_line_socket(sock, proc)
            before = len(feeder.acked)
            feeding = asyncio.create_task(feeder.feed(reader, writer))
            await asyncio.sleep(rng.uniform(0.4, 1.5))
            os.kill(proc.pid, signal.SIGKILL)
            assert await proc.wait() == -signal.SIGKILL
            await feeding
            acked_per_run.append(len(feeder.acked) - before)

        proc = await start_line_gateway(setup.config_path, sock, log)
        try:
            await wait_drained(setup, proc)
        finally:
            proc.send_signal(signal.SIGTERM)
            code = await proc.wait()
        assert code == 0, log.read_text()[-3000:]

    assert all(n > 0 for n in acked_per_run), acked_per_run
    records = anchor.records_of(setup.config.gateway_id)
    seqs = [r["seq"] for r in records]
    assert seqs == list(range(1, len(seqs) + 1))  # contiguous, no duplicate, in chain order
    ids = Counter(r["val"] for r in records if r["type"] == "reading")
    assert max(ids.values()) == 1, "a reading was anchored twice"
    missing = feeder.acked - set(ids)
    assert not missing, f"{len(missing)} acknowledged readings were lost"
    restarts = [r for r in records if r["type"] == "gap" and r["reason"] == "restart"]
    assert len(restarts) == KILLS
    assert not anchor.evicted_of(setup.config.gateway_id)

"""The real gateway with its state directory on a small real filesystem that fills up.

A tmpfs of a few hundred KiB is mounted on the state directory (root only), the
gateway runs against the stand-in anchor, and a filler file takes every free byte.
The daemon must stay up, evict oldest first with signed gaps, drain once the anchor
is reachable again (freeing pages inside the spool file that new records reuse),
store new readings again without a restart, report the condition in ``status`` and
``/metrics``, and survive kill -9 while the disk is full with its seq chain intact.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.cli import main as cli_main
from gateway.spool import read_spool_report
from support.gateway_env import GatewaySetup, write_gateway_setup
from support.line_source_gateway import connect_line_socket, start_line_gateway
from support.procs import free_port
from support.small_fs import fill, small_tmpfs
from support.standin_anchor import StandinAnchor

pytestmark = pytest.mark.integration

FS_SIZE = "3m"
# Given through the environment so that the unchanged gateway (which has no such keys)
# still starts: the reproduction must fail on behaviour, not on an unknown config key.
SPACE_ENV = {
    "COLDTRAIL_SPOOL_MIN_FREE_BYTES": str(256 * 1024),
    "COLDTRAIL_SPOOL_RESERVE_BYTES": str(256 * 1024),
}
SPACE_ENV_MIN_FREE = int(SPACE_ENV["COLDTRAIL_SPOOL_MIN_FREE_BYTES"])


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A real tmpfs of ``FS_SIZE`` on ``tmp_path/state``, unmounted afterwards."""
    with small_tmpfs(tmp_path / "state", FS_SIZE) as state:
        yield state


async def feed(sock: Path, proc: asyncio.subprocess.Process, vals: range) -> set[int]:
    """Send readings ``vals`` on one connection; return those acknowledged (durable).

    The line source drops the connection when a submit fails, so a short answer is
    possible and not an error here: what was acknowledged is what must be accounted for.
    """
    reader, writer = await connect_line_socket(sock, proc)
    acked: set[int] = set()
    try:
        for start in range(vals.start, vals.stop, 50):
            ids = range(start, min(start + 50, vals.stop))
            writer.write(b"".join(b'{"id":%d,"src":"line-1","val":%d}\n' % (i, i) for i in ids))
            await writer.drain()
            for _ in ids:
                line = await asyncio.wait_for(reader.readline(), 20)
                if not line:
                    return acked
                acked.add(int(line.split()[1]))
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
    return acked


async def drained(setup: GatewaySetup, proc: asyncio.subprocess.Process, log: Path) -> None:
    for _ in range(600):
        assert proc.returncode is None, f"gateway died: {log.read_text()[-3000:]}"
        s = read_spool_report(setup.config.spool_file).stats
        if s.records == 0 and s.batches == 0 and s.unbatched == 0:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"spool did not drain: {s}")


async def scrape(port: int) -> tuple[str, dict[str, Any]]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
            text = await resp.text()
        async with http.get(f"http://127.0.0.1:{port}/status") as resp:
            status = await resp.json()
    return text, status


def metric(text: str, name: str) -> float:
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name)]
    assert values, f"{name} not in /metrics"
    return sum(values)


def accounted(anchor: StandinAnchor, gw: str) -> tuple[list[dict[str, Any]], set[int]]:
    """Anchored records, and the seqs of evicted batches. Asserts that every seq is one
    or the other exactly once, that every signed ``evicted`` gap names evicted seqs only,
    and that the newest eviction is named (older gaps may themselves have been evicted,
    docs/adr/0203: their loss is then on the ledger as an evicted manifest)."""
    records = anchor.records_of(gw)
    evicted = {s for m in anchor.evicted_of(gw) for s in range(m.first_seq, m.last_seq + 1)}
    seqs = sorted([r["seq"] for r in records] + list(evicted))
    assert seqs == list(range(1, len(seqs) + 1)), "a seq is missing or twice"
    gaps = [r for r in records if r["type"] == "gap" and r["reason"] == "evicted"]
    named: set[int] = set()
    for g in gaps:
        lost = set(range(g["lost_from"], g["lost_to"] + 1))
        assert lost <= evicted, f"gap {g['seq']} names seqs that were not evicted"
        assert g["count"] == len(lost)
        named |= lost
    if evicted:
        assert max(evicted) in named, "the newest eviction is not named by a signed gap"
    return records, evicted


async def test_full_disk_keeps_running_drains_and_stores_again(
    tmp_path: Path, small_fs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    log = tmp_path / "gateway.log"
    sock = tmp_path / "in.sock"
    async with StandinAnchor() as anchor:
        setup = write_gateway_setup(
            tmp_path, anchor, batch={"max_records": 50, "max_age_s": 0.1}, metrics={"port": port}
        )
        gw = setup.config.gateway_id
        proc = await start_line_gateway(setup.config_path, sock, log, SPACE_ENV)
        try:
            acked = await feed(sock, proc, range(0, 300))
            assert len(acked) == 300
            await drained(setup, proc, log)

            await anchor.stop()  # outage: the spool has to keep everything
            filler = fill(small_fs)
            for start in range(300, 6300, 500):  # far more than the filesystem can hold
                chunk = await feed(sock, proc, range(start, start + 500))
                acked |= chunk
                assert proc.returncode is None, f"gateway died: {log.read_text()[-3000:]}"
            # The newest readings are stored: the oldest unsent ones make room for them.
            assert chunk == set(range(start, start + 500)), "new readings lost on a full disk"
            await asyncio.sleep(1.0)
            assert proc.returncode is None, f"gateway died: {log.read_text()[-3000:]}"
            assert filler.exists()

            # The anchor comes back; the filler stays. Receipts free pages in the spool
            # file, which the records that follow reuse: no restart, no person.
            await anchor.start()
            await drained(setup, proc, log)
            # In steps the anchor keeps up with: the spool file (small, as the disk filled
            # while it was) then always has free pages for them, and nothing is evicted.
            for start in range(10_000, 10_200, 50):
                late = await feed(sock, proc, range(start, start + 50))
                assert late == set(range(start, start + 50)), "new readings were not stored"
                acked |= late
                await drained(setup, proc, log)
            text, status = await scrape(port)
            assert status["spool"]["disk_free_bytes"] < SPACE_ENV_MIN_FREE
            assert status["spool"]["min_free_bytes"] == SPACE_ENV_MIN_FREE
            assert metric(text, "coldtrail_spool_disk_free_bytes") < SPACE_ENV_MIN_FREE
            assert metric(text, 'coldtrail_spool_evictions_total{reason="disk-space"}') > 0
            assert status["spool"]["disk_full"] is True  # the filler is still there
            assert metric(text, "coldtrail_spool_disk_full") == 1.0
            assert status["spool"]["disk_errors_total"] >= 1  # the write that found it full
            assert status["spool"]["last_disk_error"]
            capsys.readouterr()
            code = await asyncio.to_thread(cli_main, ["status", "--config", str(setup.config_path)])
            assert code == 0
            out = capsys.readouterr().out
            assert "disk           FULL:" in out and "last error" in out
            assert "by disk-space" in out

        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            code = await proc.wait()
        assert code == 0, log.read_text()[-3000:]

    records, evicted = accounted(anchor, gw)
    assert evicted, "the full disk never evicted anything"
    anchored_vals = {r["val"] for r in records if r["type"] == "reading"}
    lost = acked - anchored_vals
    # An acknowledged reading is anchored, or was in a batch the disk evicted (named by
    # a signed gap): never silently gone.
    assert len(lost) <= len(evicted)
    assert set(range(10_000, 10_200)) <= anchored_vals


async def test_kill9_while_disk_full_keeps_the_chain(tmp_path: Path, small_fs: Path) -> None:
    log = tmp_path / "gateway.log"
    sock = tmp_path / "in.sock"
    async with StandinAnchor() as anchor:
        setup = write_gateway_setup(tmp_path, anchor, batch={"max_records": 50, "max_age_s": 0.1})
        gw = setup.config.gateway_id
        acked: set[int] = set()
        await anchor.stop()
        proc = await start_line_gateway(setup.config_path, sock, log, SPACE_ENV)
        acked |= await feed(sock, proc, range(0, 500))
        filler = fill(small_fs)
        for round_ in range(2):  # killed while full, restarted while still full, killed again
            feeding = asyncio.create_task(
                feed(sock, proc, range(1000 * (round_ + 1), 1000 * (round_ + 1) + 3000))
            )
            await asyncio.sleep(1.0)
            assert proc.returncode is None, f"gateway died: {log.read_text()[-3000:]}"
            os.kill(proc.pid, signal.SIGKILL)
            assert await proc.wait() == -signal.SIGKILL
            acked |= await feeding
            conn = sqlite3.connect(setup.config.spool_file)
            try:
                assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            finally:
                conn.close()
            proc = await start_line_gateway(setup.config_path, sock, log, SPACE_ENV)
            _, writer = await connect_line_socket(sock, proc)  # up although the disk is full
            writer.close()
            await writer.wait_closed()

        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
        filler.unlink()
        await anchor.start()
        proc = await start_line_gateway(setup.config_path, sock, log, SPACE_ENV)
        try:
            late = await feed(sock, proc, range(20_000, 20_100))
            assert late == set(range(20_000, 20_100))
            acked |= late
            await drained(setup, proc, log)
        finally:
            proc.send_signal(signal.SIGTERM)
            code = await proc.wait()
        assert code == 0, log.read_text()[-3000:]

    records, evicted = accounted(anchor, gw)
    # Each of the three restarts wrote its signed restart gap, the two on a full disk
    # too; those two may since have been evicted with their batch (then their seqs are
    # in an evicted manifest), the last one is anchored.
    assert "restart gap not stored" not in log.read_text()
    restarts = [r for r in records if r["type"] == "gap" and r["reason"] == "restart"]
    assert restarts and max(r["seq"] for r in restarts) > max(evicted, default=0)
    anchored_vals = {r["val"] for r in records if r["type"] == "reading"}
    assert len(acked - anchored_vals) <= len(evicted)
    assert set(range(20_000, 20_100)) <= anchored_vals

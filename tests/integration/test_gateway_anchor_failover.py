"""Failover between two anchor member nodes, every part a real process.

Two stand-in members of one consortium (one log origin, each its own log key) on free
loopback ports, and the real gateway daemon fed through its line source. The home
member is killed with -9 while readings flow: the gateway moves to the other member
at once, every record is receipted exactly once, the spool empties. The home member is
restarted (same port, same key) and the gateway goes back to it after failback_s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from gateway.cli import main as cli_main
from gateway.spool import read_spool_report
from proofs.note import NoteVerifier, SignedNote
from proofs.receipt import verify_receipt
from proofs.records import Manifest
from support.gateway_env import GatewaySetup, write_gateway_setup
from support.line_source_gateway import connect_line_socket, start_line_gateway
from support.procs import free_port
from support.standin_process import StandinProcess

pytestmark = pytest.mark.integration

ORIGIN = "coldtrail.test/log"
FAILBACK_S = 2.0


class Feeder:
    """Numbered readings at a steady pace through the line socket; collects the acks."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.next_id = 0
        self.acked: set[int] = set()
        self.per_tick = 20

    async def run(self, stop: asyncio.Event) -> None:
        async def read_acks() -> None:
            while line := await self.reader.readline():
                self.acked.add(int(line.split()[1]))

        acks = asyncio.create_task(read_acks())
        while not stop.is_set():
            ids = range(self.next_id, self.next_id + self.per_tick)
            self.next_id += self.per_tick
            self.writer.write(
                b"".join(b'{"id":%d,"src":"line-1","val":%d}\n' % (i, i) for i in ids)
            )
            await self.writer.drain()
            await asyncio.sleep(0.02)
        for _ in range(500):  # every line written is acknowledged before we go
            if len(self.acked) == self.next_id:
                break
            await asyncio.sleep(0.01)
        acks.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await acks
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()
        assert len(self.acked) == self.next_id, "the gateway did not acknowledge every line"


async def until(what: str, ok: Callable[[], bool], proc, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.returncode is None, "the gateway died"
        if ok():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def drained(setup: GatewaySetup) -> bool:
    s = read_spool_report(setup.config.spool_file).stats
    return s.records == 0 and s.batches == 0 and s.unbatched == 0


def receipts(setup: GatewaySetup) -> dict[int, tuple[Manifest, dict]]:
    """batch_seq -> (manifest, receipt) as the gateway kept them after verifying."""
    conn = sqlite3.connect(f"file:{setup.config.spool_file}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT batch_seq, manifest, receipt FROM receipts").fetchall()
    finally:
        conn.close()
    return {n: (Manifest.from_dict(json.loads(m)), json.loads(r)) for n, m, r in rows}


def signer_of(receipt: dict, members: dict[str, StandinProcess]) -> str:
    note = SignedNote.parse(receipt["receipt"]["checkpoint"])
    by_key = {NoteVerifier.from_vkey(m.vkey).key_id: name for name, m in members.items()}
    return by_key[note.signatures[0].key_id]


async def live_status(port: int) -> tuple[dict, str]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/status") as resp:
            status = await resp.json()
        async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
            metrics = await resp.text()
    return status["uplink"], metrics


async def test_home_member_killed_then_back(tmp_path: Path, capsys) -> None:
    a = StandinProcess(tmp_path / "member-a", origin=ORIGIN)
    b = StandinProcess(tmp_path / "member-b", origin=ORIGIN)
    members = {"a": a, "b": b}
    metrics_port = free_port()
    setup = write_gateway_setup(
        tmp_path / "gw",
        [a, b],
        # min_free_bytes 0: the spool keeps all its receipts whatever this disk has free.
        spool={"min_free_bytes": 0},
        batch={"max_records": 50, "max_age_s": 0.1},
        uplink={"failback_s": FAILBACK_S, "timeout_s": 2.0, "backoff_max_s": 0.2},
        metrics={"port": metrics_port},
    )
    log = tmp_path / "gateway.log"
    a.start()
    b.start()
    proc = await start_line_gateway(setup.config_path, tmp_path / "in.sock", log)
    try:
        reader, writer = await connect_line_socket(tmp_path / "in.sock", proc)
        feeder = Feeder(reader, writer)
        stop = asyncio.Event()
        feeding = asyncio.create_task(feeder.run(stop))

        await until("batches at member A", lambda: len(a.accepted()) >= 10, proc)
        a.kill9()  # mid-run: readings keep coming, a POST may be in flight
        took_before_kill = a.accepted()
        await until("batches at member B", lambda: len(b.accepted()) >= 20, proc)
        stop.set()
        await feeding
        await until("the spool to drain", lambda: drained(setup), proc)

        uplink, metrics = await live_status(metrics_port)
        assert uplink["member"] == b.url and uplink["member_index"] == 1
        assert uplink["failovers"] == 1 and uplink["members"] == 2
        assert f'coldtrail_uplink_failovers_total{{member="{b.url}"}} 1.0' in metrics
        assert "coldtrail_uplink_member_index 1.0" in metrics

        # Every batch has one receipt, verified with the key of the member that signed it.
        kept = receipts(setup)
        batch_seqs = sorted(kept)
        assert batch_seqs == list(range(1, len(batch_seqs) + 1))
        by_member = {name: m.accepted() for name, m in members.items()}
        signed_by: dict[int, str] = {}
        records = []
        for n, (manifest, receipt) in kept.items():
            signed_by[n] = signer_of(receipt, members)
            verify_receipt(receipt, manifest, members[signed_by[n]].vkey)
            [entry] = [e for e in by_member[signed_by[n]] if e.manifest.batch_seq == n]
            assert entry.manifest == manifest
            records += entry.records
        # Member A's receipts are for batches it took before the kill; the rest came via B.
        took_by_a = {e.manifest.batch_seq for e in took_before_kill}
        assert {n for n, m in signed_by.items() if m == "a"} <= took_by_a
        at_b = [e.manifest.batch_seq for e in by_member["b"]]
        assert len(at_b) == len(set(at_b))  # B took each batch once
        assert {n for n, m in signed_by.items() if m == "b"} == set(at_b)
        # Only the batch whose answer the kill cut off may be at both: the same bytes,
        # which the consortium's dedupe by manifest hash stores once.
        both = took_by_a & set(at_b)
        assert len(both) <= 1
        for n in both:
            [at_a] = [e for e in took_before_kill if e.manifest.batch_seq == n]
            [again] = [e for e in by_member["b"] if e.manifest.batch_seq == n]
            assert at_a.manifest_json == again.manifest_json
        # Each record once, seqs without holes, every acknowledged reading there.
        seqs = sorted(r["seq"] for r in records)
        assert seqs == list(range(1, len(seqs) + 1))
        vals = Counter(r["val"] for r in records if r["type"] == "reading")
        assert max(vals.values()) == 1
        assert set(vals) == feeder.acked

        # Member A is back on the same port with the same key: home after failback_s.
        a.start()
        reader, writer = await connect_line_socket(tmp_path / "in.sock", proc)
        feeder = Feeder(reader, writer)
        feeder.per_tick = 5
        stop = asyncio.Event()
        feeding = asyncio.create_task(feeder.run(stop))
        await until(
            "a batch at the restarted member A",
            lambda: len(a.accepted()) > len(took_before_kill),
            proc,
            timeout_s=FAILBACK_S + 10,
        )
        stop.set()
        await feeding
        await until("the spool to drain", lambda: drained(setup), proc)
        uplink, metrics = await live_status(metrics_port)
        assert uplink["member"] == a.url and uplink["member_index"] == 0
        assert uplink["failbacks"] == 1
        assert "coldtrail_uplink_failbacks_total 1.0" in metrics
        after = receipts(setup)
        last = max(after)
        assert signer_of(after[last][1], members) == "a"
        code = await asyncio.to_thread(cli_main, ["status", "--config", str(setup.config_path)])
        out = capsys.readouterr().out
        assert code == 0 and f"anchor       {a.url} (the home member; 2 listed" in out
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        exit_code = await proc.wait()
        a.stop()
        b.stop()
    assert exit_code == 0, log.read_text()[-3000:]

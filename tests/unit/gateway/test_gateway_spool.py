"""The real SQLite spool: durability, seq without reuse or holes, batches, receipts, budget."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest
from gateway_twins import make_signer

from gateway.errors import SpoolError
from gateway.manifests import batch_payload
from gateway.observations import Measurement
from gateway.spool import Spool, clear_refusals, read_spool_report
from proofs.merkle import MerkleTree, leaf_hash
from proofs.records import ZERO_HASH, Gap, record_from_json, verify
from support.small_fs import fill, small_tmpfs


def drafts(signer, n: int, start: int = 0):
    return signer.drafts(
        [Measurement("probe-1", "temperature", start + i, "CEL") for i in range(n)]
    )


async def open_spool(path: Path, signer, **kw) -> Spool:
    kw.setdefault("budget_bytes", 10**9)
    kw.setdefault("batch_max_records", 10)
    return await Spool.open(path, signer, **kw)


async def test_seq_is_contiguous_across_concurrent_submits_and_restarts(tmp_path: Path) -> None:
    signer, key, _ = make_signer()
    path = tmp_path / "spool.sqlite3"
    spool = await open_spool(path, signer)
    ranges = await asyncio.gather(*(spool.append(drafts(signer, 7, 100 * k)) for k in range(20)))
    await spool.close()
    spool = await open_spool(path, signer)
    ranges.append(await spool.append(drafts(signer, 3)))
    await spool.close()

    covered = sorted(s for first, last in ranges for s in range(first, last + 1))
    assert covered == list(range(1, 144))
    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT seq, body FROM records ORDER BY seq").fetchall()
    conn.close()
    assert [r[0] for r in rows] == list(range(1, 144))
    for seq, body in rows:
        record = record_from_json(body)
        assert record.seq == seq
        verify(record, key.public_key)


async def test_sealed_batches_chain_and_reproduce_the_merkle_root(tmp_path: Path) -> None:
    signer, key, _ = make_signer()
    spool = await open_spool(tmp_path / "s.db", signer, batch_max_records=10)
    await spool.append(drafts(signer, 25))
    manifests = [await spool.seal_batch() for _ in range(4)]
    assert manifests[3] is None
    m1, m2, m3 = manifests[:3]
    assert (m1.batch_seq, m1.first_seq, m1.last_seq, m1.prev) == (1, 1, 10, ZERO_HASH)
    assert (m2.batch_seq, m2.first_seq, m2.last_seq, m2.prev) == (2, 11, 20, m1.hash_hex())
    assert (m3.count, m3.prev) == (5, m2.hash_hex())
    verify(m2, key.public_key)
    head = await spool.head_batch()
    assert head is not None and head.manifest == m1
    assert head.manifest.root == MerkleTree([leaf_hash(b) for b in head.records]).root().hex()
    body = json.loads(batch_payload(head.manifest_json, head.records, head.evicted))
    assert body["evicted"] is False and body["manifest"] == m1.to_dict()
    assert [r["seq"] for r in body["records"]] == list(range(1, 11))
    await spool.ping()
    await spool.close()


async def test_confirm_deletes_only_that_batch_and_chain_survives_restart(tmp_path: Path) -> None:
    signer, _, _ = make_signer()
    path = tmp_path / "s.db"
    spool = await open_spool(path, signer, batch_max_records=10)
    await spool.append(drafts(signer, 20))
    m1 = await spool.seal_batch()
    await spool.seal_batch()
    await spool.confirm(m1.batch_seq, b'{"receipt":{},"sig":""}')
    assert spool.stats.records == 10 and spool.stats.batches == 1
    assert spool.stats.last_receipt_ms is not None
    await spool.close()
    spool = await open_spool(path, signer, batch_max_records=10)
    await spool.append(drafts(signer, 1))
    m3 = await spool.seal_batch()
    assert m3.batch_seq == 3 and m3.first_seq == 21
    head = await spool.head_batch()
    assert head.manifest.batch_seq == 2 and len(head.records) == 10
    await spool.close()


async def test_budget_evicts_oldest_batches_and_writes_a_gap(tmp_path: Path) -> None:
    signer, key, _ = make_signer()
    spool = await open_spool(tmp_path / "s.db", signer, budget_bytes=40_000, batch_max_records=20)
    for k in range(20):
        await spool.append(drafts(signer, 10, 10 * k))
    stats = spool.stats
    assert stats.bytes <= 40_000 + 10 * 600
    assert stats.evicted_records_total > 0
    # Walk the chain as the uplink would: evicted heads first, then records with the gaps.
    conn = sqlite3.connect(tmp_path / "s.db")
    evicted = conn.execute(
        "SELECT first_seq, last_seq FROM batches WHERE evicted = 1 ORDER BY batch_seq"
    ).fetchall()
    bodies = [r[0] for r in conn.execute("SELECT body FROM records ORDER BY seq")]
    conn.close()
    gaps = [g for g in map(record_from_json, bodies) if isinstance(g, Gap)]
    assert evicted and gaps
    evicted_seqs = {s for first, last in evicted for s in range(first, last + 1)}
    lost = {s for g in gaps for s in range(g.lost_from, g.lost_to + 1)}
    # Older gap records may themselves be evicted later (their loss is then on the
    # ledger as an evicted manifest); the surviving ones name evicted data only,
    # and the latest eviction is always named.
    assert lost <= evicted_seqs
    assert max(evicted_seqs) in lost
    for g in gaps:
        assert g.count == g.lost_to - g.lost_from + 1
        assert g.reason == "evicted"
        verify(g, key.public_key)
    head = await spool.head_batch()
    assert head.evicted and head.records == ()
    await spool.close()


async def test_refused_batch_is_kept_listed_and_can_be_retried(tmp_path: Path) -> None:
    signer, _, _ = make_signer()
    path = tmp_path / "s.db"
    spool = await open_spool(path, signer)
    await spool.append(drafts(signer, 3))
    m = await spool.seal_batch()
    await spool.refuse(m.batch_seq, 403, "revoked", "gateway key revoked")
    head = await spool.head_batch()
    assert head.refusal is not None and head.refusal.code == "revoked" and len(head.records) == 3
    report = read_spool_report(path)
    assert [(b, r.code) for b, r in report.refusals] == [(1, "revoked")]
    assert clear_refusals(path) == 1
    head = await spool.head_batch()
    assert head.refusal is None
    await spool.close()


async def test_a_spool_of_another_gateway_is_refused_not_reset(tmp_path: Path) -> None:
    signer, _, _ = make_signer("truck-07")
    path = tmp_path / "s.db"
    spool = await open_spool(path, signer)
    await spool.append(drafts(signer, 2))
    await spool.close()
    other, _, _ = make_signer("truck-08")
    with pytest.raises(SpoolError) as e:
        await open_spool(path, other)
    assert e.value.code == "spool-gateway-mismatch"
    spool = await open_spool(path, signer)
    assert spool.stats.records == 2 and spool.stats.next_seq == 3
    await spool.close()


async def test_unclean_end_is_noticed_on_next_open(tmp_path: Path) -> None:
    signer, _, _ = make_signer()
    path = tmp_path / "s.db"
    spool = await open_spool(path, signer)
    assert spool.previous_run_clean
    await spool.close(clean=False)
    spool = await open_spool(path, signer)
    assert not spool.previous_run_clean
    await spool.close()
    spool = await open_spool(path, signer)
    assert spool.previous_run_clean
    await spool.close()


async def test_wal_and_full_synchronous_are_in_force(tmp_path: Path) -> None:
    signer, _, _ = make_signer()
    spool = await open_spool(tmp_path / "s.db", signer)
    await spool.append(drafts(signer, 1))
    conn = sqlite3.connect(tmp_path / "s.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    await spool.close()


async def test_a_second_writer_on_the_same_spool_is_refused(tmp_path: Path) -> None:
    signer, _, _ = make_signer()
    spool = await open_spool(tmp_path / "s.db", signer)
    with pytest.raises(SpoolError) as e:
        await open_spool(tmp_path / "s.db", signer)
    assert e.value.code == "spool-locked"
    await spool.close()
    again = await open_spool(tmp_path / "s.db", signer)
    await again.close()


class _FailingSealer:
    """The real signer, except that it cannot seal a reading of 666 (a poison draft)."""

    def __init__(self, signer) -> None:  # type: ignore[no-untyped-def]
        self._signer = signer
        self.gw = signer.gw

    @property
    def key_id(self) -> str:
        return self._signer.key_id

    def seal(self, draft, seq):  # type: ignore[no-untyped-def]
        if getattr(draft, "val", 0) > 600:  # calibration moves 666 a little
            raise SpoolError("cannot seal this one", code="bad-draft")
        return self._signer.seal(draft, seq)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._signer, name)


async def test_after_a_failed_mqtt_submit_its_session_commits_nothing_until_it_reconnects(
    tmp_path: Path,
) -> None:
    # Sources keep two submits in flight; if the first fails, the second must not commit,
    # or the broker's re-sends would no longer start at the first uncommitted message.
    from gateway.observations import Delivery

    signer, _, _ = make_signer()
    spool = await open_spool(tmp_path / "spool.sqlite3", _FailingSealer(signer))

    def delivery(session: str, packet_id: int) -> Delivery:
        return Delivery("broker", session, packet_id, False, bytes([packet_id]) * 32)

    bad = spool.append(drafts(signer, 1, start=666), [delivery("s@b", 1)])
    after = spool.append(drafts(signer, 2), [delivery("s@b", 2)])
    other = spool.append(drafts(signer, 2), [delivery("t@b", 1)])
    results = await asyncio.gather(bad, after, other, return_exceptions=True)
    assert isinstance(results[0], SpoolError) and results[0].code == "bad-draft"
    assert isinstance(results[1], SpoolError) and results[1].code == "session-fenced"
    assert results[2] == (1, 2)  # another session is not held up
    with pytest.raises(SpoolError) as e:
        await spool.append(drafts(signer, 1), [delivery("s@b", 3)])
    assert e.value.code == "session-fenced"
    # The source's next connection starts by asking for its last ordinal: that lifts it.
    found, last = await spool.recorded_deliveries("s@b", ())
    assert (found, last) == ({}, 0)
    assert await spool.append(drafts(signer, 1), [delivery("s@b", 1)]) == (3, 3)
    await spool.close()


async def test_records_a_full_disk_refuses_are_named_by_a_disk_full_gap(tmp_path: Path) -> None:
    # The spool alone on the filled tmpfs, with nothing evictable: the append must fail
    # with a clear code, and the next commit once space is back names what was refused.
    signer, _, _ = make_signer()
    with small_tmpfs(tmp_path / "fs", "1m") as small_fs:
        await _refused_then_named(signer, small_fs)


async def _refused_then_named(signer, small_fs: Path) -> None:  # type: ignore[no-untyped-def]
    spool = await open_spool(small_fs / "spool.sqlite3", signer, min_free_bytes=64 * 1024)
    try:
        filler = fill(small_fs)
        big = [Measurement("probe-1", "temperature", i, "CEL") for i in range(3000)]
        with pytest.raises(SpoolError) as e:
            await spool.append(signer.drafts(big))
        assert e.value.code == "disk-full"
        stats = spool.stats
        assert stats.refused_records_total == 3000 and stats.disk_full
        assert stats.disk_errors_total >= 1 and stats.last_disk_error
        filler.unlink()
        first, last = await spool.append(signer.drafts(big[:1]))
        assert (first, last) == (1, 1)  # the refused records never took a seq
        manifest = await spool.seal_batch()
        assert manifest is not None
        batch = await spool.head_batch()
        assert batch is not None
        gaps = [r for r in map(record_from_json, batch.records) if r.TYPE == "gap"]
        assert [(g.reason, g.count, g.seq) for g in gaps] == [("disk-full", 3000, 2)]
        assert not spool.stats.disk_full
    finally:
        await spool.close()

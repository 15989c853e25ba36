"""One conformance suite for every ledger driver: SQLite (a file) and PostgreSQL (the
tests' own cluster, a fresh database per test). Each test runs against both and holds
them to the same behaviour of every port method of ``anchor.ledger.ports`` and of the
provenance read adapter ``anchor.storage.provenance_source`` picks (docs/adr/0314).

Batches are real signed ones from ``support.batches.GatewaySim``, indexed the way ingest
indexes them (``anchor.ingest.verify.new_record``).
"""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import psycopg
import pytest

from anchor.ingest.verify import new_record
from anchor.ledger import tree as log
from anchor.ledger.derived import ensure_rollups, update_rollups
from anchor.ledger.model import ApiToken, Disposition, Gateway, NewBatch, NewRecord, Place
from anchor.ledger.ports import LedgerStore
from anchor.ledger.products import (
    new_product,
    profile_of,
    register_profile,
    resolve_profile,
    set_product,
)
from anchor.ledger.registry import attester
from anchor.ledger.rollups import Rollup, SeriesKey, group_readings, summarise
from anchor.provenance.source import LogTrust, ReadingQuery, ScanQuery
from anchor.storage import provenance_source
from anchor.storage.sqlite.store import SqliteLedger
from proofs.coldchain import CONTROLLED_COLD, FROZEN
from proofs.keys import SigningKey
from proofs.merkle import MerkleTree, leaf_hash
from proofs.records import Gap, Reading, Scan
from support.batches import T0, GatewaySim

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DRIVERS = ("sqlite", "postgresql")

Record = Reading | Scan | Gap


@dataclass
class Ledger:
    """A driver's store, and how to open another one on the same ledger."""

    driver: str
    address: str  # file path or DSN

    def open(self) -> LedgerStore:
        if self.driver == "sqlite":
            return SqliteLedger(self.address)
        from anchor.storage.postgres.store import PostgresLedger

        return PostgresLedger(self.address)


@pytest.fixture(params=DRIVERS)
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Ledger:
    if request.param == "sqlite":
        return Ledger("sqlite", str(tmp_path / "ledger.sqlite3"))
    return Ledger("postgresql", request.getfixturevalue("pg_dsn"))


@pytest.fixture
def store(ledger: Ledger) -> Iterator[LedgerStore]:
    s = ledger.open()
    yield s
    s.close()


def batch_of(
    sim: GatewaySim, records: list[Record], *, evicted: bool = False, accepted_at: int = T0
) -> NewBatch:
    m = sim.manifest(records)
    return NewBatch(
        gw=m.gw,
        batch_seq=m.batch_seq,
        manifest_hash=m.hash_hex(),
        manifest_json=m.to_json(),
        leaf_hash=m.leaf_hash(),
        first_seq=m.first_seq,
        last_seq=m.last_seq,
        count=m.count,
        root=m.root,
        opened=m.opened,
        closed=m.closed,
        records_evicted=evicted,
        accepted_at=accepted_at,
        records=[] if evicted else [new_record(r, r.to_json()) for r in records],
    )


def append(store: LedgerStore, batch: NewBatch) -> int:
    with store.transaction() as tx:
        return tx.append_batch(batch)


def enrolled(store: LedgerStore, sim: GatewaySim, org: str = "acme") -> Gateway:
    if store.organisation(org) is None:
        store.add_organisation(org, org.title(), T0)
    places = {p for p in (sim.asset, "dock-3") if p}
    for p in sorted(places):
        if store.place(p) is None:
            store.add_place(Place(p, org, "asset", p, T0))
    return store.enroll_gateway(
        Gateway(
            sim.gw, org, sim.public_key_b64, sim.key.key_id, sim.asset, T0, places=frozenset(places)
        )
    )


# --- registry ---------------------------------------------------------------------


def test_organisations_and_places(store: LedgerStore) -> None:
    assert store.organisations() == [] and store.organisation("acme") is None
    store.add_organisation("zeta", "Zeta", T0 + 1)
    acme = store.add_organisation("acme", "Acme", T0)
    assert store.organisation("acme") == acme
    assert [o.id for o in store.organisations()] == ["acme", "zeta"]
    with pytest.raises(ValueError, match="exists already"):
        store.add_organisation("acme", "Again", T0)
    truck = store.add_place(Place("truck-07", "acme", "asset", "Truck 7", T0, "sig"))
    store.add_place(Place("dock-3", "acme", "read-point", "Dock 3", T0))
    store.add_place(Place("room-1", "zeta", "asset", "Room", T0))
    assert store.place("truck-07") == truck and store.place("nowhere") is None
    assert [p.id for p in store.places()] == ["dock-3", "room-1", "truck-07"]
    assert [p.id for p in store.places("acme")] == ["dock-3", "truck-07"]
    assert [p.id for p in store.places("acme", limit=1)] == ["dock-3"]
    with pytest.raises(ValueError, match="registered already by acme"):
        store.add_place(Place("truck-07", "zeta", "asset", "Theirs", T0))
    with pytest.raises(ValueError, match="no organisation"):
        store.add_place(Place("x", "nobody", "asset", "X", T0))


def test_products_profiles_and_dispositions(store: LedgerStore) -> None:
    store.add_organisation("acme", "Acme", T0)
    store.add_organisation("zeta", "Zeta", T0)
    attest = attester(SigningKey.generate())
    cold = register_profile(store, CONTROLLED_COLD, T0, attest)
    assert register_profile(store, CONTROLLED_COLD, T0 + 5, attest) == cold  # once, ever
    assert store.profile(cold.digest) == cold and profile_of(cold) == CONTROLLED_COLD
    yoghurt = new_product("09506000134352", "acme", "Oat yoghurt", T0, pack="12 x 500 g")
    yoghurt = set_product(store, yoghurt, attest, FROZEN)
    assert store.product(yoghurt.gtin) == yoghurt and yoghurt.profile == FROZEN.digest()
    assert [p.digest for p in store.profiles()] == [cold.digest, FROZEN.digest()]
    assert resolve_profile(store, yoghurt.gtin, CONTROLLED_COLD) == FROZEN
    assert resolve_profile(store, "09506000134369", CONTROLLED_COLD) == CONTROLLED_COLD
    renamed = set_product(store, replace(yoghurt, name="Oat yoghurt, plain", updated_at=T0 + 9))
    assert store.products("acme") == [renamed] and store.products("zeta") == []
    with pytest.raises(ValueError, match="belongs to acme"):
        set_product(store, replace(yoghurt, org_id="zeta"))
    with pytest.raises(ValueError, match="no profile with digest"):
        set_product(store, replace(yoghurt, profile="ab" * 32))
    first = Disposition("09506000134352", "L1", 1, "release", "rule", "pass -> release", "pass",
                        "{}", "", "acme", "anchor", "kept cold", T0 + 10)  # fmt: skip
    second = replace(first, n=2, disposition="quarantine", cause="override", at=T0 + 20)
    with store.transaction() as tx:
        tx.add_disposition(first)
        tx.add_disposition(second)
    assert store.dispositions("09506000134352", "L1") == [first, second]
    assert store.recent_dispositions(T0 + 15, 10) == [second]
    unique = (sqlite3.IntegrityError, psycopg.IntegrityError)
    with pytest.raises(unique), store.transaction() as tx:  # (gtin, lot, n) is unique
        tx.add_disposition(first)


def test_enrolment_one_key_ever_and_scope(store: LedgerStore) -> None:
    sim = GatewaySim()
    g = enrolled(store, sim)
    assert store.gateway(sim.gw) == g
    assert g.places == frozenset({"truck-07", "dock-3"})
    assert store.gateway_by_key(sim.public_key_b64) == g
    assert store.gateway_by_key("nope") is None
    again = Gateway("other", "acme", sim.public_key_b64, sim.key.key_id, None, T0)
    with pytest.raises(ValueError, match="at most once, ever"):
        store.enroll_gateway(again)
    with pytest.raises(ValueError, match="enrolled already"):
        store.enroll_gateway(Gateway(sim.gw, "acme", "k2", "id2", None, T0))
    store.add_organisation("zeta", "Zeta", T0)
    store.add_place(Place("room-1", "zeta", "asset", "Room", T0))
    foreign = Gateway("gw-x", "acme", "k3", "id3", None, T0, places=frozenset({"room-1"}))
    with pytest.raises(ValueError, match="belongs to zeta"):
        store.enroll_gateway(foreign)
    unknown = Gateway("gw-y", "acme", "k4", "id4", None, T0, places=frozenset({"ghost"}))
    with pytest.raises(ValueError, match="is registered"):
        store.enroll_gateway(unknown)
    assert [x.id for x in store.gateways()] == [sim.gw]
    assert store.gateways("zeta") == []
    with pytest.raises(ValueError, match="no organisation"):
        store.enroll_gateway(Gateway("gw-z", "nobody", "k5", "id5", None, T0))


def test_revocation_history_earliest_stands(store: LedgerStore) -> None:
    sim = GatewaySim()
    enrolled(store, sim)
    g = store.revoke_gateway(sim.gw, T0 + 500, "stolen", T0 + 1000, "att-1")
    assert (g.revoked_at, g.refused_from, g.revoked_reason) == (T0 + 500, T0 + 1000, "stolen")
    g = store.revoke_gateway(sim.gw, T0 + 900, "later", T0 + 2000)  # later: the earlier stands
    assert (g.revoked_at, g.refused_from) == (T0 + 500, T0 + 1000)
    g = store.revoke_gateway(sim.gw, T0 + 100, "earlier", T0 + 3000)
    assert (g.revoked_at, g.refused_from) == (T0 + 100, T0 + 1000)
    assert store.revocations() == [
        (sim.gw, T0 + 500, T0 + 1000, "stolen", "att-1"),
        (sim.gw, T0 + 900, T0 + 2000, "later", ""),
        (sim.gw, T0 + 100, T0 + 3000, "earlier", ""),
    ]
    with pytest.raises(ValueError, match="no gateway"):
        store.revoke_gateway("ghost", T0, "", T0)


def test_tokens(store: LedgerStore) -> None:
    store.add_organisation("acme", "Acme", T0)
    store.add_organisation("zeta", "Zeta", T0)
    a = store.add_token(ApiToken("t1", "acme", "operator", b"\x00\xffhash", T0 + 2, None, "ops"))
    b = store.add_token(ApiToken("t2", "zeta", "gateway", b"h2", T0 + 1))
    assert store.token("t1") == a and store.token("nope") is None
    assert store.tokens() == [b, a]  # by creation time
    assert store.tokens("acme") == [a]
    revoked = store.revoke_token("t1", T0 + 9)
    assert revoked.revoked_at == T0 + 9
    assert store.revoke_token("t1", T0 + 99).revoked_at == T0 + 9  # set once
    with pytest.raises(ValueError, match="no token"):
        store.revoke_token("ghost", T0)
    with pytest.raises(ValueError, match="no organisation"):
        store.add_token(ApiToken("t3", "nobody", "auditor", b"h", T0))


# --- the log ------------------------------------------------------------------------


def test_append_batches_records_scans_and_log_nodes(store: LedgerStore) -> None:
    sim = GatewaySim()
    enrolled(store, sim)
    assert store.log_size() == 0 and store.gateway_head(sim.gw) is None
    first = [sim.reading(val=3.5), sim.scan(sscc="003456789012345678", serial="S1"), sim.gap()]
    b1 = batch_of(sim, first)
    b2 = batch_of(sim, [sim.reading(val=v) for v in (2.0, 4.0, 6.0)])
    b3 = batch_of(sim, [sim.reading(), sim.reading()], evicted=True)
    assert [append(store, b) for b in (b1, b2, b3)] == [0, 1, 2]
    assert store.log_size() == 3
    assert list(store.leaf_hashes()) == [b1.leaf_hash, b2.leaf_hash, b3.leaf_hash]
    assert list(store.leaf_hashes(1, 2)) == [b2.leaf_hash]
    assert store.get_node(0, 1) == b2.leaf_hash
    # The stored nodes give the RFC 6962 root of the manifests.
    expected = MerkleTree([b.leaf_hash for b in (b1, b2, b3)]).root()
    assert log.root_at(3, store.get_node) == expected
    assert store.get_node(1, 0) is not None
    with pytest.raises(KeyError):
        store.get_node(1, 1)  # not complete yet
    stored = store.batch(0)
    assert stored is not None
    assert (stored.gw, stored.batch_seq, stored.manifest_json, stored.count) == (
        sim.gw,
        1,
        b1.manifest_json,
        3,
    )
    assert stored.receipt_json is None and not stored.records_evicted
    assert store.batch(2) is not None and store.batch(2).records_evicted  # type: ignore[union-attr]
    assert store.batch(3) is None
    assert store.batch_by_seq(sim.gw, 2) == store.batch(1)
    assert store.batch_by_seq(sim.gw, 9) is None
    assert [b.leaf_index for b in store.batches()] == [0, 1, 2]
    assert [b.leaf_index for b in store.batches(1, 2)] == [1]
    assert [b.batch_seq for b in store.batches_by_gateway(sim.gw)] == [3, 2, 1]
    assert [b.batch_seq for b in store.batches_by_gateway(sim.gw, limit=1, offset=1)] == [2]
    assert [b.batch_seq for b in store.batches_by_gateway(sim.gw, before_batch_seq=3)] == [2, 1]
    head = store.gateway_head(sim.gw)
    assert head is not None and (head.batch_seq, head.leaf_index) == (3, 2)
    links = list(store.gateway_links(sim.gw))
    assert [(x.batch_seq, x.prev) for x in links] == [
        (1, "0" * 64),
        (2, b1.manifest_hash),
        (3, b2.manifest_hash),
    ]
    # Records: every field back, in batch order; an evicted batch has none.
    rows = store.batch_records(0)
    assert [(r.seq, r.type, r.batch_index) for r in rows] == [
        (1, "reading", 0),
        (2, "scan", 1),
        (3, "gap", 2),
    ]
    assert rows[0].json == first[0].to_json() and rows[0].val == 3.5 and rows[0].unit == "CEL"
    assert rows[1].q is None and rows[1].val is None
    assert store.batch_records(2) == []
    assert store.record(sim.gw, 2) == rows[1]
    assert store.record(sim.gw, 99) is None
    scan = store.scan_event(sim.gw, 2)
    assert scan is not None and (scan.gtin, scan.lot, scan.sscc, scan.serial, scan.rp) == (
        "09506000134352",
        "LOT42",
        "003456789012345678",
        "S1",
        "dock-3",
    )
    assert store.scan_event(sim.gw, 1) is None
    assert store.table_counts() == {
        "batches": 3,
        "records": 6,
        "scans": 1,
        "log_nodes": 4,
        "checkpoints": 0,
    }


def test_chain_neighbours_and_evicted_gaps(store: LedgerStore) -> None:
    sim = GatewaySim()
    enrolled(store, sim)
    b1 = batch_of(sim, [sim.reading()])
    lost = sim.skip(4)
    gap = sim.gap(lost_from=lost[0], lost_to=lost[1])
    other_gap = sim.gap(reason="restart")
    b2 = batch_of(sim, [gap, other_gap])
    b3 = batch_of(sim, [sim.reading()])
    b4 = batch_of(sim, [sim.reading()])
    for b in (b1, b2, b4):  # batch 3 is missing
        append(store, b)
    lower, higher = store.chain_neighbours(sim.gw, 3)
    assert lower is not None and higher is not None
    assert (lower.batch_seq, lower.manifest_hash, lower.leaf_index) == (2, b2.manifest_hash, 1)
    assert (higher.batch_seq, higher.prev) == (4, b3.manifest_hash)
    assert store.chain_neighbours(sim.gw, 1)[0] is None
    assert store.chain_neighbours(sim.gw, 9)[1] is None
    assert store.evicted_gaps(sim.gw, 0, 100) == [lost]
    assert store.evicted_gaps(sim.gw, gap.seq + 1, 100) == []
    with store.transaction() as tx:
        assert tx.chain_neighbours(sim.gw, 3) == (lower, higher)
        assert tx.evicted_gaps(sim.gw, 0, 100) == [lost]
        assert tx.gateway_head(sim.gw) == store.gateway_head(sim.gw)
        assert tx.batch_by_seq(sim.gw, 4) == store.batch_by_seq(sim.gw, 4)
        assert tx.batch(1) == store.batch(1)
        assert tx.gateway(sim.gw) == store.gateway(sim.gw)
        assert tx.log_size() == 3 and tx.get_node(0, 2) == b4.leaf_hash


def test_receipts_are_set_once(store: LedgerStore) -> None:
    sim = GatewaySim()
    enrolled(store, sim)
    leaf = append(store, batch_of(sim, [sim.reading()]))
    with store.transaction() as tx:
        assert tx.set_receipt(leaf, b'{"first":1}') == b'{"first":1}'
        assert tx.set_receipt(leaf, b'{"second":2}') == b'{"first":1}'
        with pytest.raises(KeyError):
            tx.set_receipt(leaf + 1, b"{}")
    assert store.batch(leaf).receipt_json == b'{"first":1}'  # type: ignore[union-attr]


def test_savepoint_rolls_back_only_its_own_writes(store: LedgerStore) -> None:
    sim = GatewaySim()
    enrolled(store, sim)
    kept = batch_of(sim, [sim.reading()])
    dropped = batch_of(sim, [sim.reading(), sim.scan()])
    with store.transaction() as tx:
        tx.append_batch(kept)
        with pytest.raises(RuntimeError, match="refused"), tx.savepoint():
            assert tx.append_batch(dropped) == 1
            assert tx.log_size() == 2
            raise RuntimeError("refused")
        assert tx.log_size() == 1
        with tx.savepoint():
            tx.append_batch(dropped)  # the same leaf index is free again
    assert store.log_size() == 2
    assert store.table_counts()["records"] == 3 and store.table_counts()["scans"] == 1


def test_a_failed_transaction_leaves_nothing(store: LedgerStore) -> None:
    sim = GatewaySim()
    enrolled(store, sim)
    before = store.table_counts()
    counter = store.change_counter()
    with pytest.raises(RuntimeError, match="boom"), store.transaction() as tx:
        tx.append_batch(batch_of(sim, [sim.reading(), sim.scan()]))
        tx.add_checkpoint(1, b"r" * 32, "note", T0, 1, True)
        raise RuntimeError("boom")
    assert store.table_counts() == before
    assert store.log_size() == 0 and store.latest_checkpoint() is None
    assert store.change_counter() == counter
    # A database error inside (a duplicate leaf) rolls back the whole transaction too.
    b = batch_of(sim, [sim.reading()])
    append(store, b)
    with pytest.raises(Exception), store.transaction() as tx:  # noqa: B017
        tx.add_checkpoint(1, b"r" * 32, "note", T0, 1, True)
        tx.append_batch(b)  # (gw, batch_seq) is taken
    assert store.latest_checkpoint() is None and store.log_size() == 1


def test_checkpoints(store: LedgerStore) -> None:
    assert store.latest_checkpoint() is None and store.checkpoint_covering(0) is None
    with store.transaction() as tx:
        assert tx.latest_checkpoint() is None
        c0 = tx.add_checkpoint(0, b"\x00" * 32, "genesis", T0, 1, True)
        c1 = tx.add_checkpoint(3, b"\x01" * 32, "three", T0 + 1, 1, True)
        c2 = tx.add_checkpoint(5, b"\x02" * 32, "five", T0 + 2, 0, False)
        assert tx.checkpoint(1) == c1 and tx.latest_checkpoint() == c2
    assert (c0.height, c1.height, c2.height) == (0, 1, 2)
    assert (c1.entries, c2.entries) == (3, 2)
    assert store.checkpoint(2) == c2 and store.checkpoint(3) is None
    assert store.latest_checkpoint() == c2
    assert store.latest_checkpoint(final_only=True) == c1
    assert store.checkpoint_covering(0) == c1
    assert store.checkpoint_covering(3) == c2
    assert store.checkpoint_covering(3, final_only=True) is None
    assert store.checkpoint_covering(5) is None
    with store.transaction() as tx:
        c2 = tx.set_cosignatures(2, "five, cosigned", 1, True)
        with pytest.raises(KeyError):
            tx.set_cosignatures(9, "none", 1, True)
    assert (c2.height, c2.size, c2.note, c2.cosignatures, c2.final) == (
        2,
        5,
        "five, cosigned",
        1,
        True,
    )
    assert store.latest_checkpoint(final_only=True) == c2 == store.checkpoint(2)
    assert store.checkpoints() == [c2, c1, c0]
    assert store.checkpoints(limit=1, before_height=2) == [c1]
    assert list(store.checkpoints_ascending()) == [c0, c1, c2]
    assert store.table_counts()["checkpoints"] == 3


# --- reading records back --------------------------------------------------------------


def _two_gateways(store: LedgerStore) -> tuple[GatewaySim, GatewaySim]:
    a, b = GatewaySim(gw="truck-07", asset="truck-07"), GatewaySim(gw="van-02", asset="van-02")
    b.t = a.t + 500  # interleaved in time
    enrolled(store, a)
    enrolled(store, b)
    append(store, batch_of(a, [a.reading(4.0), a.reading(6.5, q="humidity", unit="P1")]))
    append(
        store,
        batch_of(
            b,
            [
                b.reading(3.0, src="probe-9"),
                b.scan(gtin="09506000134352", lot="LOT7", sscc="001", serial="S9"),
                b.reading(5.0, src="probe-9"),
            ],
        ),
    )
    append(store, batch_of(a, [a.reading(1.5), a.scan(lot="LOT7"), a.reading(8.0)]))
    return a, b


def test_records_by_asset_src_gateway(store: LedgerStore) -> None:
    a, b = _two_gateways(store)
    everything = store.records_by_asset("truck-07", 0, 2**62)
    assert [(r.seq, r.type) for r in everything] == [
        (1, "reading"),
        (2, "reading"),
        (3, "reading"),
        (4, "scan"),
        (5, "reading"),
    ]
    temps = store.records_by_asset("truck-07", 0, 2**62, type="reading", q="temperature")
    assert [r.val for r in temps] == [4.0, 1.5, 8.0]
    window = store.records_by_asset("truck-07", T0 + 2000, T0 + 4000)  # [from, to)
    assert [r.t for r in window] == [T0 + 2000, T0 + 3000]
    assert len(store.records_by_asset("truck-07", 0, 2**62, limit=2)) == 2
    by_src = store.records_by_src("probe-9", 0, 2**62)
    assert [(r.gw, r.seq) for r in by_src] == [(b.gw, 1), (b.gw, 3)]
    both = store.records_by_src("probe-1", 0, 2**62)
    assert [r.gw for r in both] == [a.gw] * 4
    assert [r.seq for r in store.records_by_gateway(a.gw, 2, 5)] == [2, 3, 4]
    assert [r.seq for r in store.records_by_gateway(b.gw)] == [1, 2, 3]
    assert [r.seq for r in store.records_by_gateway(a.gw, limit=1)] == [1]


def test_scans_by_each_gs1_key(store: LedgerStore) -> None:
    a, b = _two_gateways(store)
    assert [(s.gw, s.seq) for s in store.scans(lot="LOT7")] == [(b.gw, 2), (a.gw, 4)]
    assert [s.gw for s in store.scans(gtin="09506000134352")] == [b.gw, a.gw]
    assert [s.gw for s in store.scans(gtin="09506000134352", lot="LOT7")] == [b.gw, a.gw]
    assert [s.seq for s in store.scans(sscc="001")] == [2]
    assert [s.seq for s in store.scans(serial="S9")] == [2]
    assert store.scans(serial="none") == []
    assert len(store.scans(lot="LOT7", limit=1)) == 1
    late = store.scans(lot="LOT7", t_from=T0 + 3000)
    assert [s.gw for s in late] == [a.gw]
    with pytest.raises(ValueError, match="at least one"):
        store.scans()


def test_lots_scanned_at_places(store: LedgerStore) -> None:
    """How a scorecard finds the lots an organisation's places handled: by scan, in a
    half-open window, bounded."""
    a, _ = _two_gateways(store)
    append(store, batch_of(a, [a.scan(lot="LOT8")]))  # seq 6, at T0 + 6000
    lot7, lot8 = ("09506000134352", "LOT7"), ("09506000134352", "LOT8")
    assert store.lots_at(["truck-07"], 0, 2**62, 10) == [lot7, lot8]
    assert store.lots_at(["truck-07"], 0, 2**62, 1) == [lot7]
    assert store.lots_at(["truck-07"], T0 + 4001, T0 + 6000, 10) == []  # [from, to)
    assert store.lots_at(["truck-07"], T0 + 4001, T0 + 6001, 10) == [lot8]
    assert store.lots_at(["van-02", "truck-07"], 0, T0 + 4000, 10) == [lot7]  # b's scan only
    assert store.lots_at(["elsewhere"], 0, 2**62, 10) == [] and store.lots_at([], 0, 1, 1) == []
    source = provenance_source(store, lambda: LogTrust("log+vkey"))
    try:
        assert source.lots_at(["truck-07"], T0 + 4001, 2**62, 10) == [lot8]
        assert source.org_places("acme", 10) == ["dock-3", "truck-07", "van-02"]
        assert source.org_places("acme", 1) == ["dock-3"] and source.org_places("none", 5) == []
    finally:
        source.close()


def test_reading_stats(store: LedgerStore) -> None:
    _two_gateways(store)
    assert store.reading_stats("truck-07", 0, 2**62) == [
        ("humidity", "P1", 1, 6.5, 6.5),
        ("temperature", "CEL", 3, 1.5, 8.0),
    ]
    assert store.reading_stats("truck-07", T0 + 4000, 2**62) == [
        ("temperature", "CEL", 1, 8.0, 8.0)
    ]
    assert store.reading_stats("ghost", 0, 2**62) == []


# --- several connections and processes -----------------------------------------------


def test_change_counter_moves_on_another_connections_commit(ledger: Ledger) -> None:
    reader, writer = ledger.open(), ledger.open()
    try:
        before = reader.change_counter()
        assert reader.change_counter() == before  # nothing committed: it stays
        writer.add_organisation("acme", "Acme", T0)
        after_org = reader.change_counter()
        assert after_org != before
        sim = GatewaySim()
        enrolled(writer, sim)
        after_enrol = reader.change_counter()
        assert after_enrol != after_org
        writer.revoke_gateway(sim.gw, T0, "lost", T0)
        assert reader.change_counter() != after_enrol
        assert reader.gateway(sim.gw).revoked_at == T0  # type: ignore[union-attr]
    finally:
        reader.close()
        writer.close()


_APPENDER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from support.batches import GatewaySim
    from test_storage_conformance import Ledger, batch_of
    ledger = Ledger({driver!r}, {address!r})
    store = ledger.open()
    sim = GatewaySim(gw=sys.argv[1], asset=None)
    for _ in range({n}):
        with store.transaction() as tx:
            tx.append_batch(batch_of(sim, [sim.reading(), sim.reading()]))
    store.close()
    """
)


def test_writers_in_several_processes_get_dense_unique_leaves(ledger: Ledger) -> None:
    """Appends from concurrent processes are serialised: leaves 0..N-1, each once, and the
    stored tree nodes agree with the manifests in leaf order."""
    ledger.open().close()  # create (or migrate) once before the race
    processes, per_process = 3, 15
    script = _APPENDER.format(
        tests=str(REPO / "tests"),
        driver=ledger.driver,
        address=ledger.address,
        n=per_process,
    )
    env_path = str(REPO / "tests" / "integration")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, f"gw-{i}"],
            cwd=env_path,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    store = ledger.open()
    try:
        total = processes * per_process
        assert store.log_size() == total
        batches = list(store.batches())
        assert [b.leaf_index for b in batches] == list(range(total))
        for i in range(processes):
            seqs = [b.batch_seq for b in batches if b.gw == f"gw-{i}"]
            assert seqs == list(range(1, per_process + 1))
        root = MerkleTree([leaf_hash(b.manifest_json) for b in batches]).root()
        assert log.root_at(total, store.get_node) == root
        assert store.table_counts()["records"] == 2 * total
    finally:
        store.close()


# --- the provenance read adapter ------------------------------------------------------


def test_provenance_source_reads_the_same_answers(store: LedgerStore) -> None:
    a, b = _two_gateways(store)
    lost = a.skip(2)
    append(store, batch_of(a, [a.gap(lost_from=lost[0], lost_to=lost[1]), a.reading(3.0)]))
    source = provenance_source(store, lambda: LogTrust("log+vkey"))
    try:
        points = source.readings(ReadingQuery(asset="truck-07"), 100)
        assert [(p.seq, p.val, p.q) for p in points] == [
            (1, 4.0, "temperature"),
            (2, 6.5, "humidity"),
            (3, 1.5, "temperature"),
            (5, 8.0, "temperature"),
            (9, 3.0, "temperature"),
        ]
        first = points[0]
        assert (first.sync, first.boot, first.mono_us) == (True, "boot-1", 1_000_000)
        assert first.asset == "truck-07" and first.src == "probe-1" and first.unit == "CEL"
        paged = source.readings(ReadingQuery(asset="truck-07", after=(points[1].t, a.gw, 2)), 2)
        assert [p.seq for p in paged] == [3, 5]
        by_src = source.readings(ReadingQuery(src="probe-9"), 100)
        assert [(p.gw, p.seq) for p in by_src] == [(b.gw, 1), (b.gw, 3)]
        by_gw = source.readings(ReadingQuery(gw=b.gw, t_to=b.t - 1), 100)
        assert [p.seq for p in by_gw] == [1]
        gaps = source.gaps(["truck-07"], [], 0, 2**62, 10)
        assert [(g.gw, g.lost_from, g.lost_to) for g in gaps] == [(a.gw, *lost)]
        assert [g.seq for g in source.gaps([], [a.gw], 0, 2**62, 10)] == [8]
        scans = source.scans(ScanQuery((("10", "LOT7"),)), 10)
        assert [(s.gw, s.seq) for s in scans] == [(b.gw, 2), (a.gw, 4)]
        assert source.compromised_ranges(a.gw, 0, 10) == [(1, 2), (3, 5), (8, 9)]
        assert source.compromised_ranges(a.gw, T0 + 1, 10) == []
        assert [x.seq for x in source.records([(a.gw, 4), (b.gw, 9)])] == [4]
        info = source.batch_of(a.gw, 4)
        assert info is not None and (info.batch_seq, info.leaf_index) == (2, 2)
        assert [x.leaf_index for x in source.leaves(0, 10)] == [0, 1, 2, 3]
        assert len(source.batch_leaf_hashes(a.gw, 2)) == 3
        assert source.gateway(a.gw) is not None and source.org("acme") is not None
    finally:
        source.close()


# --- reading rollups, kept at apply time ------------------------------------------------


def _rollup_journey(store: LedgerStore) -> list[NewBatch]:
    """Three gateways' batches over several hours; the handheld's readings name no place
    and its gateway has no asset, so no holder (and no rollup) is theirs."""
    rng = random.Random(11)
    sims = [
        GatewaySim(gw="truck-07", asset="truck-07"),
        GatewaySim(gw="van-02", asset="van-02"),
        GatewaySim(gw="handheld", asset=None),
    ]
    for sim in sims:
        enrolled(store, sim)
    batches: list[NewBatch] = []
    for sim in sims:
        for _ in range(12):
            records: list[Record] = []
            for _ in range(rng.randint(5, 40)):
                sim.t += rng.randint(10, 900) * 1000
                records.append(
                    sim.reading(round(rng.uniform(-2, 12), 2), src=rng.choice(["p1", "p2"]))
                )
                if rng.random() < 0.1:
                    records.append(sim.reading(50.0, q="humidity", unit="P1"))
            batches.append(batch_of(sim, records))
    return batches


def _rollups_of_everything(store: LedgerStore) -> dict[SeriesKey, Rollup]:
    by_gw: dict[str, list[NewRecord]] = {}
    for b in store.batches():
        for r in store.batch_records(b.leaf_index):
            by_gw.setdefault(r.gw, []).extend([r])  # type: ignore[list-item]
    out: dict[SeriesKey, Rollup] = {}
    for gw, rows in by_gw.items():
        g = store.gateway(gw)
        for key, (unit, samples) in group_readings(rows, g.asset if g else None).items():
            out[key] = summarise(key, unit, samples)
    return out


def test_rollups_do_not_depend_on_arrival_order(store: LedgerStore) -> None:
    """Batches arrive out of order (adr/0310); every rollup ends as if built at once."""
    batches = _rollup_journey(store)
    random.Random(5).shuffle(batches)
    for b in batches:
        with store.transaction() as tx:
            tx.append_batch(b)
            gateway = tx.gateway(b.gw)
            update_rollups(tx, gateway.asset if gateway else None, b.records)
    stored = {r.key: r for r in store.all_rollups()}
    expected = _rollups_of_everything(store)
    assert stored == expected and len(stored) > 30
    assert {k.holder for k in stored} == {"truck-07", "van-02"}  # the handheld names none
    hours = sorted({k.bucket for k in stored if k.holder == "truck-07"})
    some = store.reading_rollups("truck-07", hours[1], hours[3], 1000)
    assert some and {r.key.bucket for r in some} == set(hours[1:3])
    assert [r.key for r in some] == sorted(r.key for r in some)
    assert store.rollups_ready()


def test_a_migrated_ledger_builds_its_rollups_once(ledger: Ledger) -> None:
    store = ledger.open()
    try:
        for b in _rollup_journey(store):
            append(store, b)  # written without rollups, as by an older anchor
        with store.transaction() as tx:
            tx.put_rollups([])
        _forget_rollups(ledger)
        assert not store.rollups_ready() and not list(store.all_rollups())
        assert ensure_rollups(store) == len(list(store.batches()))
        assert store.rollups_ready() and ensure_rollups(store) == 0
        assert {r.key: r for r in store.all_rollups()} == _rollups_of_everything(store)
    finally:
        store.close()


def _forget_rollups(ledger: Ledger) -> None:
    """What a ledger migrated from the schema before rollups looks like."""
    if ledger.driver == "sqlite":
        import sqlite3

        conn = sqlite3.connect(ledger.address)
        with conn:
            conn.execute("DELETE FROM meta WHERE key = 'rollups'")
            conn.execute("DELETE FROM reading_rollups")
        conn.close()
        return
    import psycopg

    with psycopg.connect(ledger.address, autocommit=True) as conn:
        conn.execute(b"DELETE FROM meta WHERE key = 'rollups'")
        conn.execute(b"DELETE FROM reading_rollups")


def test_the_witness_record_is_replaced_in_a_transaction(store: LedgerStore) -> None:
    root = bytes(range(32))
    with store.transaction() as tx:
        assert tx.witnessed("log.example/a") is None
        tx.set_witnessed("log.example/a", 5, root, "note 5\n", T0)
    with store.transaction() as tx:
        assert tx.witnessed("log.example/a") == (5, root)
        tx.set_witnessed("log.example/a", 9, root[::-1], "note 9\n", T0 + 1)
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.set_witnessed("log.example/a", 12, root, "note 12\n", T0 + 2)
        raise RuntimeError("rolled back")
    with store.transaction() as tx:
        assert tx.witnessed("log.example/a") == (9, root[::-1])
        assert tx.witnessed("log.example/b") is None


def test_documents_are_registered_once_and_found_by_subject(store: LedgerStore) -> None:
    from anchor.ledger.model import StoredDocument
    from proofs.documents import DocumentEntry, describe_file

    store.add_organisation("acme", "Acme", T0)
    entries = []
    for i, (kind, subject) in enumerate(
        (("sensor", "gw-1/probe-a"), ("lot", "01/09506000134352/10/L1"))
    ):
        facts = describe_file(b"%PDF-1.7\n" + bytes([i]) * 3000)
        entry = DocumentEntry(
            facts.digest, "calibration", kind, subject, "acme", "Kalibrierlabor GmbH",
            T0, T0 + 10**9, f"cert-{i}.pdf", "application/pdf", facts.size,
            facts.chunk_size, facts.chunks_root, T0 + i,
        )  # fmt: skip
        entries.append(StoredDocument(entry, facts.chunks, "sig"))
    with store.transaction() as tx:
        assert tx.add_document(entries[0]) and tx.add_document(entries[1])
        assert not tx.add_document(entries[0])  # once per digest, a no-op after
    assert store.document(entries[0].entry.digest) == entries[0]
    assert store.document("00" * 32) is None
    assert store.documents() == entries
    assert store.documents("sensor", "gw-1/probe-a") == [entries[0]]
    assert store.documents(org_id="zeta") == []
    assert store.documents_about([("lot", "01/09506000134352/10/L1"), ("gateway", "gw-1")]) == [
        entries[1]
    ]
    assert len(entries[0].chunks) == 3  # 3009 bytes in 1 KiB chunks, kept in order


def test_claims_and_the_claims_log_are_dense_and_found_by_lot_and_org(store: LedgerStore) -> None:
    from anchor.ledger.model import Claim, StoredClaimEvent
    from proofs.claims import ClaimEvent

    def claim(cid: str, filed: int, routed: str) -> Claim:
        return Claim(cid, "09506000134352", "L1", filed, "warm", "me@example.org", "", "",
                     "", routed, "truck-07", "why", "acme", "received", filed + 10,
                     filed + 20, filed)  # fmt: skip

    a, b = "a" * 32, "b" * 32
    with store.transaction() as tx:
        tx.add_claim(claim(a, T0, "polar"))
        tx.add_claim(claim(b, T0 + 5, "acme"))
        first = tx.add_claim_event(StoredClaimEvent(
            0, ClaimEvent(a, 1, "received", "claimant", T0, "09506000134352", "L1", "polar"),
            "", "sig-a"))  # fmt: skip
        second = tx.add_claim_event(StoredClaimEvent(
            0, ClaimEvent(b, 1, "received", "claimant", T0 + 5, "09506000134352", "L1",
                          "acme"), "", "sig-b"))  # fmt: skip
    with store.transaction() as tx:
        third = tx.add_claim_event(StoredClaimEvent(
            0, ClaimEvent(a, 2, "answered", "polar:t1", T0 + 9, "09506000134352", "L1",
                          "polar", message_sha256="c" * 64), "refund sent", "sig-c"))  # fmt: skip
    assert [first.index, second.index, third.index] == [0, 1, 2]
    assert store.claims_log_size() == 3
    assert store.claims_log_leaves(3) == [e.event.leaf_hash() for e in (first, second, third)]
    assert store.claim_events(a) == [first, third]
    got = store.claim(a)
    assert got is not None and got.state == "answered" and got.updated_at == T0 + 9
    assert [c.id for c in store.claims()] == [b, a]  # newest first
    assert [c.id for c in store.claims(routed_to="polar")] == [a]
    assert [c.id for c in store.claims(state="received")] == [b]
    assert store.claims_filed_since("09506000134352", "L1", T0 + 1) == 1
    unique = (sqlite3.IntegrityError, psycopg.IntegrityError)
    with pytest.raises(unique), store.transaction() as tx:  # (claim, n) is unique
        tx.add_claim_event(first)


def test_the_notification_outbox_leases_each_row_to_one_sender(store: LedgerStore) -> None:
    from anchor.ledger.model import Notification, NotificationAttempt

    rows = [Notification(f"k{i}", "polar", "webhook", "claim", f"c{i}", "{}", T0 + i,
                         next_attempt_at=T0 + i) for i in range(3)]  # fmt: skip
    with store.transaction() as tx:
        for r in rows:
            tx.add_notification(r)
        tx.add_notification(replace(rows[0], payload='{"again":1}'))  # a no-op
    assert store.notification("k0") == rows[0]
    assert [n.key for n in store.due_notifications(T0 + 1, 10)] == ["k0", "k1"]
    with store.transaction() as tx:
        assert tx.lease_notification("k0", "worker-a", T0 + 5, T0 + 100)
    with store.transaction() as tx:
        assert not tx.lease_notification("k0", "worker-b", T0 + 6, T0 + 106)  # a's, still
    assert [n.key for n in store.due_notifications(T0 + 6, 10)] == ["k1", "k2"]
    leased = store.notification("k0")
    assert leased is not None
    failed = NotificationAttempt("k0", 1, "webhook", "HTTP 503", False, T0 + 7)
    with store.transaction() as tx:
        tx.finish_attempt(leased, failed, T0 + 50, give_up=False)
    again = store.notification("k0")
    assert again is not None and (again.state, again.attempts, again.lease_owner) == (
        "pending", 1, ""
    )  # fmt: skip
    assert [n.key for n in store.due_notifications(T0 + 49, 10)] == ["k1", "k2"]
    with store.transaction() as tx:  # the wait is over: b may take it now
        assert tx.lease_notification("k0", "worker-b", T0 + 50, T0 + 150)
    ok = NotificationAttempt("k0", 2, "webhook", "HTTP 204", True, T0 + 51)
    with store.transaction() as tx:
        tx.finish_attempt(again, ok, T0 + 51, give_up=False)
    done = store.notification("k0")
    assert done is not None and (done.state, done.delivered_at, done.last_error) == (
        "delivered", T0 + 51, ""
    )  # fmt: skip
    assert [(a.n, a.status, a.ok) for a in store.notification_attempts("k0")] == [
        (1, "HTTP 503", False), (2, "HTTP 204", True)
    ]  # fmt: skip
    with store.transaction() as tx:
        assert not tx.lease_notification("k0", "worker-c", T0 + 60, T0 + 160)  # delivered
    assert [n.key for n in store.notifications(state="delivered")] == ["k0"]
    assert [n.key for n in store.notifications("polar")] == ["k2", "k1", "k0"]

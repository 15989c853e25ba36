"""Smoke tests of the gateway/anchor bench modules: their building blocks work. No timing."""

from __future__ import annotations

import json
from pathlib import Path

from anchor.ingest.parse import parse_ingest_body
from anchor.storage.sqlite.store import SqliteLedger
from bench import anchor_common, anchor_ingest_query, anchor_log_scale, gateway_vs_thingsboard
from gateway.config import load_config
from gateway.source_factory import create_source
from proofs.merkle import MerkleTree
from proofs.records import record_from_dict


def test_gateway_bench_writes_a_config_the_gateway_accepts(tmp_path: Path) -> None:
    path = gateway_vs_thingsboard._write_gateway_files(tmp_path, 1883, 9999, 9998)
    config = load_config(path, environ={})
    assert config.batch_max_records == gateway_vs_thingsboard.BATCH_MAX
    assert [s.kind for s in config.sources] == ["mqtt"]
    source = create_source(config.sources[0], None)  # type: ignore[arg-type]
    payload = b'{"battery":91,"voltage":2985,"temperature":-19.993,"humidity":46.08}'
    obs = source.decode("zigbee2mqtt/probe-3", payload)  # type: ignore[attr-defined]
    assert sorted(o.q for o in obs) == ["humidity", "temperature"]
    assert {o.src for o in obs} == {"probe-3"}


def test_anchor_bench_bodies_pass_the_ingest_parser_and_reproduce_the_root() -> None:
    sim = anchor_common.GatewaySim("smoke-gw", "truck-07")
    body = sim.readings_bodies(1, 8)[0]
    request = parse_ingest_body(body, 10_000)
    records = [record_from_dict(r) for r in request.records]
    assert request.manifest.count == 8
    assert MerkleTree([r.leaf_hash() for r in records]).root().hex() == request.manifest.root
    scan = json.loads(sim.body([sim.scan("LOT-1", "loading")]))["records"][0]
    assert scan["gs1"] == {"01": anchor_common.GTIN, "10": "LOT-1"}


def test_log_fill_matches_pymerkle(tmp_path: Path) -> None:
    result = anchor_ingest_query.proofs_vs_pymerkle(leaves=300, proofs=50, repeats=1)
    assert result["hashes"] <= 9  # ceil(log2 300)


def test_scale_prefill_goes_through_the_store_api(tmp_path: Path) -> None:
    db = tmp_path / "ledger.sqlite3"
    anchor_log_scale.prefill(db, 0, 3000)
    anchor_log_scale.prefill(db, 3000, 2000)
    store = SqliteLedger(db)
    try:
        counts = store.table_counts()
    finally:
        store.close()
    assert counts["records"] == 5000
    assert counts["batches"] == 5
    store = SqliteLedger(db)
    try:  # the pre-fill keeps rollups as the apply step would: every reading counted once
        assert sum(r.n for r in store.all_rollups()) == 5000
    finally:
        store.close()


def test_the_postgresql_bench_measures_libsodiums_two_core_limit() -> None:
    from bench import anchor_postgres

    assert anchor_postgres._libsodium_verifies(0.05) > 0


def test_the_coldchain_bench_finds_numpy_and_the_engine_agree() -> None:
    from bench import coldchain
    from proofs import coldchain as cc

    lot = coldchain.make_lot(sensors=2, per_sensor=3000)
    for profile in (cc.CONTROLLED_COLD, cc.FROZEN):
        verdict = coldchain.ours(lot, profile, None)
        theirs = coldchain.numpy_figures(lot, profile)
        assert coldchain._agree(verdict, theirs)
        assert "mkt_max_window_c" in theirs["probe-0"] or profile.mkt_window_ms is None

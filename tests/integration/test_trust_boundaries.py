"""Issue 9's trust holes, tried on a real ``coldtrail-anchor serve`` process and CLI.

- A gateway of one organisation cannot report for another organisation's places.
- A revocation dated in the past flags, rather than breaks, what was logged meanwhile,
  and every answer and bundle using those records says so.
- verify-ledger names every edited row that answers read.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from anchor.auth import add_organisation, register_place
from anchor.storage.sqlite.store import SqliteLedger
from support.anchor_process import AnchorProcess, call
from support.batches import (
    T0,
    GatewaySim,
    Node,
    make_node,
    node_attester,
    register_and_enroll,
)

pytestmark = pytest.mark.integration

GTIN = "09506000134352"
VERIFY = str(Path(sys.executable).with_name("coldtrail-verify"))


def _north(node: Node) -> tuple[GatewaySim, str]:
    """A second organisation, Northside, owning cold-room-3 and its dock; its gateway."""
    from anchor.auth import issue_token

    north = GatewaySim(gw="cold-room-3-gw", asset="cold-room-3")
    store = SqliteLedger(node.config.db_file)
    try:
        attest = node_attester(node.config)
        add_organisation(store, "north", "Northside Cold", T0)
        register_place(store, "north-dock", "north", "read-point", T0, attest=attest)
        register_and_enroll(
            store, north.gw, "north", north.public_key_b64, "cold-room-3", T0, ["north-dock"],
            attest,
        )  # fmt: skip
        token = issue_token(store, "north", "gateway", T0)[0]
    finally:
        store.close()
    return north, token


def _state(sim: GatewaySim) -> tuple[int, int, str, int]:
    return sim.seq, sim.batch_seq, sim.prev, sim.t


def _restore(sim: GatewaySim, state: tuple[int, int, str, int]) -> None:
    sim.seq, sim.batch_seq, sim.prev, sim.t = state


def _counts(node: Node) -> dict[str, int]:
    store = SqliteLedger(node.config.db_file)
    try:
        return store.table_counts()
    finally:
        store.close()


def test_a_gateway_cannot_report_for_another_organisations_places(tmp_path: Path) -> None:
    node = make_node(tmp_path)  # acme: truck-07 (asset truck-07, dock-3)
    north, north_token = _north(node)
    acme = node.gateway
    with AnchorProcess(node, tmp_path) as anchor:
        received = north.scan(gtin=GTIN, lot="N1", step="receiving", rp="north-dock")
        readings = [north.reading(3.0 + i / 10) for i in range(5)]
        # Shipped on: the custody is closed, so the verdict rests on these readings alone.
        shipped = north.scan(gtin=GTIN, lot="N1", step="shipping", rp="north-dock")
        status, _ = anchor.post(north_token, north.batch([received, *readings, shipped])[1])
        assert status == 201
        anchor.cli("checkpoint")
        before = anchor.get(f"/v1/provenance?gtin={GTIN}&lot=N1")
        assert before["verdict"]["status"] == "pass", before["verdict"]
        counts = _counts(node)

        # acme's gateway signs a warm reading on north's cold room ...
        state = _state(acme)
        acme.asset = "cold-room-3"
        status, problem = anchor.post(node.gateway_token, acme.readings_batch(2, val=30.0)[1])
        assert (status, problem["code"]) == (403, "foreign-asset"), problem
        assert "cold-room-3" in problem["detail"]
        _restore(acme, state)
        acme.asset = "truck-07"
        # ... or scans north's lot at north's read point.
        scan = acme.scan(gtin=GTIN, lot="N1", step="unloading", rp="north-dock")
        status, problem = anchor.post(node.gateway_token, acme.batch([scan])[1])
        assert (status, problem["code"]) == (403, "foreign-read-point"), problem
        _restore(acme, state)

        assert _counts(node) == counts
        # Who may speak for a place is public.
        places = {p["id"]: p for p in anchor.get("/v1/places")["places"]}
        assert places["cold-room-3"]["org"] == "north"
        assert places["cold-room-3"]["gateways"] == [north.gw]
        assert places["truck-07"]["gateways"] == [acme.gw]
        # Its own places are still fine.
        status, _ = anchor.post(node.gateway_token, acme.readings_batch(2)[1])
        assert status == 201
        anchor.cli("checkpoint")
        after = anchor.get(f"/v1/provenance?gtin={GTIN}&lot=N1")
        assert after["verdict"] == before["verdict"]
        assert after["stats"] == before["stats"]
        result = anchor.cli("verify-ledger", "--quiet")
        assert result.returncode == 0, result.stderr


def test_a_revocation_dated_in_the_past_flags_what_was_logged_meanwhile(
    tmp_path: Path,
) -> None:
    node = make_node(tmp_path)
    acme = node.gateway
    with AnchorProcess(node, tmp_path) as anchor:
        loaded = acme.scan(gtin=GTIN, lot="R1", step="loading", rp="dock-3")
        status, first = anchor.post(node.gateway_token, acme.batch([loaded, acme.reading(4.0)])[1])
        assert status == 201
        time.sleep(0.05)
        status, second = anchor.post(node.gateway_token, acme.readings_batch(3, val=4.0)[1])
        assert status == 201
        assert first["receipt"]["accepted_at"] < second["receipt"]["accepted_at"]
        anchor.cli("checkpoint")
        # Asked (and cached) before the theft is known: nothing to flag yet.
        assert anchor.get(f"/v1/provenance?gtin={GTIN}&lot=R1")["compromised"] == []
        # The theft is found out now, and dated back to just before the second batch.
        revoke = anchor.cli(
            "gateway", "revoke", "--id", acme.gw, "--at", str(second["receipt"]["accepted_at"]),
            "--reason", "stolen",
        )  # fmt: skip
        assert revoke.returncode == 0, revoke.stderr
        assert "flag" in revoke.stderr

        status, problem = anchor.post(node.gateway_token, acme.readings_batch(1)[1])
        assert (status, problem["code"]) == (403, "revoked")

        result = anchor.cli("verify-ledger", "--quiet")
        assert result.returncode == 0, result.stderr
        assert f"FLAGGED: {acme.gw} batch 2 " in result.stderr
        assert f"{acme.gw} batch 1 " not in result.stderr

        anchor.cli("checkpoint")
        answer = anchor.get(f"/v1/provenance?gtin={GTIN}&lot=R1")
        assert answer["compromised"] == [
            {"gw": acme.gw, "compromised_since": second["receipt"]["accepted_at"], "records": 3}
        ]
        assert answer["verdict"]["status"] != "pass"
        assert any(r["code"] == "compromised-gateway" for r in answer["verdict"]["reasons"])
        page = call(anchor.port, f"/01/{GTIN}/10/R1")
        assert page.status == 200 and b"was compromised" in page.body
        bundle = anchor.get(f"/v1/provenance/bundle?gtin={GTIN}&lot=R1")
        assert bundle["subject"]["compromised"] == answer["compromised"]
        (tmp_path / "bundle.json").write_text(json.dumps(bundle))
        policy = anchor.cli("policy")
        assert policy.returncode == 0, policy.stderr
        (tmp_path / "policy.txt").write_text(policy.stdout)
        verify = subprocess.run(
            [VERIFY, str(tmp_path / "bundle.json"), "--policy", str(tmp_path / "policy.txt")],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert verify.returncode == 0, verify.stderr
        assert f"COMPROMISED: 3 record(s) from gateway {acme.gw}" in verify.stderr


# (SQL that edits one derived row, what verify-ledger must name)
EDITS = {
    "reading value": ("UPDATE records SET val = 30 WHERE type = 'reading' AND seq = 2", "'val'"),
    "asset": ("UPDATE records SET asset = 'cold-room-3' WHERE seq = 2", "'asset'"),
    "time": ("UPDATE records SET t = t + 60000 WHERE seq = 3", "'t'"),
    "quantity": ("UPDATE records SET q = 'humidity' WHERE seq = 2", "'q'"),
    "scan lot": ("UPDATE scans SET lot = 'OTHER'", "scan index row differs"),
    "scan dropped": ("DELETE FROM scans", "scan index row of this scan is missing"),
    "scan row added to a reading": (
        "INSERT INTO scans (gw, seq, t, src, asset, rp, step, gtin, lot, sscc, serial)"
        " VALUES ('truck-07', 2, 1, 's', 'truck-07', 'dock-3', 'loading', '09506000134352',"
        " 'E1', NULL, NULL)",
        "rows stored, 1 scan records logged",
    ),
    "enrolment moved to another organisation": (
        "UPDATE gateways SET org_id = 'acme2'",
        "enrolment of gateway truck-07",
    ),
    "enrolment given another place": (
        'UPDATE gateways SET places = \'["cold-room-9","dock-3","truck-07"]\'',
        "enrolment of gateway truck-07",
    ),
    "place given to another organisation": (
        "UPDATE places SET org_id = 'acme2' WHERE id = 'dock-3'",
        "place dock-3 of acme2",
    ),
    "revocation erased": (
        "UPDATE gateways SET revoked_at = NULL, refused_from = NULL",
        "revocation times",
    ),
    "revocation moved later": ("UPDATE revocations SET at = at + 1", "a revocation of truck-07"),
    "row added": (
        "INSERT INTO records (gw, seq, type, src, asset, t, batch_leaf, batch_index, q, val,"
        " unit, json) VALUES ('truck-07', 999, 'reading', 'p', 'truck-07', 1, 99, 0,"
        " 'temperature', 30, 'CEL', x'7b7d')",
        "rows stored",
    ),
}


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Node:
    tmp = tmp_path_factory.mktemp("logged")
    node = make_node(tmp)
    acme = node.gateway
    with AnchorProcess(node, tmp) as anchor:
        scan = acme.scan(gtin=GTIN, lot="E1", step="loading", rp="dock-3")
        status, _ = anchor.post(
            node.gateway_token, acme.batch([scan, *(acme.reading(4.0) for _ in range(3))])[1]
        )
        assert status == 201
        anchor.cli("checkpoint")
        # A planned decommissioning: a revocation the rows must keep as signed.
        revoke = anchor.cli("gateway", "revoke", "--id", acme.gw, "--at", "2099-01-01T00:00:00Z")
        assert revoke.returncode == 0, revoke.stderr
    return node


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_verify_ledger_names_an_edited_derived_row(logged: Node, tmp_path: Path, edit: str) -> None:
    sql, named = EDITS[edit]
    data = tmp_path / "anchor"
    shutil.copytree(logged.config.data_dir, data)
    node = Node(
        logged.config.__class__(**{**_fields(logged.config), "data_dir": data}),
        logged.log_vkey, "", "", "", logged.gateway,
    )  # fmt: skip
    anchor = AnchorProcess(node, tmp_path)
    assert anchor.cli("verify-ledger", "--quiet").returncode == 0
    conn = sqlite3.connect(data / "ledger.sqlite3")
    with conn:
        assert conn.execute(sql).rowcount >= 1
    conn.close()
    result = anchor.cli("verify-ledger", "--quiet")
    assert result.returncode == 1, result.stdout
    assert "INCONSISTENT" in result.stderr and named in result.stderr, result.stderr


def _fields(config: Any) -> dict[str, Any]:
    import dataclasses

    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}

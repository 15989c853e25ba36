"""coldtrail-anchor commands, and verify-ledger catching a tampered store."""

from __future__ import annotations

import json
import sqlite3
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from anchor.cli import main
from anchor.config import load_config
from anchor.http.app import create_app
from proofs.policy import parse_policy
from support.batches import GatewaySim, Node, auth, make_node

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_init_enroll_token_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "anchor.toml"
    config.write_text(f'[anchor]\ndata_dir = "{tmp_path / "node"}"\n')
    c = ["--config", str(config)]
    code, out, _ = run(capsys, *c, "init")
    assert code == 0
    assert "log vkey:      coldtrail.example/log+" in out
    assert "cosigner vkey: coldtrail.example/member+" in out
    key_mode = stat.S_IMODE((tmp_path / "node/keys/node.key").stat().st_mode)
    assert key_mode == 0o600
    for owner_only in ("node", "node/keys"):
        assert stat.S_IMODE((tmp_path / owner_only).stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "node/ledger.sqlite3").stat().st_mode) == 0o600
    assert "PRIVATE" not in out
    # init again keeps the keys (same vkey) instead of overwriting them
    assert run(capsys, *c, "init")[1] == out
    log_vkey = out.split("log vkey:")[1].split()[0]
    member_vkey = out.split("cosigner vkey:")[1].split()[0]
    code, text, _ = run(capsys, *c, "policy")
    assert code == 0
    policy = parse_policy(text)  # what an auditor pins: the log, the member, quorum 1 of 1
    assert [v.to_vkey() for v in policy.logs] == [log_vkey]
    assert [w.verifier.to_vkey() for w in policy.witnesses] == [member_vkey]
    assert policy.quorum == "consortium" and policy.groups[0].threshold == 1
    assert not policy.satisfied(set()) and policy.satisfied({"coldtrail.example/member"})
    assert run(capsys, *c, "org", "add", "acme", "--name", "Acme Foods")[0] == 0
    sim = GatewaySim()
    code, out, err = run(
        capsys, *c, "gateway", "enroll", "--org", "acme", "--id", sim.gw,
        "--public-key", sim.public_key_b64, "--asset", "truck-07",
    )  # fmt: skip
    assert code == 1 and "no asset or read point 'truck-07' is registered" in err
    assert run(capsys, *c, "asset", "add", "--org", "acme", "--id", "truck-07")[0] == 0
    assert run(capsys, *c, "read-point", "add", "--org", "acme", "--id", "dock-3")[0] == 0
    code, out, _ = run(capsys, *c, "asset", "list")
    assert code == 0 and out.split("\t")[:2] == ["truck-07", "acme"]
    code, out, _ = run(
        capsys, *c, "gateway", "enroll", "--org", "acme", "--id", sim.gw,
        "--public-key", sim.public_key_b64, "--asset", "truck-07", "--read-point", "dock-3",
    )  # fmt: skip
    assert code == 0 and sim.key.key_id in out and "dock-3, truck-07" in out
    code, out, err = run(capsys, *c, "token", "create", "--org", "acme", "--role", "gateway")
    assert code == 0 and out.startswith("ct_") and "shown only once" in err
    token_id = out.split("_")[1]
    assert run(capsys, *c, "token", "revoke", "--id", token_id)[0] == 0
    code, out, err = run(capsys, *c, "gateway", "enroll", "--org", "nope", "--id", "x",
                         "--public-key", sim.public_key_b64)  # fmt: skip
    assert code == 1 and "no organisation" in err
    code, _, err = run(capsys, *c, "gateway", "revoke", "--id", sim.gw, "--at",
                       "2026-01-01T00:00:00Z")  # fmt: skip
    assert code == 0
    # The revoked key can never come back under another id.
    code, _, err = run(
        capsys, *c, "gateway", "enroll", "--org", "acme", "--id", "truck-07b",
        "--public-key", sim.public_key_b64, "--asset", "truck-07",
    )  # fmt: skip
    assert code == 1 and "at most once" in err
    code, out, err = run(capsys, *c, "checkpoint")
    assert code == 0 and out.startswith("coldtrail.example/log\n0\n")
    code, out, err = run(capsys, *c, "verify-ledger")
    assert code == 0 and "ledger OK" in out


async def _fill(node: Node, aiohttp_client: ClientFactory) -> None:
    client = await aiohttp_client(create_app(node.config))
    gw = node.gateway
    for records in ([gw.reading(), gw.scan()], [gw.reading() for _ in range(5)]):
        _, body = gw.batch(records)
        resp = await client.post(
            "/v1/batches",
            data=json.dumps(body),
            headers={"Content-Type": "application/json", **auth(node.gateway_token)},
        )
        assert resp.status == 201
    await client.close()


def _config_file(node: Node, tmp_path: Path) -> str:
    path = tmp_path / "anchor.toml"
    path.write_text(f'[anchor]\ndata_dir = "{node.config.data_dir}"\n')
    assert load_config(path).db_file == node.config.db_file
    return str(path)


TAMPERINGS = {
    "record": (
        "UPDATE records SET json = replace(json, '\"val\":4', '\"val\":9') WHERE seq = 3",
        "record seq 3",
    ),
    "manifest": (
        "UPDATE batches SET manifest_json = replace(manifest_json, '\"count\":2', '\"count\":3')"
        " WHERE leaf_index = 0",
        "log leaf 0",
    ),
    "deleted-record": ("DELETE FROM records WHERE seq = 4", "log leaf 1"),
    "log-node": ("UPDATE log_nodes SET hash = zeroblob(32) WHERE level = 1", "subtree (1, 0)"),
    "checkpoint": (
        "UPDATE checkpoints SET note = replace(note, '\n2\n', '\n1\n') WHERE size = 2",
        "checkpoint height",
    ),
    # A lot's answer reads whole hours from the rollups: an edited one must be named.
    "rollup-count": ("UPDATE reading_rollups SET n = n + 1", "rollup of"),
    "rollup-value": (
        "UPDATE reading_rollups SET points = replace(points, ',4.0,', ',3.0,')",
        "rollup of",
    ),
    "rollup-deleted": ("DELETE FROM reading_rollups", "rollups"),
}


@pytest.mark.parametrize("what", sorted(TAMPERINGS))
async def test_verify_ledger_names_the_first_inconsistency(
    tmp_path: Path,
    aiohttp_client: ClientFactory,
    capsys: pytest.CaptureFixture[str],
    what: str,
) -> None:
    node = make_node(tmp_path)
    await _fill(node, aiohttp_client)
    config = _config_file(node, tmp_path)
    code, out, err = run(capsys, "--config", config, "verify-ledger")
    assert "ledger OK: 2 batches, 7 records" in out
    assert code == 0, err
    sql, named = TAMPERINGS[what]
    with sqlite3.connect(node.config.db_file) as db:
        assert db.execute(sql).rowcount >= 1
    code, _, err = run(capsys, "--config", config, "verify-ledger", "--quiet")
    assert code == 1
    assert "INCONSISTENT" in err and named in err, err

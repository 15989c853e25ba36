"""The consortium ledger end to end, on real processes: three member nodes (each its own
``coldtrail-anchor serve``, SQLite ledger, keys and ``nats-server``) ordering on one R3
JetStream stream, cosigning each other's checkpoints over C2SP tlog-witness, final at
two of three (docs/consortium.md)."""

from __future__ import annotations

import http.server
import json
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, ClassVar

import pytest

from anchor.consortium.monitor import Monitor
from proofs.keystore import load_signing_key
from proofs.note import Checkpoint as CheckpointText
from proofs.note import NoteSigner, SignedNote
from proofs.policy import parse_policy
from proofs.receipt import verify_receipt
from support.anchor_process import ANCHOR, call_raw
from support.batches import GatewaySim
from support.consortium import ORIGIN, Consortium, Member
from support.procs import free_port, stop_process, wait_for_port

GTIN = "09506000134352"

pytestmark = pytest.mark.integration


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return bytes(resp.read())


def _cosigners(policy_text: str, note_text: str) -> set[str]:
    policy = parse_policy(policy_text)
    note = SignedNote.parse(note_text)
    names = {s.name for s in note.signatures}
    return {w.name for w in policy.witnesses if w.verifier.name in names}


def test_members_order_apply_cosign_and_finalise(tmp_path) -> None:
    with Consortium(tmp_path) as c:
        receipts = []
        for m in c.members:
            for _ in range(2):
                manifest, body = m.gateway.readings_batch(5)
                status, receipt = m.post(body)
                assert status == 201, (m.name, receipt)
                verify_receipt(receipt, manifest, m.log_vkey)
                receipts.append((m, receipt))
        size = c.wait_same_tree()
        assert size == 6
        for _, receipt in receipts:
            # The receipt carries a final checkpoint: two of three members cosigned it.
            assert len(_cosigners(c.policy_text, receipt["receipt"]["checkpoint"])) >= 2
        # A resend to another member is a no-op answered with that member's receipt.
        packer, carrier = c.members[0], c.members[1]
        manifest, body = packer.gateway.readings_batch(2)
        status, first = packer.post(body)
        assert status == 201
        status, again = carrier.post(body, token=packer.token)
        assert status == 200, again
        verify_receipt(again, manifest, carrier.log_vkey)
        assert again["receipt"]["leaf_index"] == first["receipt"]["leaf_index"]
        assert c.wait_same_tree() == 7
        for m in c.members:
            out = m.cli("verify-ledger", "--quiet")
            assert out.returncode == 0, (m.name, out.stdout, out.stderr)
            status, blocks = m.get("/v1/blocks?limit=5")
            assert status == 200
            assert blocks["blocks"][0]["final"] and blocks["blocks"][0]["cosignatures"] >= 2
        # A monitor trusting nothing but the policy: every member's checkpoint is signed
        # by a policy log, final, and consistent with the last one it saw (from tiles).
        monitor = Monitor(parse_policy(c.policy_text),
                          [(m.name, m.url) for m in c.members], _fetch)  # fmt: skip
        first = monitor.poll()
        assert {e.kind for e in first} == {"final"}, first
        for m in c.members:
            assert m.post(m.gateway.readings_batch(3)[1])[0] == 201
        c.wait_same_tree()
        second = monitor.poll()
        assert {e.kind for e in second} == {"final"}, second
        # What the explorer draws: members, each checkpoint's cosigners, each node's health.
        status, view = packer.get("/v1/consortium")
        assert status == 200, view
        assert [m["name"] for m in view["members"]] == ["packer", "carrier", "warehouse"]
        assert view["quorum"]["k"] == 2 and view["quorum"]["of"] == 3
        assert view["this_member"]["member"] == "packer"
        assert view["this_member"]["cosigning"] == "ok"
        top = view["checkpoints"][0]
        assert top["final"] and top["size"] == 10
        assert len(top["cosigners"]) >= 2
        assert all(m["last_cosigned"] is not None for m in view["members"])


def _verify(bundle: Any, policy: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / f"bundle-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(bundle))
    return subprocess.run(
        [sys.executable, "-m", "proofs.verify_cli", str(path), "--policy", str(policy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _lot_batch(m: Member, lot: str) -> tuple[Any, dict[str, Any]]:
    g = m.gateway
    records = [g.scan(lot=lot, rp=f"{m.name}-dock-1"), *(g.reading(val=5.0) for _ in range(3))]
    return g.batch(records)


def test_a_lot_verifies_against_the_policy_and_a_stolen_key_forges_nothing(tmp_path) -> None:
    """The forged-lot attack with one stolen key: whoever holds one member's log key and
    cosigning key can run a node that signs and cosigns anything, but its bundles carry
    one member's cosignature, and the consortium's policy needs two."""
    with Consortium(tmp_path / "c") as c:
        packer, carrier = c.members[0], c.members[1]
        _, body = _lot_batch(packer, "LOT-GENUINE")
        status, answer = packer.post(body)
        assert status == 201, answer
        c.wait_same_tree()
        # Any member answers for the lot, with its own log key and the same tree.
        status, bundle = carrier.get(f"/v1/provenance/bundle?gtin={GTIN}&lot=LOT-GENUINE")
        assert status == 200, bundle
        policy = tmp_path / "c" / "policy.txt"
        out = _verify(bundle, policy, tmp_path)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "quorum members: met" in out.stdout, out.stdout

        # The thief: packer's two keys, a node of its own under the same names.
        rogue = tmp_path / "rogue"
        (rogue / "keys").mkdir(parents=True, mode=0o700)
        for key in ("node.key", "member.key"):
            shutil.copy2(packer.root / "keys" / key, rogue / "keys" / key)
        config = rogue / "anchor.toml"
        config.write_text(
            "[anchor]\n"
            f'data_dir = "{rogue}"\n'
            f'log_origin = "{ORIGIN}"\n'
            'member_name = "packer.example/witness"\n'
            "public_rate_per_s = 100000.0\npublic_burst_requests = 100000\n"
        )
        thief = Member("rogue", rogue, free_port(), "")
        thief.gateway = GatewaySim(gw="rogue-gw", asset="rogue-asset")
        assert thief.cli("init").returncode == 0
        for args in (
            ("org", "add", "rogue-org"),
            ("asset", "add", "--org", "rogue-org", "--id", "rogue-asset"),
            ("read-point", "add", "--org", "rogue-org", "--id", "rogue-dock-1"),
            ("gateway", "enroll", "--org", "rogue-org", "--id", "rogue-gw", "--public-key",
             thief.gateway.public_key_b64, "--asset", "rogue-asset", "--read-point",
             "rogue-dock-1"),
        ):  # fmt: skip
            out = thief.cli(*args)
            assert out.returncode == 0, out.stderr
        thief.token = thief.cli("token", "create", "--org", "rogue-org", "--role", "gateway")
        thief.token = thief.token.stdout.strip()
        proc = subprocess.Popen(
            [*ANCHOR, "--config", str(config), "serve", "--port", str(thief.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(thief.port, 30, proc)
            g = thief.gateway
            forged = [g.scan(lot="LOT-FORGED", rp="rogue-dock-1"), g.reading(val=4.0)]
            status, answer = thief.post(g.batch(forged)[1])
            assert status == 201, answer
            status, fake = thief.get(f"/v1/provenance/bundle?gtin={GTIN}&lot=LOT-FORGED")
            assert status == 200, fake
            # A monitor that watches the thief's node beside the members sees two
            # signed checkpoints of size 1 and keeps both as evidence.
            evidence = tmp_path / "evidence"
            watch = ["--url", packer.url, "--url", carrier.url, "--url", thief.url]
            out = packer.cli("monitor", "--once", "--policy", str(policy), *watch,
                             "--evidence", str(evidence))  # fmt: skip
            assert out.returncode == 1, out.stdout + out.stderr
            assert "ALARM split-view" in out.stdout, out.stdout
            notes = sorted(evidence.glob("size-1-*.note"))
            assert len(notes) == 2
            roots = {n.read_text().split("\n")[2] for n in notes}
            assert len(roots) == 2  # both signed notes, with their two roots
        finally:
            stop_process(proc)
        # Signed by a log key of the policy and cosigned by a member of it...
        note = SignedNote.parse(fake["checkpoint"])
        assert packer.log_vkey.split("+")[1] in {s.key_id.hex() for s in note.signatures}
        # ...and refused: one cosignature of the two the policy needs.
        out = _verify(fake, policy, tmp_path)
        assert out.returncode != 0, out.stdout
        assert "quorum members: NOT met" in out.stdout + out.stderr, out.stdout + out.stderr


class _Webhook(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[Any]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        type(self).received.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def _wait(predicate: Any, what: str, timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_tampered_member_stops_cosigning_and_a_split_view_is_kept_and_alerted(
    tmp_path,
) -> None:
    hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Webhook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{hook.server_address[1]}/alerts"
    try:
        with Consortium(tmp_path, split_view_webhook=url) as c:
            packer, carrier, warehouse = c.members
            for m in c.members:
                assert m.post(m.gateway.readings_batch(3)[1])[0] == 201
            c.wait_same_tree()

            # Split view: a checkpoint signed with packer's (stolen) log key for the
            # current size but another root, sent to carrier's witness endpoint.
            status, text = carrier.text("/tlog/checkpoint")
            real = CheckpointText.from_text("\n".join(text.split("\n")[:3]) + "\n")
            key = load_signing_key(packer.root / "keys" / "node.key")
            lie = SignedNote.sign(
                CheckpointText(ORIGIN, real.size, bytes(32)).to_text(), NoteSigner(ORIGIN, key)
            ).to_text()
            reply = call_raw(carrier.port, "/witness/add-checkpoint",
                             f"old {real.size}\n\n{lie}".encode())  # fmt: skip
            assert reply.status == 422, reply
            health = _wait(lambda: carrier.get("/healthz")[1]["consortium"]["split_views"],
                           "carrier to keep the split view")  # fmt: skip
            assert health == 1
            alert = _wait(lambda: _Webhook.received, "the split-view webhook")[0]
            assert alert["event"] == "split-view" and alert["size"] == real.size
            assert lie in alert["notes"]
            metrics = carrier.text("/metrics")[1]
            assert "coldtrail_anchor_split_views_total 1.0" in metrics

            # Tampering: a reading's signed bytes edited in warehouse's stopped store.
            assert warehouse.proc is not None
            stop_process(warehouse.proc)
            warehouse.proc = None
            db = sqlite3.connect(warehouse.root / "ledger.sqlite3")
            gw, seq, signed = db.execute(
                "SELECT gw, seq, json FROM records WHERE type = 'reading' ORDER BY gw, seq LIMIT 1"
            ).fetchone()
            edited = bytes(signed).replace(b'"val":4', b'"val":9', 1)
            assert edited != bytes(signed)
            db.execute("UPDATE records SET json = ? WHERE gw = ? AND seq = ?", (edited, gw, seq))
            db.commit()
            db.close()
            c.start(warehouse)
            health = _wait(
                lambda: (lambda h: h if h[0] == 503 else None)(warehouse.get("/healthz")),
                "warehouse to refuse",
            )
            assert health[1]["cause"] == "store-disagrees", health
            assert "fails a check" in health[1]["consortium"]["refusal"]
            # The others' finality is unaffected: final with packer and carrier only.
            manifest, body = packer.gateway.readings_batch(2)
            status, receipt = packer.post(body)
            assert status == 201, receipt
            verify_receipt(receipt, manifest, packer.log_vkey)
            cosigners = _cosigners(c.policy_text, receipt["receipt"]["checkpoint"])
            assert cosigners == {"packer", "carrier"}, cosigners
    finally:
        hook.shutdown()
        hook.server_close()


def test_a_policy_change_needs_the_quorum_in_force_and_then_rules_finality(tmp_path) -> None:
    with Consortium(tmp_path, finality_timeout_s=4.0) as c:
        packer, carrier, warehouse = c.members
        args = []
        for m in c.members:
            args += ["--member", m.name, m.log_vkey, m.cosigner_vkey, m.url]
        out = packer.cli("compose-policy", "--quorum", "3", *args)
        assert out.returncode == 0, out.stderr
        (tmp_path / "all-three.txt").write_text(out.stdout)
        out = packer.cli("policy-change", "propose", str(tmp_path / "all-three.txt"))
        assert out.returncode == 0, out.stderr
        (tmp_path / "one.json").write_text(out.stdout)
        # One signature of the two the policy in force needs: refused before ordering.
        out = packer.cli("policy-change", "submit", str(tmp_path / "one.json"))
        assert out.returncode == 1 and "not signed by the quorum" in out.stderr, out.stderr
        out = carrier.cli("policy-change", "sign", str(tmp_path / "one.json"))
        assert out.returncode == 0, out.stderr
        (tmp_path / "two.json").write_text(out.stdout)
        out = packer.cli("policy-change", "submit", str(tmp_path / "two.json"))
        assert out.returncode == 0 and "in force here" in out.stdout, out.stdout + out.stderr
        for m in c.members:
            _wait(lambda m=m: m.get("/v1/consortium")[1]["policy_version"] == 1,
                  f"{m.name} to adopt version 1")  # fmt: skip

        _, body = _lot_batch(packer, "LOT-AFTER-CHANGE")
        status, receipt = packer.post(body)
        assert status == 201, receipt
        assert _cosigners(c.policy_text, receipt["receipt"]["checkpoint"]) == {
            "packer", "carrier", "warehouse"
        }  # fmt: skip
        # Now all three are needed: with the warehouse down nothing becomes final...
        c.kill(warehouse)
        manifest, body = packer.gateway.readings_batch(2)
        status, problem = packer.post(body)
        assert status == 503 and "not yet cosigned" in problem["detail"], problem
        # ...and the same batch sent again once it is back gets its final receipt.
        c.start(warehouse)
        status, receipt = _wait(
            lambda: (lambda r: r if r[0] in (200, 201) else None)(packer.post(body)),
            "the receipt once the warehouse cosigns again",
            timeout_s=60,
        )
        verify_receipt(receipt, manifest, packer.log_vkey)

        # An auditor pinned to the genesis policy follows the signed change.
        c.wait_same_tree()
        status, bundle = carrier.get(f"/v1/provenance/bundle?gtin={GTIN}&lot=LOT-AFTER-CHANGE")
        assert status == 200 and len(bundle["policy_changes"]) == 1, bundle
        out = _verify(bundle, tmp_path / "policy.txt", tmp_path)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "followed 1 signed change(s)" in out.stdout and "3 of 3 needed" in out.stdout
        # The change is part of what the log key attests: dropping it is refused.
        del bundle["policy_changes"]
        assert _verify(bundle, tmp_path / "policy.txt", tmp_path).returncode != 0
        for m in c.members:
            out = m.cli("verify-ledger", "--quiet")
            assert out.returncode == 0, (m.name, out.stdout, out.stderr)

"""The consortium ledger end to end, on real processes: three member nodes (each its own
``coldtrail-anchor serve``, SQLite ledger, keys and ``nats-server``) ordering on one R3
JetStream stream, cosigning each other's checkpoints over C2SP tlog-witness, final at
two of three (docs/consortium.md)."""

from __future__ import annotations

import json

import pytest

from proofs.note import SignedNote
from proofs.policy import parse_policy
from proofs.receipt import verify_receipt
from support.consortium import Consortium

pytestmark = pytest.mark.integration


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
        print(json.dumps(blocks)[:500])

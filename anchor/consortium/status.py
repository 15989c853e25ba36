"""What the consortium looks like from one member: its members and policy, each recent
checkpoint's cosigners and finality, and each member node's health as the evidence in
this member's own store shows it (the last checkpoint it cosigned, how far behind that
is). Served as ``GET /v1/consortium`` and drawn by the explorer's consortium page.

A member's health is read from cosignatures, not from asking it: a node that is down,
hung, behind or refusing shows as a member whose last cosignature is old, which is what
the operators of the other members need to see first ("block node monitoring").
"""

from __future__ import annotations

import base64
from typing import Any

from anchor.consortium.checkpoints import CheckpointSigner
from anchor.ledger.ports import LedgerStore
from proofs.errors import ProofsError
from proofs.note import SignedNote, verify_cosignature

__all__ = ["consortium_status"]

RECENT = 50


def consortium_status(
    store: LedgerStore,
    signer: CheckpointSigner,
    this_member: dict[str, Any] | None,
    *,
    limit: int = 20,
) -> dict[str, Any]:
    if signer.consortium is None:
        raise ValueError("this node is not a consortium member")
    history = signer.consortium
    policy = history.latest.policy
    size = store.log_size()
    recent = store.checkpoints(limit=max(limit, RECENT))
    last: dict[str, tuple[int, int, int]] = {}  # name -> (height, size, cosigned at)
    rows: list[dict[str, Any]] = []
    for cp in recent:  # newest first
        note = SignedNote.parse(cp.note)
        cosigners: list[dict[str, Any]] = []
        for w in history.at(cp.height).witnesses:
            for sig in note.signatures:
                if sig.name != w.verifier.name or sig.key_id != w.verifier.key_id:
                    continue
                try:
                    at = verify_cosignature(note.text, sig, w.verifier)
                except ProofsError:
                    continue
                cosigners.append({"member": w.name, "at": at})
                last.setdefault(w.name, (cp.height, cp.size, at))
        if len(rows) < limit:
            rows.append(
                {
                    "height": cp.height,
                    "size": cp.size,
                    "root": base64.b64encode(cp.root).decode(),
                    "time": cp.signed_at,
                    "final": cp.final,
                    "cosigners": cosigners,
                }
            )
    group = next((g for g in policy.groups if g.name == policy.quorum), None)
    members: list[dict[str, Any]] = []
    for i, w in enumerate(policy.witnesses):
        log_v = policy.logs[i] if i < len(policy.logs) else None
        seen = last.get(w.name)
        members.append(
            {
                "name": w.name,
                "cosigner_vkey": w.verifier.to_vkey(),
                "log_vkey": None if log_v is None else log_v.to_vkey(),
                "url": policy.log_urls[i] if i < len(policy.log_urls) else None,
                "last_cosigned": None
                if seen is None
                else {"height": seen[0], "size": seen[1], "at": seen[2]},
                # Entries this member's log holds that it has not cosigned (within the
                # recent checkpoints; None: no cosignature among them).
                "behind": None if seen is None else size - seen[1],
            }
        )
    return {
        "origin": signer.origin,
        "policy": history.latest.text,
        "policy_version": history.latest.version,
        "policy_changes": [c.to_dict() for c in history.changes()],
        "quorum": {
            "name": policy.quorum,
            "k": None if group is None else group.threshold,
            "of": None if group is None else len(group.members),
            "rules": policy.explain([]),
        },
        "log_size": size,
        "members": members,
        "this_member": this_member,
        "checkpoints": rows,
    }

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
from anchor.consortium.policies import PolicyHistory
from anchor.ledger.model import Checkpoint
from anchor.ledger.ports import LedgerStore
from proofs.note import SignedNote
from proofs.policy import Policy

__all__ = ["checkpoint_status", "consortium_status"]

RECENT = 50


def _history(signer: CheckpointSigner) -> PolicyHistory:
    if signer.consortium is None:
        raise ValueError("this node is not a consortium member")
    return signer.consortium


def _cosigners(policy: Policy, note_text: str) -> list[dict[str, Any]]:
    """The members whose cosignature on this note verifies, in policy order, each with
    the time it states (seconds since 1970, as tlog-cosignature/v1 carries it)."""
    cosigned = policy.cosigned(SignedNote.parse(note_text))
    return [{"member": name, "at": at} for name, at in cosigned.items()]


def _row(cp: Checkpoint, cosigners: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "height": cp.height,
        "size": cp.size,
        "root": base64.b64encode(cp.root).decode(),
        "time": cp.signed_at,
        "final": cp.final,
        "cosigners": cosigners,
    }


def _quorum(policy: Policy) -> dict[str, Any]:
    group = next((g for g in policy.groups if g.name == policy.quorum), None)
    return {
        "name": policy.quorum,
        "k": None if group is None else group.threshold,
        "of": None if group is None else len(group.members),
        "rules": policy.explain([]),
    }


def checkpoint_status(
    store: LedgerStore, signer: CheckpointSigner, height: int
) -> dict[str, Any] | None:
    """One checkpoint as :func:`consortium_status` lists it, with the members and quorum
    it is judged by (the explorer's block page); None when there is no such height."""
    policy = _history(signer).at(height)
    cp = store.checkpoint(height)
    if cp is None:
        return None
    return {
        "checkpoint": _row(cp, _cosigners(policy, cp.note)),
        "members": [w.name for w in policy.witnesses],
        "quorum": _quorum(policy),
    }


def consortium_status(
    store: LedgerStore,
    signer: CheckpointSigner,
    this_member: dict[str, Any] | None,
    *,
    limit: int = 20,
) -> dict[str, Any]:
    """The ``GET /v1/consortium`` document: ``limit`` recent checkpoints, each member's
    last cosignature among the last ``max(limit, RECENT)``. Checkpoint times are ms
    since 1970; cosignature times (``at``) seconds, as tlog-cosignature/v1 states them."""
    history = _history(signer)
    policy = history.latest.policy
    size = store.log_size()
    recent = store.checkpoints(limit=max(limit, RECENT))
    last: dict[str, tuple[int, int, int]] = {}  # name -> (height, size, cosigned at)
    missed: dict[str, tuple[int, int]] = {}  # name -> (height, time) of the oldest so far
    rows: list[dict[str, Any]] = []
    for cp in recent:  # newest first
        cosigners = _cosigners(history.at(cp.height), cp.note)
        names = {c["member"] for c in cosigners}
        for w in policy.witnesses:
            if w.name not in last and w.name not in names:
                missed[w.name] = (cp.height, cp.signed_at)
        for c in cosigners:
            last.setdefault(c["member"], (cp.height, cp.size, c["at"]))
        if len(rows) < limit:
            rows.append(_row(cp, cosigners))
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
                # The oldest recent checkpoint signed after its last cosignature: since
                # when it has been silent (None: it cosigned the newest checkpoint).
                "first_missed": None
                if w.name not in missed
                else {"height": missed[w.name][0], "time": missed[w.name][1]},
            }
        )
    return {
        "origin": signer.origin,
        "policy": history.latest.text,
        "policy_version": history.latest.version,
        "policy_changes": [c.to_dict() for c in history.changes()],
        "quorum": _quorum(policy),
        "log_size": size,
        "members": members,
        "this_member": this_member,
        "checkpoints": rows,
    }

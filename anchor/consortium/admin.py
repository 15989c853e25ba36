"""Registry changes made on a consortium member's command line.

In a consortium, ``coldtrail-anchor org add`` and friends do not write the member's
store: they sign the new row with the member's log key and publish it on the ordering
stream (:mod:`anchor.consortium.registry_entries`), so every member applies it in the
same place in the same order. The command then waits until this member's running node
has applied it, and reports a refusal (another member's organisation, a bad row) as
the node's apply step decided it. A policy change (``coldtrail-anchor policy-change
submit``) goes the same way once the quorum in force has signed it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from anchor.config import AnchorConfig
from anchor.consortium.checkpoints import CheckpointSigner
from anchor.consortium.policy_file import load_consortium
from anchor.consortium.registry_entries import sign_entry
from anchor.errors import AnchorError
from anchor.ledger.ports import LedgerStore
from anchor.ordering.jetstream import OrderingStream

__all__ = ["publish_entry", "publish_registry"]


def publish_registry(
    config: AnchorConfig,
    signer: CheckpointSigner,
    store: LedgerStore,
    op: str,
    model: Any,
    *,
    wait_s: float = 30.0,
) -> tuple[int, bool]:
    """Publish ``model`` as a registry entry; ``(stream seq, applied here yet)``."""
    entry = sign_entry(op, model, signer.log_key, signer.log_vkey)
    return publish_entry(config, store, "registry", entry.to_bytes(), entry.msg_id(), wait_s)


def publish_entry(
    config: AnchorConfig, store: LedgerStore, kind: str, data: bytes, msg_id: str,
    wait_s: float = 30.0,
) -> tuple[int, bool]:  # fmt: skip
    """Publish a stream entry; ``(seq, applied here yet)``, or the apply step's refusal."""
    settings = load_consortium(config)

    async def publish() -> int:
        stream = await OrderingStream.connect(
            settings.nats_urls,
            settings.stream,
            settings.subject,
            replicas=settings.replicas,
            name=f"{settings.me.name} (command line)",
        )
        try:
            seq, _ = await stream.publish(kind, data, msg_id, settings.me.name)
            return seq
        finally:
            await stream.close()

    seq = asyncio.run(publish())
    deadline = time.monotonic() + wait_s
    while True:
        with store.transaction() as tx:
            position = tx.stream_position(settings.stream)
            refusal = tx.stream_refusal(seq)
        if refusal is not None:
            raise AnchorError(refusal[1], refusal[2])
        if position >= seq:
            return seq, True
        if time.monotonic() > deadline:
            return seq, False
        time.sleep(0.1)

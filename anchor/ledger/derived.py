"""Rows derived from the signed records at apply time, beyond the record's own index
columns: the reading rollups of :mod:`anchor.ledger.rollups`.

:func:`update_rollups` runs inside the transaction that appends a batch, so a committed
batch and its rollups are never apart. :func:`ensure_rollups` builds them once for a
ledger migrated from a schema that had none, in one write transaction, whoever opens the
ledger first (several workers may start together on one PostgreSQL database).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from anchor.ledger.ports import LedgerStore, LedgerTx
from anchor.ledger.rollups import ReadingRow, Rollup, extend, group_readings, summarise

__all__ = ["ensure_rollups", "update_rollups"]

_log = logging.getLogger("coldtrail.anchor.ledger")


def update_rollups(tx: LedgerTx, gateway_asset: str | None, records: Iterable[ReadingRow]) -> int:
    """Fold ``records`` (one batch of one gateway) into their rollups; how many changed."""
    changed: list[Rollup] = []
    for key, (unit, samples) in group_readings(records, gateway_asset).items():
        stored = tx.rollup(key)
        rollup = summarise(key, unit, samples) if stored is None else extend(stored, samples)
        if rollup is None:
            # A late reading lands before the bucket's last one: summarise the bucket
            # again from every stored reading, so the rollup never depends on arrival order.
            unit, everything = tx.series_samples(key, gateway_asset)
            rollup = summarise(key, unit, everything)
        changed.append(rollup)
    if changed:
        tx.put_rollups(changed)
    return len(changed)


def ensure_rollups(store: LedgerStore) -> int:
    """Build the rollups of every stored reading if the ledger lacks them; how many batches
    that read (0 when they were there already)."""
    if store.rollups_ready():
        return 0
    batches = 0
    with store.transaction() as tx:
        if tx.rollups_ready():  # another worker built them meanwhile
            return 0
        assets: dict[str, str | None] = {}
        for batch in store.batches():
            if batch.gw not in assets:
                gateway = tx.gateway(batch.gw)
                assets[batch.gw] = gateway.asset if gateway is not None else None
            update_rollups(tx, assets[batch.gw], store.batch_records(batch.leaf_index))
            batches += 1
        tx.mark_rollups_ready()
    if batches:
        _log.info("built reading rollups over %d stored batches", batches)
    return batches

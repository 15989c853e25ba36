"""Storage drivers behind :mod:`anchor.ledger.ports`; only this package knows which
database the anchor runs on.

:func:`open_store` opens the ledger the config names (today: the embedded SQLite file;
the PostgreSQL driver joins here) and :func:`provenance_source` adapts an open store to
the read port of :mod:`anchor.provenance.source`.
"""

from __future__ import annotations

from anchor.config import AnchorConfig
from anchor.ledger.ports import LedgerStore
from anchor.provenance.source import LogTrust, ProvenanceSource

__all__ = ["open_store", "provenance_source"]


def open_store(config: AnchorConfig) -> LedgerStore:
    """The ledger store the config names, opened (and migrated to the current schema)."""
    from anchor.storage.sqlite.store import SqliteLedger

    return SqliteLedger(config.db_file)


def provenance_source(store: LedgerStore, trust: LogTrust) -> ProvenanceSource:
    """The read port over ``store`` (its driver's own reading queries)."""
    from anchor.storage.sqlite.provenance import LedgerProvenanceSource

    return LedgerProvenanceSource(store, trust)

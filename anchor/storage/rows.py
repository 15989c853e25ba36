"""Rows to values and back, for every driver: the column lists the ledger's tables are
read in and the functions that turn a row (a sequence in that order) into the values of
:mod:`anchor.ledger.model`. Both drivers select these columns in this order."""

from __future__ import annotations

import json
from typing import Any

from anchor.ledger.model import (
    ApiToken,
    ChainLink,
    Checkpoint,
    Gateway,
    StoredBatch,
    StoredRecord,
)

__all__ = [
    "BATCH_COLS",
    "CP_COLS",
    "GW_COLS",
    "LINK_COLS",
    "PLACE_COLS",
    "RECORD_COLS",
    "SCAN_COLS",
    "TOKEN_COLS",
    "as_bytes",
    "batch_row",
    "checkpoint_row",
    "gateway_row",
    "link_row",
    "record_row",
    "token_row",
]

BATCH_COLS = (
    "leaf_index, gw, batch_seq, manifest_hash, manifest_json, first_seq, last_seq, count, root,"
    " opened, closed, records_evicted, accepted_at, receipt_json"
)
RECORD_COLS = "gw, seq, type, src, asset, t, batch_leaf, batch_index, json, q, val, unit"
SCAN_COLS = "gw, seq, t, src, asset, rp, step, gtin, lot, sscc, serial"
CP_COLS = "height, size, root, note, signed_at, cosignatures, final, entries"
GW_COLS = (
    "id, org_id, public_key, key_id, asset, enrolled_at, revoked_at, revoked_reason, places,"
    " refused_from, attestation"
)
PLACE_COLS = "id, org_id, kind, name, registered_at, attestation"
TOKEN_COLS = "id, org_id, role, token_hash, created_at, revoked_at, label"  # noqa: S105


def as_bytes(value: Any) -> bytes:
    # A hand-edited row may hold TEXT where BLOB was written; read it, so that
    # verify-ledger names the damage instead of crashing on it.
    return value.encode() if isinstance(value, str) else bytes(value)


def batch_row(row: Any) -> StoredBatch:
    return StoredBatch(
        leaf_index=row[0],
        gw=row[1],
        batch_seq=row[2],
        manifest_hash=row[3],
        manifest_json=as_bytes(row[4]),
        first_seq=row[5],
        last_seq=row[6],
        count=row[7],
        root=row[8],
        opened=row[9],
        closed=row[10],
        records_evicted=bool(row[11]),
        accepted_at=row[12],
        receipt_json=None if row[13] is None else as_bytes(row[13]),
    )


LINK_COLS = "gw, batch_seq, manifest_hash, manifest_json, first_seq, last_seq, records_evicted,"
LINK_COLS += " leaf_index"


def link_row(row: Any) -> ChainLink:
    try:
        prev = json.loads(as_bytes(row[3]))["prev"]
    except (ValueError, KeyError, TypeError):
        prev = ""  # a damaged row: it links to nothing, so every check against it fails
    if not isinstance(prev, str):
        prev = ""
    return ChainLink(row[0], row[1], row[2], prev, row[4], row[5], bool(row[6]), row[7])


def record_row(row: Any) -> StoredRecord:
    return StoredRecord(
        gw=row[0],
        seq=row[1],
        type=row[2],
        src=row[3],
        asset=row[4],
        t=row[5],
        batch_leaf=row[6],
        batch_index=row[7],
        json=as_bytes(row[8]),
        q=row[9],
        val=row[10],
        unit=row[11],
    )


def checkpoint_row(row: Any) -> Checkpoint:
    return Checkpoint(
        height=row[0],
        size=row[1],
        root=as_bytes(row[2]),
        note=row[3],
        signed_at=row[4],
        cosignatures=row[5],
        final=bool(row[6]),
        entries=row[7],
    )


def gateway_row(row: Any) -> Gateway:
    try:
        places = json.loads(row[8])
    except (ValueError, TypeError):
        places = []  # a damaged row names no place: every record naming one is refused
    if not isinstance(places, list):
        places = []
    return Gateway(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        row[6],
        row[7],
        places=frozenset(p for p in places if isinstance(p, str)),
        refused_from=row[9],
        attestation=row[10],
    )


def token_row(row: Any) -> ApiToken:
    return ApiToken(row[0], row[1], row[2], bytes(row[3]), row[4], row[5], row[6])

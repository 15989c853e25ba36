-- Migration 1 of the PostgreSQL ledger: the tables and indexes of the SQLite ledger's
-- schema 2 (anchor/storage/sqlite/schema.sql) in PostgreSQL types. Applied once, in one
-- transaction, under the migration advisory lock (store.py, MIGRATIONS); later changes
-- are new numbered migrations, never edits of this file.
--
-- Times (ms) and sequence numbers are BIGINT, blobs BYTEA, readings DOUBLE PRECISION,
-- flags BOOLEAN. Every TEXT column is COLLATE "C": rows sort by bytes, as in SQLite,
-- whatever locale the database was created with.
CREATE TABLE organisations (
    id TEXT COLLATE "C" PRIMARY KEY, name TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL);
CREATE TABLE gateways (
    id TEXT COLLATE "C" PRIMARY KEY,
    org_id TEXT COLLATE "C" NOT NULL REFERENCES organisations(id),
    public_key TEXT COLLATE "C" NOT NULL, key_id TEXT COLLATE "C" NOT NULL,
    asset TEXT COLLATE "C",
    enrolled_at BIGINT NOT NULL, revoked_at BIGINT,
    revoked_reason TEXT COLLATE "C" NOT NULL DEFAULT '',
    places TEXT COLLATE "C" NOT NULL DEFAULT '[]', refused_from BIGINT,
    attestation TEXT COLLATE "C" NOT NULL DEFAULT '');
CREATE INDEX gateways_org ON gateways(org_id);
CREATE UNIQUE INDEX gateways_public_key ON gateways(public_key);
CREATE TABLE places (
    id TEXT COLLATE "C" PRIMARY KEY,
    org_id TEXT COLLATE "C" NOT NULL REFERENCES organisations(id),
    kind TEXT COLLATE "C" NOT NULL CHECK (kind IN ('asset', 'read-point')),
    name TEXT COLLATE "C" NOT NULL, registered_at BIGINT NOT NULL,
    attestation TEXT COLLATE "C" NOT NULL DEFAULT '');
CREATE INDEX places_org ON places(org_id);
CREATE TABLE revocations (
    -- id keeps the order revocations were recorded in (SQLite's rowid).
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    gw TEXT COLLATE "C" NOT NULL REFERENCES gateways(id), at BIGINT NOT NULL,
    recorded_at BIGINT NOT NULL, reason TEXT COLLATE "C" NOT NULL DEFAULT '',
    attestation TEXT COLLATE "C" NOT NULL DEFAULT '');
CREATE INDEX revocations_gw ON revocations(gw, recorded_at, id);
CREATE TABLE tokens (
    id TEXT COLLATE "C" PRIMARY KEY,
    org_id TEXT COLLATE "C" NOT NULL REFERENCES organisations(id),
    role TEXT COLLATE "C" NOT NULL CHECK (role IN ('gateway', 'operator', 'auditor')),
    token_hash BYTEA NOT NULL, created_at BIGINT NOT NULL, revoked_at BIGINT,
    label TEXT COLLATE "C" NOT NULL DEFAULT '');
CREATE TABLE batches (
    leaf_index BIGINT PRIMARY KEY,
    gw TEXT COLLATE "C" NOT NULL, batch_seq BIGINT NOT NULL,
    manifest_hash TEXT COLLATE "C" NOT NULL, manifest_json BYTEA NOT NULL,
    first_seq BIGINT NOT NULL, last_seq BIGINT NOT NULL, count BIGINT NOT NULL,
    root TEXT COLLATE "C" NOT NULL, opened BIGINT NOT NULL, closed BIGINT NOT NULL,
    records_evicted BOOLEAN NOT NULL, accepted_at BIGINT NOT NULL, receipt_json BYTEA,
    UNIQUE (gw, batch_seq));
CREATE TABLE records (
    gw TEXT COLLATE "C" NOT NULL, seq BIGINT NOT NULL, type TEXT COLLATE "C" NOT NULL,
    src TEXT COLLATE "C" NOT NULL, asset TEXT COLLATE "C", t BIGINT NOT NULL,
    batch_leaf BIGINT NOT NULL, batch_index BIGINT NOT NULL,
    q TEXT COLLATE "C", val DOUBLE PRECISION, unit TEXT COLLATE "C", json BYTEA NOT NULL,
    PRIMARY KEY (gw, seq));
CREATE INDEX records_asset_t ON records(asset, t);
CREATE INDEX records_src_t ON records(src, t);
CREATE INDEX records_batch ON records(batch_leaf, batch_index);
CREATE INDEX provenance_records_gw_t ON records(gw, t);
-- Gap records beside a lot's custody (the provenance adapter's gap queries); partial,
-- so they cost ingest next to nothing. SQLite's adapter adds the same two at start.
CREATE INDEX provenance_gaps_asset_t ON records(asset, t) WHERE type = 'gap';
CREATE INDEX provenance_gaps_gw_t ON records(gw, t) WHERE type = 'gap';
CREATE TABLE scans (
    gw TEXT COLLATE "C" NOT NULL, seq BIGINT NOT NULL, t BIGINT NOT NULL,
    src TEXT COLLATE "C" NOT NULL, asset TEXT COLLATE "C", rp TEXT COLLATE "C" NOT NULL,
    step TEXT COLLATE "C" NOT NULL,
    gtin TEXT COLLATE "C", lot TEXT COLLATE "C", sscc TEXT COLLATE "C",
    serial TEXT COLLATE "C",
    PRIMARY KEY (gw, seq));
CREATE INDEX scans_gtin_lot ON scans(gtin, lot, t);
CREATE INDEX scans_lot ON scans(lot, t);
CREATE INDEX scans_sscc ON scans(sscc, t);
CREATE INDEX scans_serial ON scans(serial, t);
CREATE TABLE log_nodes (
    level INTEGER NOT NULL, idx BIGINT NOT NULL, hash BYTEA NOT NULL,
    PRIMARY KEY (level, idx));
CREATE TABLE checkpoints (
    height BIGINT PRIMARY KEY, size BIGINT NOT NULL, root BYTEA NOT NULL,
    note TEXT COLLATE "C" NOT NULL,
    signed_at BIGINT NOT NULL, cosignatures INTEGER NOT NULL, final BOOLEAN NOT NULL,
    entries BIGINT NOT NULL);
CREATE INDEX checkpoints_size ON checkpoints(size);
-- change_counter(): one row, bumped by every write transaction that wrote something,
-- in that transaction, so it moves exactly when the rows it guards become visible.
CREATE TABLE ledger_changes (
    one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one), n BIGINT NOT NULL);
INSERT INTO ledger_changes (one, n) VALUES (TRUE, 0);

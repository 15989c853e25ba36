-- The embedded ledger's schema (SQLite, WAL). Read by anchor/storage/sqlite/store.py,
-- every statement is idempotent (IF NOT EXISTS). SCHEMA_VERSION in store.py counts
-- its versions, and store.py migrates older ledgers in place.
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS organisations (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS gateways (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organisations(id),
    public_key TEXT NOT NULL, key_id TEXT NOT NULL, asset TEXT,
    enrolled_at INTEGER NOT NULL, revoked_at INTEGER, revoked_reason TEXT NOT NULL DEFAULT '',
    places TEXT NOT NULL DEFAULT '[]', refused_from INTEGER,
    attestation TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS gateways_org ON gateways(org_id);
CREATE UNIQUE INDEX IF NOT EXISTS gateways_public_key ON gateways(public_key);
CREATE TABLE IF NOT EXISTS places (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organisations(id),
    kind TEXT NOT NULL CHECK (kind IN ('asset', 'read-point')),
    name TEXT NOT NULL, registered_at INTEGER NOT NULL,
    attestation TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS places_org ON places(org_id);
CREATE TABLE IF NOT EXISTS revocations (
    gw TEXT NOT NULL REFERENCES gateways(id), at INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL, reason TEXT NOT NULL DEFAULT '',
    attestation TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organisations(id),
    role TEXT NOT NULL CHECK (role IN ('gateway', 'operator', 'auditor')),
    token_hash BLOB NOT NULL, created_at INTEGER NOT NULL, revoked_at INTEGER,
    label TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS batches (
    leaf_index INTEGER PRIMARY KEY,
    gw TEXT NOT NULL, batch_seq INTEGER NOT NULL,
    manifest_hash TEXT NOT NULL, manifest_json BLOB NOT NULL,
    first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL, count INTEGER NOT NULL,
    root TEXT NOT NULL, opened INTEGER NOT NULL, closed INTEGER NOT NULL,
    records_evicted INTEGER NOT NULL, accepted_at INTEGER NOT NULL, receipt_json BLOB,
    UNIQUE (gw, batch_seq));
CREATE TABLE IF NOT EXISTS records (
    gw TEXT NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL, src TEXT NOT NULL,
    asset TEXT, t INTEGER NOT NULL, batch_leaf INTEGER NOT NULL, batch_index INTEGER NOT NULL,
    q TEXT, val REAL, unit TEXT, json BLOB NOT NULL,
    PRIMARY KEY (gw, seq)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS records_asset_t ON records(asset, t);
CREATE INDEX IF NOT EXISTS records_src_t ON records(src, t);
CREATE INDEX IF NOT EXISTS records_batch ON records(batch_leaf, batch_index);
CREATE INDEX IF NOT EXISTS provenance_records_gw_t ON records(gw, t);
CREATE TABLE IF NOT EXISTS scans (
    gw TEXT NOT NULL, seq INTEGER NOT NULL, t INTEGER NOT NULL, src TEXT NOT NULL,
    asset TEXT, rp TEXT NOT NULL, step TEXT NOT NULL,
    gtin TEXT, lot TEXT, sscc TEXT, serial TEXT,
    PRIMARY KEY (gw, seq)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS scans_gtin_lot ON scans(gtin, lot, t);
CREATE INDEX IF NOT EXISTS scans_lot ON scans(lot, t);
CREATE INDEX IF NOT EXISTS scans_sscc ON scans(sscc, t);
CREATE INDEX IF NOT EXISTS scans_serial ON scans(serial, t);
CREATE TABLE IF NOT EXISTS log_nodes (
    level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
    height INTEGER PRIMARY KEY, size INTEGER NOT NULL, root BLOB NOT NULL, note TEXT NOT NULL,
    signed_at INTEGER NOT NULL, cosignatures INTEGER NOT NULL, final INTEGER NOT NULL,
    entries INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS checkpoints_size ON checkpoints(size);
-- Schema 3: reading rollups (anchor/ledger/rollups.py), derived at apply time, one row
-- per series (holder, quantity, gateway, sensor) and hour. verify-ledger re-derives them.
CREATE TABLE IF NOT EXISTS reading_rollups (
    holder TEXT NOT NULL, bucket INTEGER NOT NULL, q TEXT NOT NULL, gw TEXT NOT NULL,
    src TEXT NOT NULL, unit TEXT NOT NULL, n INTEGER NOT NULL, total REAL NOT NULL,
    min_val REAL NOT NULL, max_val REAL NOT NULL, first_t INTEGER NOT NULL,
    last_t INTEGER NOT NULL,
    max_gap_ms INTEGER NOT NULL, unsynced INTEGER NOT NULL, boot TEXT,
    offset_lo_us INTEGER NOT NULL, offset_hi_us INTEGER NOT NULL, points TEXT NOT NULL,
    PRIMARY KEY (holder, bucket, q, gw, src)) WITHOUT ROWID;
-- Schema 4: what this node, as a C2SP tlog-witness, last cosigned per log origin.
CREATE TABLE IF NOT EXISTS witnessed (
    origin TEXT PRIMARY KEY, size INTEGER NOT NULL, root BLOB NOT NULL, note TEXT NOT NULL,
    updated_at INTEGER NOT NULL);
-- Schema 5: a consortium member's place in the ordering stream, the stream entries the
-- apply step refused, and split-view evidence (anchor/storage/sql_consortium.py).
CREATE TABLE IF NOT EXISTS stream_applied (stream TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS stream_refusals (
    seq INTEGER PRIMARY KEY, msg_id TEXT NOT NULL, code TEXT NOT NULL, detail TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS split_views (
    origin TEXT NOT NULL, size INTEGER NOT NULL, note_a TEXT NOT NULL, note_b TEXT NOT NULL,
    source TEXT NOT NULL, seen_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS org_members (org_id TEXT PRIMARY KEY, member TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS consortium_policies (
    version INTEGER PRIMARY KEY, change_json TEXT NOT NULL, from_height INTEGER NOT NULL,
    stream_seq INTEGER NOT NULL, adopted_at INTEGER NOT NULL);
-- Schema 6: cold-chain profiles (never changed: verdicts name them by digest), product
-- master data per GTIN, and every disposition change of a lot (anchor/storage/sql_products.py).
CREATE TABLE IF NOT EXISTS profiles (
    digest TEXT PRIMARY KEY, body TEXT NOT NULL, registered_at INTEGER NOT NULL,
    attestation TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS products (
    gtin TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES organisations(id),
    name TEXT NOT NULL, description TEXT NOT NULL, pack TEXT NOT NULL, unit TEXT NOT NULL,
    profile TEXT NOT NULL, updated_at INTEGER NOT NULL, attestation TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS products_org ON products(org_id);
CREATE TABLE IF NOT EXISTS dispositions (
    gtin TEXT NOT NULL, lot TEXT NOT NULL, n INTEGER NOT NULL,
    disposition TEXT NOT NULL, cause TEXT NOT NULL, rule TEXT NOT NULL, status TEXT NOT NULL,
    evidence TEXT NOT NULL, custodian TEXT NOT NULL, owner TEXT NOT NULL, by_whom TEXT NOT NULL,
    reason TEXT NOT NULL, at INTEGER NOT NULL, attestation TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (gtin, lot, n)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dispositions_at ON dispositions(at);
-- Schema 7: documents (calibration certificates, mapping reports, ...): the signed entry
-- and its chunk hashes, the file being kept beside the ledger (anchor/storage/sql_documents.py).
CREATE TABLE IF NOT EXISTS documents (
    digest TEXT PRIMARY KEY, doc_type TEXT NOT NULL, subject_kind TEXT NOT NULL,
    subject TEXT NOT NULL, org_id TEXT NOT NULL REFERENCES organisations(id),
    issuer TEXT NOT NULL, valid_from INTEGER NOT NULL, valid_until INTEGER NOT NULL,
    name TEXT NOT NULL, media_type TEXT NOT NULL, size INTEGER NOT NULL,
    chunk_size INTEGER NOT NULL, chunks_root TEXT NOT NULL, chunks TEXT NOT NULL,
    registered_at INTEGER NOT NULL, attestation TEXT NOT NULL DEFAULT '') WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS documents_subject ON documents(subject_kind, subject);
-- Schema 8: claims and the claims log (anchor/storage/sql_claims.py).
CREATE TABLE IF NOT EXISTS claims (
    id TEXT PRIMARY KEY, gtin TEXT NOT NULL, lot TEXT NOT NULL, filed_at INTEGER NOT NULL,
    text TEXT NOT NULL, contact TEXT NOT NULL, photo_sha256 TEXT NOT NULL,
    photo_type TEXT NOT NULL, bundle_sha256 TEXT NOT NULL, routed_to TEXT NOT NULL,
    holder TEXT NOT NULL, route_reason TEXT NOT NULL, owner TEXT NOT NULL,
    state TEXT NOT NULL, answer_due INTEGER NOT NULL, resolve_due INTEGER NOT NULL,
    updated_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS claims_lot ON claims(gtin, lot, filed_at);
CREATE INDEX IF NOT EXISTS claims_routed ON claims(routed_to, state);
CREATE TABLE IF NOT EXISTS claim_events (
    idx INTEGER PRIMARY KEY, claim_id TEXT NOT NULL REFERENCES claims(id),
    n INTEGER NOT NULL, statement TEXT NOT NULL, message TEXT NOT NULL,
    attestation TEXT NOT NULL DEFAULT '', UNIQUE (claim_id, n));
-- Schema 9: the notification outbox (anchor/storage/sql_notify.py).
CREATE TABLE IF NOT EXISTS notifications (
    key TEXT PRIMARY KEY, org_id TEXT NOT NULL, channel TEXT NOT NULL, kind TEXT NOT NULL,
    subject TEXT NOT NULL, payload TEXT NOT NULL, created_at INTEGER NOT NULL,
    state TEXT NOT NULL, attempts INTEGER NOT NULL, next_attempt_at INTEGER NOT NULL,
    delivered_at INTEGER NOT NULL, last_error TEXT NOT NULL, lease_owner TEXT NOT NULL,
    lease_until INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS notifications_due ON notifications(state, next_attempt_at);
CREATE INDEX IF NOT EXISTS notifications_org ON notifications(org_id, created_at);
CREATE TABLE IF NOT EXISTS notification_attempts (
    key TEXT NOT NULL, n INTEGER NOT NULL, channel TEXT NOT NULL, status TEXT NOT NULL,
    ok INTEGER NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (key, n)) WITHOUT ROWID;

-- Migration 7 of the PostgreSQL ledger: claims and the claims log
-- (anchor/storage/sql_claims.py); the SQLite schema 8.
CREATE TABLE claims (
    id TEXT COLLATE "C" PRIMARY KEY, gtin TEXT COLLATE "C" NOT NULL,
    lot TEXT COLLATE "C" NOT NULL, filed_at BIGINT NOT NULL, text TEXT NOT NULL,
    contact TEXT NOT NULL, photo_sha256 TEXT COLLATE "C" NOT NULL,
    photo_type TEXT COLLATE "C" NOT NULL, bundle_sha256 TEXT COLLATE "C" NOT NULL,
    routed_to TEXT COLLATE "C" NOT NULL, holder TEXT COLLATE "C" NOT NULL,
    route_reason TEXT NOT NULL, owner TEXT COLLATE "C" NOT NULL,
    state TEXT COLLATE "C" NOT NULL, answer_due BIGINT NOT NULL, resolve_due BIGINT NOT NULL,
    updated_at BIGINT NOT NULL);
CREATE INDEX claims_lot ON claims(gtin, lot, filed_at);
CREATE INDEX claims_routed ON claims(routed_to, state);
CREATE TABLE claim_events (
    idx BIGINT PRIMARY KEY, claim_id TEXT COLLATE "C" NOT NULL REFERENCES claims(id),
    n INTEGER NOT NULL, statement TEXT NOT NULL, message TEXT NOT NULL,
    attestation TEXT COLLATE "C" NOT NULL DEFAULT '', UNIQUE (claim_id, n));

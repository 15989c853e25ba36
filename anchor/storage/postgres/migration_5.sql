-- Migration 5 of the PostgreSQL ledger: cold-chain profiles, product master data and
-- dispositions (anchor/storage/sql_products.py); the SQLite schema 6.
CREATE TABLE profiles (
    digest TEXT COLLATE "C" PRIMARY KEY, body TEXT NOT NULL, registered_at BIGINT NOT NULL,
    attestation TEXT COLLATE "C" NOT NULL DEFAULT '');
CREATE TABLE products (
    gtin TEXT COLLATE "C" PRIMARY KEY,
    org_id TEXT COLLATE "C" NOT NULL REFERENCES organisations(id),
    name TEXT NOT NULL, description TEXT NOT NULL, pack TEXT NOT NULL,
    unit TEXT COLLATE "C" NOT NULL, profile TEXT COLLATE "C" NOT NULL,
    updated_at BIGINT NOT NULL, attestation TEXT COLLATE "C" NOT NULL DEFAULT '');
CREATE INDEX products_org ON products(org_id);
CREATE TABLE dispositions (
    gtin TEXT COLLATE "C" NOT NULL, lot TEXT COLLATE "C" NOT NULL, n BIGINT NOT NULL,
    disposition TEXT COLLATE "C" NOT NULL, cause TEXT COLLATE "C" NOT NULL,
    rule TEXT NOT NULL, status TEXT COLLATE "C" NOT NULL, evidence TEXT NOT NULL,
    custodian TEXT COLLATE "C" NOT NULL, owner TEXT COLLATE "C" NOT NULL,
    by_whom TEXT COLLATE "C" NOT NULL, reason TEXT NOT NULL, at BIGINT NOT NULL,
    attestation TEXT COLLATE "C" NOT NULL DEFAULT '',
    PRIMARY KEY (gtin, lot, n));
CREATE INDEX dispositions_at ON dispositions(at);

-- Migration 3 of the PostgreSQL ledger: what this node, as a C2SP tlog-witness
-- (anchor/consortium/witness.py), last cosigned per log origin; the SQLite schema 4.
CREATE TABLE witnessed (
    origin TEXT COLLATE "C" PRIMARY KEY, size BIGINT NOT NULL, root BYTEA NOT NULL,
    note TEXT COLLATE "C" NOT NULL, updated_at BIGINT NOT NULL);

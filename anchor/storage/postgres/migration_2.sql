-- Migration 2 of the PostgreSQL ledger: reading rollups (anchor/ledger/rollups.py), the
-- SQLite ledger's schema 3. Derived at apply time, one row per series (holder, quantity,
-- gateway, sensor) and hour; a ledger migrated with readings already stored has them
-- built when it is next opened (meta 'rollups'), and verify-ledger re-derives them.
CREATE TABLE reading_rollups (
    holder TEXT COLLATE "C" NOT NULL, bucket BIGINT NOT NULL, q TEXT COLLATE "C" NOT NULL,
    gw TEXT COLLATE "C" NOT NULL, src TEXT COLLATE "C" NOT NULL,
    unit TEXT COLLATE "C" NOT NULL, n BIGINT NOT NULL, total DOUBLE PRECISION NOT NULL,
    min_val DOUBLE PRECISION NOT NULL, max_val DOUBLE PRECISION NOT NULL,
    first_t BIGINT NOT NULL, last_t BIGINT NOT NULL,
    max_gap_ms BIGINT NOT NULL, unsynced BIGINT NOT NULL, boot TEXT COLLATE "C",
    offset_lo_us BIGINT NOT NULL, offset_hi_us BIGINT NOT NULL, points TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (holder, bucket, q, gw, src));
-- A ledger with no reading yet needs no build.
INSERT INTO meta (key, value) SELECT 'rollups', 'complete'
    WHERE NOT EXISTS (SELECT 1 FROM records WHERE type = 'reading');

-- Migration 4 of the PostgreSQL ledger: a consortium member's place in the ordering
-- stream, the stream entries the apply step refused, and split-view evidence
-- (anchor/storage/sql_consortium.py); the SQLite schema 5.
CREATE TABLE stream_applied (stream TEXT COLLATE "C" PRIMARY KEY, seq BIGINT NOT NULL);
CREATE TABLE stream_refusals (
    seq BIGINT PRIMARY KEY, msg_id TEXT COLLATE "C" NOT NULL, code TEXT COLLATE "C" NOT NULL,
    detail TEXT NOT NULL);
CREATE TABLE split_views (
    origin TEXT COLLATE "C" NOT NULL, size BIGINT NOT NULL, note_a TEXT NOT NULL,
    note_b TEXT NOT NULL, source TEXT NOT NULL, seen_at BIGINT NOT NULL);
CREATE TABLE org_members (org_id TEXT COLLATE "C" PRIMARY KEY, member TEXT NOT NULL);
CREATE TABLE consortium_policies (
    version BIGINT PRIMARY KEY, change_json TEXT NOT NULL, from_height BIGINT NOT NULL,
    stream_seq BIGINT NOT NULL, adopted_at BIGINT NOT NULL);

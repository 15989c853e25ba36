-- Migration 6 of the PostgreSQL ledger: documents (anchor/storage/sql_documents.py); the
-- SQLite schema 7.
CREATE TABLE documents (
    digest TEXT COLLATE "C" PRIMARY KEY, doc_type TEXT COLLATE "C" NOT NULL,
    subject_kind TEXT COLLATE "C" NOT NULL, subject TEXT COLLATE "C" NOT NULL,
    org_id TEXT COLLATE "C" NOT NULL REFERENCES organisations(id),
    issuer TEXT NOT NULL, valid_from BIGINT NOT NULL, valid_until BIGINT NOT NULL,
    name TEXT NOT NULL, media_type TEXT COLLATE "C" NOT NULL, size BIGINT NOT NULL,
    chunk_size BIGINT NOT NULL, chunks_root TEXT COLLATE "C" NOT NULL, chunks TEXT NOT NULL,
    registered_at BIGINT NOT NULL, attestation TEXT COLLATE "C" NOT NULL DEFAULT '');
CREATE INDEX documents_subject ON documents(subject_kind, subject);

-- Migration 8 of the PostgreSQL ledger: the notification outbox
-- (anchor/storage/sql_notify.py); the SQLite schema 9.
CREATE TABLE notifications (
    key TEXT COLLATE "C" PRIMARY KEY, org_id TEXT COLLATE "C" NOT NULL,
    channel TEXT COLLATE "C" NOT NULL, kind TEXT COLLATE "C" NOT NULL,
    subject TEXT COLLATE "C" NOT NULL, payload TEXT NOT NULL, created_at BIGINT NOT NULL,
    state TEXT COLLATE "C" NOT NULL, attempts INTEGER NOT NULL, next_attempt_at BIGINT NOT NULL,
    delivered_at BIGINT NOT NULL, last_error TEXT NOT NULL, lease_owner TEXT NOT NULL,
    lease_until BIGINT NOT NULL);
CREATE INDEX notifications_due ON notifications(state, next_attempt_at);
CREATE INDEX notifications_org ON notifications(org_id, created_at);
CREATE TABLE notification_attempts (
    key TEXT COLLATE "C" NOT NULL, n INTEGER NOT NULL, channel TEXT COLLATE "C" NOT NULL,
    status TEXT NOT NULL, ok BOOLEAN NOT NULL, at BIGINT NOT NULL, PRIMARY KEY (key, n));

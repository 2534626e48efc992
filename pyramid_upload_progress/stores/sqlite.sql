-- The SQLite store's schema: pyramid_upload_progress/stores/sqlite.py runs it,
-- with its PURGE_BATCH for the purge batch below, when it makes the file.
--
-- One row per upload: UploadRecord's fields, files and stage as JSON text.
-- expires is when the row may be forgotten (UploadRecord.expires); owner is
-- NULL while the upload is pending and for an upload owned by nobody
-- (owner_known tells them apart); the rowid orders uploads started at the
-- same instant. The triggers keep each write one statement (one
-- transaction: see the docs).

CREATE TABLE IF NOT EXISTS uploads (
    key TEXT NOT NULL UNIQUE,
    id TEXT,
    path TEXT NOT NULL,
    size INTEGER,
    started REAL NOT NULL,
    updated REAL NOT NULL,
    received INTEGER NOT NULL DEFAULT 0,
    finished REAL,
    status INTEGER,
    failed INTEGER NOT NULL DEFAULT 0,
    owner TEXT,
    owner_known INTEGER NOT NULL DEFAULT 0,
    cancelled INTEGER NOT NULL DEFAULT 0,
    files TEXT,
    stage TEXT,
    expires REAL NOT NULL,
    body_end REAL
);
CREATE INDEX IF NOT EXISTS uploads_by_id ON uploads (id) WHERE id IS NOT NULL;
CREATE INDEX IF NOT EXISTS uploads_by_owner ON uploads (owner, started)
    WHERE owner IS NOT NULL;
CREATE INDEX IF NOT EXISTS uploads_by_expiry ON uploads (expires);
CREATE INDEX IF NOT EXISTS uploads_by_end ON uploads (finished)
    WHERE finished IS NOT NULL;
-- A new upload forgets at most {purge_batch} expired records.
CREATE TRIGGER IF NOT EXISTS purge_expired AFTER INSERT ON uploads BEGIN
    DELETE FROM uploads WHERE rowid IN (SELECT rowid FROM uploads
        WHERE expires <= NEW.started ORDER BY expires LIMIT {purge_batch});
END;
-- record.replaces: an owner made known forgets that owner's finished
-- record with the same id (a reused id).
CREATE TRIGGER IF NOT EXISTS reused_id AFTER UPDATE OF owner_known ON uploads
WHEN NEW.owner_known AND NOT OLD.owner_known
    AND NEW.owner IS NOT NULL AND NEW.id IS NOT NULL BEGIN
    DELETE FROM uploads WHERE id = NEW.id AND owner = NEW.owner
        AND finished IS NOT NULL AND rowid != NEW.rowid;
END;

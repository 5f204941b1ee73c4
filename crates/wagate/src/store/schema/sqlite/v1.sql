-- Version 1: every organization gets an incarnation number (orgs.inc, never
-- reused, even after the org is deleted and made again under the same id);
-- every row of an org points at it with a foreign key that cascades on
-- delete, so a write still on its way for a deleted org fails instead of
-- landing in the org made next under the same id.
-- Released: this file never changes; a new version is a new file.

CREATE TABLE orgs (
    inc INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    default_cc TEXT,
    token_hash TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    inc INTEGER NOT NULL REFERENCES orgs(inc) ON DELETE CASCADE,
    phone TEXT NOT NULL,
    text TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    wa_id TEXT NOT NULL,
    idem_key TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE UNIQUE INDEX messages_idem ON messages(inc, idem_key) WHERE idem_key IS NOT NULL;
CREATE INDEX messages_status ON messages(inc, status, seq);
CREATE INDEX messages_wa_id ON messages(inc, wa_id);
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    inc INTEGER NOT NULL REFERENCES orgs(inc) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    ts_ms INTEGER NOT NULL
);
CREATE INDEX events_inc ON events(inc, seq);
CREATE INDEX events_kind ON events(inc, kind, seq);
CREATE TABLE inbound (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    inc INTEGER NOT NULL REFERENCES orgs(inc) ON DELETE CASCADE,
    wa_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    text TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    UNIQUE(inc, wa_id)
);
CREATE TABLE signins (
    id_hash TEXT PRIMARY KEY,
    inc INTEGER REFERENCES orgs(inc) ON DELETE CASCADE,
    admin_hash TEXT,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
);
CREATE INDEX signins_expiry ON signins(expires_ms);

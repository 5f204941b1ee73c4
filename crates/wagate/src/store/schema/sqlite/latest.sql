-- The gateway's tables at version 5, for a fresh install: the same result as
-- v1.sql then each step to v5.sql (the migration test compares them). A new
-- version changes this file and adds a step file.

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
    updated_ms INTEGER NOT NULL,
    send_at_ms INTEGER,
    send_before_ms INTEGER,
    qpos INTEGER,
    handed_ms INTEGER,
    held_reason TEXT,
    retry_at_ms INTEGER
);
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    inc INTEGER NOT NULL REFERENCES orgs(inc) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    ts_ms INTEGER NOT NULL
);
CREATE TABLE inbound (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    inc INTEGER NOT NULL REFERENCES orgs(inc) ON DELETE CASCADE,
    wa_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    text TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    sender_lid TEXT,
    quoted_wa_id TEXT,
    in_reply_to TEXT,
    last_outbound_id TEXT,
    reaction_to TEXT,
    UNIQUE(inc, wa_id)
);
CREATE TABLE signins (
    id_hash TEXT PRIMARY KEY,
    inc INTEGER REFERENCES orgs(inc) ON DELETE CASCADE,
    admin_hash TEXT,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
);
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE policies (
    inc INTEGER PRIMARY KEY REFERENCES orgs(inc) ON DELETE CASCADE,
    body TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE TABLE contacts (
    inc INTEGER NOT NULL REFERENCES orgs(inc) ON DELETE CASCADE,
    phone TEXT NOT NULL,
    on_whatsapp INTEGER,
    jid TEXT,
    checked_ms INTEGER,
    first_in_ms INTEGER,
    first_try_ms INTEGER,
    first_ok_ms INTEGER,
    PRIMARY KEY (inc, phone)
) WITHOUT ROWID;
CREATE TABLE account_limits (
    inc INTEGER PRIMARY KEY REFERENCES orgs(inc) ON DELETE CASCADE,
    reachout_until_ms INTEGER,
    reachout_type TEXT,
    cap_used INTEGER,
    cap_total INTEGER,
    cap_cycle_end_ms INTEGER,
    cap_status TEXT,
    updated_ms INTEGER NOT NULL
);
CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    inc INTEGER NOT NULL REFERENCES orgs(inc) ON DELETE CASCADE,
    url TEXT NOT NULL,
    events TEXT,
    secret TEXT NOT NULL,
    prev_secret TEXT,
    prev_until_ms INTEGER,
    disabled TEXT,
    created_ms INTEGER NOT NULL
);
CREATE TABLE deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event INTEGER NOT NULL REFERENCES events(seq) ON DELETE CASCADE,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    due_ms INTEGER,
    last_error TEXT,
    last_code INTEGER,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE UNIQUE INDEX messages_idem ON messages(inc, idem_key) WHERE idem_key IS NOT NULL;
CREATE INDEX messages_status ON messages(inc, status, seq);
CREATE INDEX messages_wa_id ON messages(inc, wa_id);
CREATE INDEX events_inc ON events(inc, seq);
CREATE INDEX events_kind ON events(inc, kind, seq);
CREATE INDEX signins_expiry ON signins(expires_ms);
CREATE INDEX messages_queue ON messages(inc, qpos) WHERE status = 'queued';
CREATE INDEX messages_due ON messages(send_at_ms) WHERE status = 'scheduled';
CREATE INDEX messages_deadline ON messages(send_before_ms)
    WHERE send_before_ms IS NOT NULL AND status IN ('scheduled', 'queued');
CREATE INDEX messages_scheduled ON messages(inc, send_at_ms, seq) WHERE status = 'scheduled';
CREATE INDEX messages_handed ON messages(inc, handed_ms) WHERE handed_ms IS NOT NULL;
CREATE INDEX messages_held ON messages(inc, retry_at_ms)
    WHERE status = 'queued' AND retry_at_ms IS NOT NULL;
CREATE INDEX contacts_reach ON contacts(inc, first_try_ms) WHERE first_try_ms IS NOT NULL;
CREATE INDEX webhooks_inc ON webhooks(inc);
CREATE INDEX deliveries_due ON deliveries(due_ms) WHERE status = 'pending';
CREATE INDEX deliveries_webhook ON deliveries(webhook, seq);
CREATE INDEX messages_phone ON messages(inc, phone, seq);
CREATE INDEX deliveries_event ON deliveries(event);
INSERT INTO counters (name, value) VALUES ('qpos', 0);

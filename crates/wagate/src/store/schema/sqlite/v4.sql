-- Version 3 -> 4: webhooks and one delivery row per event and endpoint
-- (written in the event's transaction), and what a reply answers: the
-- sender's LID, the message it quotes, our latest message to that contact,
-- the message a reaction is for.
-- Released: this file never changes; a new version is a new file.

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
CREATE INDEX webhooks_inc ON webhooks(inc);
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
CREATE INDEX deliveries_due ON deliveries(due_ms) WHERE status = 'pending';
CREATE INDEX deliveries_webhook ON deliveries(webhook, seq);
ALTER TABLE inbound ADD COLUMN sender_lid TEXT;
ALTER TABLE inbound ADD COLUMN quoted_wa_id TEXT;
ALTER TABLE inbound ADD COLUMN in_reply_to TEXT;
ALTER TABLE inbound ADD COLUMN last_outbound_id TEXT;
ALTER TABLE inbound ADD COLUMN reaction_to TEXT;
CREATE INDEX messages_phone ON messages(inc, phone, seq);

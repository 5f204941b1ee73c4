-- Version 1 -> 2: scheduled sends (send_at_ms, send_before_ms, a queue
-- position qpos from the counters table; existing messages keep their order)
-- and pacing (handed_ms, each org's sending policy).
-- Released: this file never changes; a new version is a new file.

ALTER TABLE messages ADD COLUMN send_at_ms INTEGER;
ALTER TABLE messages ADD COLUMN send_before_ms INTEGER;
ALTER TABLE messages ADD COLUMN qpos INTEGER;
UPDATE messages SET qpos = seq WHERE status = 'queued';
CREATE INDEX messages_queue ON messages(inc, qpos) WHERE status = 'queued';
CREATE INDEX messages_due ON messages(send_at_ms) WHERE status = 'scheduled';
CREATE INDEX messages_deadline ON messages(send_before_ms)
    WHERE send_before_ms IS NOT NULL AND status IN ('scheduled', 'queued');
CREATE INDEX messages_scheduled ON messages(inc, send_at_ms, seq) WHERE status = 'scheduled';
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO counters (name, value) SELECT 'qpos', COALESCE(MAX(seq), 0) FROM messages;
ALTER TABLE messages ADD COLUMN handed_ms INTEGER;
CREATE INDEX messages_handed ON messages(inc, handed_ms) WHERE handed_ms IS NOT NULL;
CREATE TABLE policies (
    inc INTEGER PRIMARY KEY REFERENCES orgs(inc) ON DELETE CASCADE,
    body TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
);

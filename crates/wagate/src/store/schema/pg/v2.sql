-- PostgreSQL, version 1 -> 2: scheduled sends (send_at_ms, send_before_ms, a queue
-- position qpos from the counters table; existing messages keep their order)
-- and pacing (handed_ms, each org's sending policy).
-- Released: this file never changes; a new version is a new file.

ALTER TABLE messages ADD COLUMN send_at_ms BIGINT;
ALTER TABLE messages ADD COLUMN send_before_ms BIGINT;
ALTER TABLE messages ADD COLUMN qpos BIGINT;
UPDATE messages SET qpos = seq WHERE status = 'queued';
CREATE INDEX messages_queue ON messages(inc, qpos) WHERE status = 'queued';
CREATE INDEX messages_due ON messages(send_at_ms) WHERE status = 'scheduled';
CREATE INDEX messages_deadline ON messages(send_before_ms)
    WHERE send_before_ms IS NOT NULL AND status IN ('scheduled', 'queued');
CREATE INDEX messages_scheduled ON messages(inc, send_at_ms, seq) WHERE status = 'scheduled';
CREATE TABLE counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
INSERT INTO counters (name, value) SELECT 'qpos', COALESCE(MAX(seq), 0) FROM messages;
ALTER TABLE messages ADD COLUMN handed_ms BIGINT;
CREATE INDEX messages_handed ON messages(inc, handed_ms) WHERE handed_ms IS NOT NULL;
CREATE TABLE policies (
    inc BIGINT PRIMARY KEY REFERENCES orgs(inc) ON DELETE CASCADE,
    body TEXT NOT NULL,
    updated_ms BIGINT NOT NULL
);
-- PostgreSQL numbers events from this counter, under its row lock, so
-- numbers follow commit order with several nodes writing.
INSERT INTO counters (name, value) SELECT 'event_seq', COALESCE(MAX(seq), 0) FROM events;

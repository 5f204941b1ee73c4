-- Version 0 -> 1, second half: the renamed tables are copied into the new
-- ones (each row gets its org's incarnation; sequence numbers and the
-- counters behind them are kept, so cursors and Last-Event-IDs stay valid),
-- then dropped. Rows of orgs that no longer exist are not carried over.
-- Released: this file never changes; a new version is a new file.

INSERT INTO orgs (id, name, default_cc, token_hash, created_ms)
    SELECT id, name, default_cc, token_hash, created_ms FROM orgs_v0 ORDER BY created_ms, id;
INSERT INTO messages (seq, id, inc, phone, text, status, error, wa_id, idem_key, attempts, created_ms, updated_ms)
    SELECT m.seq, m.id, o.inc, m.phone, m.text, m.status, m.error, m.wa_id, m.idem_key, m.attempts, m.created_ms, m.updated_ms
    FROM messages_v0 m JOIN orgs o ON o.id = m.org ORDER BY m.seq;
INSERT INTO events (seq, inc, kind, data, ts_ms)
    SELECT e.seq, o.inc, e.kind, e.data, e.ts_ms FROM events_v0 e JOIN orgs o ON o.id = e.org ORDER BY e.seq;
INSERT INTO inbound (seq, inc, wa_id, sender, text, received_ms)
    SELECT i.seq, o.inc, i.wa_id, i.sender, i.text, i.received_ms FROM inbound_v0 i JOIN orgs o ON o.id = i.org ORDER BY i.seq;
DELETE FROM sqlite_sequence WHERE name IN ('messages', 'events', 'inbound');
INSERT INTO sqlite_sequence (name, seq)
    SELECT substr(name, 1, length(name) - 3), seq FROM sqlite_sequence
    WHERE name IN ('messages_v0', 'events_v0', 'inbound_v0');
DROP TABLE orgs_v0;
DROP TABLE messages_v0;
DROP TABLE events_v0;
DROP TABLE inbound_v0;

//! The schema of `wagate.db` and its migrations, by `PRAGMA user_version`.
//!
//! Version 1 gives every organization an incarnation number (`orgs.inc`, never
//! reused, even after the org is deleted and created again with the same id).
//! Every row that belongs to an org (messages, events, inbound, sign-ins)
//! points at that number with a foreign key that cascades on delete, so a
//! write still on its way for a deleted org fails instead of landing in the
//! org that is created next under the same id.
//!
//! Version 2 adds scheduled sends: `send_at_ms`, `send_before_ms` and a queue
//! position (`qpos`, from the `counters` table) on messages, and the indexes
//! the scheduler's one timer reads (the next due time, the next deadline);
//! and pacing: when each message was first handed to WhatsApp
//! (`handed_ms`) and each org's sending policy (`policies`).
//!
//! Version 3 adds WhatsApp's sending limits: a queued message may be held
//! (`held_reason`, `retry_at_ms`) until a limit lifts; `contacts` keeps, per
//! org and phone, whether the number is on WhatsApp (a cached look-up) and
//! when it first wrote to us, was first handed a message and first accepted
//! one; `account_limits` keeps the reach-out timelock and message capping
//! the server last announced for the org's number.
//!
//! Version 4 adds webhooks: each org's endpoints (`webhooks`) and one
//! `deliveries` row per event and endpoint, written in the transaction of
//! the event (`Tx::emit`), so an event's webhooks are as durable as it is;
//! and what a reply answers: an inbound message's sender LID, the message
//! it quotes (`in_reply_to`: ours), our latest message to that contact
//! (`last_outbound_id`), and for a reaction the message reacted to.
//!
//! Version 0 is the schema before versions existed (rows keyed by the org id).

use rusqlite::Connection;

/// The version this code writes.
pub const VERSION: i64 = 5;

pub(super) const V1: &str = r#"
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
"#;

/// Version 1 → 2: scheduled sends. Existing messages keep their order: their
/// queue position is their sequence number.
const V1_TO_V2: &str = r#"
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
"#;

/// Version 2 → 3: sending limits. Contacts are filled from what the tables
/// already know: who wrote to the org, who was handed or sent a message.
const V2_TO_V3: &str = r#"
ALTER TABLE messages ADD COLUMN held_reason TEXT;
ALTER TABLE messages ADD COLUMN retry_at_ms INTEGER;
CREATE INDEX messages_held ON messages(inc, retry_at_ms)
    WHERE status = 'queued' AND retry_at_ms IS NOT NULL;
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
CREATE INDEX contacts_reach ON contacts(inc, first_try_ms) WHERE first_try_ms IS NOT NULL;
INSERT INTO contacts (inc, phone, first_in_ms)
    SELECT inc, sender, MIN(received_ms) FROM inbound GROUP BY inc, sender;
INSERT INTO contacts (inc, phone, first_try_ms, first_ok_ms)
    SELECT inc, phone, MIN(COALESCE(handed_ms, updated_ms)),
           MIN(CASE WHEN status IN ('sent', 'delivered', 'read') THEN updated_ms END)
    FROM messages WHERE attempts > 0 OR status IN ('sent', 'delivered', 'read')
    GROUP BY inc, phone
    ON CONFLICT(inc, phone) DO UPDATE SET
        first_try_ms = excluded.first_try_ms, first_ok_ms = excluded.first_ok_ms;
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
"#;

/// Version 3 → 4: webhooks and their deliveries.
const V3_TO_V4: &str = r#"
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
"#;

/// Version 4 → 5: deliveries by event, so that deleting an old event (the
/// retention task) finds its deliveries without a scan.
const V4_TO_V5: &str = r#"
CREATE INDEX deliveries_event ON deliveries(event);
"#;

/// Version 0 → 1: the old tables are renamed, copied into the new ones (each
/// row gets its org's incarnation; sequence numbers and the counters behind
/// them are kept, so cursors and `Last-Event-ID`s stay valid and no number
/// is handed out twice), then dropped. Rows of orgs that no longer
/// exist were invisible already and are not carried over.
const V0_TO_V1: &str = r#"
DROP INDEX IF EXISTS messages_idem;
DROP INDEX IF EXISTS messages_org_status;
DROP INDEX IF EXISTS messages_wa_id;
DROP INDEX IF EXISTS events_org;
ALTER TABLE orgs RENAME TO orgs_v0;
ALTER TABLE messages RENAME TO messages_v0;
ALTER TABLE events RENAME TO events_v0;
ALTER TABLE inbound RENAME TO inbound_v0;
"#;

const V0_COPY: &str = r#"
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
"#;

/// The gateway's tables for PostgreSQL, at `VERSION`: the SQLite steps
/// from version 1 on, with 64-bit integers and identity columns. Event
/// numbers come from the `event_seq` counter instead of the identity, taken
/// under its row lock, so they are handed out in commit order even with
/// several nodes writing (a reader resuming after number N never misses a
/// later-committed event with a smaller number).
pub fn pg() -> String {
    let steps = [V1, V1_TO_V2, V2_TO_V3, V3_TO_V4, V4_TO_V5].concat();
    steps
        .replace(
            "INTEGER PRIMARY KEY AUTOINCREMENT",
            "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
        )
        .replace(" WITHOUT ROWID", "")
        .replace("INTEGER", "BIGINT")
        + "INSERT INTO counters (name, value) VALUES ('event_seq', 0);\n"
}

fn table_exists(c: &Connection, name: &str) -> rusqlite::Result<bool> {
    c.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

/// The schema version of `file` when it must be migrated to `ours`; `None`
/// when it is at `ours`; an error when it is newer (a later wagate wrote it).
pub(crate) fn version_to_migrate(
    c: &Connection,
    file: &str,
    ours: i64,
) -> rusqlite::Result<Option<i64>> {
    let version: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > ours {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_MISMATCH),
            Some(format!(
                "{file} has schema version {version}, newer than this wagate ({ours}); upgrade wagate"
            )),
        ));
    }
    Ok((version < ours).then_some(version))
}

/// Bring the database to `VERSION`, in one transaction.
pub fn migrate(c: &Connection) -> rusqlite::Result<()> {
    let Some(version) = version_to_migrate(c, "wagate.db", VERSION)? else {
        return Ok(());
    };
    // Foreign keys are checked at the end (`foreign_key_check`), not while
    // tables are renamed and refilled.
    c.pragma_update(None, "foreign_keys", "OFF")?;
    let result = (|| {
        c.execute_batch("BEGIN IMMEDIATE")?;
        if version == 0 {
            if table_exists(c, "orgs")? {
                tracing::info!("migrating wagate.db from schema version 0 to 1");
                c.execute_batch(V0_TO_V1)?;
                c.execute_batch(V1)?;
                c.execute_batch(V0_COPY)?;
            } else {
                c.execute_batch(V1)?;
            }
        }
        if version >= 1 {
            tracing::info!("migrating wagate.db from schema version {version} to {VERSION}");
        }
        if version < 2 {
            c.execute_batch(V1_TO_V2)?;
        }
        if version < 3 {
            c.execute_batch(V2_TO_V3)?;
        }
        if version < 4 {
            c.execute_batch(V3_TO_V4)?;
        }
        c.execute_batch(V4_TO_V5)?;
        let broken: i64 =
            c.query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |r| {
                r.get(0)
            })?;
        if broken > 0 {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
                Some(format!(
                    "{broken} rows point at no organization after migration"
                )),
            ));
        }
        c.pragma_update(None, "user_version", VERSION)?;
        c.execute_batch("COMMIT")
    })();
    if result.is_err() {
        let _ = c.execute_batch("ROLLBACK");
    }
    c.pragma_update(None, "foreign_keys", "ON")?;
    result
}

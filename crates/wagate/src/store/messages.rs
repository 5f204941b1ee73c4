//! Rows of the `messages` table: the durable outbox. A row is written before a
//! send is acknowledged to the caller, carries the WhatsApp message id it will
//! be sent with (fixed at accept time, so a re-send after a crash is the same
//! message to the recipient), and only ever moves forward in status.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension, Row};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageStatus {
    Queued,
    Sent,
    Delivered,
    Read,
    Failed,
}

impl MessageStatus {
    pub const ALL: [MessageStatus; 5] = [
        MessageStatus::Queued,
        MessageStatus::Sent,
        MessageStatus::Delivered,
        MessageStatus::Read,
        MessageStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Queued => "queued",
            MessageStatus::Sent => "sent",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Read => "read",
            MessageStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<MessageStatus> {
        MessageStatus::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// Rank for forward-only moves; `failed` is terminal and only leaves `queued`.
    fn rank(self) -> u8 {
        match self {
            MessageStatus::Queued => 0,
            MessageStatus::Sent => 1,
            MessageStatus::Delivered => 2,
            MessageStatus::Read => 3,
            MessageStatus::Failed => 4,
        }
    }

    /// May a message in `self` move to `to`?
    pub fn may_become(self, to: MessageStatus) -> bool {
        match to {
            MessageStatus::Failed => self == MessageStatus::Queued,
            _ => self != MessageStatus::Failed && to.rank() > self.rank(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRow {
    pub seq: i64,
    pub id: String,
    pub inc: i64,
    pub to: String,
    pub text: String,
    pub status: MessageStatus,
    pub error: Option<String>,
    pub wa_id: String,
    pub idempotency_key: Option<String>,
    pub attempts: i64,
    pub created_ms: i64,
    pub updated_ms: i64,
}

pub struct NewMessage {
    pub id: String,
    pub inc: i64,
    pub phone: String,
    pub text: String,
    pub wa_id: String,
    pub idem_key: Option<String>,
    pub now_ms: i64,
}

const COLS: &str =
    "seq, id, inc, phone, text, status, error, wa_id, idem_key, attempts, created_ms, updated_ms";

fn from_row(r: &Row) -> rusqlite::Result<MessageRow> {
    let status: String = r.get(5)?;
    Ok(MessageRow {
        seq: r.get(0)?,
        id: r.get(1)?,
        inc: r.get(2)?,
        to: r.get(3)?,
        text: r.get(4)?,
        status: MessageStatus::parse(&status).unwrap_or(MessageStatus::Queued),
        error: r.get(6)?,
        wa_id: r.get(7)?,
        idempotency_key: r.get(8)?,
        attempts: r.get(9)?,
        created_ms: r.get(10)?,
        updated_ms: r.get(11)?,
    })
}

/// What `insert` did.
#[derive(Debug)]
pub enum Inserted {
    New(MessageRow),
    /// The idempotency key was used before by this org: its first message,
    /// nothing written.
    Existing(MessageRow),
}

/// Insert a queued message, unless its idempotency key was used before.
pub fn insert(c: &Connection, m: &NewMessage) -> rusqlite::Result<Inserted> {
    if let Some(key) = &m.idem_key {
        let existing = c
            .query_row(
                &format!("SELECT {COLS} FROM messages WHERE inc = ?1 AND idem_key = ?2"),
                params![m.inc, key],
                from_row,
            )
            .optional()?;
        if let Some(row) = existing {
            return Ok(Inserted::Existing(row));
        }
    }
    c.prepare_cached(
        "INSERT INTO messages (id, inc, phone, text, status, wa_id, idem_key, created_ms, updated_ms)
         VALUES (?1, ?2, ?3, ?4, 'queued', ?5, ?6, ?7, ?7)",
    )?
    .execute(params![
        m.id, m.inc, m.phone, m.text, m.wa_id, m.idem_key, m.now_ms
    ])?;
    Ok(Inserted::New(MessageRow {
        seq: c.last_insert_rowid(),
        id: m.id.clone(),
        inc: m.inc,
        to: m.phone.clone(),
        text: m.text.clone(),
        status: MessageStatus::Queued,
        error: None,
        wa_id: m.wa_id.clone(),
        idempotency_key: m.idem_key.clone(),
        attempts: 0,
        created_ms: m.now_ms,
        updated_ms: m.now_ms,
    }))
}

pub fn get(c: &Connection, inc: i64, id: &str) -> rusqlite::Result<Option<MessageRow>> {
    c.query_row(
        &format!("SELECT {COLS} FROM messages WHERE inc = ?1 AND id = ?2"),
        params![inc, id],
        from_row,
    )
    .optional()
}

/// One page of an org's messages in acceptance order (oldest first), after the
/// cursor `after_seq`, optionally only those in `status`.
pub fn list(
    c: &Connection,
    inc: i64,
    status: Option<MessageStatus>,
    after_seq: i64,
    limit: i64,
) -> rusqlite::Result<Vec<MessageRow>> {
    // Two statements, so that the status filter can use `messages_status`.
    let rows = match status {
        Some(s) => c
            .prepare_cached(&format!(
                "SELECT {COLS} FROM messages WHERE inc = ?1 AND status = ?4 AND seq > ?2 ORDER BY seq LIMIT ?3"
            ))?
            .query_map(params![inc, after_seq, limit, s.as_str()], from_row)?
            .collect(),
        None => c
            .prepare_cached(&format!(
                "SELECT {COLS} FROM messages WHERE inc = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
            ))?
            .query_map(params![inc, after_seq, limit], from_row)?
            .collect(),
    };
    rows
}

/// The `limit` most recently accepted messages of `inc`, newest first.
pub fn latest(c: &Connection, inc: i64, limit: i64) -> rusqlite::Result<Vec<MessageRow>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {COLS} FROM messages WHERE inc = ?1 ORDER BY seq DESC LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![inc, limit], from_row)?;
    rows.collect()
}

/// Messages of `inc` still waiting for a server ack, in acceptance order.
pub fn unacked(
    c: &Connection,
    inc: i64,
    after_seq: i64,
    limit: i64,
) -> rusqlite::Result<Vec<MessageRow>> {
    list(c, inc, Some(MessageStatus::Queued), after_seq, limit)
}

pub fn count_queued(c: &Connection, inc: i64) -> rusqlite::Result<i64> {
    c.query_row(
        "SELECT COUNT(*) FROM messages WHERE inc = ?1 AND status = 'queued'",
        [inc],
        |r| r.get(0),
    )
}

/// Queued messages per org incarnation, in one query (orgs with none are absent).
pub fn queued_counts(c: &Connection) -> rusqlite::Result<HashMap<i64, i64>> {
    let mut st = c.prepare_cached(
        "SELECT inc, COUNT(*) FROM messages WHERE status = 'queued' GROUP BY inc",
    )?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// Record that a send of this message was started (before any network work).
pub fn mark_attempt(c: &Connection, seq: i64, now_ms: i64) -> rusqlite::Result<()> {
    c.prepare_cached(
        "UPDATE messages SET attempts = attempts + 1, updated_ms = ?2 WHERE seq = ?1",
    )?
    .execute(params![seq, now_ms])?;
    Ok(())
}

/// Move the message of `inc` with WhatsApp id `wa_id` forward to `to`. Returns
/// the updated row, or `None` when unknown or when it would be a step back.
pub fn advance(
    c: &Connection,
    inc: i64,
    wa_id: &str,
    to: MessageStatus,
    error: Option<&str>,
    now_ms: i64,
) -> rusqlite::Result<Option<MessageRow>> {
    let Some(row) = c
        .prepare_cached(&format!(
            "SELECT {COLS} FROM messages WHERE inc = ?1 AND wa_id = ?2"
        ))?
        .query_row(params![inc, wa_id], from_row)
        .optional()?
    else {
        return Ok(None);
    };
    if !row.status.may_become(to) {
        return Ok(None);
    }
    c.prepare_cached(
        "UPDATE messages SET status = ?2, error = ?3, updated_ms = ?4 WHERE seq = ?1",
    )?
    .execute(params![row.seq, to.as_str(), error, now_ms])?;
    Ok(Some(MessageRow {
        status: to,
        error: error.map(str::to_string),
        updated_ms: now_ms,
        ..row
    }))
}

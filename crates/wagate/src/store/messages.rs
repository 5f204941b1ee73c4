//! Rows of the `messages` table: the durable outbox. A row is written before a
//! send is acknowledged to the caller, carries the WhatsApp message id it will
//! be sent with (fixed at accept time, so a re-send after a crash is the same
//! message to the recipient), and only ever moves forward in status.

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    Queued,
    Sent,
    Delivered,
    Read,
    Failed,
}

impl MessageStatus {
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
        Some(match s {
            "queued" => MessageStatus::Queued,
            "sent" => MessageStatus::Sent,
            "delivered" => MessageStatus::Delivered,
            "read" => MessageStatus::Read,
            "failed" => MessageStatus::Failed,
            _ => return None,
        })
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
}

#[derive(Debug, Clone, Serialize)]
pub struct MessageRow {
    #[serde(skip)]
    pub seq: i64,
    pub id: String,
    #[serde(skip)]
    pub org: String,
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
    pub org: String,
    pub phone: String,
    pub text: String,
    pub wa_id: String,
    pub idem_key: Option<String>,
    pub now_ms: i64,
}

const COLS: &str =
    "seq, id, org, phone, text, status, error, wa_id, idem_key, attempts, created_ms, updated_ms";

fn from_row(r: &Row) -> rusqlite::Result<MessageRow> {
    let status: String = r.get(5)?;
    Ok(MessageRow {
        seq: r.get(0)?,
        id: r.get(1)?,
        org: r.get(2)?,
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

/// Insert a queued message. With an idempotency key already used by this org,
/// nothing is written and the first message is returned with `false`.
pub fn insert(c: &Connection, m: &NewMessage) -> rusqlite::Result<(MessageRow, bool)> {
    if let Some(key) = &m.idem_key {
        let existing = c
            .query_row(
                &format!("SELECT {COLS} FROM messages WHERE org = ?1 AND idem_key = ?2"),
                params![m.org, key],
                from_row,
            )
            .optional()?;
        if let Some(row) = existing {
            return Ok((row, false));
        }
    }
    c.execute(
        "INSERT INTO messages (id, org, phone, text, status, wa_id, idem_key, created_ms, updated_ms)
         VALUES (?1, ?2, ?3, ?4, 'queued', ?5, ?6, ?7, ?7)",
        params![m.id, m.org, m.phone, m.text, m.wa_id, m.idem_key, m.now_ms],
    )?;
    let seq = c.last_insert_rowid();
    Ok((
        MessageRow {
            seq,
            id: m.id.clone(),
            org: m.org.clone(),
            to: m.phone.clone(),
            text: m.text.clone(),
            status: MessageStatus::Queued,
            error: None,
            wa_id: m.wa_id.clone(),
            idempotency_key: m.idem_key.clone(),
            attempts: 0,
            created_ms: m.now_ms,
            updated_ms: m.now_ms,
        },
        true,
    ))
}

pub fn get(c: &Connection, org: &str, id: &str) -> rusqlite::Result<Option<MessageRow>> {
    c.query_row(
        &format!("SELECT {COLS} FROM messages WHERE org = ?1 AND id = ?2"),
        params![org, id],
        from_row,
    )
    .optional()
}

/// One page of an org's messages in acceptance order (oldest first), after the
/// cursor `after_seq`, optionally only those in `status`.
pub fn list(
    c: &Connection,
    org: &str,
    status: Option<MessageStatus>,
    after_seq: i64,
    limit: i64,
) -> rusqlite::Result<Vec<MessageRow>> {
    let (sql, st) = match status {
        Some(s) => (
            format!("SELECT {COLS} FROM messages WHERE org = ?1 AND seq > ?2 AND status = ?4 ORDER BY seq LIMIT ?3"),
            Some(s.as_str()),
        ),
        None => (
            format!("SELECT {COLS} FROM messages WHERE org = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"),
            None,
        ),
    };
    let mut stmt = c.prepare(&sql)?;
    let rows = match st {
        Some(s) => stmt.query_map(params![org, after_seq, limit, s], from_row)?,
        None => stmt.query_map(params![org, after_seq, limit], from_row)?,
    };
    rows.collect()
}

/// The `limit` most recently accepted messages of `org`, newest first.
pub fn latest(c: &Connection, org: &str, limit: i64) -> rusqlite::Result<Vec<MessageRow>> {
    let mut stmt = c.prepare(&format!(
        "SELECT {COLS} FROM messages WHERE org = ?1 ORDER BY seq DESC LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![org, limit], from_row)?;
    rows.collect()
}

/// Messages of `org` still waiting for a server ack, in acceptance order.
pub fn unacked(
    c: &Connection,
    org: &str,
    after_seq: i64,
    limit: i64,
) -> rusqlite::Result<Vec<MessageRow>> {
    list(c, org, Some(MessageStatus::Queued), after_seq, limit)
}

pub fn count_queued(c: &Connection, org: &str) -> rusqlite::Result<i64> {
    c.query_row(
        "SELECT COUNT(*) FROM messages WHERE org = ?1 AND status = 'queued'",
        [org],
        |r| r.get(0),
    )
}

/// Record that a send of this message was started (before any network work).
pub fn mark_attempt(c: &Connection, id: &str, now_ms: i64) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE messages SET attempts = attempts + 1, updated_ms = ?2 WHERE id = ?1",
        params![id, now_ms],
    )?;
    Ok(())
}

/// Move the message with WhatsApp id `wa_id` forward to `to`. Returns the
/// updated row, or `None` when unknown or when it would be a step back.
pub fn advance(
    c: &Connection,
    org: &str,
    wa_id: &str,
    to: MessageStatus,
    error: Option<&str>,
    now_ms: i64,
) -> rusqlite::Result<Option<MessageRow>> {
    let Some(row) = c
        .query_row(
            &format!("SELECT {COLS} FROM messages WHERE org = ?1 AND wa_id = ?2"),
            params![org, wa_id],
            from_row,
        )
        .optional()?
    else {
        return Ok(None);
    };
    let allowed = match to {
        MessageStatus::Failed => row.status == MessageStatus::Queued,
        _ => row.status != MessageStatus::Failed && to.rank() > row.status.rank(),
    };
    if !allowed {
        return Ok(None);
    }
    c.execute(
        "UPDATE messages SET status = ?2, error = ?3, updated_ms = ?4 WHERE seq = ?1",
        params![row.seq, to.as_str(), error, now_ms],
    )?;
    Ok(Some(MessageRow {
        status: to,
        error: error.map(str::to_string),
        updated_ms: now_ms,
        ..row
    }))
}

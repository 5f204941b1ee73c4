//! Rows of the `messages` table: the durable outbox. A row is written before a
//! send is acknowledged to the caller, carries the WhatsApp message id it will
//! be sent with (fixed at accept time, so a re-send after a crash is the same
//! message to the recipient), and only ever moves forward in status.
//!
//! A message with a future `send_at` waits as `scheduled`; when it falls due
//! it becomes `queued` and takes the next queue position (`qpos`), so the
//! dispatcher sends in the order messages entered the queue. `send_before`
//! passing first ends it `expired`; a cancel ends it `canceled`. Neither can
//! happen once a send was handed to the client (`attempts > 0`), except that
//! a deadline passing while such a message waits for its ack ends it
//! `expired` with a note — and an ack that still arrives wins.

use std::collections::HashMap;

use super::{Conn, DbResult, OptionalExt};
use crate::args;
use crate::db::Row;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageStatus {
    Scheduled,
    Queued,
    Sent,
    Delivered,
    Read,
    Failed,
    Expired,
    Canceled,
}

impl MessageStatus {
    pub const ALL: [MessageStatus; 8] = [
        MessageStatus::Scheduled,
        MessageStatus::Queued,
        MessageStatus::Sent,
        MessageStatus::Delivered,
        MessageStatus::Read,
        MessageStatus::Failed,
        MessageStatus::Expired,
        MessageStatus::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Scheduled => "scheduled",
            MessageStatus::Queued => "queued",
            MessageStatus::Sent => "sent",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Read => "read",
            MessageStatus::Failed => "failed",
            MessageStatus::Expired => "expired",
            MessageStatus::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<MessageStatus> {
        MessageStatus::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// Rank along the way out (`scheduled → queued → sent → delivered → read`).
    fn rank(self) -> u8 {
        match self {
            MessageStatus::Scheduled => 0,
            MessageStatus::Queued => 1,
            MessageStatus::Sent => 2,
            MessageStatus::Delivered => 3,
            MessageStatus::Read => 4,
            MessageStatus::Failed | MessageStatus::Expired | MessageStatus::Canceled => 5,
        }
    }

    /// May a message in `self` move to `to`? Forward only; `failed` leaves
    /// only `queued`; `expired` and `canceled` leave `scheduled` or `queued`;
    /// the server's ack or a receipt wins over an `expired` (a send handed over
    /// before the deadline that was acked after it).
    pub fn may_become(self, to: MessageStatus) -> bool {
        use MessageStatus::*;
        match to {
            Scheduled => false,
            Queued => self == Scheduled,
            Failed => self == Queued,
            Expired | Canceled => matches!(self, Scheduled | Queued),
            Sent | Delivered | Read => match self {
                Queued | Sent | Delivered => to.rank() > self.rank(),
                Expired => true,
                _ => false,
            },
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
    /// When it is to leave (none: at once).
    pub send_at_ms: Option<i64>,
    /// After this it is never sent.
    pub send_before_ms: Option<i64>,
    /// Position in the send queue, from when it became `queued`.
    pub qpos: Option<i64>,
    /// Why a queued message waits (`reachout_timelock`, `message_cap`,
    /// `new_contact_cap`), until `retry_at_ms`.
    pub held_reason: Option<String>,
    pub retry_at_ms: Option<i64>,
}

pub struct NewMessage {
    pub id: String,
    pub inc: i64,
    pub phone: String,
    pub text: String,
    pub wa_id: String,
    pub idem_key: Option<String>,
    pub now_ms: i64,
    /// A `send_at` after `now_ms` makes it `scheduled`.
    pub send_at_ms: Option<i64>,
    pub send_before_ms: Option<i64>,
}

const COLS: &str = "seq, id, inc, phone, text, status, error, wa_id, idem_key, attempts, created_ms, updated_ms, send_at_ms, send_before_ms, qpos, held_reason, retry_at_ms";

fn from_row(r: &Row) -> DbResult<MessageRow> {
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
        send_at_ms: r.get(12)?,
        send_before_ms: r.get(13)?,
        qpos: r.get(14)?,
        held_reason: r.get(15)?,
        retry_at_ms: r.get(16)?,
    })
}

/// The next queue position (a counter kept in `counters`, never reused).
fn next_qpos(c: &Conn) -> DbResult<i64> {
    c.query_row(
        "UPDATE counters SET value = value + 1 WHERE name = 'qpos' RETURNING value",
        args![],
        |r| r.get(0),
    )
}

/// What `insert` did.
#[derive(Debug)]
pub enum Inserted {
    New(MessageRow),
    /// The idempotency key was used before by this org: its first message,
    /// nothing written.
    Existing(MessageRow),
}

/// Insert a message (`scheduled` when its `send_at` is still ahead, else
/// `queued`), unless its idempotency key was used before.
pub fn insert(c: &Conn, m: &NewMessage) -> DbResult<Inserted> {
    if let Some(key) = &m.idem_key {
        let existing = c
            .query_row(
                &format!("SELECT {COLS} FROM messages WHERE inc = ?1 AND idem_key = ?2"),
                args![m.inc, key],
                from_row,
            )
            .optional()?;
        if let Some(row) = existing {
            return Ok(Inserted::Existing(row));
        }
    }
    let scheduled = m.send_at_ms.is_some_and(|t| t > m.now_ms);
    let (status, qpos) = if scheduled {
        (MessageStatus::Scheduled, None)
    } else {
        (MessageStatus::Queued, Some(next_qpos(c)?))
    };
    let seq = c.insert_id(
        "INSERT INTO messages (id, inc, phone, text, status, wa_id, idem_key, created_ms, updated_ms, send_at_ms, send_before_ms, qpos)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9, ?10, ?11)",
        args![
        m.id,
        m.inc,
        m.phone,
        m.text,
        status.as_str(),
        m.wa_id,
        m.idem_key,
        m.now_ms,
        m.send_at_ms,
        m.send_before_ms,
        qpos
    ], "seq")?
    .ok_or(super::DbError::NoRow)?;
    Ok(Inserted::New(MessageRow {
        seq,
        id: m.id.clone(),
        inc: m.inc,
        to: m.phone.clone(),
        text: m.text.clone(),
        status,
        error: None,
        wa_id: m.wa_id.clone(),
        idempotency_key: m.idem_key.clone(),
        attempts: 0,
        created_ms: m.now_ms,
        updated_ms: m.now_ms,
        send_at_ms: m.send_at_ms,
        send_before_ms: m.send_before_ms,
        qpos,
        held_reason: None,
        retry_at_ms: None,
    }))
}

pub fn get(c: &Conn, inc: i64, id: &str) -> DbResult<Option<MessageRow>> {
    c.query_row(
        &format!("SELECT {COLS} FROM messages WHERE inc = ?1 AND id = ?2"),
        args![inc, id],
        from_row,
    )
    .optional()
}

/// One page of an org's messages in acceptance order (oldest first), after the
/// cursor `after_seq`, optionally only those in `status`.
pub fn list(
    c: &Conn,
    inc: i64,
    status: Option<MessageStatus>,
    after_seq: i64,
    limit: i64,
) -> DbResult<Vec<MessageRow>> {
    // Two statements, so that the status filter can use `messages_status`.
    let rows = match status {
        Some(s) => c
            .query_map(&format!(
                "SELECT {COLS} FROM messages WHERE inc = ?1 AND status = ?4 AND seq > ?2 ORDER BY seq LIMIT ?3"
            ), args![inc, after_seq, limit, s.as_str()], from_row)?
            .collect(),
        None => c
            .query_map(&format!(
                "SELECT {COLS} FROM messages WHERE inc = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
            ), args![inc, after_seq, limit], from_row)?
            .collect(),
    };
    rows
}

/// One page of an org's scheduled messages by due time, after the cursor
/// (`send_at_ms`, `seq`) of the previous page's last row.
pub fn list_scheduled(
    c: &Conn,
    inc: i64,
    after: (i64, i64),
    limit: i64,
) -> DbResult<Vec<MessageRow>> {
    let rows = c
        .query_map(
            &format!(
                "SELECT {COLS} FROM messages WHERE inc = ?1 AND status = 'scheduled'
             AND (send_at_ms > ?2 OR (send_at_ms = ?2 AND seq > ?3))
             ORDER BY send_at_ms, seq LIMIT ?4"
            ),
            args![inc, after.0, after.1, limit],
            from_row,
        )?
        .collect();
    rows
}

/// The `limit` most recently accepted messages of `inc`, newest first.
pub fn latest(c: &Conn, inc: i64, limit: i64) -> DbResult<Vec<MessageRow>> {
    c.query_map(
        &format!("SELECT {COLS} FROM messages WHERE inc = ?1 ORDER BY seq DESC LIMIT ?2"),
        args![inc, limit],
        from_row,
    )?
    .collect()
}

/// Messages of `inc` still waiting for a server ack, in queue order, after
/// queue position `after_qpos` (held ones wait for `held_due`).
pub fn unacked(c: &Conn, inc: i64, after_qpos: i64, limit: i64) -> DbResult<Vec<MessageRow>> {
    let rows = c
        .query_map(&format!(
            "SELECT {COLS} FROM messages WHERE inc = ?1 AND status = 'queued' AND qpos > ?2 AND retry_at_ms IS NULL ORDER BY qpos LIMIT ?3"
        ), args![inc, after_qpos, limit], from_row)?
        .collect();
    rows
}

/// Held messages of `inc` whose `retry_at` has come, in queue order.
pub fn held_due(c: &Conn, inc: i64, now_ms: i64, limit: i64) -> DbResult<Vec<MessageRow>> {
    let rows = c
        .query_map(&format!(
            "SELECT {COLS} FROM messages WHERE inc = ?1 AND status = 'queued' AND retry_at_ms IS NOT NULL
             AND retry_at_ms <= ?2 ORDER BY qpos LIMIT ?3"
        ), args![inc, now_ms, limit], from_row)?
        .collect();
    rows
}

/// `inc`'s held messages, soonest retry first (at most `limit`).
pub fn list_held(c: &Conn, inc: i64, limit: i64) -> DbResult<Vec<MessageRow>> {
    let rows = c
        .query_map(&format!(
            "SELECT {COLS} FROM messages WHERE inc = ?1 AND status = 'queued' AND retry_at_ms IS NOT NULL
             ORDER BY retry_at_ms, qpos LIMIT ?2"
        ), args![inc, limit], from_row)?
        .collect();
    rows
}

/// The earliest `retry_at` among `inc`'s held messages.
pub fn next_retry(c: &Conn, inc: i64) -> DbResult<Option<i64>> {
    c.query_row("SELECT MIN(retry_at_ms) FROM messages WHERE inc = ?1 AND status = 'queued' AND retry_at_ms IS NOT NULL", args![inc], |r| r.get(0))
}

/// Hold a queued message until `retry_at_ms`, for `reason`.
pub fn hold(
    c: &Conn,
    seq: i64,
    reason: &str,
    retry_at_ms: i64,
    now_ms: i64,
) -> DbResult<Option<MessageRow>> {
    c.query_row(
        &format!(
            "UPDATE messages SET held_reason = ?2, retry_at_ms = ?3, updated_ms = ?4
         WHERE seq = ?1 AND status = 'queued' RETURNING {COLS}"
        ),
        args![seq, reason, retry_at_ms, now_ms],
        from_row,
    )
    .optional()
}

/// The message of `inc` with WhatsApp id `wa_id`.
pub fn by_wa_id(c: &Conn, inc: i64, wa_id: &str) -> DbResult<Option<MessageRow>> {
    c.query_row(
        &format!("SELECT {COLS} FROM messages WHERE inc = ?1 AND wa_id = ?2"),
        args![inc, wa_id],
        from_row,
    )
    .optional()
}

/// Hold every message of `inc` held for `from` for `to` instead.
pub fn reclassify_held(c: &Conn, inc: i64, from: &str, to: &str) -> DbResult<usize> {
    c.execute(
        "UPDATE messages SET held_reason = ?3
         WHERE inc = ?1 AND status = 'queued' AND held_reason = ?2 AND retry_at_ms IS NOT NULL",
        args![inc, from, to],
    )
}

/// Move every message of `inc` held for `reason` to `retry_at_ms`; the rows moved.
pub fn retime_held(
    c: &Conn,
    inc: i64,
    reason: &str,
    retry_at_ms: i64,
    now_ms: i64,
) -> DbResult<Vec<MessageRow>> {
    let rows = c
        .query_map(
            &format!(
                "UPDATE messages SET retry_at_ms = ?3, updated_ms = ?4
             WHERE inc = ?1 AND status = 'queued' AND held_reason = ?2 AND retry_at_ms IS NOT NULL
             AND retry_at_ms != ?3 RETURNING {COLS}"
            ),
            args![inc, reason, retry_at_ms, now_ms],
            from_row,
        )?
        .collect();
    rows
}

/// When `inc`'s message with WhatsApp id `wa_id` was first handed to
/// WhatsApp, if it was.
pub fn handed_at(c: &Conn, inc: i64, wa_id: &str) -> DbResult<Option<i64>> {
    c.query_row(
        "SELECT handed_ms FROM messages WHERE inc = ?1 AND wa_id = ?2",
        args![inc, wa_id],
        |r| r.get(0),
    )
    .optional()
    .map(Option::flatten)
}

/// When `inc`'s newest `limit` messages handed to WhatsApp after `since_ms`
/// were first handed over, ascending.
pub fn handed_recent(c: &Conn, inc: i64, since_ms: i64, limit: i64) -> DbResult<Vec<i64>> {
    let mut rows: Vec<i64> = c
        .query_map("SELECT handed_ms FROM messages WHERE inc = ?1 AND handed_ms IS NOT NULL AND handed_ms > ?2
             ORDER BY handed_ms DESC LIMIT ?3", args![inc, since_ms, limit], |r| r.get(0))?
        .collect::<DbResult<_>>()?;
    rows.reverse();
    Ok(rows)
}

/// The last message in `inc`'s queue.
pub fn last_queued(c: &Conn, inc: i64) -> DbResult<Option<MessageRow>> {
    c.query_row(&format!(
        "SELECT {COLS} FROM messages WHERE inc = ?1 AND status = 'queued' ORDER BY qpos DESC LIMIT 1"
    ), args![inc], from_row)
    .optional()
}

/// Queue positions of `inc`'s queued messages up to `upto`, in order (at
/// most `limit`).
pub fn queue_positions(c: &Conn, inc: i64, upto: i64, limit: i64) -> DbResult<Vec<i64>> {
    c
        .query_map("SELECT qpos FROM messages WHERE inc = ?1 AND status = 'queued' AND qpos <= ?2 ORDER BY qpos LIMIT ?3", args![inc, upto, limit], |r| r.get(0))?
        .collect()
}

/// Scheduled messages (every org) due at `now_ms`, earliest first.
pub fn due(c: &Conn, now_ms: i64, limit: i64) -> DbResult<Vec<MessageRow>> {
    let rows = c
        .query_map(&format!(
            "SELECT {COLS} FROM messages WHERE status = 'scheduled' AND send_at_ms <= ?1 ORDER BY send_at_ms, seq LIMIT ?2"
        ), args![now_ms, limit], from_row)?
        .collect();
    rows
}

/// Scheduled or queued messages (every org) whose `send_before` has passed.
pub fn overdue(c: &Conn, now_ms: i64, limit: i64) -> DbResult<Vec<MessageRow>> {
    let rows = c
        .query_map(&format!(
            "SELECT {COLS} FROM messages WHERE send_before_ms IS NOT NULL AND status IN ('scheduled', 'queued')
             AND send_before_ms <= ?1 ORDER BY send_before_ms LIMIT ?2"
        ), args![now_ms, limit], from_row)?
        .collect();
    rows
}

/// The next moment the scheduler has work: a `send_at` or a `send_before`.
pub fn next_deadline(c: &Conn) -> DbResult<Option<i64>> {
    let due: Option<i64> = c.query_row(
        "SELECT MIN(send_at_ms) FROM messages WHERE status = 'scheduled'",
        args![],
        |r| r.get(0),
    )?;
    let before: Option<i64> = c
        .query_row("SELECT MIN(send_before_ms) FROM messages WHERE send_before_ms IS NOT NULL AND status IN ('scheduled', 'queued')", args![], |r| r.get(0))?;
    Ok(due.into_iter().chain(before).min())
}

/// A scheduled message falls due: `queued`, with the next queue position.
pub fn enqueue(c: &Conn, seq: i64, now_ms: i64) -> DbResult<Option<MessageRow>> {
    let qpos = next_qpos(c)?;
    c.query_row(
        &format!(
            "UPDATE messages SET status = 'queued', qpos = ?2, updated_ms = ?3
         WHERE seq = ?1 AND status = 'scheduled' RETURNING {COLS}"
        ),
        args![seq, qpos, now_ms],
        from_row,
    )
    .optional()
}

/// End a scheduled or queued message as `expired` or `canceled`.
pub fn end(
    c: &Conn,
    seq: i64,
    to: MessageStatus,
    error: Option<&str>,
    now_ms: i64,
) -> DbResult<Option<MessageRow>> {
    debug_assert!(matches!(
        to,
        MessageStatus::Expired | MessageStatus::Canceled
    ));
    c.query_row(
        &format!(
            "UPDATE messages SET status = ?2, error = ?3, updated_ms = ?4
         WHERE seq = ?1 AND status IN ('scheduled', 'queued') RETURNING {COLS}"
        ),
        args![seq, to.as_str(), error, now_ms],
        from_row,
    )
    .optional()
}

/// Move a scheduled message to a new `send_at` (and `send_before`).
pub fn reschedule(
    c: &Conn,
    seq: i64,
    send_at_ms: i64,
    send_before_ms: Option<i64>,
    now_ms: i64,
) -> DbResult<Option<MessageRow>> {
    c.query_row(
        &format!(
            "UPDATE messages SET send_at_ms = ?2, send_before_ms = ?3, updated_ms = ?4
         WHERE seq = ?1 AND status = 'scheduled' RETURNING {COLS}"
        ),
        args![seq, send_at_ms, send_before_ms, now_ms],
        from_row,
    )
    .optional()
}

pub fn count_queued(c: &Conn, inc: i64) -> DbResult<i64> {
    c.query_row(
        "SELECT COUNT(*) FROM messages WHERE inc = ?1 AND status = 'queued'",
        args![inc],
        |r| r.get(0),
    )
}

/// Queued messages of `inc` held by a sending limit.
pub fn count_held(c: &Conn, inc: i64) -> DbResult<i64> {
    c.query_row("SELECT COUNT(*) FROM messages WHERE inc = ?1 AND status = 'queued' AND retry_at_ms IS NOT NULL", args![inc], |r| r.get(0))
}

/// Queued messages per org incarnation, in one query (orgs with none are absent).
pub fn queued_counts(c: &Conn) -> DbResult<HashMap<i64, i64>> {
    c.query_map(
        "SELECT inc, COUNT(*) FROM messages WHERE status = 'queued' GROUP BY inc",
        args![],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?
    .collect()
}

/// Record that a send of this message is starting (before any network
/// work), if it is still `queued` and its `send_before` has not passed:
/// whether it may be sent. A cancel or an expiry that won the race makes
/// this false, and the message is never handed to the client.
pub fn mark_attempt(c: &Conn, seq: i64, now_ms: i64) -> DbResult<bool> {
    let n = c
        .execute("UPDATE messages SET attempts = attempts + 1, updated_ms = ?2, handed_ms = COALESCE(handed_ms, ?2),
                held_reason = NULL, retry_at_ms = NULL
             WHERE seq = ?1 AND status = 'queued' AND (send_before_ms IS NULL OR send_before_ms > ?2)", args![seq, now_ms])?;
    Ok(n == 1)
}

/// Move the message of `inc` with WhatsApp id `wa_id` forward to `to`. Returns
/// the updated row, or `None` when unknown or when it would be a step back.
pub fn advance(
    c: &Conn,
    inc: i64,
    wa_id: &str,
    to: MessageStatus,
    error: Option<&str>,
    now_ms: i64,
) -> DbResult<Option<MessageRow>> {
    let Some(row) = by_wa_id(c, inc, wa_id)? else {
        return Ok(None);
    };
    if !row.status.may_become(to) {
        return Ok(None);
    }
    c.execute(
        "UPDATE messages SET status = ?2, error = ?3, updated_ms = ?4 WHERE seq = ?1",
        args![row.seq, to.as_str(), error, now_ms],
    )?;
    Ok(Some(MessageRow {
        status: to,
        error: error.map(str::to_string),
        updated_ms: now_ms,
        ..row
    }))
}

/// When each org incarnation last sent or received a message (ms): the
/// order in which a restart brings them back.
pub fn last_activity(c: &Conn) -> DbResult<std::collections::HashMap<i64, i64>> {
    let mut out = std::collections::HashMap::new();
    for sql in [
        "SELECT inc, MAX(updated_ms) FROM messages GROUP BY inc",
        "SELECT inc, MAX(received_ms) FROM inbound GROUP BY inc",
    ] {
        let rows: Vec<(i64, i64)> = c
            .query_map(sql, args![], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<DbResult<_>>()?;
        for (inc, at) in rows {
            let e = out.entry(inc).or_insert(at);
            *e = (*e).max(at);
        }
    }
    Ok(out)
}

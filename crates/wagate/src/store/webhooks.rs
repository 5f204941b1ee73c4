//! Rows of the `webhooks` and `deliveries` tables. An org's endpoints (URL,
//! the event kinds they want, the signing secret and the one it replaced,
//! kept for a grace period), and one delivery per event and endpoint:
//! written by `fan_out` in the transaction that writes the event, then
//! `pending` until the receiver answers 2xx (`delivered`) or the tries run
//! out (`failed`, the dead letter).

use super::{Conn, DbResult, OptionalExt};
use crate::args;
use crate::db::Row;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub id: String,
    pub inc: i64,
    pub url: String,
    /// Event kinds it wants; `None`: every kind.
    pub events: Option<Vec<String>>,
    pub secret: String,
    /// The secret it had before the last rotation, still signing until then.
    pub prev_secret: Option<String>,
    pub prev_until_ms: Option<i64>,
    /// Why it no longer receives (a `410 Gone`); `None` while active.
    pub disabled: Option<String>,
    pub created_ms: i64,
}

const HOOK_COLS: &str =
    "id, inc, url, events, secret, prev_secret, prev_until_ms, disabled, created_ms";

fn hook(r: &Row) -> DbResult<Webhook> {
    let events: Option<String> = r.get(3)?;
    Ok(Webhook {
        id: r.get(0)?,
        inc: r.get(1)?,
        url: r.get(2)?,
        events: events.and_then(|e| serde_json::from_str(&e).ok()),
        secret: r.get(4)?,
        prev_secret: r.get(5)?,
        prev_until_ms: r.get(6)?,
        disabled: r.get(7)?,
        created_ms: r.get(8)?,
    })
}

pub fn insert(c: &Conn, w: &Webhook) -> DbResult<()> {
    let events = w
        .events
        .as_ref()
        .map(|e| serde_json::to_string(e).unwrap_or_else(|_| "[]".into()));
    c.execute("INSERT INTO webhooks (id, inc, url, events, secret, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)", args![w.id, w.inc, w.url, events, w.secret, w.created_ms])?;
    Ok(())
}

pub fn list(c: &Conn, inc: i64) -> DbResult<Vec<Webhook>> {
    let rows = c
        .query_map(
            &format!("SELECT {HOOK_COLS} FROM webhooks WHERE inc = ?1 ORDER BY created_ms, id"),
            args![inc],
            hook,
        )?
        .collect();
    rows
}

pub fn get(c: &Conn, inc: i64, id: &str) -> DbResult<Option<Webhook>> {
    c.query_row(
        &format!("SELECT {HOOK_COLS} FROM webhooks WHERE inc = ?1 AND id = ?2"),
        args![inc, id],
        hook,
    )
    .optional()
}

/// An endpoint by id, whatever its org (for the delivery task).
pub fn by_id(c: &Conn, id: &str) -> DbResult<Option<Webhook>> {
    c.query_row(
        &format!("SELECT {HOOK_COLS} FROM webhooks WHERE id = ?1"),
        args![id],
        hook,
    )
    .optional()
}

/// Delete an endpoint and its deliveries; whether it existed.
pub fn delete(c: &Conn, inc: i64, id: &str) -> DbResult<bool> {
    Ok(c.execute(
        "DELETE FROM webhooks WHERE inc = ?1 AND id = ?2",
        args![inc, id],
    )? == 1)
}

/// A new secret; the old one keeps signing until `prev_until_ms`.
pub fn rotate(c: &Conn, inc: i64, id: &str, secret: &str, prev_until_ms: i64) -> DbResult<bool> {
    Ok(c.execute(
        "UPDATE webhooks SET prev_secret = secret, prev_until_ms = ?4, secret = ?3
         WHERE inc = ?1 AND id = ?2",
        args![inc, id, secret, prev_until_ms],
    )? == 1)
}

/// Stop sending to an endpoint (its receiver said `410 Gone`); its pending
/// deliveries fail with `why`.
pub fn disable(c: &Conn, id: &str, why: &str, now_ms: i64) -> DbResult<()> {
    c.execute(
        "UPDATE webhooks SET disabled = ?2 WHERE id = ?1",
        args![id, why],
    )?;
    c.execute(
        "UPDATE deliveries SET status = 'failed', last_error = ?2, updated_ms = ?3, due_ms = NULL
         WHERE webhook = ?1 AND status = 'pending'",
        args![id, why, now_ms],
    )?;
    Ok(())
}

/// One delivery per active endpoint of `inc` that wants `kind`, for the
/// event `event` just written: called by `Tx::emit`.
pub fn fan_out(c: &Conn, inc: i64, kind: &str, event: i64, now_ms: i64) -> DbResult<usize> {
    // `events` is a JSON array of kinds; each database reads it its own way.
    let sql = if c.is_pg() {
        "INSERT INTO deliveries (webhook, event, status, due_ms, created_ms, updated_ms)
         SELECT id, ?2, 'pending', ?3, ?3, ?3 FROM webhooks
         WHERE inc = ?1 AND disabled IS NULL
           AND (events IS NULL OR EXISTS (
                SELECT 1 FROM jsonb_array_elements_text(webhooks.events::jsonb) AS e(value)
                WHERE value = ?4))"
    } else {
        "INSERT INTO deliveries (webhook, event, status, due_ms, created_ms, updated_ms)
         SELECT id, ?2, 'pending', ?3, ?3, ?3 FROM webhooks
         WHERE inc = ?1 AND disabled IS NULL
           AND (events IS NULL OR EXISTS (SELECT 1 FROM json_each(webhooks.events) WHERE value = ?4))"
    };
    c.execute(sql, args![inc, event, now_ms, kind])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 3] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Delivered,
        DeliveryStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        DeliveryStatus::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

/// A delivery with what sending it needs: the event and the endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub seq: i64,
    pub webhook: String,
    pub event: i64,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub due_ms: Option<i64>,
    pub last_error: Option<String>,
    pub last_code: Option<i64>,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub kind: String,
    pub data: String,
    pub event_ms: i64,
    pub org: String,
}

const DELIVERY_SELECT: &str =
    "SELECT d.seq, d.webhook, d.event, d.status, d.attempts, d.due_ms, d.last_error,
    d.last_code, d.created_ms, d.updated_ms, e.kind, e.data, e.ts_ms, o.id
    FROM deliveries d JOIN events e ON e.seq = d.event JOIN webhooks w ON w.id = d.webhook
    JOIN orgs o ON o.inc = w.inc";

fn delivery(r: &Row) -> DbResult<Delivery> {
    let status: String = r.get(3)?;
    Ok(Delivery {
        seq: r.get(0)?,
        webhook: r.get(1)?,
        event: r.get(2)?,
        status: DeliveryStatus::parse(&status).unwrap_or(DeliveryStatus::Pending),
        attempts: r.get(4)?,
        due_ms: r.get(5)?,
        last_error: r.get(6)?,
        last_code: r.get(7)?,
        created_ms: r.get(8)?,
        updated_ms: r.get(9)?,
        kind: r.get(10)?,
        data: r.get(11)?,
        event_ms: r.get(12)?,
        org: r.get(13)?,
    })
}

/// Pending deliveries due at `now_ms`, oldest event first.
pub fn due(c: &Conn, now_ms: i64, limit: i64) -> DbResult<Vec<Delivery>> {
    let rows = c
        .query_map(&format!(
            "{DELIVERY_SELECT} WHERE d.status = 'pending' AND d.due_ms <= ?1 ORDER BY d.due_ms, d.seq LIMIT ?2"
        ), args![now_ms, limit], delivery)?
        .collect();
    rows
}

/// When the next pending delivery is due.
pub fn next_due(c: &Conn) -> DbResult<Option<i64>> {
    c.query_row(
        "SELECT MIN(due_ms) FROM deliveries WHERE status = 'pending'",
        args![],
        |r| r.get(0),
    )
}

/// An endpoint's deliveries, newest first, before `before_seq`, optionally
/// only those in `status`.
pub fn list_deliveries(
    c: &Conn,
    webhook: &str,
    status: Option<DeliveryStatus>,
    before_seq: i64,
    limit: i64,
) -> DbResult<Vec<Delivery>> {
    let rows = c
        .query_map(&format!(
            "{DELIVERY_SELECT} WHERE d.webhook = ?1 AND d.seq < ?2 AND (CAST(?3 AS TEXT) IS NULL OR d.status = ?3)
             ORDER BY d.seq DESC LIMIT ?4"
        ),
            args![webhook, before_seq, status.map(|s| s.as_str()), limit],
            delivery,
        )?
        .collect();
    rows
}

pub fn get_delivery(c: &Conn, webhook: &str, seq: i64) -> DbResult<Option<Delivery>> {
    c.query_row(
        &format!("{DELIVERY_SELECT} WHERE d.webhook = ?1 AND d.seq = ?2"),
        args![webhook, seq],
        delivery,
    )
    .optional()
}

/// What one try of a delivery came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered {
        code: u16,
    },
    /// Try again at `retry_at_ms`.
    Retry {
        code: Option<u16>,
        error: String,
        retry_at_ms: i64,
    },
    /// No more tries (the dead letter).
    Failed {
        code: Option<u16>,
        error: String,
    },
}

/// Record a try. Only a delivery still `pending` moves.
pub fn record(c: &Conn, seq: i64, outcome: &Outcome, now_ms: i64) -> DbResult<()> {
    let (status, code, error, due) = match outcome {
        Outcome::Delivered { code } => ("delivered", Some(*code), None, None),
        Outcome::Retry {
            code,
            error,
            retry_at_ms,
        } => ("pending", *code, Some(error.as_str()), Some(*retry_at_ms)),
        Outcome::Failed { code, error } => ("failed", *code, Some(error.as_str()), None),
    };
    c.execute("UPDATE deliveries SET status = ?2, attempts = attempts + 1, last_code = ?3, last_error = ?4,
            due_ms = ?5, updated_ms = ?6 WHERE seq = ?1 AND status = 'pending'", args![seq, status, code, error, due, now_ms])?;
    Ok(())
}

/// The endpoint answered again after failing: its deliveries waiting out a
/// backoff are due now instead of minutes later. How many. (Read through
/// the pending rows' due index — only the backlog —, not every delivery
/// the endpoint ever had: on SQLite `+webhook` keeps its index out;
/// PostgreSQL's planner weighs both indexes itself.)
pub fn release_backoffs(c: &Conn, webhook: &str, now_ms: i64) -> DbResult<usize> {
    let sql = if c.is_pg() {
        "UPDATE deliveries SET due_ms = ?2
         WHERE status = 'pending' AND due_ms > ?2 AND webhook = ?1 AND attempts > 0"
    } else {
        "UPDATE deliveries SET due_ms = ?2
         WHERE status = 'pending' AND due_ms > ?2 AND +webhook = ?1 AND attempts > 0"
    };
    c.execute(sql, args![webhook, now_ms])
}

/// Send deliveries of `webhook` again now: one (`seq`), or every one made
/// since `since_ms`. Returns how many were queued.
pub fn requeue(
    c: &Conn,
    webhook: &str,
    seq: Option<i64>,
    since_ms: Option<i64>,
    now_ms: i64,
) -> DbResult<usize> {
    c.execute("UPDATE deliveries SET status = 'pending', due_ms = ?4, updated_ms = ?4
         WHERE webhook = ?1 AND (CAST(?2 AS BIGINT) IS NULL OR seq = ?2) AND (CAST(?3 AS BIGINT) IS NULL OR created_ms >= ?3)", args![webhook, seq, since_ms, now_ms])
}

/// Counts of an endpoint's deliveries by status.
pub fn counts(c: &Conn, webhook: &str) -> DbResult<(i64, i64, i64)> {
    c.query_row(
        "SELECT COUNT(CASE WHEN status = 'pending' THEN 1 END),
                COUNT(CASE WHEN status = 'delivered' THEN 1 END),
                COUNT(CASE WHEN status = 'failed' THEN 1 END) FROM deliveries WHERE webhook = ?1",
        args![webhook],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
}

//! Rows of the `events` table: each org incarnation's log behind its event
//! stream (`Last-Event-ID` replay) and the "last state changes" view. Rows are
//! written only through `Tx::emit`, in the transaction of the change they
//! report.

use super::{Conn, DbResult, OptionalExt};
use crate::args;
use crate::db::Row;

#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub seq: i64,
    pub inc: i64,
    /// The org's id (not stored: it is the id of incarnation `inc`).
    pub org: String,
    pub kind: String,
    pub data: serde_json::Value,
    pub ts_ms: i64,
}

fn from_row(org: &str) -> impl Fn(&Row) -> DbResult<EventRow> + '_ {
    move |r| {
        let data: String = r.get(3)?;
        Ok(EventRow {
            seq: r.get(0)?,
            inc: r.get(1)?,
            org: org.to_string(),
            kind: r.get(2)?,
            data: serde_json::from_str(&data).unwrap_or(serde_json::Value::Null),
            ts_ms: r.get(4)?,
        })
    }
}

pub(super) fn insert(
    c: &Conn,
    inc: i64,
    kind: &str,
    data: &serde_json::Value,
    ts_ms: i64,
) -> DbResult<i64> {
    // On PostgreSQL the number comes from a counter row whose lock is held
    // to the commit, so numbers follow commit order across nodes.
    let sql = if c.is_pg() {
        "WITH n AS (UPDATE counters SET value = value + 1 WHERE name = 'event_seq' RETURNING value)
         INSERT INTO events (seq, inc, kind, data, ts_ms) SELECT value, ?1, ?2, ?3, ?4 FROM n"
    } else {
        "INSERT INTO events (inc, kind, data, ts_ms) VALUES (?1, ?2, ?3, ?4)"
    };
    c.insert_id(sql, args![inc, kind, data.to_string(), ts_ms], "seq")?
        .ok_or(super::DbError::NoRow)
}

/// The sequence number of the newest event of `inc` (0 if none).
pub fn last_seq(c: &Conn, inc: i64) -> DbResult<i64> {
    c.query_row(
        "SELECT COALESCE(MAX(seq), 0) FROM events WHERE inc = ?1",
        args![inc],
        |r| r.get(0),
    )
}

/// Events of `inc` after `after_seq`, oldest first.
pub fn after(c: &Conn, inc: i64, org: &str, after_seq: i64, limit: i64) -> DbResult<Vec<EventRow>> {
    c.query_map("SELECT seq, inc, kind, data, ts_ms FROM events WHERE inc = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3", args![inc, after_seq, limit], from_row(org))?.collect()
}

/// The newest `limit` events of one kind for `inc`, newest first.
pub fn latest(c: &Conn, inc: i64, org: &str, kind: &str, limit: i64) -> DbResult<Vec<EventRow>> {
    c.query_map("SELECT seq, inc, kind, data, ts_ms FROM events WHERE inc = ?1 AND kind = ?2 ORDER BY seq DESC LIMIT ?3", args![inc, kind, limit], from_row(org))?.collect()
}

/// How many events of `kind` the log holds for `inc`.
pub fn count(c: &Conn, inc: i64, kind: &str) -> DbResult<i64> {
    c.query_row(
        "SELECT COUNT(*) FROM events WHERE inc = ?1 AND kind = ?2",
        args![inc, kind],
        |r| r.get(0),
    )
}

/// Delete up to `limit` events older than `before_ms`, with their webhook
/// deliveries, except events a delivery still waits to deliver; how many
/// were deleted. Sequence numbers follow time, so the old events are the
/// ones before the first recent one, and only they are read.
pub fn prune(c: &Conn, before_ms: i64, limit: i64) -> DbResult<usize> {
    let cut: Option<i64> = c
        .query_row(
            "SELECT seq FROM events WHERE ts_ms >= ?1 ORDER BY seq LIMIT 1",
            args![before_ms],
            |r| r.get(0),
        )
        .optional()?;
    let cut = match cut {
        Some(s) => s,
        None => c.query_row(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM events",
            args![],
            |r| r.get(0),
        )?,
    };
    c.execute("DELETE FROM events WHERE seq IN (
             SELECT seq FROM events e WHERE seq < ?1
               AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event = e.seq AND d.status = 'pending')
             ORDER BY seq LIMIT ?2)", args![cut, limit])
}

/// Every org's events after `after_seq`, in order, with their org's id
/// (several nodes: each node's event reader announces what any node wrote).
pub fn since(c: &Conn, after_seq: i64, limit: i64) -> DbResult<Vec<EventRow>> {
    c.query_map(
        "SELECT e.seq, e.inc, e.kind, e.data, e.ts_ms, o.id FROM events e JOIN orgs o ON o.inc = e.inc
         WHERE e.seq > ?1 ORDER BY e.seq LIMIT ?2",
        args![after_seq, limit],
        |r| {
            let data: String = r.get(3)?;
            Ok(EventRow {
                seq: r.get(0)?,
                inc: r.get(1)?,
                org: r.get(5)?,
                kind: r.get(2)?,
                data: serde_json::from_str(&data).unwrap_or(serde_json::Value::Null),
                ts_ms: r.get(4)?,
            })
        },
    )?
    .collect()
}

/// The newest event's number (0 if none).
pub fn max_seq(c: &Conn) -> DbResult<i64> {
    c.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", args![], |r| {
        r.get(0)
    })
}

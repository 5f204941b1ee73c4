//! Rows of the `events` table: the per-org log behind the SSE stream
//! (`Last-Event-ID` replay) and the "last state changes" view.

use rusqlite::{params, Connection, Row};

#[derive(Debug, Clone, serde::Serialize)]
pub struct EventRow {
    pub seq: i64,
    pub org: String,
    pub kind: String,
    pub data: serde_json::Value,
    pub ts_ms: i64,
}

fn from_row(r: &Row) -> rusqlite::Result<EventRow> {
    let data: String = r.get(3)?;
    Ok(EventRow {
        seq: r.get(0)?,
        org: r.get(1)?,
        kind: r.get(2)?,
        data: serde_json::from_str(&data).unwrap_or(serde_json::Value::Null),
        ts_ms: r.get(4)?,
    })
}

pub fn insert(
    c: &Connection,
    org: &str,
    kind: &str,
    data: &serde_json::Value,
    ts_ms: i64,
) -> rusqlite::Result<i64> {
    c.execute(
        "INSERT INTO events (org, kind, data, ts_ms) VALUES (?1, ?2, ?3, ?4)",
        params![org, kind, data.to_string(), ts_ms],
    )?;
    Ok(c.last_insert_rowid())
}

/// The sequence number of the newest logged event of `org` (0 if none).
pub fn last_seq(c: &Connection, org: &str) -> rusqlite::Result<i64> {
    c.query_row(
        "SELECT COALESCE(MAX(seq), 0) FROM events WHERE org = ?1",
        [org],
        |r| r.get(0),
    )
}

/// Events of `org` after `after_seq`, oldest first.
pub fn after(
    c: &Connection,
    org: &str,
    after_seq: i64,
    limit: i64,
) -> rusqlite::Result<Vec<EventRow>> {
    let mut st = c.prepare(
        "SELECT seq, org, kind, data, ts_ms FROM events WHERE org = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
    )?;
    let rows = st.query_map(params![org, after_seq, limit], from_row)?;
    rows.collect()
}

/// The newest `limit` events of one kind for `org`, newest first.
pub fn latest(
    c: &Connection,
    org: &str,
    kind: &str,
    limit: i64,
) -> rusqlite::Result<Vec<EventRow>> {
    let mut st = c.prepare(
        "SELECT seq, org, kind, data, ts_ms FROM events WHERE org = ?1 AND kind = ?2 ORDER BY seq DESC LIMIT ?3",
    )?;
    let rows = st.query_map(params![org, kind, limit], from_row)?;
    rows.collect()
}

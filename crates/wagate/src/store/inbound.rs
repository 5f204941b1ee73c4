//! Rows of the `inbound` table: messages patients sent to an organization.
//! Keyed by WhatsApp id per org incarnation, so a redelivery is stored once.

use rusqlite::{params, Connection, Row};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundRow {
    pub seq: i64,
    pub wa_id: String,
    pub from: String,
    pub text: String,
    pub received_ms: i64,
}

fn from_row(r: &Row) -> rusqlite::Result<InboundRow> {
    Ok(InboundRow {
        seq: r.get(0)?,
        wa_id: r.get(1)?,
        from: r.get(2)?,
        text: r.get(3)?,
        received_ms: r.get(4)?,
    })
}

/// Store a received message; `None` when this id was stored before.
pub fn insert(
    c: &Connection,
    inc: i64,
    wa_id: &str,
    from: &str,
    text: &str,
    now_ms: i64,
) -> rusqlite::Result<Option<InboundRow>> {
    let n = c.execute(
        "INSERT OR IGNORE INTO inbound (inc, wa_id, sender, text, received_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![inc, wa_id, from, text, now_ms],
    )?;
    if n == 0 {
        return Ok(None);
    }
    Ok(Some(InboundRow {
        seq: c.last_insert_rowid(),
        wa_id: wa_id.to_string(),
        from: from.to_string(),
        text: text.to_string(),
        received_ms: now_ms,
    }))
}

/// One page of an org's received messages, oldest first, after the cursor.
pub fn list(
    c: &Connection,
    inc: i64,
    after_seq: i64,
    limit: i64,
) -> rusqlite::Result<Vec<InboundRow>> {
    let mut st = c.prepare_cached(
        "SELECT seq, wa_id, sender, text, received_ms FROM inbound WHERE inc = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
    )?;
    let rows = st.query_map(params![inc, after_seq, limit], from_row)?;
    rows.collect()
}

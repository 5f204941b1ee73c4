//! Rows of the `inbound` table: messages patients sent to an organization.
//! Keyed by WhatsApp id per org incarnation, so a redelivery is stored once.
//! A row also says what it answers: the message of ours it quotes
//! (`in_reply_to`), else our latest message to that contact within 72 h
//! (`last_outbound_id`); a reaction names the message reacted to.

use super::{Conn, DbResult, OptionalExt};
use crate::args;
use crate::db::Row;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundRow {
    pub seq: i64,
    pub wa_id: String,
    pub from: String,
    pub from_lid: Option<String>,
    pub text: String,
    pub received_ms: i64,
    /// The WhatsApp id it quotes (ours or not).
    pub quoted_wa_id: Option<String>,
    /// Our message it quotes (its id).
    pub in_reply_to: Option<String>,
    /// Our latest message to this contact within 72 h, when it quotes none.
    pub last_outbound_id: Option<String>,
    /// A reaction: the message reacted to (ours: its id; else its WhatsApp id).
    pub reaction_to: Option<String>,
}

const COLS: &str = "seq, wa_id, sender, text, received_ms, sender_lid, quoted_wa_id, in_reply_to, last_outbound_id, reaction_to";

fn from_row(r: &Row) -> DbResult<InboundRow> {
    Ok(InboundRow {
        seq: r.get(0)?,
        wa_id: r.get(1)?,
        from: r.get(2)?,
        text: r.get(3)?,
        received_ms: r.get(4)?,
        from_lid: r.get(5)?,
        quoted_wa_id: r.get(6)?,
        in_reply_to: r.get(7)?,
        last_outbound_id: r.get(8)?,
        reaction_to: r.get(9)?,
    })
}

/// How long after our last message a reply is taken to answer it.
pub const REPLY_WINDOW_MS: i64 = 72 * 3_600_000;

/// A received message as the engine reported it.
pub struct NewInbound<'a> {
    pub wa_id: &'a str,
    pub from: &'a str,
    pub from_lid: Option<&'a str>,
    pub text: &'a str,
    pub quoted: Option<&'a str>,
    pub reaction_to: Option<&'a str>,
}

/// Our message of `inc` with WhatsApp id `wa_id` (its id).
fn ours(c: &Conn, inc: i64, wa_id: &str) -> DbResult<Option<String>> {
    c.query_row(
        "SELECT id FROM messages WHERE inc = ?1 AND wa_id = ?2",
        args![inc, wa_id],
        |r| r.get(0),
    )
    .optional()
}

/// Store a received message, with what it answers; `None` when this id was
/// stored before.
pub fn insert(c: &Conn, inc: i64, m: &NewInbound, now_ms: i64) -> DbResult<Option<InboundRow>> {
    let in_reply_to = match m.quoted {
        Some(q) => ours(c, inc, q)?,
        None => None,
    };
    let last_outbound_id: Option<String> = if in_reply_to.is_none() && m.reaction_to.is_none() {
        c.query_row("SELECT id FROM messages WHERE inc = ?1 AND phone = ?2 AND status IN ('sent', 'delivered', 'read')
             AND updated_ms > ?3 ORDER BY seq DESC LIMIT 1", args![inc, m.from, now_ms - REPLY_WINDOW_MS], |r| r.get(0))
        .optional()?
    } else {
        None
    };
    let reaction_to = match m.reaction_to {
        Some(w) => Some(ours(c, inc, w)?.unwrap_or_else(|| w.to_string())),
        None => None,
    };
    let seq = c.insert_id(
        "INSERT INTO inbound (inc, wa_id, sender, text, received_ms, sender_lid, quoted_wa_id,
                in_reply_to, last_outbound_id, reaction_to)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT (inc, wa_id) DO NOTHING",
        args![
            inc,
            m.wa_id,
            m.from,
            m.text,
            now_ms,
            m.from_lid,
            m.quoted,
            in_reply_to,
            last_outbound_id,
            reaction_to
        ],
        "seq",
    )?;
    let Some(seq) = seq else {
        return Ok(None);
    };
    Ok(Some(InboundRow {
        seq,
        wa_id: m.wa_id.to_string(),
        from: m.from.to_string(),
        from_lid: m.from_lid.map(str::to_string),
        text: m.text.to_string(),
        received_ms: now_ms,
        quoted_wa_id: m.quoted.map(str::to_string),
        in_reply_to,
        last_outbound_id,
        reaction_to,
    }))
}

/// One page of an org's received messages, oldest first, after the cursor.
pub fn list(c: &Conn, inc: i64, after_seq: i64, limit: i64) -> DbResult<Vec<InboundRow>> {
    c.query_map(
        &format!("SELECT {COLS} FROM inbound WHERE inc = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"),
        args![inc, after_seq, limit],
        from_row,
    )?
    .collect()
}

/// The `limit` newest received messages of `inc`, newest first.
pub fn latest(c: &Conn, inc: i64, limit: i64) -> DbResult<Vec<InboundRow>> {
    let rows = c
        .query_map(
            &format!("SELECT {COLS} FROM inbound WHERE inc = ?1 ORDER BY seq DESC LIMIT ?2"),
            args![inc, limit],
            from_row,
        )?
        .collect();
    rows
}

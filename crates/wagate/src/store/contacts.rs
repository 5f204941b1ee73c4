//! Rows of the `contacts` table: what an org's number knows of each phone it
//! deals with. Whether the phone is on WhatsApp (a look-up, cached for a
//! week), and the first time it wrote to us, was handed a message by us and
//! accepted one. A contact "talks with the number" once it wrote or once a
//! message to it was accepted; until then a message to it is a first
//! message to a new contact, the kind WhatsApp limits.

use super::{Conn, DbResult, OptionalExt};
use crate::args;

/// How long a look-up's answer is trusted.
pub const LOOKUP_TTL_MS: i64 = 7 * 24 * 3_600_000;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contact {
    pub on_whatsapp: Option<bool>,
    pub jid: Option<String>,
    pub checked_ms: Option<i64>,
    pub first_in_ms: Option<i64>,
    pub first_try_ms: Option<i64>,
    pub first_ok_ms: Option<i64>,
}

impl Contact {
    /// It wrote to the number or accepted a message from it.
    pub fn talks(&self) -> bool {
        self.first_in_ms.is_some() || self.first_ok_ms.is_some()
    }

    /// The cached look-up, if it is younger than a week at `now_ms`.
    pub fn fresh_lookup(&self, now_ms: i64) -> Option<bool> {
        match (self.on_whatsapp, self.checked_ms) {
            (Some(on), Some(t)) if now_ms - t < LOOKUP_TTL_MS && t <= now_ms => Some(on),
            _ => None,
        }
    }
}

pub fn get(c: &Conn, inc: i64, phone: &str) -> DbResult<Option<Contact>> {
    c.query_row(
        "SELECT on_whatsapp, jid, checked_ms, first_in_ms, first_try_ms, first_ok_ms
         FROM contacts WHERE inc = ?1 AND phone = ?2",
        args![inc, phone],
        |r| {
            Ok(Contact {
                on_whatsapp: r.get::<Option<i64>>(0)?.map(|v| v != 0),
                jid: r.get(1)?,
                checked_ms: r.get(2)?,
                first_in_ms: r.get(3)?,
                first_try_ms: r.get(4)?,
                first_ok_ms: r.get(5)?,
            })
        },
    )
    .optional()
}

/// Record a look-up's answer.
pub fn record_lookup(
    c: &Conn,
    inc: i64,
    phone: &str,
    on_whatsapp: bool,
    jid: Option<&str>,
    now_ms: i64,
) -> DbResult<()> {
    c.execute("INSERT INTO contacts (inc, phone, on_whatsapp, jid, checked_ms) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(inc, phone) DO UPDATE SET
            on_whatsapp = excluded.on_whatsapp, jid = excluded.jid, checked_ms = excluded.checked_ms", args![inc, phone, on_whatsapp as i64, jid, now_ms])?;
    Ok(())
}

/// Which first moment to record.
#[derive(Debug, Clone, Copy)]
pub enum First {
    /// It wrote to the number.
    In,
    /// A message to it was handed to WhatsApp.
    Try,
    /// WhatsApp accepted a message to it.
    Ok,
}

/// Record `which` at `now_ms` unless it was recorded before. A phone that
/// wrote or accepted a message is on WhatsApp, whatever a look-up said.
pub fn note(c: &Conn, inc: i64, phone: &str, which: First, now_ms: i64) -> DbResult<()> {
    let sql = match which {
        First::In => {
            "INSERT INTO contacts (inc, phone, first_in_ms, on_whatsapp, checked_ms) VALUES (?1, ?2, ?3, 1, ?3)
             ON CONFLICT(inc, phone) DO UPDATE SET first_in_ms = COALESCE(contacts.first_in_ms, excluded.first_in_ms),
                on_whatsapp = 1, checked_ms = excluded.checked_ms"
        }
        First::Try => {
            "INSERT INTO contacts (inc, phone, first_try_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT(inc, phone) DO UPDATE SET first_try_ms = COALESCE(contacts.first_try_ms, excluded.first_try_ms)"
        }
        First::Ok => {
            "INSERT INTO contacts (inc, phone, first_ok_ms, on_whatsapp, checked_ms) VALUES (?1, ?2, ?3, 1, ?3)
             ON CONFLICT(inc, phone) DO UPDATE SET first_ok_ms = COALESCE(contacts.first_ok_ms, excluded.first_ok_ms),
                on_whatsapp = 1, checked_ms = excluded.checked_ms"
        }
    };
    c.execute(sql, args![inc, phone, now_ms])?;
    Ok(())
}

/// When `inc` reached out first to new contacts after `since_ms` (the
/// contact had not written before our first message), ascending.
pub fn first_reaches_since(c: &Conn, inc: i64, since_ms: i64) -> DbResult<Vec<i64>> {
    c.query_map(
        "SELECT first_try_ms FROM contacts WHERE inc = ?1 AND first_try_ms > ?2
             AND (first_in_ms IS NULL OR first_in_ms > first_try_ms) ORDER BY first_try_ms",
        args![inc, since_ms],
        |r| r.get(0),
    )?
    .collect()
}

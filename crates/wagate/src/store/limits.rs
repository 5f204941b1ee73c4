//! Rows of the `account_limits` table: the sending limits WhatsApp last
//! announced for an org's number — the reach-out timelock (no first
//! messages to new contacts until a moment) and message capping (a quota of
//! new chats per cycle). Kept across restarts: the limits outlive a link.

use super::{Conn, DbResult, OptionalExt};
use crate::args;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// First messages to new contacts are refused until then.
    pub reachout_until_ms: Option<i64>,
    /// The server's name for the kind of enforcement (`DEFAULT`, …).
    pub reachout_type: Option<String>,
    pub cap_used: Option<i64>,
    pub cap_total: Option<i64>,
    pub cap_cycle_end_ms: Option<i64>,
    /// `NONE`, `FIRST_WARNING`, `SECOND_WARNING`, `CAPPED`.
    pub cap_status: Option<String>,
}

impl Limits {
    /// The timelock's end, if it is still ahead at `now_ms`.
    pub fn reachout_active(&self, now_ms: i64) -> Option<i64> {
        self.reachout_until_ms.filter(|&u| u > now_ms)
    }

    /// The cycle's end, if new chats are capped at `now_ms`: the server said
    /// `CAPPED`, or used every unit of a finite quota, and the cycle is not over.
    pub fn capped(&self, now_ms: i64) -> Option<i64> {
        let full = self.cap_status.as_deref() == Some("CAPPED")
            || matches!((self.cap_used, self.cap_total), (Some(u), Some(t)) if t >= 0 && u >= t);
        let end = self.cap_cycle_end_ms?;
        (full && end > now_ms).then_some(end)
    }
}

pub fn get(c: &Conn, inc: i64) -> DbResult<Limits> {
    Ok(c.query_row(
        "SELECT reachout_until_ms, reachout_type, cap_used, cap_total, cap_cycle_end_ms, cap_status
             FROM account_limits WHERE inc = ?1",
        args![inc],
        |r| {
            Ok(Limits {
                reachout_until_ms: r.get(0)?,
                reachout_type: r.get(1)?,
                cap_used: r.get(2)?,
                cap_total: r.get(3)?,
                cap_cycle_end_ms: r.get(4)?,
                cap_status: r.get(5)?,
            })
        },
    )
    .optional()?
    .unwrap_or_default())
}

/// Record the timelock: active until `until_ms`, or lifted (`None`).
pub fn set_reachout(
    c: &Conn,
    inc: i64,
    until_ms: Option<i64>,
    kind: Option<&str>,
    now_ms: i64,
) -> DbResult<()> {
    c.execute("INSERT INTO account_limits (inc, reachout_until_ms, reachout_type, updated_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(inc) DO UPDATE SET reachout_until_ms = excluded.reachout_until_ms,
            reachout_type = excluded.reachout_type, updated_ms = excluded.updated_ms", args![inc, until_ms, kind, now_ms])?;
    Ok(())
}

/// Record the message-capping state the server sent.
pub fn set_capping(c: &Conn, inc: i64, l: &Limits, now_ms: i64) -> DbResult<()> {
    c.execute("INSERT INTO account_limits (inc, cap_used, cap_total, cap_cycle_end_ms, cap_status, updated_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT(inc) DO UPDATE SET cap_used = excluded.cap_used, cap_total = excluded.cap_total,
            cap_cycle_end_ms = excluded.cap_cycle_end_ms, cap_status = excluded.cap_status,
            updated_ms = excluded.updated_ms", args![
        inc,
        l.cap_used,
        l.cap_total,
        l.cap_cycle_end_ms,
        l.cap_status,
        now_ms
    ])?;
    Ok(())
}

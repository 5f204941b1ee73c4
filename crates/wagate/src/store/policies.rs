//! Rows of the `policies` table: an org's sending policy as the JSON it was
//! set with (read and checked by `app/policy.rs`); none means the defaults.

use super::{Conn, DbResult, OptionalExt};
use crate::args;

pub fn get(c: &Conn, inc: i64) -> DbResult<Option<String>> {
    c.query_row(
        "SELECT body FROM policies WHERE inc = ?1",
        args![inc],
        |r| r.get(0),
    )
    .optional()
}

pub fn put(c: &Conn, inc: i64, body: &str, now_ms: i64) -> DbResult<()> {
    c.execute(
        "INSERT INTO policies (inc, body, updated_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT(inc) DO UPDATE SET body = excluded.body, updated_ms = excluded.updated_ms",
        args![inc, body, now_ms],
    )?;
    Ok(())
}

//! Rows of the `policies` table: an org's sending policy as the JSON it was
//! set with (read and checked by `app/policy.rs`); none means the defaults.

use rusqlite::{params, Connection, OptionalExtension};

pub fn get(c: &Connection, inc: i64) -> rusqlite::Result<Option<String>> {
    c.prepare_cached("SELECT body FROM policies WHERE inc = ?1")?
        .query_row([inc], |r| r.get(0))
        .optional()
}

pub fn put(c: &Connection, inc: i64, body: &str, now_ms: i64) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO policies (inc, body, updated_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT(inc) DO UPDATE SET body = excluded.body, updated_ms = excluded.updated_ms",
    )?
    .execute(params![inc, body, now_ms])?;
    Ok(())
}

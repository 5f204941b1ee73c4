//! The gateway's tables (`wagate.db`, or the gateway's share of a
//! PostgreSQL database): their frozen migration steps, one file per version
//! per database under `schema/` (each opens with what it does), and a
//! `latest.sql` per database for a fresh install. The history of the schema
//! lives in those files; `db::migrate` runs them.
//!
//! On SQLite, version 0 is the schema before versions existed (rows keyed
//! by the org id): its tables are renamed, made again at version 1 and
//! copied over (`v0_rename.sql`, `v0_copy.sql`).

use rusqlite::Connection;

use crate::db::migrate::{self, Schema, Steps};

/// The gateway's tables on SQLite.
pub const SQLITE: Steps = Steps {
    steps: &[
        include_str!("schema/sqlite/v1.sql"),
        include_str!("schema/sqlite/v2.sql"),
        include_str!("schema/sqlite/v3.sql"),
        include_str!("schema/sqlite/v4.sql"),
        include_str!("schema/sqlite/v5.sql"),
    ],
    latest: include_str!("schema/sqlite/latest.sql"),
};

/// The gateway's tables on PostgreSQL. Event numbers come from the
/// `event_seq` counter instead of the identity, taken under its row lock,
/// so they are handed out in commit order even with several nodes writing.
pub const SCHEMA: Schema = Schema {
    name: "gateway",
    pg: Steps {
        steps: &[
            include_str!("schema/pg/v1.sql"),
            include_str!("schema/pg/v2.sql"),
            include_str!("schema/pg/v3.sql"),
            include_str!("schema/pg/v4.sql"),
            include_str!("schema/pg/v5.sql"),
        ],
        latest: include_str!("schema/pg/latest.sql"),
    },
};

/// The version this code writes.
pub const VERSION: i64 = SQLITE.steps.len() as i64;

const V0_RENAME: &str = include_str!("schema/sqlite/v0_rename.sql");
const V0_COPY: &str = include_str!("schema/sqlite/v0_copy.sql");

/// A file at version 0 that has an `orgs` table is from before versions:
/// bring it to version 1 (renamed, made again, copied).
fn from_v0(c: &Connection) -> rusqlite::Result<bool> {
    let old: i64 = c.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'orgs'",
        [],
        |r| r.get(0),
    )?;
    if old == 0 {
        return Ok(false);
    }
    tracing::info!("migrating wagate.db from schema version 0 to 1");
    c.execute_batch(V0_RENAME)?;
    c.execute_batch(SQLITE.steps[0])?;
    c.execute_batch(V0_COPY)?;
    Ok(true)
}

/// Bring `wagate.db` to `VERSION`, in one transaction.
pub fn migrate(c: &Connection) -> rusqlite::Result<()> {
    migrate::sqlite(c, "wagate.db", &SQLITE, Some(&from_v0))
}

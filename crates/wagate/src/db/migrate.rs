//! Running a store's frozen migration steps. Each store keeps, per
//! database, one SQL file per released version (`v1.sql` makes version 1,
//! `vN.sql` brings N-1 to N) that never changes once released, and a
//! `latest.sql` that makes the newest version at once for a fresh install.
//! SQLite records a file's version in `PRAGMA user_version`; PostgreSQL, where
//! several stores share one database, in `schema_versions` (one row per
//! store). Either way a version newer than this code knows is refused.

use rusqlite::Connection;
use tokio_postgres::Client;

/// One store's schema history in one database's dialect.
#[derive(Debug, Clone, Copy)]
pub struct Steps {
    /// `steps[i]` brings version `i` to `i + 1`.
    pub steps: &'static [&'static str],
    /// The newest version in one go, for an empty database.
    pub latest: &'static str,
}

impl Steps {
    /// The version these steps reach.
    pub fn version(&self) -> i64 {
        self.steps.len() as i64
    }
}

/// What brings a SQLite file from before versions to version 1 (inside
/// the migration's transaction); false when the file holds no such tables.
pub type Legacy<'a> = &'a dyn Fn(&Connection) -> rusqlite::Result<bool>;

/// A store's schema on PostgreSQL: its name in `schema_versions` and steps.
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    pub name: &'static str,
    pub pg: Steps,
}

/// A migration that could not run.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("PostgreSQL: {}", super::pg_detail(.0))]
    Pg(#[from] tokio_postgres::Error),
    #[error("the database's {name} tables are at schema version {at}, newer than this wagate knows ({ours}); upgrade wagate")]
    Newer { name: String, at: i64, ours: i64 },
}

fn sqlite_error(code: std::os::raw::c_int, msg: String) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), Some(msg))
}

/// The schema version of `file` when it must be migrated to `ours`; `None`
/// when it is at `ours`; an error when it is newer (a later wagate wrote it).
pub fn sqlite_version_to_migrate(
    c: &Connection,
    file: &str,
    ours: i64,
) -> rusqlite::Result<Option<i64>> {
    let version: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > ours {
        return Err(sqlite_error(
            rusqlite::ffi::SQLITE_MISMATCH,
            format!(
                "{file} has schema version {version}, newer than this wagate ({ours}); upgrade wagate"
            ),
        ));
    }
    Ok((version < ours).then_some(version))
}

/// Bring the SQLite database `file` to `steps.version()` in one
/// transaction. A file at version 0 is fresh (`latest`), unless `legacy`
/// says it holds tables from before versions existed and brought them to
/// version 1 itself (it runs inside the transaction). Foreign keys are
/// checked once at the end, not while tables are renamed and refilled.
pub fn sqlite(
    c: &Connection,
    file: &str,
    steps: &Steps,
    legacy: Option<Legacy>,
) -> rusqlite::Result<()> {
    let ours = steps.version();
    let Some(at) = sqlite_version_to_migrate(c, file, ours)? else {
        return Ok(());
    };
    c.pragma_update(None, "foreign_keys", "OFF")?;
    let result = (|| {
        c.execute_batch("BEGIN IMMEDIATE")?;
        let mut from = at;
        if at == 0 {
            match legacy {
                Some(f) if f(c)? => from = 1,
                _ => {
                    c.execute_batch(steps.latest)?;
                    from = ours;
                }
            }
        }
        if from < ours {
            tracing::info!("migrating {file} from schema version {from} to {ours}");
        }
        for step in &steps.steps[from as usize..] {
            c.execute_batch(step)?;
        }
        let broken: i64 =
            c.query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |r| {
                r.get(0)
            })?;
        if broken > 0 {
            return Err(sqlite_error(
                rusqlite::ffi::SQLITE_CONSTRAINT,
                format!("{file}: {broken} rows point at no organization after migration"),
            ));
        }
        c.pragma_update(None, "user_version", ours)?;
        c.execute_batch("COMMIT")
    })();
    if result.is_err() {
        let _ = c.execute_batch("ROLLBACK");
    }
    c.pragma_update(None, "foreign_keys", "ON")?;
    result
}

/// An arbitrary, fixed key for `pg_advisory_xact_lock`.
const MIGRATION_LOCK: i64 = 0x7761_6761_7465; // "wagate"

/// What wagate before per-store versions wrote: one counter for all the
/// stores (`schema_version`). Its value is read once to learn each store's
/// version, then set to `RETIRED`, so such a wagate refuses this database.
const OLD_COUNTER: &str = "CREATE TABLE IF NOT EXISTS schema_version (
    id BOOLEAN PRIMARY KEY DEFAULT true CHECK (id),
    version BIGINT NOT NULL)";
const RETIRED: i64 = 1000;

/// Each store's version in a database that only has the old counter:
/// 1 was the cluster's tables; 2 added the gateway's (at version 5, the
/// first release on PostgreSQL); 3 the devices'; 4 the nodes' URLs.
fn adopt(old: i64) -> Vec<(&'static str, i64)> {
    let mut v = Vec::new();
    if old >= 1 {
        v.push(("cluster", if old >= 4 { 2 } else { 1 }));
    }
    if old >= 2 {
        v.push(("gateway", 5));
    }
    if old >= 3 {
        v.push(("devices", 1));
    }
    v
}

/// Bring every schema to its newest version, all in one transaction
/// (PostgreSQL's DDL is transactional) under an advisory lock, so nodes
/// starting together apply each step once. Returns each store's version.
pub async fn pg(
    db: &mut Client,
    schemas: &[Schema],
) -> Result<Vec<(&'static str, i64)>, MigrateError> {
    let tx = db.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(OLD_COUNTER).await?;
    let fresh = tx
        .query_opt("SELECT to_regclass('schema_versions') IS NULL", &[])
        .await?
        .is_some_and(|r| r.get::<_, bool>(0));
    if fresh {
        tx.batch_execute(
            "CREATE TABLE schema_versions (name TEXT PRIMARY KEY, version BIGINT NOT NULL)",
        )
        .await?;
        let old: i64 = tx
            .query_opt("SELECT version FROM schema_version", &[])
            .await?
            .map_or(0, |r| r.get(0));
        if old > 4 {
            return Err(MigrateError::Newer {
                name: "wagate".into(),
                at: old,
                ours: 4,
            });
        }
        for (name, version) in adopt(old) {
            tx.execute(
                "INSERT INTO schema_versions (name, version) VALUES ($1, $2)",
                &[&name, &version],
            )
            .await?;
        }
        if old >= 2 {
            tracing::info!(old, "PostgreSQL: one schema counter became one per store");
        }
    }
    let mut done = Vec::with_capacity(schemas.len());
    for s in schemas {
        let ours = s.pg.version();
        let at: i64 = tx
            .query_opt(
                "SELECT version FROM schema_versions WHERE name = $1",
                &[&s.name],
            )
            .await?
            .map_or(0, |r| r.get(0));
        if at > ours {
            return Err(MigrateError::Newer {
                name: s.name.into(),
                at,
                ours,
            });
        }
        if at == 0 {
            tx.batch_execute(s.pg.latest).await?;
            tracing::info!(schema = s.name, version = ours, "PostgreSQL tables made");
        } else {
            for (i, step) in s.pg.steps.iter().enumerate().skip(at as usize) {
                tx.batch_execute(step).await?;
                tracing::info!(
                    schema = s.name,
                    version = i + 1,
                    "PostgreSQL tables migrated"
                );
            }
        }
        tx.execute(
            "INSERT INTO schema_versions (name, version) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version",
            &[&s.name, &ours],
        )
        .await?;
        done.push((s.name, ours));
    }
    tx.execute(
        "INSERT INTO schema_version (id, version) VALUES (true, $1)
         ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version",
        &[&RETIRED],
    )
    .await?;
    tx.commit().await?;
    Ok(done)
}

/// Each store's version in this PostgreSQL database (none: not migrated).
pub async fn pg_versions(db: &Client) -> Result<Vec<(String, i64)>, MigrateError> {
    let exists = db
        .query_one("SELECT to_regclass('schema_versions') IS NOT NULL", &[])
        .await?
        .get::<_, bool>(0);
    if !exists {
        return Ok(Vec::new());
    }
    let rows = db
        .query(
            "SELECT name, version FROM schema_versions ORDER BY name",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

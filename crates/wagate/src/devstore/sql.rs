//! The device store's statements, backend-neutral: written once with `?N`
//! placeholders in syntax both SQLite and PostgreSQL accept, run by either
//! (`DeviceSql`). SQLite runs them on `devices.db`'s writer and reader;
//! PostgreSQL (several nodes) runs each batch in a transaction that is
//! fenced by the org's lease when the node holds one, so a node that lost
//! an org can no longer change its device state.
//!
//! Values travel as `Val` (integer, text, bytes, null), the four types the
//! device tables use. The SQL must avoid what only one database knows:
//! scalar `MAX(a, b)` (use `CASE`), `INSERT OR …` (use `ON CONFLICT`), and
//! the column `user` unquoted (PostgreSQL reserves it: write `"user"`).

use std::borrow::Cow;

use tokio_postgres::types::ToSql;

use crate::cluster::Held;
use crate::sql::{from_pg, PgRowError};
pub use crate::sql::{to_pg, FromVal, TypeError, Val};
use crate::store::{DbResult, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error(transparent)]
    Sqlite(#[from] StoreError),
    #[error("PostgreSQL: {0}")]
    Pg(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    #[error("organization {org}: this node's lease (epoch {epoch}) is gone; nothing was written")]
    Fenced { org: String, epoch: i64 },
    #[error(transparent)]
    Type(#[from] TypeError),
}

impl From<PgRowError> for SqlError {
    fn from(e: PgRowError) -> SqlError {
        match e {
            PgRowError::Pg(e) => SqlError::Pg(e),
            PgRowError::Type(e) => SqlError::Type(e),
        }
    }
}

/// Rows as values, column by column.
pub type Rows = Vec<Vec<Val>>;

/// A statement and its arguments.
pub type Stmt = (Cow<'static, str>, Vec<Val>);

/// What one statement of a batch did: the rows it changed, and the rows it
/// returned (`… RETURNING`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    pub changed: u64,
    pub rows: Rows,
}

/// A database that runs the device store's statements.
#[async_trait::async_trait]
pub trait DeviceSql: Send + Sync {
    /// The rows one query (a `SELECT`) returns.
    async fn query(&self, sql: Cow<'static, str>, args: Vec<Val>) -> Result<Rows, SqlError>;

    /// Statements run in one transaction, all or nothing; what each did.
    async fn exec(&self, batch: Vec<Stmt>) -> Result<Vec<Done>, SqlError>;
}

/// `devices.db` through its writer (group commit) and reader.
pub struct StoreSql {
    pub db: Store,
}

#[async_trait::async_trait]
impl DeviceSql for StoreSql {
    async fn query(&self, sql: Cow<'static, str>, args: Vec<Val>) -> Result<Rows, SqlError> {
        let rows = self.db.read(move |c| c.query(&sql, args)).await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    async fn exec(&self, batch: Vec<Stmt>) -> Result<Vec<Done>, SqlError> {
        let done = self
            .db
            .write(move |tx| {
                // Several nodes: every device statement names its device
                // (the org's incarnation) as `?1`; only its owner writes.
                if let Some(Val::Int(dev)) = batch.first().and_then(|(_, a)| a.first()) {
                    tx.fence(*dev)?;
                }
                batch
                    .into_iter()
                    .map(|(sql, args)| {
                        tx.run(&sql, &args).map(|(changed, rows)| Done {
                            changed,
                            rows: rows.into_iter().map(|r| r.0).collect(),
                        })
                    })
                    .collect::<DbResult<Vec<_>>>()
            })
            .await?;
        Ok(done)
    }
}

/// The org a PostgreSQL handle writes for, under this node's lease.
#[derive(Debug, Clone)]
pub struct Fence {
    pub node: String,
    pub held: Held,
}

/// The device tables in PostgreSQL. Writes take the connection's lock (a
/// transaction needs the connection to itself); reads share it.
pub struct PgSql {
    pub client: tokio::sync::Mutex<tokio_postgres::Client>,
    /// When set, every batch first checks this node still holds the lease.
    pub fence: Option<Fence>,
}

#[async_trait::async_trait]
impl DeviceSql for PgSql {
    async fn query(&self, sql: Cow<'static, str>, args: Vec<Val>) -> Result<Rows, SqlError> {
        let c = self.client.lock().await;
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|v| v as _).collect();
        let rows = c.query(&to_pg(&sql), &params).await?;
        rows.iter().map(|r| Ok(from_pg(r)?.0)).collect()
    }

    async fn exec(&self, batch: Vec<Stmt>) -> Result<Vec<Done>, SqlError> {
        let mut c = self.client.lock().await;
        let tx = c.transaction().await?;
        if let Some(f) = &self.fence {
            if !crate::cluster::lease::holds(&tx, &f.node, &f.held).await? {
                return Err(SqlError::Fenced {
                    org: f.held.org.clone(),
                    epoch: f.held.epoch,
                });
            }
        }
        let mut done = Vec::with_capacity(batch.len());
        for (sql, args) in &batch {
            let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|v| v as _).collect();
            let st = tx.prepare(&to_pg(sql)).await?;
            if st.columns().is_empty() {
                let changed = tx.execute(&st, &params).await?;
                done.push(Done {
                    changed,
                    rows: Vec::new(),
                });
            } else {
                let rows = tx
                    .query(&st, &params)
                    .await?
                    .iter()
                    .map(|r| Ok(from_pg(r)?.0))
                    .collect::<Result<Rows, SqlError>>()?;
                done.push(Done {
                    changed: rows.len() as u64,
                    rows,
                });
            }
        }
        tx.commit().await?;
        Ok(done)
    }
}

/// The device tables' DDL for PostgreSQL, from the SQLite schema: 64-bit
/// integers, `BYTEA` for blobs, no `WITHOUT ROWID`, `user` quoted.
pub fn pg_schema() -> String {
    super::schema::V1
        .replace(" WITHOUT ROWID", "")
        .replace("INTEGER", "BIGINT")
        .replace("BLOB", "BYTEA")
        .replace(" user TEXT", " \"user\" TEXT")
        .replace("(dev, user)", "(dev, \"user\")")
}

//! The device store's statements, backend-neutral: written once with `?N`
//! placeholders in syntax both SQLite and PostgreSQL accept, run through a
//! `Store` on either (`StoreSql`). Each batch is one write transaction that
//! is fenced by the org's lease when the store has fences (several nodes),
//! so a node that lost an org can no longer change its device state.
//!
//! Values travel as `Val` (integer, text, bytes, null), the four types the
//! device tables use. The SQL must avoid what only one database knows:
//! scalar `MAX(a, b)` (use `CASE`), `INSERT OR …` (use `ON CONFLICT`), and
//! the column `user` unquoted (PostgreSQL reserves it: write `"user"`).

use std::borrow::Cow;

pub use crate::db::{FromVal, TypeError, Val};
use crate::store::{DbResult, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Type(#[from] TypeError),
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

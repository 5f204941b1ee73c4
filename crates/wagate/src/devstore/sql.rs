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
use std::error::Error as StdError;

use bytes::BytesMut;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};

use crate::cluster::Held;
use crate::store::{Store, StoreError};

/// One value in or out of a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

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
    #[error("column {column}: {what}")]
    Type { column: usize, what: String },
}

impl From<i64> for Val {
    fn from(v: i64) -> Val {
        Val::Int(v)
    }
}

impl From<u32> for Val {
    fn from(v: u32) -> Val {
        Val::Int(v.into())
    }
}

impl From<bool> for Val {
    fn from(v: bool) -> Val {
        Val::Int(v.into())
    }
}

impl From<String> for Val {
    fn from(v: String) -> Val {
        Val::Text(v)
    }
}

impl From<&str> for Val {
    fn from(v: &str) -> Val {
        Val::Text(v.to_string())
    }
}

impl From<Vec<u8>> for Val {
    fn from(v: Vec<u8>) -> Val {
        Val::Blob(v)
    }
}

impl From<&[u8]> for Val {
    fn from(v: &[u8]) -> Val {
        Val::Blob(v.to_vec())
    }
}

impl<T: Into<Val>> From<Option<T>> for Val {
    fn from(v: Option<T>) -> Val {
        v.map_or(Val::Null, Into::into)
    }
}

/// A value read back as the Rust type a column holds.
pub trait FromVal: Sized {
    fn from_val(v: Val) -> Result<Self, SqlError>;
}

fn wrong(want: &str, got: &Val) -> SqlError {
    SqlError::Type {
        column: 0,
        what: format!("{want} expected, found {got:?}"),
    }
}

impl FromVal for i64 {
    fn from_val(v: Val) -> Result<i64, SqlError> {
        match v {
            Val::Int(i) => Ok(i),
            other => Err(wrong("an integer", &other)),
        }
    }
}

impl FromVal for String {
    fn from_val(v: Val) -> Result<String, SqlError> {
        match v {
            Val::Text(s) => Ok(s),
            other => Err(wrong("text", &other)),
        }
    }
}

impl FromVal for Vec<u8> {
    fn from_val(v: Val) -> Result<Vec<u8>, SqlError> {
        match v {
            Val::Blob(b) => Ok(b),
            // SQLite hands back what was stored; text stored as bytes reads as bytes.
            Val::Text(s) => Ok(s.into_bytes()),
            other => Err(wrong("bytes", &other)),
        }
    }
}

impl<T: FromVal> FromVal for Option<T> {
    fn from_val(v: Val) -> Result<Option<T>, SqlError> {
        match v {
            Val::Null => Ok(None),
            v => T::from_val(v).map(Some),
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

fn to_sqlite(v: &Val) -> rusqlite::types::Value {
    use rusqlite::types::Value;
    match v {
        Val::Null => Value::Null,
        Val::Int(i) => Value::Integer(*i),
        Val::Text(s) => Value::Text(s.clone()),
        Val::Blob(b) => Value::Blob(b.clone()),
    }
}

fn from_sqlite(v: rusqlite::types::Value, column: usize) -> Result<Val, SqlError> {
    use rusqlite::types::Value;
    Ok(match v {
        Value::Null => Val::Null,
        Value::Integer(i) => Val::Int(i),
        Value::Text(s) => Val::Text(s),
        Value::Blob(b) => Val::Blob(b),
        Value::Real(_) => {
            return Err(SqlError::Type {
                column,
                what: "a real number; the device tables hold none".into(),
            })
        }
    })
}

fn row_from_sqlite(r: Vec<rusqlite::types::Value>) -> Result<Vec<Val>, SqlError> {
    r.into_iter()
        .enumerate()
        .map(|(i, v)| from_sqlite(v, i))
        .collect()
}

/// Every row a statement returns, column by column.
fn sqlite_rows(
    st: &mut rusqlite::CachedStatement<'_>,
    args: &[Val],
) -> rusqlite::Result<Vec<Vec<rusqlite::types::Value>>> {
    let n = st.column_count();
    let params = rusqlite::params_from_iter(args.iter().map(to_sqlite));
    st.query_map(params, |r| {
        (0..n)
            .map(|i| r.get::<_, rusqlite::types::Value>(i))
            .collect::<rusqlite::Result<Vec<_>>>()
    })?
    .collect()
}

/// `devices.db` through its writer (group commit) and reader.
pub struct SqliteSql {
    pub db: Store,
}

#[async_trait::async_trait]
impl DeviceSql for SqliteSql {
    async fn query(&self, sql: Cow<'static, str>, args: Vec<Val>) -> Result<Rows, SqlError> {
        let rows = self
            .db
            .read(move |c| sqlite_rows(&mut c.prepare_cached(&sql)?, &args))
            .await?;
        rows.into_iter().map(row_from_sqlite).collect()
    }

    async fn exec(&self, batch: Vec<Stmt>) -> Result<Vec<Done>, SqlError> {
        let raw = self
            .db
            .write(move |tx| {
                batch
                    .iter()
                    .map(|(sql, args)| {
                        let mut st = tx.prepare_cached(sql)?;
                        if st.column_count() == 0 {
                            let params = rusqlite::params_from_iter(args.iter().map(to_sqlite));
                            return st.execute(params).map(|c| (c as u64, Vec::new()));
                        }
                        let rows = sqlite_rows(&mut st, args)?;
                        Ok((rows.len() as u64, rows))
                    })
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        raw.into_iter()
            .map(|(changed, rows)| {
                Ok(Done {
                    changed,
                    rows: rows
                        .into_iter()
                        .map(row_from_sqlite)
                        .collect::<Result<Rows, SqlError>>()?,
                })
            })
            .collect()
    }
}

impl ToSql for Val {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match self {
            Val::Null => Ok(IsNull::Yes),
            Val::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                _ => Err(format!("an integer given for a {ty} parameter").into()),
            },
            Val::Text(s) => s.to_sql(ty, out),
            Val::Blob(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// `?N` → `$N`; a `?` inside a quoted string is left alone.
pub fn to_pg(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    for ch in sql.chars() {
        match ch {
            '\'' => {
                quoted = !quoted;
                out.push(ch);
            }
            '?' if !quoted => out.push('$'),
            _ => out.push(ch),
        }
    }
    out
}

fn from_pg(row: &tokio_postgres::Row) -> Result<Vec<Val>, SqlError> {
    let bad = |column: usize, ty: &Type| SqlError::Type {
        column,
        what: format!("a {ty} column; the device tables hold integers, text and bytes"),
    };
    (0..row.len())
        .map(|i| {
            let ty = row.columns()[i].type_();
            let v = match *ty {
                Type::INT8 => row.try_get::<_, Option<i64>>(i)?.map(Val::Int),
                Type::INT4 => row
                    .try_get::<_, Option<i32>>(i)?
                    .map(|n| Val::Int(n.into())),
                Type::INT2 => row
                    .try_get::<_, Option<i16>>(i)?
                    .map(|n| Val::Int(n.into())),
                Type::BOOL => row
                    .try_get::<_, Option<bool>>(i)?
                    .map(|b| Val::Int(b.into())),
                Type::TEXT | Type::VARCHAR | Type::NAME => {
                    row.try_get::<_, Option<String>>(i)?.map(Val::Text)
                }
                Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(i)?.map(Val::Blob),
                _ => return Err(bad(i, ty)),
            };
            Ok(v.unwrap_or(Val::Null))
        })
        .collect()
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
        rows.iter().map(from_pg).collect()
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
                    .map(from_pg)
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

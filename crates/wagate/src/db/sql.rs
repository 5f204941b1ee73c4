//! Values that travel between our SQL and either database, SQLite or
//! PostgreSQL: `Val` (integer, text, bytes, null — all the gateway's and the
//! device store's tables hold), how Rust values become one (`ToVal`, the
//! `args!` macro) and come back (`FromVal`), rows of them (`Row`), and the
//! conversions each database needs. Statements are written once with `?N`
//! placeholders; `to_pg` turns them into PostgreSQL's `$N`.

use std::error::Error as StdError;

use bytes::BytesMut;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};

/// One value in or out of a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

/// A value of the wrong kind for the Rust type asked for, or a column that
/// is not there.
#[derive(Debug, Clone, thiserror::Error)]
#[error("column {column}: {what}")]
pub struct TypeError {
    pub column: usize,
    pub what: String,
}

/// A Rust value as a statement argument (by reference, so `args!` takes
/// fields without moving them).
pub trait ToVal {
    fn to_val(&self) -> Val;
}

impl ToVal for Val {
    fn to_val(&self) -> Val {
        self.clone()
    }
}

macro_rules! int_to_val {
    ($($t:ty),*) => {$(
        impl ToVal for $t {
            fn to_val(&self) -> Val {
                Val::Int(*self as i64)
            }
        }
    )*};
}
int_to_val!(i64, i32, u32, u16, u8);

impl ToVal for u64 {
    fn to_val(&self) -> Val {
        Val::Int(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}

impl ToVal for usize {
    fn to_val(&self) -> Val {
        Val::Int(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}

impl ToVal for bool {
    fn to_val(&self) -> Val {
        Val::Int((*self).into())
    }
}

impl ToVal for str {
    fn to_val(&self) -> Val {
        Val::Text(self.to_string())
    }
}

impl ToVal for String {
    fn to_val(&self) -> Val {
        Val::Text(self.clone())
    }
}

impl ToVal for [u8] {
    fn to_val(&self) -> Val {
        Val::Blob(self.to_vec())
    }
}

impl ToVal for Vec<u8> {
    fn to_val(&self) -> Val {
        Val::Blob(self.clone())
    }
}

impl<T: ToVal> ToVal for Option<T> {
    fn to_val(&self) -> Val {
        self.as_ref().map_or(Val::Null, ToVal::to_val)
    }
}

impl<T: ToVal + ?Sized> ToVal for &T {
    fn to_val(&self) -> Val {
        (**self).to_val()
    }
}

/// Statement arguments: `args![a, b]` is `vec![a.to_val(), b.to_val()]`.
#[macro_export]
macro_rules! args {
    () => { ::std::vec::Vec::<$crate::db::Val>::new() };
    ($($e:expr),+ $(,)?) => { vec![$($crate::db::ToVal::to_val(&$e)),+] };
}

impl<T: ToVal + ?Sized> From<&T> for Val {
    fn from(v: &T) -> Val {
        v.to_val()
    }
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

impl From<Vec<u8>> for Val {
    fn from(v: Vec<u8>) -> Val {
        Val::Blob(v)
    }
}

impl<T: Into<Val>> From<Option<T>> for Val {
    fn from(v: Option<T>) -> Val {
        v.map_or(Val::Null, Into::into)
    }
}

/// A value read back as the Rust type a column holds.
pub trait FromVal: Sized {
    fn from_val(v: Val) -> Result<Self, TypeError>;
}

fn wrong(want: &str, got: &Val) -> TypeError {
    TypeError {
        column: 0,
        what: format!("{want} expected, found {got:?}"),
    }
}

impl FromVal for Val {
    fn from_val(v: Val) -> Result<Val, TypeError> {
        Ok(v)
    }
}

impl FromVal for i64 {
    fn from_val(v: Val) -> Result<i64, TypeError> {
        match v {
            Val::Int(i) => Ok(i),
            other => Err(wrong("an integer", &other)),
        }
    }
}

macro_rules! int_from_val {
    ($($t:ty),*) => {$(
        impl FromVal for $t {
            fn from_val(v: Val) -> Result<$t, TypeError> {
                let i = i64::from_val(v)?;
                <$t>::try_from(i).map_err(|_| TypeError {
                    column: 0,
                    what: format!("{i} is out of range for {}", stringify!($t)),
                })
            }
        }
    )*};
}
int_from_val!(i32, u32, u64, usize);

impl FromVal for bool {
    fn from_val(v: Val) -> Result<bool, TypeError> {
        Ok(i64::from_val(v)? != 0)
    }
}

impl FromVal for String {
    fn from_val(v: Val) -> Result<String, TypeError> {
        match v {
            Val::Text(s) => Ok(s),
            other => Err(wrong("text", &other)),
        }
    }
}

impl FromVal for Vec<u8> {
    fn from_val(v: Val) -> Result<Vec<u8>, TypeError> {
        match v {
            Val::Blob(b) => Ok(b),
            // SQLite hands back what was stored; text stored as bytes reads as bytes.
            Val::Text(s) => Ok(s.into_bytes()),
            other => Err(wrong("bytes", &other)),
        }
    }
}

impl<T: FromVal> FromVal for Option<T> {
    fn from_val(v: Val) -> Result<Option<T>, TypeError> {
        match v {
            Val::Null => Ok(None),
            v => T::from_val(v).map(Some),
        }
    }
}

/// An error from either database, or a row that did not read as expected.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL: {}", pg_detail(.0))]
    Pg(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Type(#[from] TypeError),
    #[error("the query returned no row")]
    NoRow,
    #[error("{0}")]
    Invalid(String),
    /// Several nodes: this node does not hold the org's lease (any more),
    /// so the write was refused.
    #[error(
        "organization incarnation {0}: this node does not hold its lease; nothing was written"
    )]
    Fenced(i64),
    /// PostgreSQL cannot be reached: the connection broke and could not be
    /// opened again, or broke inside a transaction.
    #[error("PostgreSQL cannot be reached: {0}")]
    Unavailable(String),
}

pub type DbResult<T> = Result<T, DbError>;

impl From<PgRowError> for DbError {
    fn from(e: PgRowError) -> DbError {
        match e {
            PgRowError::Pg(e) => DbError::Pg(e),
            PgRowError::Type(e) => DbError::Type(e),
        }
    }
}

impl DbError {
    /// A foreign key failed (on our tables: the org the row names is gone).
    pub fn is_foreign_key(&self) -> bool {
        match self {
            DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY
            }
            DbError::Pg(e) => {
                e.code() == Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION)
            }
            _ => false,
        }
    }

    /// The database could not be reached (asking again later may work).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, DbError::Unavailable(_))
    }

    /// A unique constraint failed.
    pub fn is_unique(&self) -> bool {
        match self {
            DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.extended_code,
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            ),
            DbError::Pg(e) => e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION),
            _ => false,
        }
    }
}

/// A PostgreSQL error with the server's own words when it sent some
/// (`tokio_postgres` says only "db error" otherwise).
pub fn pg_detail(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// One row a query returned, column by column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row(pub Vec<Val>);

impl Row {
    /// Column `i` as `T`.
    pub fn get<T: FromVal>(&self, i: usize) -> DbResult<T> {
        let v = self.0.get(i).cloned().ok_or_else(|| TypeError {
            column: i,
            what: format!("no such column (the row has {})", self.0.len()),
        })?;
        T::from_val(v).map_err(|e| DbError::Type(TypeError { column: i, ..e }))
    }
}

// ---- SQLite ----

impl rusqlite::ToSql for Val {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Val::Null => ValueRef::Null,
            Val::Int(i) => ValueRef::Integer(*i),
            Val::Text(s) => ValueRef::Text(s.as_bytes()),
            Val::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

fn from_sqlite(v: rusqlite::types::ValueRef<'_>, column: usize) -> Result<Val, TypeError> {
    use rusqlite::types::ValueRef;
    Ok(match v {
        ValueRef::Null => Val::Null,
        ValueRef::Integer(i) => Val::Int(i),
        ValueRef::Text(t) => Val::Text(String::from_utf8(t.to_vec()).map_err(|_| TypeError {
            column,
            what: "text that is not UTF-8".into(),
        })?),
        ValueRef::Blob(b) => Val::Blob(b.to_vec()),
        ValueRef::Real(_) => {
            return Err(TypeError {
                column,
                what: "a real number; our tables hold none".into(),
            })
        }
    })
}

/// The rows a prepared SQLite statement returns (at most `limit`), as values.
pub fn sqlite_rows(
    st: &mut rusqlite::Statement<'_>,
    args: &[Val],
    limit: Option<usize>,
) -> DbResult<Vec<Row>> {
    let n = st.column_count();
    let mut rows = st.query(rusqlite::params_from_iter(args))?;
    let mut out = Vec::new();
    while limit.is_none_or(|l| out.len() < l) {
        let Some(r) = rows.next()? else { break };
        let row = (0..n)
            .map(|i| Ok(from_sqlite(r.get_ref(i)?, i)?))
            .collect::<DbResult<Vec<_>>>()?;
        out.push(Row(row));
    }
    Ok(out)
}

// ---- PostgreSQL ----

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

/// What went wrong reading a PostgreSQL row.
#[derive(Debug, thiserror::Error)]
pub enum PgRowError {
    #[error(transparent)]
    Pg(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Type(#[from] TypeError),
}

/// A PostgreSQL row as values: integers of any width and booleans read as
/// integers, text as text, `BYTEA` as bytes.
pub fn from_pg(row: &tokio_postgres::Row) -> Result<Row, PgRowError> {
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
                Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR => {
                    row.try_get::<_, Option<String>>(i)?.map(Val::Text)
                }
                Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(i)?.map(Val::Blob),
                _ => {
                    return Err(PgRowError::Type(TypeError {
                        column: i,
                        what: format!("a {ty} column; our tables hold integers, text and bytes"),
                    }))
                }
            };
            Ok(v.unwrap_or(Val::Null))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_dollars_outside_quotes() {
        assert_eq!(
            to_pg("SELECT '?1', x FROM t WHERE a = ?1 AND b = ?12"),
            "SELECT '?1', x FROM t WHERE a = $1 AND b = $12"
        );
    }

    #[test]
    fn args_take_fields_by_reference_and_options_as_null() {
        let s = String::from("a");
        let none: Option<i64> = None;
        let v = args![s, 3i64, none, Some("b"), true];
        assert_eq!(
            v,
            vec![
                Val::Text("a".into()),
                Val::Int(3),
                Val::Null,
                Val::Text("b".into()),
                Val::Int(1)
            ]
        );
        assert_eq!(s, "a");
    }

    #[test]
    fn a_row_names_the_column_it_cannot_read() {
        let r = Row(vec![Val::Int(1), Val::Text("x".into())]);
        assert_eq!(r.get::<i64>(0).ok(), Some(1));
        let column = |e: Option<DbError>| match e {
            Some(DbError::Type(t)) => Some(t.column),
            _ => None,
        };
        assert_eq!(column(r.get::<i64>(1).err()), Some(1));
        assert_eq!(column(r.get::<i64>(2).err()), Some(2));
        assert_eq!(r.get::<Option<String>>(1).ok(), Some(Some("x".into())));
    }
}

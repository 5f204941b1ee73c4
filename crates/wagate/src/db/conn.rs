//! One connection to a store's database, SQLite or PostgreSQL, as the
//! store's code uses it: statements written once with `?N` placeholders
//! (`args!` for their arguments), rows read back as `sql::Row`, and errors of
//! either database as `DbError`. The SQL itself must be what both accept
//! (no `INSERT OR …`: `ON CONFLICT`; no `last_insert_rowid()`: `RETURNING`);
//! where they differ, `Conn::is_pg` picks the statement.
//!
//! PostgreSQL is driven by its async client on a small runtime of the
//! connection's own, so the store's synchronous jobs (the writer thread, and
//! reads on tokio's blocking threads) run unchanged on it.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use tokio_postgres::types::ToSql;

use super::sql::{self, DbError, DbResult, Row, Val};

/// `Ok(None)` for a query that returned no row.
pub trait OptionalExt<T> {
    fn optional(self) -> DbResult<Option<T>>;
}

impl<T> OptionalExt<T> for DbResult<T> {
    fn optional(self) -> DbResult<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(DbError::NoRow) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A PostgreSQL connection driven from synchronous code: it has a small
/// runtime of its own on which its I/O runs, driven by the thread that runs
/// a statement (the writer thread, or one of tokio's blocking threads for
/// reads), so a round trip never hops between threads.
///
/// A connection that broke (PostgreSQL restarted, the backend was
/// terminated) is opened again before the next statement that is not
/// inside a transaction, and a statement that found it broken is tried
/// once more on the new one. Inside a transaction nothing is retried: the
/// transaction fails, and so does every job in it. When the connection
/// cannot be opened again, or breaks inside a transaction, the error is
/// `DbError::Unavailable` (the API's 503 `database_unavailable`).
pub struct PgConn {
    url: String,
    link: RefCell<Link>,
    /// Between `BEGIN` and its `COMMIT` or `ROLLBACK`.
    in_tx: Cell<bool>,
}

/// One open connection and what was prepared on it.
struct Link {
    /// Always `Some` until dropped (taken to shut it down without blocking).
    rt: Option<tokio::runtime::Runtime>,
    client: tokio_postgres::Client,
    prepared: HashMap<String, tokio_postgres::Statement>,
}

impl Drop for Link {
    fn drop(&mut self) {
        // A runtime may not be dropped (which blocks) on an async thread.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// How long a connection attempt may take when the settings give no limit.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

impl Link {
    fn open(url: &str) -> DbResult<Link> {
        let mut config = super::pg::settings(url).map_err(DbError::Invalid)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| DbError::Invalid(format!("cannot start a runtime for PostgreSQL: {e}")))?;
        let (client, connection) = rt.block_on(config.connect(tokio_postgres::NoTls))?;
        rt.spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "PostgreSQL connection ended");
            }
        });
        Ok(Link {
            rt: Some(rt),
            client,
            prepared: HashMap::new(),
        })
    }

    /// Run `f` to completion on this connection's runtime.
    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        match &self.rt {
            Some(rt) => rt.block_on(f),
            None => unreachable!("the runtime is only taken on drop"),
        }
    }

    fn statement(&mut self, sql: &str) -> DbResult<tokio_postgres::Statement> {
        if let Some(st) = self.prepared.get(sql) {
            return Ok(st.clone());
        }
        let st = self.block_on(self.client.prepare(&sql::to_pg(sql)))?;
        self.prepared.insert(sql.to_string(), st.clone());
        Ok(st)
    }

    fn run(&mut self, sql: &str, args: &[Val]) -> DbResult<(u64, Vec<Row>)> {
        let st = self.statement(sql)?;
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|v| v as _).collect();
        if st.columns().is_empty() {
            let n = self.block_on(self.client.execute(&st, &params))?;
            return Ok((n, Vec::new()));
        }
        let rows = self.block_on(self.client.query(&st, &params))?;
        let rows = rows
            .iter()
            .map(sql::from_pg)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((rows.len() as u64, rows))
    }

    fn batch(&mut self, sql: &str) -> DbResult<()> {
        Ok(self.block_on(self.client.batch_execute(sql))?)
    }
}

impl PgConn {
    /// Connect to `url` (a `postgres://` URL or `key=value` settings). Not
    /// from an async task: it blocks (see `connect`).
    pub fn connect_blocking(url: &str) -> DbResult<PgConn> {
        Ok(PgConn {
            url: url.to_string(),
            link: RefCell::new(Link::open(url)?),
            in_tx: Cell::new(false),
        })
    }

    /// `connect_blocking` from async code, on a blocking thread.
    pub async fn connect(url: &str) -> DbResult<PgConn> {
        let url = url.to_string();
        tokio::task::spawn_blocking(move || PgConn::connect_blocking(&url))
            .await
            .map_err(|e| DbError::Invalid(format!("PostgreSQL connect task: {e}")))?
    }

    /// Run `op` on the connection; outside a transaction, open it again
    /// first when it is known to be broken, and once more when `op` found
    /// it broken.
    fn with<T>(&self, mut op: impl FnMut(&mut Link) -> DbResult<T>) -> DbResult<T> {
        let mut link = self.link.borrow_mut();
        if self.in_tx.get() {
            return op(&mut link).map_err(unreachable_if_broken);
        }
        if link.client.is_closed() {
            *link = Link::open(&self.url).map_err(cannot_open)?;
            tracing::info!("PostgreSQL connection opened again");
        }
        match op(&mut link) {
            Err(DbError::Pg(e)) if broken(&e) || link.client.is_closed() => {
                tracing::warn!(error = %e, "PostgreSQL connection broken; opening it again");
                *link = Link::open(&self.url).map_err(cannot_open)?;
                op(&mut link).map_err(unreachable_if_broken)
            }
            other => other,
        }
    }

    fn run(&self, sql: &str, args: &[Val]) -> DbResult<(u64, Vec<Row>)> {
        self.with(|l| l.run(sql, args))
    }

    fn batch(&self, sql: &str) -> DbResult<()> {
        let result = self.with(|l| l.batch(sql));
        match sql {
            "BEGIN" => self.in_tx.set(result.is_ok()),
            "COMMIT" | "ROLLBACK" => self.in_tx.set(false),
            _ => {}
        }
        result
    }
}

/// Whether `e` says the connection itself is gone: closed, or the server
/// ended the session (`57P01` terminated by an administrator, `57P02` crash,
/// `57P03` not accepting connections yet, class `08` connection errors).
/// The statement that got it did not take effect, so it may be run again.
fn broken(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    e.code().is_some_and(|c| {
        let c = c.code();
        c.starts_with("08") || matches!(c, "57P01" | "57P02" | "57P03")
    })
}

/// A connection that cannot be opened again (refused, timed out, the login
/// refused): PostgreSQL cannot be reached, whatever the reason.
fn cannot_open(e: DbError) -> DbError {
    match e {
        DbError::Pg(pg) => DbError::Unavailable(sql::pg_detail(&pg)),
        other => DbError::Unavailable(other.to_string()),
    }
}

/// `e` as `DbError::Unavailable` when it says PostgreSQL cannot be reached
/// (the connection is gone, or a new one could not be opened).
fn unreachable_if_broken(e: DbError) -> DbError {
    match e {
        DbError::Pg(pg) if broken(&pg) || pg.as_db_error().is_none() && is_io(&pg) => {
            DbError::Unavailable(sql::pg_detail(&pg))
        }
        other => other,
    }
}

/// Whether `e` came from the network (a reset connection), not from a
/// statement, a type or the settings.
fn is_io(e: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// A connection to either database.
pub enum Conn {
    Sqlite(rusqlite::Connection),
    Pg(Box<PgConn>),
}

fn sqlite_run(
    c: &rusqlite::Connection,
    sql: &str,
    args: &[Val],
    limit: Option<usize>,
) -> DbResult<(u64, Vec<Row>)> {
    let mut st = c.prepare_cached(sql)?;
    if st.column_count() == 0 {
        return Ok((
            st.execute(rusqlite::params_from_iter(args))? as u64,
            Vec::new(),
        ));
    }
    let rows = sql::sqlite_rows(&mut st, args, limit)?;
    Ok((rows.len() as u64, rows))
}

impl Conn {
    pub fn is_pg(&self) -> bool {
        matches!(self, Conn::Pg(_))
    }

    /// The SQLite connection, for what only SQLite has (pragmas, backup).
    pub fn sqlite(&self) -> Option<&rusqlite::Connection> {
        match self {
            Conn::Sqlite(c) => Some(c),
            Conn::Pg(_) => None,
        }
    }

    /// Run one statement: the rows it changed (or returned) and its rows.
    pub fn run(&self, sql: &str, args: &[Val]) -> DbResult<(u64, Vec<Row>)> {
        match self {
            Conn::Sqlite(c) => sqlite_run(c, sql, args, None),
            Conn::Pg(c) => c.run(sql, args),
        }
    }

    /// Run one statement; the number of rows it changed.
    pub fn execute(&self, sql: &str, args: Vec<Val>) -> DbResult<usize> {
        self.run(sql, &args).map(|(n, _)| n as usize)
    }

    /// Every row of a query.
    pub fn query(&self, sql: &str, args: Vec<Val>) -> DbResult<Vec<Row>> {
        self.run(sql, &args).map(|(_, rows)| rows)
    }

    /// The first row of a query read by `f`, or `DbError::NoRow`.
    pub fn query_row<T>(
        &self,
        sql: &str,
        args: Vec<Val>,
        f: impl FnOnce(&Row) -> DbResult<T>,
    ) -> DbResult<T> {
        // SQLite stops at the first row; PostgreSQL sends them all anyway.
        let rows = match self {
            Conn::Sqlite(c) => sqlite_run(c, sql, &args, Some(1))?.1,
            Conn::Pg(c) => c.run(sql, &args)?.1,
        };
        let first = rows.first().ok_or(DbError::NoRow)?;
        f(first)
    }

    /// Every row of a query, each read by `f`.
    pub fn query_map<T>(
        &self,
        sql: &str,
        args: Vec<Val>,
        mut f: impl FnMut(&Row) -> DbResult<T>,
    ) -> DbResult<impl Iterator<Item = DbResult<T>>> {
        let rows = self.query(sql, args)?;
        Ok(rows.into_iter().map(move |r| f(&r)))
    }

    /// Run an `INSERT` (with no `RETURNING`) and give the `column` of the
    /// row it made (an identity or `INTEGER PRIMARY KEY`), or `None` when it
    /// made none (`ON CONFLICT … DO NOTHING`). SQLite reads its last rowid,
    /// cheaper than its `RETURNING`; PostgreSQL returns the column.
    pub fn insert_id(&self, sql: &str, args: Vec<Val>, column: &str) -> DbResult<Option<i64>> {
        match self {
            Conn::Sqlite(c) => {
                let (n, _) = sqlite_run(c, sql, &args, None)?;
                Ok((n > 0).then(|| c.last_insert_rowid()))
            }
            Conn::Pg(c) => {
                let (_, rows) = c.run(&format!("{sql} RETURNING {column}"), &args)?;
                rows.first().map(|r| r.get(0)).transpose()
            }
        }
    }

    /// Statements with no arguments, separated by `;`.
    pub fn execute_batch(&self, sql: &str) -> DbResult<()> {
        match self {
            Conn::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Conn::Pg(c) => c.batch(sql),
        }
    }

    /// Open the write transaction (on SQLite, taking the write lock at once).
    pub fn begin(&self) -> DbResult<()> {
        self.execute_batch(if self.is_pg() {
            "BEGIN"
        } else {
            "BEGIN IMMEDIATE"
        })
    }
}

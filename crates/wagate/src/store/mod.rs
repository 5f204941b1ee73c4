//! The gateway's own SQLite database (`data/wagate.db`): organizations, the
//! outbox, received messages, the event log and dashboard sign-ins. It owns
//! the schema (`schema.rs`, versioned migrations) and the two connections: one
//! writer thread that commits every pending write in one transaction (group
//! commit, one fsync for many accepted sends) and one reader connection.
//!
//! Events are written inside the transaction of the change they report
//! (`Tx::record_event`, through `events::emit`) and announced to live subscribers by the writer thread after
//! the commit, in sequence order, so an event is never lost and never seen
//! before it is durable. It knows nothing of WhatsApp.

pub mod contacts;
pub mod events;
pub mod inbound;
pub mod limits;
pub mod messages;
pub mod orgs;
pub mod policies;
mod schema;
pub mod signins;
#[cfg(test)]
mod tests;
pub mod webhooks;

pub use crate::db::{Conn, DbError, DbResult, OptionalExt};
pub use events::EventRow;
pub use messages::{MessageRow, MessageStatus, NewMessage};
pub use orgs::OrgRow;
pub use schema::{SCHEMA, SQLITE, VERSION};

use parking_lot::{Mutex, RwLock};
use std::ops::Deref;
use std::path::Path;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::{broadcast, oneshot};

/// Most jobs committed in one transaction.
const MAX_GROUP: usize = 1024;
/// Committed events buffered for live subscribers; a subscriber further
/// behind is told it lagged and replays from the table.
pub(crate) const LIVE_EVENTS: usize = 4096;

/// PostgreSQL: the channel on which each commit that recorded events is
/// announced, so every node reads them back (`node.rs`'s feed).
pub const EVENTS_CHANNEL: &str = "wagate_events";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sql(#[from] DbError),
    #[error("the write was not committed (database writer unavailable)")]
    Closed,
    #[error("commit failed: {0}")]
    Commit(String),
    #[error("the database cannot be reached: {0}")]
    Unavailable(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError::Sql(DbError::Sqlite(e))
    }
}

impl StoreError {
    /// A write refused because the organization it names is gone (a foreign
    /// key to `orgs` failed): the org was deleted while the write was on its way.
    pub fn is_org_gone(&self) -> bool {
        matches!(self, StoreError::Sql(e) if e.is_foreign_key())
    }

    /// The database could not be reached (PostgreSQL down or cut off):
    /// nothing is wrong with the request, and asking again later may work.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Unavailable(_) => true,
            StoreError::Sql(e) => e.is_unavailable(),
            _ => false,
        }
    }
}

/// A write job's view of the open transaction: the connection (through
/// `Deref`) plus the events it records, which are announced only if the job
/// and the transaction both succeed.
pub struct Tx<'c> {
    conn: &'c Conn,
    events: Vec<EventRow>,
    fences: Option<&'c Arc<dyn Fences>>,
}

/// Several nodes on one PostgreSQL: which orgs this node may write for now.
/// Set on the gateway's stores once the node runs its lease loop; without
/// it (SQLite, or tests) every write is this process's to make.
pub trait Fences: Send + Sync {
    /// Inside the write transaction on `conn`: `Err(DbError::Fenced)` unless
    /// this node holds org incarnation `inc`'s lease (`cluster::lease::fence`).
    fn fence(&self, conn: &Conn, inc: i64) -> DbResult<()>;

    /// Whether this node may act for `inc` now by its own clock (no
    /// database round trip): the last look before a send.
    fn may_act(&self, inc: i64) -> bool;
}

impl Deref for Tx<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn
    }
}

impl Tx<'_> {
    /// Record an event of organization incarnation `inc` in this
    /// transaction, as `kind` and its JSON data. The gateway's events are
    /// written through `events::emit`, which gives both from a typed event.
    pub fn record_event(
        &mut self,
        inc: i64,
        org: &str,
        kind: &str,
        data: serde_json::Value,
    ) -> DbResult<i64> {
        let ts_ms = now_ms();
        let seq = events::insert(self.conn, inc, kind, &data, ts_ms)?;
        // Its webhooks' deliveries commit with it, or not at all.
        webhooks::fan_out(self.conn, inc, kind, seq, ts_ms)?;
        self.events.push(EventRow {
            seq,
            inc,
            org: org.to_string(),
            kind: kind.to_string(),
            data,
            ts_ms,
        });
        Ok(seq)
    }

    /// Refuse the job unless this node holds org incarnation `inc`'s lease
    /// (the one fence, `cluster::lease::FENCE`, through `Fences`). Without
    /// fences (one gateway) it checks nothing.
    pub fn fence(&self, inc: i64) -> DbResult<()> {
        match self.fences {
            Some(f) => f.fence(self.conn, inc),
            None => Ok(()),
        }
    }

    /// Run `f` in a savepoint of its own: if it fails, its writes and its
    /// events are undone and the rest of the transaction goes on.
    pub fn attempt<T>(&mut self, f: impl FnOnce(&mut Tx) -> DbResult<T>) -> DbResult<T> {
        self.conn.execute_batch("SAVEPOINT item")?;
        let mark = self.events.len();
        let result = f(self);
        if result.is_err() {
            let _ = self.conn.execute_batch("ROLLBACK TO item");
            self.events.truncate(mark);
        }
        let _ = self.conn.execute_batch("RELEASE item");
        result
    }
}

/// Why a group's transaction did not commit, told to each of its jobs.
#[derive(Clone, Debug)]
struct NotCommitted {
    why: String,
    /// The database could not be reached.
    unavailable: bool,
}

impl NotCommitted {
    fn new(context: &str, e: &DbError) -> NotCommitted {
        NotCommitted {
            why: match e {
                DbError::Unavailable(why) => format!("{context}: {why}"),
                e => format!("{context}: {e}"),
            },
            unavailable: e.is_unavailable(),
        }
    }

    fn into_error(self) -> StoreError {
        if self.unavailable {
            StoreError::Unavailable(self.why)
        } else {
            StoreError::Commit(self.why)
        }
    }
}

type Completion = Box<dyn FnOnce(Result<(), NotCommitted>) + Send>;
/// A write job: run in the open transaction (`Some`), or told that none
/// could begin (`None`), after which its completion gets the reason.
type JobFn = Box<dyn FnOnce(Option<&mut Tx>) -> (bool, Completion) + Send>;

enum Job {
    Write(JobFn),
    /// Finish the jobs queued before this one, then stop the writer.
    Close,
}

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    writer: mpsc::Sender<Job>,
    reader: Arc<Mutex<Conn>>,
    live: broadcast::Sender<EventRow>,
    thread: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
    /// Several nodes: the leases writes are fenced by (`Tx::fence`).
    fences: Arc<RwLock<Option<Arc<dyn Fences>>>>,
    /// Several nodes: committed events are announced by the node's event
    /// reader (`cluster/feed.rs`), in the database's order, not by the writer.
    announce: Arc<std::sync::atomic::AtomicBool>,
}

/// What a database file holds: its schema, and how much a commit survives.
pub struct Kind {
    /// The writer thread's name.
    pub writer: &'static str,
    pub migrate: fn(&Connection) -> rusqlite::Result<()>,
    /// `PRAGMA synchronous`: `FULL` survives power loss; `NORMAL` (in WAL)
    /// survives a killed process, with no fsync per commit.
    pub synchronous: &'static str,
    /// Page cache per connection, KiB.
    pub cache_kib: u32,
    /// Committed events kept for live subscribers (1 for a database
    /// without events).
    pub live_events: usize,
}

/// The gateway's own database: FULL, since an accepted send must survive
/// power loss; group commit keeps the cost at one fsync per batch.
pub const GATEWAY: Kind = Kind {
    writer: "wagate-db-writer",
    migrate: schema::migrate,
    synchronous: "FULL",
    cache_kib: 2048,
    live_events: LIVE_EVENTS,
};

pub(crate) fn open_conn(path: &Path, kind: &Kind) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", kind.synchronous)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "cache_size", -(kind.cache_kib as i64))?;
    Ok(conn)
}

impl Store {
    /// Open (creating or migrating if needed) the gateway database at
    /// `path` and start the writer thread.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_kind(path, &GATEWAY)
    }

    /// Open a database of `kind` at `path` and start its writer thread.
    pub fn open_kind(path: &Path, kind: &Kind) -> Result<Store, StoreError> {
        let writer_conn = open_conn(path, kind)?;
        (kind.migrate)(&writer_conn)?;
        let reader = Conn::Sqlite(open_conn(path, kind)?);
        Store::start(Conn::Sqlite(writer_conn), reader, kind)
    }

    /// Open the tables of `kind` in PostgreSQL at `url`: two connections,
    /// the writer's and the reader's. The schema must be in place
    /// (`cluster::migrate`).
    pub async fn open_pg(url: &str, kind: &Kind) -> Result<Store, StoreError> {
        let writer = crate::db::PgConn::connect(url).await?;
        let reader = crate::db::PgConn::connect(url).await?;
        Store::start(Conn::Pg(Box::new(writer)), Conn::Pg(Box::new(reader)), kind)
    }

    /// Start the writer thread on `writer`; reads go to `reader`.
    pub(crate) fn start(writer_conn: Conn, reader: Conn, kind: &Kind) -> Result<Store, StoreError> {
        let (tx, rx) = mpsc::channel::<Job>();
        let (live, _) = broadcast::channel(kind.live_events.max(1));
        let out = live.clone();
        let fences: Arc<RwLock<Option<Arc<dyn Fences>>>> = Arc::default();
        let announce = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (f, a) = (fences.clone(), announce.clone());
        let thread = std::thread::Builder::new()
            .name(kind.writer.into())
            .spawn(move || writer_loop(writer_conn, rx, out, f, a))
            .map_err(|e| StoreError::Commit(format!("cannot start writer thread: {e}")))?;
        Ok(Store {
            writer: tx,
            reader: Arc::new(Mutex::new(reader)),
            live,
            thread: Arc::new(Mutex::new(Some(thread))),
            fences,
            announce,
        })
    }

    /// Fence this store's writes by the node's leases (several nodes).
    pub fn set_fences(&self, fences: Arc<dyn Fences>) {
        *self.fences.write() = Some(fences);
    }

    /// Leave announcing committed events to the caller (`announce`), which
    /// reads them back in the database's order (several nodes write events).
    pub fn announce_externally(&self) {
        self.announce
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// Announce an event read back from the database to live subscribers.
    pub fn announce(&self, e: EventRow) {
        let _ = self.live.send(e);
    }

    /// Whether this node may act for org incarnation `inc` now, by its own
    /// clock (always, without fences). The last look before a send.
    pub fn may_act(&self, inc: i64) -> bool {
        match &*self.fences.read() {
            Some(f) => f.may_act(inc),
            None => true,
        }
    }

    fn job<T, F>(f: F, tx: oneshot::Sender<Result<T, StoreError>>) -> Job
    where
        T: Send + 'static,
        F: FnOnce(&mut Tx) -> DbResult<T> + Send + 'static,
    {
        Job::Write(Box::new(move |t| {
            let result = t.map(f);
            let ok = matches!(result, Some(Ok(_)));
            let done: Completion = Box::new(move |commit| {
                let out = match (result, commit) {
                    (Some(Ok(v)), Ok(())) => Ok(v),
                    (Some(Err(e)), _) => Err(StoreError::Sql(e)),
                    (_, Err(e)) => Err(e.into_error()),
                    (None, Ok(())) => Err(StoreError::Commit("the write was not run".into())),
                };
                let _ = tx.send(out);
            });
            (ok, done)
        }))
    }

    /// Run `f` inside the next group transaction; resolves once it is committed.
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tx) -> DbResult<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.writer
            .send(Store::job(f, tx))
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Queue `f` for the next group transaction without waiting for it (for
    /// callers that must not block on the database, such as the session
    /// supervisors). Jobs from one caller commit in the order submitted; a
    /// failure is logged.
    pub fn submit<F>(&self, what: &'static str, f: F)
    where
        F: FnOnce(&mut Tx) -> DbResult<()> + Send + 'static,
    {
        let job = Job::Write(Box::new(move |t| {
            let Some(t) = t else {
                let done: Completion = Box::new(move |commit| {
                    let why = commit.err().map(|e| e.why).unwrap_or_default();
                    tracing::error!(what, error = %why, "write not run");
                });
                return (false, done);
            };
            let result = f(t);
            let ok = result.is_ok();
            let done: Completion = Box::new(move |commit| match (result, commit) {
                (Ok(()), Ok(())) => {}
                (Err(DbError::Fenced(inc)), _) => {
                    tracing::debug!(what, inc, "write dropped: another node owns the org");
                }
                (Err(e), _) => {
                    let e = StoreError::Sql(e);
                    if e.is_org_gone() {
                        tracing::debug!(what, "write dropped: its organization was deleted");
                    } else {
                        tracing::error!(what, error = %e, "write failed");
                    }
                }
                (Ok(()), Err(e)) => tracing::error!(what, error = %e.why, "commit failed"),
            });
            (ok, done)
        }));
        if self.writer.send(job).is_err() {
            tracing::warn!(what, "write dropped: the database writer has stopped");
        }
    }

    /// Run a read-only query on the reader connection, off the async threads.
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Conn) -> DbResult<T> + Send + 'static,
    {
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || {
            let conn = reader.lock();
            f(&conn).map_err(StoreError::Sql)
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }

    /// Committed events, in sequence order, as they are committed.
    pub fn subscribe(&self) -> broadcast::Receiver<EventRow> {
        self.live.subscribe()
    }

    /// Commit what is queued, stop the writer and wait for it (at most
    /// `within`). Later writes fail with `Closed`.
    pub async fn close(&self, within: Duration) -> bool {
        let _ = self.writer.send(Job::Close);
        let handle = self.thread.lock().take();
        let Some(handle) = handle else {
            return true;
        };
        let joined = tokio::task::spawn_blocking(move || handle.join());
        matches!(tokio::time::timeout(within, joined).await, Ok(Ok(Ok(()))))
    }
}

fn writer_loop(
    conn: Conn,
    rx: mpsc::Receiver<Job>,
    live: broadcast::Sender<EventRow>,
    fences: Arc<RwLock<Option<Arc<dyn Fences>>>>,
    announce: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut closing = false;
    while !closing {
        let Ok(first) = rx.recv() else { break };
        let mut jobs = Vec::new();
        match first {
            Job::Write(j) => jobs.push(j),
            Job::Close => break,
        }
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(Job::Write(j)) => jobs.push(j),
                Ok(Job::Close) => {
                    closing = true;
                    break;
                }
                Err(_) => break,
            }
        }
        let f = fences.read().clone();
        let live = announce
            .load(std::sync::atomic::Ordering::SeqCst)
            .then_some(&live);
        commit_group(&conn, jobs, live, f.as_ref());
    }
    tracing::debug!("database writer stopped");
}

/// One transaction for `jobs`: each job in its own savepoint, so a failed job
/// rolls back alone; events are announced after the commit, in order.
fn commit_group(
    conn: &Conn,
    jobs: Vec<JobFn>,
    live: Option<&broadcast::Sender<EventRow>>,
    fences: Option<&Arc<dyn Fences>>,
) {
    if let Err(e) = conn.begin() {
        // Nothing runs outside a transaction: each caller is told its write
        // was not committed, and why; the writer goes on with the next jobs.
        tracing::error!(error = %e, jobs = jobs.len(), "cannot begin a write transaction");
        let why = NotCommitted::new("cannot begin a transaction", &e);
        for job in jobs {
            let (_, done) = job(None);
            done(Err(why.clone()));
        }
        return;
    }
    let mut completions = Vec::with_capacity(jobs.len());
    let mut announced = Vec::new();
    for job in jobs {
        let _ = conn.execute_batch("SAVEPOINT job");
        let mut tx = Tx {
            conn,
            events: Vec::new(),
            fences,
        };
        let (ok, done) = job(Some(&mut tx));
        if ok {
            announced.append(&mut tx.events);
        } else {
            let _ = conn.execute_batch("ROLLBACK TO job");
        }
        let _ = conn.execute_batch("RELEASE job");
        completions.push(done);
    }
    if !announced.is_empty() && conn.is_pg() {
        // Every node's event reader looks now (delivered at the commit).
        let _ = conn.execute_batch(&format!("NOTIFY {EVENTS_CHANNEL}"));
    }
    let commit = conn
        .execute_batch("COMMIT")
        .map_err(|e| NotCommitted::new("COMMIT", &e));
    if commit.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    } else if let Some(live) = live {
        for e in announced {
            // No subscriber is fine; the event is in the table.
            let _ = live.send(e);
        }
    }
    for done in completions {
        done(commit.clone());
    }
}

#[cfg(test)]
/// A fresh store: SQLite in a temporary directory, or, when
/// `WAGATE_STORE_TEST_PG` names a PostgreSQL server (key=value settings
/// without `dbname`), a new database on it, so these tests can be run on
/// either backend.
pub(crate) async fn test_store() -> (tempfile::TempDir, Store) {
    let d = tempfile::tempdir().unwrap();
    if let Ok(base) = std::env::var("WAGATE_STORE_TEST_PG") {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "store_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let admin = crate::db::pg::connect(&format!("{base} dbname=postgres"))
            .await
            .unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let url = format!("{base} dbname={name}");
        let mut c = crate::db::pg::connect(&url).await.unwrap();
        crate::db::migrate::pg(&mut c, &[SCHEMA]).await.unwrap();
        return (d, Store::open_pg(&url, &GATEWAY).await.unwrap());
    }
    let s = Store::open(&d.path().join("wagate.db")).unwrap();
    (d, s)
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

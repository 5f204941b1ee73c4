//! The gateway's own SQLite database (`data/wagate.db`): organizations, the
//! outbox and the event log. It owns the schema and the two connections: one
//! writer thread that commits every pending write in one transaction (group
//! commit, one fsync for many accepted sends) and one reader connection.
//! It knows nothing of WhatsApp; the library's per-org state lives elsewhere.

pub mod events;
pub mod inbound;
pub mod messages;
pub mod orgs;

pub use events::EventRow;
pub use messages::{MessageRow, MessageStatus, NewMessage};
pub use orgs::OrgRow;

use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};

use rusqlite::Connection;
use tokio::sync::oneshot;

/// Most jobs committed in one transaction.
const MAX_GROUP: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("the write was not committed (database writer unavailable)")]
    Closed,
    #[error("commit failed: {0}")]
    Commit(String),
}

type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> (bool, Completion) + Send>;

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    writer: mpsc::Sender<Job>,
    reader: Arc<Mutex<Connection>>,
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS orgs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    default_cc TEXT,
    token_hash TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    org TEXT NOT NULL,
    phone TEXT NOT NULL,
    text TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    wa_id TEXT NOT NULL,
    idem_key TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS messages_idem ON messages(org, idem_key) WHERE idem_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_org_status ON messages(org, status, seq);
CREATE INDEX IF NOT EXISTS messages_wa_id ON messages(org, wa_id);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    org TEXT NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    ts_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_org ON events(org, seq);
CREATE TABLE IF NOT EXISTS inbound (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    org TEXT NOT NULL,
    wa_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    text TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    UNIQUE(org, wa_id)
);
"#;

fn open_conn(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a commit survives power loss, not only a killed process. Group
    // commit keeps the cost at one fsync per batch.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

impl Store {
    /// Open (creating if needed) the database at `path` and start the writer thread.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let writer_conn = open_conn(path)?;
        writer_conn.execute_batch(SCHEMA)?;
        let reader = open_conn(path)?;
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("wagate-db-writer".into())
            .spawn(move || writer_loop(writer_conn, rx))
            .map_err(|e| StoreError::Commit(format!("cannot start writer thread: {e}")))?;
        Ok(Store {
            writer: tx,
            reader: Arc::new(Mutex::new(reader)),
        })
    }

    /// Run `f` inside the next group transaction; resolves once it is committed.
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = f(conn);
            let ok = result.is_ok();
            let done: Completion = Box::new(move |commit| {
                let out = match (result, commit) {
                    (Ok(v), Ok(())) => Ok(v),
                    (Err(e), _) => Err(StoreError::Sql(e)),
                    (Ok(_), Err(e)) => Err(StoreError::Commit(e)),
                };
                let _ = tx.send(out);
            });
            (ok, done)
        });
        self.writer.send(job).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Run a read-only query on the reader connection, off the async threads.
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || {
            let conn = reader.lock().unwrap_or_else(|p| p.into_inner());
            f(&conn).map_err(StoreError::Sql)
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }
}

fn writer_loop(conn: Connection, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            // Nothing runs outside a transaction: dropping the jobs tells each
            // caller its write was not committed.
            tracing::error!(error = %e, jobs = jobs.len(), "cannot begin a write transaction");
            continue;
        }
        let mut completions = Vec::with_capacity(jobs.len());
        for job in jobs {
            let _ = conn.execute_batch("SAVEPOINT job");
            let (ok, done) = job(&conn);
            if !ok {
                let _ = conn.execute_batch("ROLLBACK TO job");
            }
            let _ = conn.execute_batch("RELEASE job");
            completions.push(done);
        }
        let commit = conn.execute_batch("COMMIT").map_err(|e| e.to_string());
        if commit.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for done in completions {
            done(commit.clone());
        }
    }
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

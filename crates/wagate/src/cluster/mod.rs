//! Several gateways on one PostgreSQL: the connection, the cluster's schema
//! (versioned migrations), node membership (heartbeats, draining), who owns
//! which organization (`lease.rs`) and each node's loop that keeps its
//! leases and tells the gateway what it gained and lost (`owner.rs`), and
//! waking an org's owner from any node (`wake.rs`). No
//! coordinator of our own: the database's row locks and clock decide.

pub mod admin;
pub mod identity;
pub mod lease;
pub mod node;
pub mod owner;
pub mod ownership;
pub mod wake;

use std::time::Duration;

use tokio_postgres::{Client, NoTls};

pub use lease::{Fenced, Held, Leases, Timing};
pub use owner::{Change, Lost, Owner};

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("PostgreSQL: {}", crate::sql::pg_detail(.0))]
    Db(#[from] tokio_postgres::Error),
    #[error("cluster settings: {0}")]
    Config(String),
    #[error("the connection to PostgreSQL closed")]
    Disconnected,
    #[error("this database has no wagate tables yet: start a gateway with --database on it first")]
    NoSchema,
}

/// The `application_name` every connection of this process gives
/// PostgreSQL (`wagate/<node>/<instance>`), once the gateway set it: a
/// restarted node sees whether a process under its id still has one open.
static APPLICATION_NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Name this process's connections after `node` and a random instance.
pub fn name_connections(node: &str) {
    let instance = uuid::Uuid::new_v4().simple().to_string();
    let mut name = format!("wagate/{node}/{}", &instance[..12]);
    // PostgreSQL keeps 63 bytes of it.
    while name.len() > 63 {
        name.pop();
    }
    let _ = APPLICATION_NAME.set(name);
}

/// This process's connection name, if set.
pub fn application_name() -> Option<&'static str> {
    APPLICATION_NAME.get().map(String::as_str)
}

/// `url` as settings, with this process's connection name.
pub fn settings(url: &str) -> Result<tokio_postgres::Config, String> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| format!("PostgreSQL settings: {e}"))?;
    if let Some(name) = application_name() {
        config.application_name(name);
    }
    Ok(config)
}

/// Open a connection; its I/O runs on a task of its own, which logs and
/// ends when the connection breaks.
pub async fn connect(url: &str) -> Result<Client, ClusterError> {
    let (client, conn) = settings(url)
        .map_err(ClusterError::Config)?
        .connect(NoTls)
        .await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::warn!(error = %e, "PostgreSQL connection closed");
        }
    });
    Ok(client)
}

/// The cluster's schema, one version per step: nodes and leases, then the
/// gateway's tables, then the WhatsApp client's device tables.
fn migrations() -> Vec<String> {
    vec![
        "CREATE TABLE nodes (
             id TEXT PRIMARY KEY,
             started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
             heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now(),
             draining BOOLEAN NOT NULL DEFAULT false
         );
         CREATE TABLE org_leases (
             org TEXT PRIMARY KEY,
             owner TEXT,
             epoch BIGINT NOT NULL,
             expires_at TIMESTAMPTZ NOT NULL
         );
         CREATE INDEX org_leases_owner ON org_leases (owner);"
            .to_string(),
        crate::store::schema_pg(),
        crate::devstore::sql::pg_schema(),
        // Where each node's HTTP API is reached (forwarded link actions).
        "ALTER TABLE nodes ADD COLUMN url TEXT;".to_string(),
    ]
}

/// The schema version this wagate migrates PostgreSQL to.
pub fn schema_version() -> i64 {
    migrations().len() as i64
}

/// An arbitrary, fixed key for `pg_advisory_xact_lock`.
const MIGRATION_LOCK: i64 = 0x7761_6761_7465; // "wagate"

/// Apply the migrations this database has not seen, all in one
/// transaction (PostgreSQL's DDL is transactional) under an advisory lock,
/// so nodes starting together apply each step once. Returns the version.
pub async fn migrate(db: &mut Client) -> Result<i64, ClusterError> {
    let tx = db.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_version (
             id BOOLEAN PRIMARY KEY DEFAULT true CHECK (id),
             version BIGINT NOT NULL)",
    )
    .await?;
    let at: i64 = tx
        .query_opt("SELECT version FROM schema_version", &[])
        .await?
        .map_or(0, |r| r.get(0));
    let steps = migrations();
    let latest = steps.len() as i64;
    if at > latest {
        return Err(ClusterError::Config(format!(
            "the database is at schema version {at}, newer than this wagate knows ({latest}); upgrade wagate"
        )));
    }
    for (i, step) in steps.iter().enumerate().skip(at as usize) {
        tx.batch_execute(step).await?;
        tracing::info!(version = i + 1, "cluster schema migrated");
    }
    tx.execute(
        "INSERT INTO schema_version (id, version) VALUES (true, $1)
         ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version",
        &[&latest],
    )
    .await?;
    tx.commit().await?;
    Ok(latest)
}

/// Node membership: each node writes a heartbeat; a node is live while
/// its last one is younger than `node_ttl` and it is not draining (or
/// every live node is draining, see `live`).
pub struct Membership {
    pub node: String,
    pub node_ttl: Duration,
    /// Where the node's HTTP API is reached (none: not advertised).
    pub url: Option<String>,
}

impl Membership {
    /// Say this node is alive (and, with `draining`, that it is being
    /// drained). Returns whether it is draining: asked here, or by an
    /// operator in the database (`wagate node drain`).
    pub async fn heartbeat(&self, db: &Client, draining: bool) -> Result<bool, ClusterError> {
        let row = db
            .query_one(
                "INSERT INTO nodes (id, draining, url) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(),
                     draining = nodes.draining OR EXCLUDED.draining,
                     url = COALESCE(EXCLUDED.url, nodes.url)
                 RETURNING draining",
                &[&self.node, &draining, &self.url],
            )
            .await?;
        Ok(row.get(0))
    }

    /// The ids, sorted, of the nodes that share the orgs: those heartbeating
    /// and not draining. When every heartbeating node is draining, they all
    /// share them still: a drain moves orgs to other nodes, and with none
    /// to take them the orgs stay linked where they are rather than on no
    /// node at all.
    pub async fn live(&self, db: &Client) -> Result<Vec<String>, ClusterError> {
        let rows = db
            .query(
                "SELECT id, draining FROM nodes
                 WHERE heartbeat_at > now() - make_interval(secs => $1::double precision / 1000)
                 ORDER BY id",
                &[&(self.node_ttl.as_millis() as f64)],
            )
            .await?;
        let beating: Vec<(String, bool)> = rows.into_iter().map(|r| (r.get(0), r.get(1))).collect();
        let serving: Vec<String> = beating
            .iter()
            .filter(|(_, draining)| !draining)
            .map(|(id, _)| id.clone())
            .collect();
        if serving.is_empty() {
            return Ok(beating.into_iter().map(|(id, _)| id).collect());
        }
        Ok(serving)
    }
}

/// What one balancing pass tells a node to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balance {
    /// The orgs it should own.
    pub share: i64,
    /// It owns this many now.
    pub owned: i64,
}

impl Balance {
    /// How many free orgs to take now.
    pub fn to_take(&self) -> i64 {
        (self.share - self.owned).max(0)
    }

    /// How many of its orgs to hand over (closing their links first).
    pub fn to_give(&self) -> i64 {
        (self.owned - self.share).max(0)
    }
}

/// This node's share of `total` orgs among the live nodes, and what it owns.
pub async fn balance(
    db: &Client,
    membership: &Membership,
    total: i64,
) -> Result<Balance, ClusterError> {
    let live = membership.live(db).await?;
    Ok(Balance {
        share: lease::share(total, &live, &membership.node),
        owned: lease::count_owned(db, &membership.node).await?,
    })
}

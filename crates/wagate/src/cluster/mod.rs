//! Several gateways on one PostgreSQL, below the service layer: the
//! cluster's tables (frozen steps under `schema/`), node membership (heartbeats, draining), who owns
//! which organization (`lease.rs`) and each node's loop that keeps its
//! leases and tells the gateway what it gained and lost (`owner.rs`), and
//! waking an org's owner from any node (`wake.rs`). No
//! coordinator of our own: the database's row locks and clock decide.

pub mod admin;
pub mod identity;
pub mod lease;
pub mod owner;
pub mod ownership;
pub mod view;
pub mod wake;

use std::time::Duration;

use tokio_postgres::Client;

use crate::db::migrate::{MigrateError, Schema, Steps};
use crate::db::pg::PgError;
pub use lease::{Held, Leases, Timing};
pub use owner::{Change, Lost, Owner};

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("PostgreSQL: {}", crate::db::pg_detail(.0))]
    Db(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    #[error("cluster settings: {0}")]
    Config(String),
    #[error("the connection to PostgreSQL closed")]
    Disconnected,
    #[error("this database has no wagate tables yet: start a gateway with --database on it first")]
    NoSchema,
}

impl From<PgError> for ClusterError {
    fn from(e: PgError) -> ClusterError {
        match e {
            PgError::Db(e) => ClusterError::Db(e),
            PgError::Settings(s) => ClusterError::Config(s),
        }
    }
}

/// The cluster's own tables (nodes, leases) on PostgreSQL.
pub const SCHEMA: Schema = Schema {
    name: "cluster",
    pg: Steps {
        steps: &[
            include_str!("schema/pg/v1.sql"),
            include_str!("schema/pg/v2.sql"),
        ],
        latest: include_str!("schema/pg/latest.sql"),
    },
};

/// Every store's tables in one PostgreSQL database, in the order they are
/// made: the cluster's, the gateway's, the devices'.
pub const SCHEMAS: [Schema; 3] = [SCHEMA, crate::store::SCHEMA, crate::devstore::SCHEMA];

/// Open a connection (`db::pg::connect`).
pub async fn connect(url: &str) -> Result<Client, ClusterError> {
    Ok(crate::db::pg::connect(url).await?)
}

/// Bring every store's tables in this database to the newest version.
/// Returns each store's version.
pub async fn migrate(db: &mut Client) -> Result<Vec<(&'static str, i64)>, ClusterError> {
    Ok(crate::db::migrate::pg(db, &SCHEMAS).await?)
}

/// The versions this wagate migrates PostgreSQL to, by store.
pub fn schema_versions() -> Vec<(&'static str, i64)> {
    SCHEMAS.iter().map(|s| (s.name, s.pg.version())).collect()
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

//! `wagate node …`: the operator's view of the nodes sharing a database
//! (list), and draining one before maintenance (its orgs move to the
//! others, each link closed before the next node opens it) or letting it
//! take orgs again.

use std::time::{Duration, Instant};

use super::{connect, ClusterError};

/// A connection to `url`, once it is known to hold the nodes' tables.
async fn open(url: &str) -> Result<tokio_postgres::Client, ClusterError> {
    let db = connect(url).await?;
    let row = db
        .query_one("SELECT to_regclass('nodes') IS NOT NULL", &[])
        .await?;
    if !row.get::<_, bool>(0) {
        return Err(ClusterError::NoSchema);
    }
    Ok(db)
}

/// One node as `wagate node list` shows it.
#[derive(Debug)]
pub struct NodeRow {
    pub id: String,
    pub url: Option<String>,
    pub heartbeat_ago_ms: Option<i64>,
    pub draining: bool,
    pub orgs: i64,
}

pub async fn list(url: &str) -> Result<Vec<NodeRow>, ClusterError> {
    let db = open(url).await?;
    let rows = db
        .query(
            "SELECT n.id, n.url,
                    CASE WHEN n.heartbeat_at = '-infinity' THEN NULL
                         ELSE (EXTRACT(EPOCH FROM (now() - n.heartbeat_at)) * 1000)::BIGINT END,
                    n.draining,
                    (SELECT count(*) FROM org_leases l WHERE l.owner = n.id AND l.expires_at > now())
             FROM nodes n ORDER BY n.id",
            &[],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| NodeRow {
            id: r.get(0),
            url: r.get(1),
            heartbeat_ago_ms: r.get(2),
            draining: r.get(3),
            orgs: r.get(4),
        })
        .collect())
}

/// Mark `node` draining (or not). False when no such node is known.
pub async fn set_draining(url: &str, node: &str, draining: bool) -> Result<bool, ClusterError> {
    let db = open(url).await?;
    let n = db
        .execute(
            "UPDATE nodes SET draining = $2 WHERE id = $1",
            &[&node, &draining],
        )
        .await?;
    Ok(n == 1)
}

/// Wait until `node` owns no org, telling `progress` how many are left
/// each second; gives up after `within`. Returns the orgs still owned.
pub async fn wait_drained(
    url: &str,
    node: &str,
    within: Duration,
    progress: &mut dyn FnMut(i64, Duration),
) -> Result<i64, ClusterError> {
    let db = open(url).await?;
    let t0 = Instant::now();
    loop {
        let left = super::lease::count_owned(&db, node).await?;
        progress(left, t0.elapsed());
        if left == 0 || t0.elapsed() >= within {
            return Ok(left);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

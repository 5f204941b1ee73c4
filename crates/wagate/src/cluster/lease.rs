//! Leases: which node owns which organization, kept in PostgreSQL with no
//! coordinator of our own. One row per org: `owner`, `epoch`, `expires_at`.
//!
//! - **Time is the database's.** Expiry is written and compared with the
//!   server's `clock_timestamp()` (the statement's time, in every statement
//!   here and in the fence), so the nodes' wall clocks never matter.
//! - **The owner stops first.** A node notes its monotonic clock *before*
//!   it sends a renewal; the database sets `expires_at = clock_timestamp() + ttl`, which
//!   is later in real time. The node treats the lease as valid only until
//!   `sent + ttl - margin` (`Held::valid_until`), so it has stopped acting
//!   for the org (`margin`) before anyone else can take it over.
//! - **Every write is fenced.** A write for an org runs in a transaction that
//!   first takes a share lock on the lease row and checks owner, epoch and
//!   expiry (`FENCE`, run by the store's `Tx::fence`); a takeover needs that row's exclusive lock, so it
//!   waits for the write or the write sees the new epoch and is refused. A
//!   node that was paused past its lease can no longer change anything.
//! - **A takeover bumps the epoch**, also when the same node takes back an
//!   org whose lease lapsed: anything it still held from before is stale.

use std::time::{Duration, Instant};

use tokio_postgres::{Client, GenericClient};

use super::ClusterError;
use crate::db::{Conn, DbError, DbResult};

/// The lease settings, with the timing argument they must satisfy.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long a lease lasts after each renewal.
    pub ttl: Duration,
    /// How often the owner renews.
    pub renew_every: Duration,
    /// How long before the database's expiry the owner stops acting.
    pub margin: Duration,
}

impl Timing {
    /// 15 s leases renewed every 3 s, the owner stopping 3 s early: a
    /// renewal can fail three times in a row before the org is given up,
    /// and a dead node's orgs are free 15 s after its last renewal.
    pub const DEFAULT: Timing = Timing {
        ttl: Duration::from_secs(15),
        renew_every: Duration::from_secs(3),
        margin: Duration::from_secs(3),
    };

    /// Leases of `ttl`, renewed every fifth of it, the owner stopping a
    /// fifth early (the default's proportions).
    pub fn with_ttl(ttl: Duration) -> Timing {
        Timing {
            ttl,
            renew_every: ttl / 5,
            margin: ttl / 5,
        }
    }

    /// Refuses settings under which the owner would not stop in time.
    pub fn check(&self) -> Result<(), String> {
        if self.margin.is_zero() || self.margin >= self.ttl {
            return Err("the margin must be above zero and below the lease's length".into());
        }
        if self.renew_every + self.margin >= self.ttl {
            return Err(format!(
                "renewing every {:?} with a {:?} margin leaves no time inside a {:?} lease",
                self.renew_every, self.margin, self.ttl
            ));
        }
        Ok(())
    }

    fn ttl_ms(&self) -> i64 {
        self.ttl.as_millis() as i64
    }
}

/// A lease this node holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub org: String,
    pub epoch: i64,
    /// Until when (this node's monotonic clock) it may act for the org.
    pub valid_until: Instant,
}

impl Held {
    /// Whether the node may still act for the org now.
    pub fn valid(&self) -> bool {
        Instant::now() < self.valid_until
    }
}

/// One node's view of the lease table.
pub struct Leases {
    node: String,
    timing: Timing,
}

impl Leases {
    pub fn new(node: impl Into<String>, timing: Timing) -> Result<Leases, ClusterError> {
        timing.check().map_err(ClusterError::Config)?;
        Ok(Leases {
            node: node.into(),
            timing,
        })
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    fn held(&self, org: String, epoch: i64, sent: Instant) -> Held {
        Held {
            org,
            epoch,
            valid_until: sent + self.timing.ttl - self.timing.margin,
        }
    }

    /// Make sure every org has a lease row (a free one: no owner).
    pub async fn ensure(&self, db: &Client, orgs: &[String]) -> Result<(), ClusterError> {
        db.execute(
            "INSERT INTO org_leases (org, owner, epoch, expires_at)
             SELECT o, NULL, 0, '-infinity' FROM unnest($1::text[]) AS o
             ON CONFLICT (org) DO NOTHING",
            &[&orgs],
        )
        .await?;
        Ok(())
    }

    /// Take up to `n` orgs whose lease is free or lapsed, in random order
    /// (so nodes starting together do not all reach for the same ones);
    /// rows another node is taking at this moment are skipped.
    pub async fn acquire_free(&self, db: &Client, n: i64) -> Result<Vec<Held>, ClusterError> {
        if n <= 0 {
            return Ok(Vec::new());
        }
        let sent = Instant::now();
        let rows = db
            .query(
                "WITH free AS (
                     SELECT org FROM org_leases
                     WHERE owner IS NULL OR expires_at <= clock_timestamp()
                     ORDER BY random() LIMIT $2
                     FOR UPDATE SKIP LOCKED)
                 UPDATE org_leases l
                 SET owner = $1, epoch = l.epoch + 1,
                     expires_at = clock_timestamp() + make_interval(secs => $3::double precision / 1000)
                 FROM free WHERE l.org = free.org
                 RETURNING l.org, l.epoch",
                &[&self.node, &n, &(self.timing.ttl_ms() as f64)],
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| self.held(r.get(0), r.get(1), sent))
            .collect())
    }

    /// Take one org if its lease is free or lapsed.
    pub async fn try_acquire(&self, db: &Client, org: &str) -> Result<Option<Held>, ClusterError> {
        let sent = Instant::now();
        let row = db
            .query_opt(
                "UPDATE org_leases
                 SET owner = $1, epoch = epoch + 1,
                     expires_at = clock_timestamp() + make_interval(secs => $3::double precision / 1000)
                 WHERE org = $2 AND (owner IS NULL OR expires_at <= clock_timestamp())
                 RETURNING epoch",
                &[&self.node, &org, &(self.timing.ttl_ms() as f64)],
            )
            .await?;
        Ok(row.map(|r| self.held(org.to_string(), r.get(0), sent)))
    }

    /// Renew every lease this node still holds; what is not in the answer
    /// was lost (it lapsed, or another node has it now).
    ///
    /// No statement holds one lease row while it waits for another: fenced
    /// writes hold their org's row shared in their own transactions, in any
    /// order, so a bulk update that waited could deadlock with them. Rows
    /// locked at this moment are skipped by the bulk update, then renewed
    /// one statement each (which waits for that row alone).
    pub async fn renew_all(&self, db: &Client) -> Result<Vec<Held>, ClusterError> {
        let sent = Instant::now();
        let ttl = self.timing.ttl_ms() as f64;
        let rows = db
            .query(
                "WITH mine AS (
                     SELECT org FROM org_leases
                     WHERE owner = $1 AND expires_at > clock_timestamp()
                     FOR UPDATE SKIP LOCKED)
                 UPDATE org_leases l
                 SET expires_at = clock_timestamp() + make_interval(secs => $2::double precision / 1000)
                 FROM mine WHERE l.org = mine.org
                 RETURNING l.org, l.epoch",
                &[&self.node, &ttl],
            )
            .await?;
        let mut out: Vec<Held> = rows
            .into_iter()
            .map(|r| self.held(r.get(0), r.get(1), sent))
            .collect();
        let done: std::collections::HashSet<String> = out.iter().map(|h| h.org.clone()).collect();
        let skipped: Vec<String> = db
            .query(
                "SELECT org FROM org_leases WHERE owner = $1 AND expires_at > clock_timestamp()",
                &[&self.node],
            )
            .await?
            .into_iter()
            .map(|r| r.get::<_, String>(0))
            .filter(|o| !done.contains(o))
            .collect();
        for org in skipped {
            let sent = Instant::now();
            let row = db
                .query_opt(
                    "UPDATE org_leases
                     SET expires_at = clock_timestamp() + make_interval(secs => $3::double precision / 1000)
                     WHERE org = $2 AND owner = $1 AND expires_at > clock_timestamp()
                     RETURNING epoch",
                    &[&self.node, &org, &ttl],
                )
                .await?;
            if let Some(r) = row {
                out.push(self.held(org, r.get(0), sent));
            }
        }
        Ok(out)
    }

    /// Give an org up at once (drain, shutdown, rebalancing), after the
    /// node has closed its link. False when it was not ours any more.
    pub async fn release(&self, db: &Client, held: &Held) -> Result<bool, ClusterError> {
        let n = db
            .execute(
                "UPDATE org_leases SET owner = NULL, expires_at = clock_timestamp()
                 WHERE org = $1 AND owner = $2 AND epoch = $3",
                &[&held.org, &self.node, &held.epoch],
            )
            .await?;
        Ok(n == 1)
    }
}

/// In the transaction that deletes org `org`: its lease row goes with it,
/// so an org made again under the same id starts from a free lease.
pub fn forget(conn: &Conn, org: &str) -> DbResult<()> {
    conn.execute("DELETE FROM org_leases WHERE org = ?1", crate::args![org])?;
    Ok(())
}

/// The fence, the one statement that decides whether a write may commit:
/// org `?1`'s lease is held by node `?2` at epoch `?3` and has not expired
/// by the database's clock (`clock_timestamp()`, the time the statement
/// runs, not the transaction's start). The lease row stays locked shared
/// until the transaction ends, so a takeover (which needs the row's
/// exclusive lock) waits for the write, or the write sees the new epoch.
pub const FENCE: &str = "SELECT 1 FROM org_leases
     WHERE org = ?1 AND owner = ?2 AND epoch = ?3 AND expires_at > clock_timestamp()
     FOR SHARE";

/// Inside the write transaction on `conn`: refuse it (`DbError::Fenced`,
/// "lease lost") unless `node` holds `held` for incarnation `inc`, first by
/// this node's own deadline, then by the database (`FENCE`).
pub fn fence(conn: &Conn, inc: i64, node: &str, held: Option<&Held>) -> DbResult<()> {
    let Some(held) = held.filter(|h| h.valid()) else {
        return Err(DbError::Fenced(inc));
    };
    let rows = conn.query(FENCE, crate::args![held.org, node, held.epoch])?;
    if rows.is_empty() {
        return Err(DbError::Fenced(inc));
    }
    Ok(())
}

/// The orgs each live node should own: an even share, the first
/// `total % live` nodes (by id) taking one more.
pub fn share(total: i64, live_nodes: &[String], node: &str) -> i64 {
    let Some(i) = live_nodes.iter().position(|n| n == node) else {
        return 0;
    };
    let live = live_nodes.len() as i64;
    total / live + i64::from((i as i64) < total % live)
}

/// How many leases a node holds (valid by the database's clock).
pub async fn count_owned(db: &impl GenericClient, node: &str) -> Result<i64, ClusterError> {
    let row = db
        .query_one(
            "SELECT count(*) FROM org_leases WHERE owner = $1 AND expires_at > clock_timestamp()",
            &[&node],
        )
        .await?;
    Ok(row.get(0))
}

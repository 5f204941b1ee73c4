//! A node's ownership loop: every `renew_every` it heartbeats, renews its
//! leases, hands back what is over its share and takes free orgs up to it,
//! and tells the gateway what it gained and lost (`Change`). The loop keeps
//! the owner's promise even when PostgreSQL is out of reach: each lease is
//! dropped at its own `valid_until`, whatever the database calls are doing
//! (they are cut short at the next deadline), and the gateway is told to
//! close that org's link at once.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use super::lease::{Held, Leases, Timing};
use super::{balance, connect, ClusterError, Membership};

/// What the gateway must do for an org.
#[derive(Debug)]
pub enum Change {
    /// This node owns the org now (at `held.epoch`): start its link.
    Gained(Held),
    /// The lease is gone or about to be (it lapsed, another node has it, or
    /// its deadline passed with the database out of reach): stop the link now.
    Lost { org: String, why: Lost },
    /// Hand the org over (rebalancing, drain): stop its link, then answer
    /// `done`; the lease is released after that. If no answer comes in
    /// time, the lease is not released, and the next renewal announces it
    /// as `Gained` again.
    Give {
        org: String,
        done: oneshot::Sender<()>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lost {
    /// The renewal did not return it: it lapsed or another node took it.
    NotRenewed,
    /// Its deadline passed without a renewal (the database was out of reach).
    Deadline,
}

/// The settings of one node's loop.
pub struct Owner {
    pub url: String,
    pub membership: Membership,
    pub timing: Timing,
    /// Whether this node is being drained (its share is then 0).
    pub draining: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Orgs not to hand over now (in the middle of pairing, say); they go
    /// at a later pass.
    pub busy: Option<Busy>,
    /// Told every lease renewed, with its new deadline (the gateway's
    /// fences read the deadline).
    pub renewed: Option<Renewed>,
}

/// Whether an org may not be handed over now.
pub type Busy = std::sync::Arc<dyn Fn(&str) -> bool + Send + Sync>;
/// Told each renewed lease.
pub type Renewed = std::sync::Arc<dyn Fn(&Held) + Send + Sync>;

/// The leases this node holds, by org.
type HeldMap = HashMap<String, Held>;

impl Owner {
    /// Run until `stop`; returns the leases still held (for a clean release).
    pub async fn run(
        self,
        orgs: impl Fn() -> Vec<String> + Send,
        changes: mpsc::Sender<Change>,
        stop: CancellationToken,
    ) -> Vec<Held> {
        let leases = match Leases::new(self.membership.node.clone(), self.timing) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cluster: bad lease settings");
                return Vec::new();
            }
        };
        let mut held = HeldMap::new();
        let mut db: Option<Client> = None;
        loop {
            drop_expired(&mut held, &changes).await;
            let next = Instant::now() + self.timing.renew_every;
            // The pass may not run past the earliest lease deadline.
            let cut = until(&held, next);
            let pass = self.pass(&leases, &mut db, &mut held, &orgs, &changes);
            match tokio::time::timeout_at(cut, pass).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cluster: lease pass failed");
                    db = None;
                }
                Err(_) => {
                    tracing::warn!("cluster: lease pass cut short by a deadline");
                    db = None;
                }
            }
            // Until the next pass, or sooner to drop a lease at its deadline.
            tokio::select! {
                _ = stop.cancelled() => return held.into_values().collect(),
                _ = tokio::time::sleep_until(until(&held, next)) => {}
            }
        }
    }

    async fn pass(
        &self,
        leases: &Leases,
        db: &mut Option<Client>,
        held: &mut HeldMap,
        orgs: &(impl Fn() -> Vec<String> + Send),
        changes: &mpsc::Sender<Change>,
    ) -> Result<(), ClusterError> {
        if db.as_ref().is_none_or(Client::is_closed) {
            *db = Some(connect(&self.url).await?);
        }
        let Some(c) = db.as_ref() else {
            return Ok(());
        };
        let draining = self.draining.load(std::sync::atomic::Ordering::SeqCst);
        self.membership.heartbeat(c, draining).await?;
        let all = orgs();
        leases.ensure(c, &all).await?;
        let renewed: HeldMap = leases
            .renew_all(c)
            .await?
            .into_iter()
            .map(|h| (h.org.clone(), h))
            .collect();
        let gone: Vec<String> = held
            .keys()
            .filter(|o| !renewed.contains_key(*o))
            .cloned()
            .collect();
        for org in gone {
            held.remove(&org);
            let _ = changes
                .send(Change::Lost {
                    org,
                    why: Lost::NotRenewed,
                })
                .await;
        }
        // Renewed leases this node did not know of (it restarted under the
        // same id) are treated as fresh gains.
        for (org, h) in renewed {
            if let Some(tell) = &self.renewed {
                tell(&h);
            }
            if held.insert(org, h.clone()).is_none() {
                let _ = changes.send(Change::Gained(h)).await;
            }
        }
        let plan = balance(c, &self.membership, all.len() as i64).await?;
        let busy = |org: &str| self.busy.as_ref().is_some_and(|b| b(org));
        let extra: Vec<Held> = held
            .values()
            .filter(|h| !busy(&h.org))
            .take(plan.to_give() as usize)
            .cloned()
            .collect();
        for h in extra {
            // Out of this loop's hands from now on (the gateway stops acting
            // for it at once): if the database still says it is ours at the
            // next renewal (the answer did not come, the pass was cut short,
            // the release failed), it is announced as gained again.
            held.remove(&h.org);
            let (done, closed) = oneshot::channel();
            let _ = changes
                .send(Change::Give {
                    org: h.org.clone(),
                    done,
                })
                .await;
            // Released only once the link is closed.
            if tokio::time::timeout_at(Instant::from_std(h.valid_until), closed)
                .await
                .is_ok_and(|r| r.is_ok())
            {
                leases.release(c, &h).await?;
            }
        }
        for h in leases.acquire_free(c, plan.to_take()).await? {
            held.insert(h.org.clone(), h.clone());
            let _ = changes.send(Change::Gained(h)).await;
        }
        Ok(())
    }
}

/// `next`, or the earliest lease deadline if that comes first.
fn until(held: &HeldMap, next: Instant) -> Instant {
    held.values()
        .map(|h| Instant::from_std(h.valid_until))
        .fold(next, Instant::min)
}

/// Drop every lease whose deadline has passed, telling the gateway.
async fn drop_expired(held: &mut HeldMap, changes: &mpsc::Sender<Change>) {
    let now = std::time::Instant::now();
    let late: Vec<String> = held
        .values()
        .filter(|h| h.valid_until <= now)
        .map(|h| h.org.clone())
        .collect();
    for org in late {
        held.remove(&org);
        tracing::warn!(org = %org, "cluster: lease deadline passed without renewal; stopping the link");
        let _ = changes
            .send(Change::Lost {
                org,
                why: Lost::Deadline,
            })
            .await;
    }
}

/// The default node liveness window: five renewals missed.
pub fn node_ttl(timing: &Timing) -> Duration {
    timing.renew_every * 5
}

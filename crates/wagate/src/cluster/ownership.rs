//! What this node owns right now: the leases its loop holds, by org
//! incarnation, as the rest of the gateway asks about them. The store's
//! writes are fenced through it (`store::Fences`): a lease whose deadline
//! passed on this node's clock fences at once, before the database says so.

use std::collections::HashMap;
use std::sync::RwLock;

use super::Held;

pub struct Ownership {
    node: String,
    /// By incarnation: the org's id and the lease.
    held: RwLock<HashMap<i64, Held>>,
    /// When each org was gained (by id): a new owner keeps an org a while
    /// before the balancing passes may move it (`settled`).
    since: RwLock<HashMap<String, std::time::Instant>>,
}

impl Ownership {
    pub fn new(node: impl Into<String>) -> Ownership {
        Ownership {
            node: node.into(),
            held: RwLock::default(),
            since: RwLock::default(),
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// The loop gained `held` for incarnation `inc`.
    pub fn insert(&self, inc: i64, held: Held) {
        let org = held.org.clone();
        let fresh = self
            .held
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(inc, held)
            .is_none();
        if fresh {
            self.since
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(org, std::time::Instant::now());
        }
    }

    /// Whether `org` was gained at least `hold` ago (a request that took it,
    /// a connect say, has had time to start its work).
    pub fn settled(&self, org: &str, hold: std::time::Duration) -> bool {
        self.since
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(org)
            .is_none_or(|t| t.elapsed() >= hold)
    }

    /// A renewal: the lease's new deadline, if this node still holds it at
    /// that epoch (a renewal never brings back a lease given up).
    pub fn renew(&self, held: &Held) {
        let mut map = self.held.write().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = map
            .values_mut()
            .find(|h| h.org == held.org && h.epoch == held.epoch)
        {
            h.valid_until = h.valid_until.max(held.valid_until);
        }
    }

    /// The lease of `org` is gone (or being handed over): from now on this
    /// node writes nothing for it. Returns the incarnation it was held for.
    pub fn remove(&self, org: &str) -> Option<i64> {
        let mut map = self.held.write().unwrap_or_else(|p| p.into_inner());
        let inc = map.iter().find(|(_, h)| h.org == org).map(|(i, _)| *i)?;
        map.remove(&inc);
        self.since
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(org);
        Some(inc)
    }

    /// Whether this node may act for `org` now.
    pub fn owns(&self, org: &str) -> bool {
        self.held
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .any(|h| h.org == org && h.valid())
    }

    /// Whether this node may act for incarnation `inc` now.
    pub fn owns_inc(&self, inc: i64) -> bool {
        self.held
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&inc)
            .is_some_and(Held::valid)
    }

    /// The epoch of the lease held for `inc`.
    pub fn epoch(&self, inc: i64) -> Option<i64> {
        self.held
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&inc)
            .map(|h| h.epoch)
    }

    /// How many orgs this node may act for now.
    pub fn count(&self) -> usize {
        self.incs().len()
    }

    /// The incarnations held now.
    pub fn incs(&self) -> Vec<i64> {
        self.held
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, h)| h.valid())
            .map(|(i, _)| *i)
            .collect()
    }
}

impl crate::store::Fences for Ownership {
    fn lease(&self, inc: i64) -> Option<(String, String, i64)> {
        self.held
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&inc)
            .filter(|h| h.valid())
            .map(|h| (h.org.clone(), self.node.clone(), h.epoch))
    }
}

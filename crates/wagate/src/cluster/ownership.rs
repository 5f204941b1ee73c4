//! What this node owns right now: the leases its loop holds, by org
//! incarnation, as the rest of the gateway asks about them. The store's
//! writes are fenced through it (`store::Fences`): a lease whose deadline
//! passed on this node's clock fences at once, before the database says so.

use parking_lot::RwLock;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::Held;

pub struct Ownership {
    node: String,
    /// By incarnation: the lease, and when this node gained it (a new
    /// owner keeps an org a while before the balancing passes may move it:
    /// `settled`).
    held: RwLock<HashMap<i64, (Held, Instant)>>,
}

impl Ownership {
    pub fn new(node: impl Into<String>) -> Ownership {
        Ownership {
            node: node.into(),
            held: RwLock::default(),
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    fn read(&self) -> parking_lot::RwLockReadGuard<'_, HashMap<i64, (Held, Instant)>> {
        self.held.read()
    }

    fn write(&self) -> parking_lot::RwLockWriteGuard<'_, HashMap<i64, (Held, Instant)>> {
        self.held.write()
    }

    /// The loop gained `held` for incarnation `inc` (gained again: the
    /// lease is replaced, the time it was first gained kept).
    pub fn insert(&self, inc: i64, held: Held) {
        self.write()
            .entry(inc)
            .and_modify(|(h, _)| *h = held.clone())
            .or_insert_with(|| (held, Instant::now()));
    }

    /// Whether `org` was gained at least `hold` ago (a request that took it,
    /// a connect say, has had time to start its work).
    pub fn settled(&self, org: &str, hold: Duration) -> bool {
        self.read()
            .values()
            .find(|(h, _)| h.org == org)
            .is_none_or(|(_, since)| since.elapsed() >= hold)
    }

    /// A renewal: the lease's new deadline, if this node still holds it at
    /// that epoch (a renewal never brings back a lease given up).
    pub fn renew(&self, held: &Held) {
        if let Some((h, _)) = self
            .write()
            .values_mut()
            .find(|(h, _)| h.org == held.org && h.epoch == held.epoch)
        {
            h.valid_until = h.valid_until.max(held.valid_until);
        }
    }

    /// The lease of `org` is gone (or being handed over): from now on this
    /// node writes nothing for it. Returns the incarnation it was held for.
    pub fn remove(&self, org: &str) -> Option<i64> {
        let mut map = self.write();
        let inc = map
            .iter()
            .find(|(_, (h, _))| h.org == org)
            .map(|(i, _)| *i)?;
        map.remove(&inc);
        Some(inc)
    }

    /// Whether this node may act for `org` now.
    pub fn owns(&self, org: &str) -> bool {
        self.read().values().any(|(h, _)| h.org == org && h.valid())
    }

    /// Whether this node may act for incarnation `inc` now.
    pub fn owns_inc(&self, inc: i64) -> bool {
        self.read().get(&inc).is_some_and(|(h, _)| h.valid())
    }

    /// The epoch of the lease held for `inc`.
    pub fn epoch(&self, inc: i64) -> Option<i64> {
        self.read().get(&inc).map(|(h, _)| h.epoch)
    }
}

impl crate::store::Fences for Ownership {
    fn fence(&self, conn: &crate::db::Conn, inc: i64) -> crate::db::DbResult<()> {
        let held = self.read().get(&inc).map(|(h, _)| h.clone());
        super::lease::fence(conn, inc, &self.node, held.as_ref())
    }

    fn may_act(&self, inc: i64) -> bool {
        self.owns_inc(inc)
    }
}

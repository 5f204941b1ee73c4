//! This node's view of the cluster, as the service layer asks it: who owns
//! an org (`route`, `owner_of`), what is known of an org owned elsewhere
//! (`remote_link`: its last recorded state, whether its owner went silent),
//! and the nodes' addresses. Built before `App` and handed to it; the node
//! loop (`crate::node`) keeps it fresh.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use parking_lot::RwLock;
use tokio::sync::mpsc;

use super::lease::{Leases, Timing};
use super::ownership::Ownership;
use super::{connect, ClusterError};
use crate::store::{EventRow, Store};

/// How a node is set up.
#[derive(Clone)]
pub struct NodeSettings {
    pub db_url: String,
    pub node: String,
    /// Where the other nodes reach this one's HTTP API (forwarded link actions).
    pub advertise: String,
    pub timing: Timing,
    pub restore_per_second: u32,
}

/// What the rest of the gateway asks about the cluster.
pub struct ClusterView {
    pub ownership: Arc<Ownership>,
    pub settings: NodeSettings,
    store: crate::store::Store,
    /// Live leases: org → owning node (refreshed every renewal).
    owners: RwLock<HashMap<String, String>>,
    /// Node → its advertised address.
    urls: RwLock<HashMap<String, String>>,
    /// Nodes whose heartbeat is older than two renewals.
    silent: RwLock<HashSet<String>>,
    /// Each org incarnation's last `state` event: its data and time.
    states: RwLock<HashMap<i64, (serde_json::Value, i64)>>,
    /// The connection orgs are taken on (`adopt`).
    adopter: tokio::sync::Mutex<Option<tokio_postgres::Client>>,
    /// Orgs to restore: (org, whether an idle "never linked" supervisor may
    /// be replaced first). The node loop reads the other end.
    restore: mpsc::UnboundedSender<(String, bool)>,
}

/// An org this node does not own, as the cluster knows it: its last
/// recorded `state` event (its data and time), its owner, and whether the
/// owner has gone silent.
#[derive(Debug, Clone)]
pub struct RemoteLink {
    pub last_state: Option<(serde_json::Value, i64)>,
    pub owner: Option<String>,
    pub owner_silent: bool,
}

/// Where a request about an org is to be carried out.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Here,
    /// On the owning node, at this address.
    There {
        node: String,
        url: String,
    },
    /// Owned by a node whose address is not known.
    Unreachable {
        node: String,
    },
}

impl ClusterView {
    /// The view of a node that fences its writes by `ownership`, and the
    /// receiving end of the orgs it asks the node loop to restore.
    pub fn new(
        ownership: Arc<Ownership>,
        settings: NodeSettings,
        store: Store,
    ) -> (Arc<ClusterView>, mpsc::UnboundedReceiver<(String, bool)>) {
        let (restore, gained) = mpsc::unbounded_channel();
        let view = Arc::new(ClusterView {
            ownership,
            settings,
            store,
            owners: RwLock::default(),
            urls: RwLock::default(),
            silent: RwLock::default(),
            states: RwLock::default(),
            adopter: tokio::sync::Mutex::new(None),
            restore,
        });
        (view, gained)
    }

    /// Ask the node loop to restore `org`'s link (`may_recycle`: an idle
    /// supervisor kept while another node owned it may be replaced).
    pub fn restore(&self, org: &str, may_recycle: bool) {
        let _ = self.restore.send((org.to_string(), may_recycle));
    }

    pub fn node(&self) -> &str {
        self.ownership.node()
    }

    pub fn owner_of(&self, org: &str) -> Option<String> {
        if self.ownership.owns(org) {
            return Some(self.node().to_string());
        }
        self.owners.read().get(org).cloned()
    }

    /// Where a link action for `org` (incarnation `inc`, when the directory
    /// knows it) runs; an org nobody owns is taken here first (a new org,
    /// say), so the action has an owner.
    pub async fn route(&self, org: &str, inc: Option<i64>) -> Route {
        if self.ownership.owns(org) {
            return Route::Here;
        }
        let known = self.owner_of(org);
        let owner = match known {
            Some(n) if n != self.node() => Some(n),
            _ => match self.adopt(org, inc).await {
                Ok(true) => return Route::Here,
                _ => self.fresh_owner(org).await,
            },
        };
        let Some(node) = owner else {
            return Route::Here;
        };
        if node == self.node() {
            return Route::Here;
        }
        match self.urls.read().get(&node) {
            Some(url) => Route::There {
                node: node.clone(),
                url: url.clone(),
            },
            None => Route::Unreachable { node },
        }
    }

    /// The owner as the database says now (and the owners' addresses).
    async fn fresh_owner(&self, org: &str) -> Option<String> {
        self.refresh().await;
        self.owners.read().get(org).cloned()
    }

    /// Take a free org now (its lease row made if missing); the loop renews
    /// it from its next pass. True when this node owns it now.
    async fn adopt(&self, org: &str, inc: Option<i64>) -> Result<bool, ClusterError> {
        let Some(inc) = inc else {
            return Ok(false);
        };
        let leases = Leases::new(self.node().to_string(), self.settings.timing)?;
        // One connection for these, opened again when it broke.
        let mut slot = self.adopter.lock().await;
        if slot.as_ref().is_none_or(tokio_postgres::Client::is_closed) {
            *slot = Some(connect(&self.settings.db_url).await?);
        }
        let Some(db) = slot.as_ref() else {
            return Ok(false);
        };
        leases.ensure(db, &[org.to_string()]).await?;
        let Some(held) = leases.try_acquire(db, org).await? else {
            return Ok(false);
        };
        tracing::info!(
            org,
            epoch = held.epoch,
            "cluster: org taken on a request for it"
        );
        self.ownership.insert(inc, held);
        // Its link comes up if it has one (a status request, say, took it);
        // a supervisor at work on the request is left as it is.
        self.restore(org, false);
        Ok(true)
    }

    /// Whether `node` has stopped heartbeating (as of the last refresh).
    pub fn is_silent(&self, node: &str) -> bool {
        self.silent.read().contains(node)
    }

    /// What the cluster knows of an org this node does not own.
    pub fn remote_link(&self, org: &str, inc: i64) -> RemoteLink {
        let owner = self.owner_of(org);
        RemoteLink {
            last_state: self.states.read().get(&inc).cloned(),
            owner_silent: owner.as_ref().is_some_and(|n| self.is_silent(n)),
            owner,
        }
    }

    /// Remember an org's latest `state` event (read back from the log).
    pub fn note_state(&self, e: &EventRow) {
        if e.kind == crate::events::Kind::State.as_str() {
            self.states.write().insert(e.inc, (e.data.clone(), e.ts_ms));
        }
    }

    /// Read the live leases' owners and the nodes' addresses.
    pub async fn refresh(&self) {
        let silent_after = (self.settings.timing.renew_every * 2).as_millis() as i64;
        let read = self
            .store
            .read(move |c| {
                let owners = c.query(
                    "SELECT l.org, l.owner FROM org_leases l
                     WHERE l.owner IS NOT NULL AND l.expires_at > now()",
                    crate::args![],
                )?;
                let urls = c.query(
                    "SELECT id, url FROM nodes WHERE url IS NOT NULL",
                    crate::args![],
                )?;
                let silent = c.query(
                    "SELECT id FROM nodes
                     WHERE heartbeat_at < now() - CAST(?1 AS BIGINT) * interval '1 millisecond'",
                    crate::args![silent_after],
                )?;
                let silent = silent
                    .iter()
                    .map(|r| r.get::<String>(0))
                    .collect::<crate::store::DbResult<HashSet<String>>>()?;
                let pairs =
                    |rows: Vec<crate::db::Row>| -> crate::store::DbResult<Vec<(String, String)>> {
                        rows.iter().map(|r| Ok((r.get(0)?, r.get(1)?))).collect()
                    };
                Ok((pairs(owners)?, pairs(urls)?, silent))
            })
            .await;
        match read {
            Ok((owners, urls, silent)) => {
                *self.silent.write() = silent;
                *self.owners.write() = owners.into_iter().collect();
                *self.urls.write() = urls.into_iter().collect();
            }
            Err(e) => tracing::warn!(error = %e, "cluster: cannot read who owns which org"),
        }
    }

    /// Every org's last state, from the log.
    pub async fn load_states(&self) {
        let rows = self
            .store
            .read(|c| {
                c.query(
                    "SELECT DISTINCT ON (inc) inc, data, ts_ms FROM events
                     WHERE kind = 'state' ORDER BY inc, seq DESC",
                    crate::args![],
                )
            })
            .await;
        if let Ok(rows) = rows {
            let mut states = self.states.write();
            for r in rows {
                if let (Ok(inc), Ok(data), Ok(ts)) =
                    (r.get::<i64>(0), r.get::<String>(1), r.get::<i64>(2))
                {
                    let data = serde_json::from_str(&data).unwrap_or(serde_json::Value::Null);
                    states.insert(inc, (data, ts));
                }
            }
        }
    }
}

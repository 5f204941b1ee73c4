//! The service layer: every operation the gateway offers — authorize a
//! caller for an org, create and delete orgs, accept and read messages, link
//! actions and status, the event stream, dashboard sign-ins — with its own
//! error type and no HTTP in sight. `api/` renders it as JSON and `web/` as
//! pages; neither knows the other.
//!
//! Authorization: the admin reaches every org; an org token reaches its own
//! org (that incarnation) only. The permission check (`forbidden`) comes
//! before the existence check (`org_not_found`), so an org token learns
//! nothing about other organizations.

pub mod contacts;
pub mod credentials;
pub mod error;
pub mod events;
pub mod link;
pub mod messages;
pub mod metrics;
pub mod orgs;
pub mod policy;
pub mod signin;
pub mod timing;
pub mod webhooks;

pub use error::{AppError, ErrorCode, Kind};

use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::auth::{Caller, TokenBook};
use crate::cluster::view::{ClusterView, RemoteLink};
use crate::outbox::Outbox;
use crate::session::{Handle, OrgRef, Sessions};
use crate::store::{OrgRow, Store};

/// The gateway's services; shared by every surface.
pub struct App {
    store: Store,
    sessions: Arc<Sessions>,
    outbox: Arc<Outbox>,
    tokens: TokenBook,
    /// The live organizations by id.
    directory: RwLock<HashMap<String, Arc<OrgRow>>>,
    /// Per org incarnation: cancelled when the org is deleted (its event
    /// streams end). Children of `shutdown`.
    scopes: Mutex<HashMap<i64, CancellationToken>>,
    /// Cancelled when the gateway begins to stop.
    shutdown: CancellationToken,
    /// Each org's allowance of contact look-ups.
    lookups: Mutex<HashMap<i64, contacts::Bucket>>,
    /// Where webhooks may be sent.
    webhook_guard: RwLock<crate::webhook::target::Guard>,
    /// Tells the delivery task that deliveries were queued again.
    webhook_wake: Arc<tokio::sync::Notify>,
    /// Several nodes: this node's view of the cluster.
    cluster: Option<Arc<ClusterView>>,
    /// Incarnations deleted through this node (never registered again by
    /// a directory sync that read them before their deletion committed).
    deleted: Mutex<std::collections::HashSet<i64>>,
}

/// How a route depends on the org's link: an action (connect, QR, logout,
/// deleting the org …) runs where the link is, on the org's owner; a status
/// read may be answered from the recorded state when the owner is silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    Action,
    Status,
}

/// An org found and authorized: its row and its supervisor.
pub struct OrgAccess {
    pub row: Arc<OrgRow>,
    pub handle: Handle,
}

impl OrgAccess {
    pub fn org(&self) -> &OrgRef {
        &self.handle.org
    }
}

impl App {
    pub fn new(
        store: Store,
        sessions: Arc<Sessions>,
        outbox: Arc<Outbox>,
        tokens: TokenBook,
        shutdown: CancellationToken,
        cluster: Option<Arc<ClusterView>>,
    ) -> App {
        App {
            store,
            sessions,
            outbox,
            tokens,
            directory: RwLock::new(HashMap::new()),
            scopes: Mutex::new(HashMap::new()),
            shutdown,
            lookups: Mutex::new(HashMap::new()),
            webhook_guard: RwLock::new(Default::default()),
            webhook_wake: Arc::new(tokio::sync::Notify::new()),
            cluster,
            deleted: Mutex::default(),
        }
    }

    /// Several nodes: this node's view of the cluster.
    pub fn cluster(&self) -> Option<&Arc<ClusterView>> {
        self.cluster.as_ref()
    }

    /// An org's row, if it is in the directory.
    pub fn org_row(&self, id: &str) -> Option<Arc<OrgRow>> {
        self.directory.read().get(id).cloned()
    }

    /// Every org's id.
    pub fn org_ids(&self) -> Vec<String> {
        self.directory.read().keys().cloned().collect()
    }

    /// The link as the surfaces show it: this node's supervisor's view, or
    /// (several nodes, an org owned elsewhere) its last recorded state and
    /// its owner.
    pub fn link_status(&self, h: &Handle) -> crate::session::Status {
        match self.cluster() {
            Some(c) if !c.ownership.owns_inc(h.org.inc) => {
                remote_status(&h.org.id, c.remote_link(&h.org.id, h.org.inc))
            }
            Some(c) => {
                let mut s = h.status();
                s.node = Some(c.node().to_string());
                s
            }
            None => h.status(),
        }
    }

    /// Several nodes: bring the directory in line with the database (orgs
    /// created or deleted through other nodes).
    pub async fn sync_orgs(&self) -> Result<(), AppError> {
        let known: Vec<(String, i64)> = self
            .directory
            .read()
            .values()
            .map(|r| (r.id.clone(), r.inc))
            .collect();
        let rows = self.store.read(crate::store::orgs::list).await?;
        let fresh: HashMap<&str, i64> = rows.iter().map(|r| (r.id.as_str(), r.inc)).collect();
        for (id, inc) in known {
            if fresh.get(id.as_str()) != Some(&inc) {
                self.forget(&id, inc).await;
            }
        }
        let deleted = self.deleted.lock().clone();
        for row in rows {
            let present = self.directory.read().contains_key(&row.id);
            if !present && !deleted.contains(&row.inc) {
                tracing::info!(org = %row.id, inc = row.inc, "organization created on another node");
                self.register(row);
            }
        }
        Ok(())
    }

    /// An org deleted through another node: no request reaches it here any
    /// more and its streams end.
    async fn forget(&self, id: &str, inc: i64) {
        self.tokens.remove_org(id);
        let removed = {
            let mut dir = self.directory.write();
            match dir.get(id) {
                Some(r) if r.inc == inc => dir.remove(id).is_some(),
                _ => false,
            }
        };
        if !removed {
            return;
        }
        if let Some(t) = self.scopes.lock().remove(&inc) {
            t.cancel();
        }
        self.sessions.remove(id, false).await;
        tracing::info!(org = %id, inc, "organization deleted on another node");
    }

    /// What the webhook delivery task waits on besides new events.
    pub fn webhook_wake(&self) -> Arc<tokio::sync::Notify> {
        self.webhook_wake.clone()
    }

    /// Let webhooks reach these non-public hosts and networks (`--webhook-allow`).
    pub fn set_webhook_guard(&self, guard: crate::webhook::target::Guard) {
        *self.webhook_guard.write() = guard;
    }

    pub(crate) fn webhook_guard(&self) -> crate::webhook::target::Guard {
        self.webhook_guard.read().clone()
    }

    /// Load every organization from the store and start its supervisor.
    pub async fn load(&self) -> Result<usize, AppError> {
        let rows = self.store.read(crate::store::orgs::list).await?;
        let n = rows.len();
        for row in rows {
            self.register(row);
        }
        Ok(n)
    }

    fn register(&self, row: OrgRow) -> Handle {
        let org = OrgRef {
            id: row.id.clone(),
            inc: row.inc,
        };
        self.tokens.add_org(&org, &row.token_hash);
        let h = self.sessions.add(&org);
        self.directory.write().insert(row.id.clone(), Arc::new(row));
        h
    }

    pub fn sessions(&self) -> &Arc<Sessions> {
        &self.sessions
    }

    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Cancelled when the gateway begins to stop.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Who a bearer token is.
    pub fn identify(&self, token: &str) -> Result<Caller, AppError> {
        self.tokens
            .identify(token)
            .ok_or_else(|| AppError::new(ErrorCode::Unauthorized, "invalid token"))
    }

    pub fn require_admin(&self, caller: &Caller) -> Result<(), AppError> {
        if caller.is_admin() {
            Ok(())
        } else {
            Err(AppError::new(
                ErrorCode::Forbidden,
                "this action needs the admin token",
            ))
        }
    }

    /// Authorize `caller` for `org`, then find it: 403 before 404.
    pub fn authorize(&self, caller: &Caller, org: &str) -> Result<OrgAccess, AppError> {
        let forbidden = || {
            AppError::new(
                ErrorCode::Forbidden,
                "this token may not act on that organization",
            )
        };
        if !caller.may_access(org) {
            return Err(forbidden());
        }
        let not_found =
            || AppError::new(ErrorCode::OrgNotFound, format!("no organization '{org}'"));
        let row = self
            .directory
            .read()
            .get(org)
            .cloned()
            .ok_or_else(not_found)?;
        let handle = self
            .sessions
            .get(org)
            .filter(|h| h.org.inc == row.inc)
            .ok_or_else(not_found)?;
        if !caller.may_act_on(&handle.org) {
            return Err(forbidden());
        }
        Ok(OrgAccess { row, handle })
    }

    /// The org rows the caller may see, by id.
    fn visible(&self, caller: &Caller) -> Vec<Arc<OrgRow>> {
        let mut v: Vec<Arc<OrgRow>> = self
            .directory
            .read()
            .values()
            .filter(|r| {
                caller.may_act_on(&OrgRef {
                    id: r.id.clone(),
                    inc: r.inc,
                })
            })
            .cloned()
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// The cancellation scope of one org incarnation's streams (already
    /// cancelled if that incarnation is gone).
    fn scope(&self, inc: i64) -> CancellationToken {
        let token = self
            .scopes
            .lock()
            .entry(inc)
            .or_insert_with(|| self.shutdown.child_token())
            .clone();
        let live = self.directory.read().values().any(|r| r.inc == inc);
        if !live {
            // Deleted between the caller's authorization and now.
            token.cancel();
            self.scopes.lock().remove(&inc);
        }
        token
    }

    /// Is the database readable? Returns the number of organizations.
    pub async fn ready(&self) -> Result<i64, AppError> {
        self.store
            .read(crate::store::orgs::count)
            .await
            .map_err(|e| AppError::new(ErrorCode::NotReady, format!("database unavailable: {e}")))
    }
}

/// The link status of an org owned by another node: its last recorded
/// state, and its owner. A state recorded by an owner that has gone silent
/// is not true any more (a link it held is gone with it).
fn remote_status(org: &str, link: RemoteLink) -> crate::session::Status {
    use crate::session::{Reason, State};
    let (data, ts) = link
        .last_state
        .unwrap_or((serde_json::Value::Null, crate::store::now_ms()));
    let last = match crate::events::Event::decode(crate::events::Kind::State.as_str(), &data) {
        Some(crate::events::Event::State(s)) => Some(s),
        _ => None,
    };
    let mut state = last
        .as_ref()
        .and_then(|s| s.link_state())
        .unwrap_or(State::Starting);
    let mut reason = last
        .as_ref()
        .and_then(|s| s.reason.clone())
        .unwrap_or(Reason::NotLinked);
    if let Some(node) = link.owner.as_ref().filter(|_| link.owner_silent) {
        if !state.needs_link() {
            state = State::Reconnecting;
            reason = Reason::OwnerSilent { node: node.clone() };
        }
    }
    crate::session::Status {
        org: org.to_string(),
        state,
        since_ms: ts,
        last_seen_ms: None,
        reconnect_attempt: last.as_ref().map_or(0, |s| s.reconnect_attempt),
        next_retry_in_ms: None,
        phone_number: last.and_then(|s| s.phone_number),
        reason,
        qr_available: false,
        pair_code: None,
        pair_code_expires_in_ms: None,
        queued_messages: None,
        queue_empty_eta_ms: None,
        held_messages: None,
        limits: None,
        decrypt_failures: 0,
        node: link.owner,
    }
}

/// A gateway's services over the scripted engine, with its database in
/// `dir` and the admin token `admin` (unit tests of what sits on `App`).
#[cfg(test)]
pub(crate) fn test_app(dir: &std::path::Path) -> Arc<App> {
    use crate::engine::scripted::{Script, ScriptFactory};
    use crate::session::Deps;
    let store = Store::open(&dir.join("wagate.db")).expect("a store in the test's directory");
    let outbox = Outbox::start(store.clone(), crate::outbox::pacing::Policy::unpaced("UTC"));
    let sessions = Arc::new(Sessions::new(Deps {
        factory: Arc::new(ScriptFactory::new(Script::new(false), dir)),
        journal: Arc::new(store.clone()),
        hooks: outbox.clone(),
        orgs_dir: dir.join("orgs"),
        aside_dir: dir.join("aside"),
        jitter: Arc::new(|| 0.0),
        open_budget: None,
    }));
    Arc::new(App::new(
        store,
        sessions,
        outbox,
        TokenBook::new("admin"),
        CancellationToken::new(),
        None,
    ))
}

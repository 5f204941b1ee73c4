//! Sessions: the registry of per-organization supervisors, and the paced
//! restore of every linked organization at start-up.

pub mod policy;
pub mod status;
pub mod supervisor;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

pub use status::{Snapshot, State, StatusView};
pub use supervisor::{Command, Deps, EngineSlot, LinkHooks, Supervisor};

/// A handle on one org's supervisor.
#[derive(Clone)]
pub struct Handle {
    pub commands: mpsc::Sender<Command>,
    pub status: watch::Receiver<Snapshot>,
    pub engine: EngineSlot,
}

impl Handle {
    pub fn snapshot(&self) -> Snapshot {
        self.status.borrow().clone()
    }

    pub fn view(&self, org: &str) -> StatusView {
        let last = self
            .engine
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .and_then(|e| e.last_frame());
        StatusView::build(org, &self.snapshot(), last)
    }

    pub async fn send(&self, cmd: Command) -> bool {
        self.commands.send(cmd).await.is_ok()
    }
}

pub struct Sessions {
    deps: Arc<Deps>,
    orgs: RwLock<HashMap<String, Handle>>,
}

impl Sessions {
    pub fn new(deps: Deps) -> Sessions {
        Sessions {
            deps: Arc::new(deps),
            orgs: RwLock::new(HashMap::new()),
        }
    }

    /// Start the supervisor of `org` (idle until restored or asked to connect).
    pub fn add(&self, org: &str) -> Handle {
        let mut map = self.orgs.write().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = map.get(org) {
            return h.clone();
        }
        let (commands, status, engine) = Supervisor::spawn(org, self.deps.clone());
        let h = Handle {
            commands,
            status,
            engine,
        };
        map.insert(org.to_string(), h.clone());
        h
    }

    pub fn get(&self, org: &str) -> Option<Handle> {
        self.orgs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(org)
            .cloned()
    }

    pub fn list(&self) -> Vec<(String, Handle)> {
        let mut v: Vec<_> = self
            .orgs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Stop an org's supervisor; with `move_aside`, its credentials are moved
    /// into the aside folder (never deleted).
    pub async fn remove(&self, org: &str, move_aside: bool) {
        let h = self
            .orgs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(org);
        if let Some(h) = h {
            let (done, wait) = oneshot::channel();
            if h.send(Command::Stop { move_aside, done }).await {
                let _ = wait.await;
            }
        }
    }

    /// Reconnect every org with credentials, at most `per_second` connects a
    /// second so a thousand orgs do not all dial at once.
    pub fn restore_all(&self, per_second: u32) -> tokio::task::JoinHandle<()> {
        let handles = self.list();
        let gap = Duration::from_secs_f64(1.0 / f64::from(per_second.max(1)));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(gap);
            for (_, h) in handles {
                tick.tick().await;
                let _ = h.send(Command::Restore).await;
            }
        })
    }

    pub async fn stop_all(&self) {
        let orgs: Vec<String> = self.list().into_iter().map(|(o, _)| o).collect();
        for org in orgs {
            self.remove(&org, false).await;
        }
    }
}
#[cfg(test)]
mod tests;

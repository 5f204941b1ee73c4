//! Sessions: the registry of per-organization supervisors, the paced restore
//! of every linked organization at start-up, and the concurrent stop at
//! shutdown. What a supervisor decides is in `policy` and `liveness`; why a
//! link is where it is, in `reason`.

pub mod liveness;
pub mod policy;
pub mod status;
pub mod supervisor;

use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::events::Event;
use tokio::sync::{mpsc, oneshot, watch};

pub use crate::link::{Cause, OrgRef, Purpose, Reason, State};
pub use status::{Snapshot, Status};
pub use supervisor::{Command, Deps, EngineSlot, LinkHooks, Supervisor};

/// Where supervisors record their events (state changes, codes on offer,
/// decryption failures). Recording never blocks the supervisor and never
/// drops an event.
pub trait Journal: Send + Sync {
    fn record(&self, org: &OrgRef, event: Event);
}

impl Journal for crate::store::Store {
    fn record(&self, org: &OrgRef, event: Event) {
        let (id, inc) = (org.id.clone(), org.inc);
        // Several nodes: only the org's owner records its link's events.
        self.submit(event.kind().as_str(), move |tx| {
            tx.fence(inc)?;
            crate::events::emit(tx, inc, &id, &event).map(|_| ())
        });
    }
}

/// A handle on one org's supervisor.
#[derive(Clone)]
pub struct Handle {
    pub org: OrgRef,
    pub commands: mpsc::Sender<Command>,
    pub status: watch::Receiver<Snapshot>,
    pub engine: EngineSlot,
}

/// The supervisor is not running (stopped or stopping).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the session supervisor is not running")]
pub struct Stopped;

impl Handle {
    pub fn snapshot(&self) -> Snapshot {
        self.status.borrow().clone()
    }

    /// The link as the surfaces show it (without the queue count).
    pub fn status(&self) -> Status {
        let last = self.engine.lock().as_ref().and_then(|e| e.last_frame());
        Status::build(&self.org.id, &self.snapshot(), last)
    }

    /// Send a command that carries no answer.
    pub async fn send(&self, cmd: Command) -> Result<(), Stopped> {
        self.commands.send(cmd).await.map_err(|_| Stopped)
    }

    /// Send a command built around a reply channel and wait until the
    /// supervisor has carried it out.
    pub async fn ask(
        &self,
        cmd: impl FnOnce(oneshot::Sender<()>) -> Command,
    ) -> Result<(), Stopped> {
        let (tx, rx) = oneshot::channel();
        self.send(cmd(tx)).await?;
        rx.await.map_err(|_| Stopped)
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
    pub fn add(&self, org: &OrgRef) -> Handle {
        let mut map = self.orgs.write();
        if let Some(h) = map.get(&org.id).filter(|h| h.org.inc == org.inc) {
            return h.clone();
        }
        let h = self.spawn(org);
        map.insert(org.id.clone(), h.clone());
        h
    }

    /// A new supervisor for `org`, idle until restored or asked to connect.
    fn spawn(&self, org: &OrgRef) -> Handle {
        let (commands, status, engine) = Supervisor::spawn(org.clone(), self.deps.clone());
        Handle {
            org: org.clone(),
            commands,
            status,
            engine,
        }
    }

    /// Where credentials set aside are kept.
    pub fn aside_dir(&self) -> &std::path::Path {
        &self.deps.aside_dir
    }

    pub fn get(&self, org: &str) -> Option<Handle> {
        self.orgs.read().get(org).cloned()
    }

    /// Supervisors that ended although their org was not removed (a panic):
    /// the gateway is not healthy (it stops feeding systemd's watchdog).
    pub fn stopped_supervisors(&self) -> usize {
        self.orgs
            .read()
            .values()
            .filter(|h| h.commands.is_closed())
            .count()
    }

    pub fn list(&self) -> Vec<Handle> {
        let mut v: Vec<_> = self.orgs.read().values().cloned().collect();
        v.sort_by(|a, b| a.org.id.cmp(&b.org.id));
        v
    }

    /// Stop an org's supervisor; with `move_aside`, its credentials are moved
    /// into the aside folder (never deleted). Waits until it has stopped.
    pub async fn remove(&self, org: &str, move_aside: bool) {
        let h = self.orgs.write().remove(org);
        if let Some(h) = h {
            let _ = h.ask(|done| Command::Stop { move_aside, done }).await;
        }
    }

    /// Several nodes: close an org's link because another node owns it
    /// now. Its supervisor stops (credentials kept, waiting at most
    /// `within`) and an idle one takes its place at once.
    pub async fn recycle(&self, org: &str, within: Duration) {
        let old = {
            let mut map = self.orgs.write();
            let Some(old) = map.get(org).cloned() else {
                return;
            };
            map.insert(org.to_string(), self.spawn(&old.org));
            old
        };
        let stopped = old.ask(|done| Command::Stop {
            move_aside: false,
            done,
        });
        if tokio::time::timeout(within, stopped).await.is_err() {
            tracing::warn!(
                org,
                "a supervisor did not stop in time after its lease was lost"
            );
        }
    }

    /// Move a device folder left under `org` aside (as `stale`), so a new org
    /// with this id never starts from an earlier org's credentials.
    pub fn set_leftovers_aside(&self, org: &str) -> std::io::Result<Option<std::path::PathBuf>> {
        let moved = crate::datadir::move_dir_aside(
            &self.deps.orgs_dir.join(org),
            &self.deps.aside_dir,
            org,
            "stale",
        )?;
        if let Some(target) = &moved {
            tracing::warn!(org, aside = %target.display(), "an earlier org's credentials were moved aside");
        }
        Ok(moved)
    }

    /// Reconnect every org with credentials, at most `per_second` connects a
    /// second so a thousand orgs do not all dial at once; the most recently
    /// active first (`activity`: last activity by incarnation, ms). An org
    /// that was never linked takes no turn.
    pub fn restore_all(
        &self,
        per_second: u32,
        activity: HashMap<i64, i64>,
    ) -> tokio::task::JoinHandle<()> {
        let mut handles = self.list();
        handles.sort_by_key(|h| std::cmp::Reverse(activity.get(&h.org.inc).copied().unwrap_or(0)));
        let gap = Duration::from_secs_f64(1.0 / f64::from(per_second.max(1)));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(gap);
            for h in handles {
                let s = h.snapshot();
                if s.state == State::New && s.reason == Reason::NotLinked {
                    continue;
                }
                tick.tick().await;
                let _ = h.send(Command::Restore).await;
            }
        })
    }

    /// Stop every supervisor at once (each closes its link and releases its
    /// files); gives up waiting after `within`. Returns how many had not
    /// finished by then.
    pub async fn stop_all(&self, within: Duration) -> usize {
        let handles: Vec<Handle> = self.orgs.write().drain().map(|(_, h)| h).collect();
        let total = handles.len();
        let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut set = tokio::task::JoinSet::new();
        for h in handles {
            let done = done.clone();
            set.spawn(async move {
                let _ = h
                    .ask(|d| Command::Stop {
                        move_aside: false,
                        done: d,
                    })
                    .await;
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            });
        }
        let _ =
            tokio::time::timeout(within, async { while set.join_next().await.is_some() {} }).await;
        set.abort_all();
        total - done.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests;

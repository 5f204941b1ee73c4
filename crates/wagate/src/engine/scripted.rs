//! A scripted engine for unit tests of the supervisor: it records every call
//! and lets the test play the events a real engine would emit. Test-only.

use parking_lot::Mutex;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{
    BoxFuture, CloseReason, Engine, EngineError, EngineEvent, EngineFactory, SendFailure,
    StartOptions,
};

#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    Open,
    Start(StartOptions),
    Close,
    Probe,
    Typing(String),
    Lookup(String),
    Logout,
    Shutdown,
}

#[derive(Default)]
pub struct Script {
    pub calls: Mutex<Vec<(Instant, Call)>>,
    pub creds: AtomicBool,
    pub corrupt_next_open: AtomicBool,
    /// Opens still to fail as "unavailable" (out of descriptors …).
    pub unavailable_opens: std::sync::atomic::AtomicUsize,
    /// `shutdown` never returns (a library stuck closing).
    pub hang_shutdown: AtomicBool,
    /// Whether `send_text` succeeds (else: not connected).
    pub accept_sends: AtomicBool,
    /// Every successful send: (to, text, wa_id).
    pub sent: Mutex<Vec<(String, String, String)>>,
    /// Phones a look-up says are not on WhatsApp.
    pub not_on_whatsapp: Mutex<Vec<String>>,
    pub active: AtomicBool,
    pub last_frame: Mutex<Option<Instant>>,
    /// When the supervisor looked at `last_frame`.
    pub looks: Mutex<Vec<Instant>>,
    /// A probe is answered at once (its pong is a frame), as a healthy server does.
    pub answer_probes: AtomicBool,
    events: Mutex<Option<mpsc::UnboundedSender<EngineEvent>>>,
}

impl Script {
    pub fn new(creds: bool) -> Arc<Script> {
        let s = Script::default();
        s.creds.store(creds, Ordering::SeqCst);
        Arc::new(s)
    }

    fn record(&self, c: Call) {
        self.calls.lock().push((Instant::now(), c));
    }

    /// Emit an event as the engine would.
    pub async fn emit(&self, ev: EngineEvent) {
        if matches!(ev, EngineEvent::Closed { .. }) {
            self.active.store(false, Ordering::SeqCst);
        }
        if matches!(ev, EngineEvent::Connected { .. }) {
            *self.last_frame.lock() = Some(Instant::now());
        }
        let tx = self.events.lock().clone();
        if let Some(tx) = tx {
            tx.send(ev).expect("supervisor gone");
        }
        tokio::task::yield_now().await;
    }

    pub fn frame_now(&self) {
        *self.last_frame.lock() = Some(Instant::now());
    }

    pub fn starts(&self) -> Vec<Instant> {
        self.calls_of(|c| matches!(c, Call::Start(_)))
    }

    pub fn calls_of(&self, f: impl Fn(&Call) -> bool) -> Vec<Instant> {
        self.calls
            .lock()
            .iter()
            .filter(|(_, c)| f(c))
            .map(|(t, _)| *t)
            .collect()
    }

    pub fn last_call(&self) -> Option<Call> {
        self.calls.lock().last().map(|(_, c)| c.clone())
    }
}

struct ScriptEngine(Arc<Script>);

impl ScriptEngine {
    fn close_active(&self) {
        if self.0.active.swap(false, Ordering::SeqCst) {
            let tx = self.0.events.lock().clone();
            if let Some(tx) = tx {
                let _ = tx.send(EngineEvent::Closed {
                    reason: CloseReason::Requested,
                });
            }
        }
    }
}

impl Engine for ScriptEngine {
    fn has_credentials(&self) -> bool {
        self.0.creds.load(Ordering::SeqCst)
    }
    fn start(&self, opts: StartOptions) {
        self.0.active.store(true, Ordering::SeqCst);
        self.0.record(Call::Start(opts));
    }
    fn close(&self) {
        self.0.record(Call::Close);
        self.close_active();
    }
    fn probe(&self) {
        self.0.record(Call::Probe);
        if self.0.answer_probes.load(Ordering::SeqCst) {
            self.0.frame_now();
            let tx = self.0.events.lock().clone();
            if let Some(tx) = tx {
                let _ = tx.send(EngineEvent::ProbeAnswered);
            }
        }
    }
    fn last_frame(&self) -> Option<Instant> {
        self.0.looks.lock().push(Instant::now());
        *self.0.last_frame.lock()
    }
    fn logout(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.0.record(Call::Logout);
            self.0.creds.store(false, Ordering::SeqCst);
            self.close_active();
        })
    }
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if self.0.hang_shutdown.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            self.0.record(Call::Shutdown);
            self.0.active.store(false, Ordering::SeqCst);
        })
    }
    fn typing<'a>(&'a self, to: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move { self.0.record(Call::Typing(to.to_string())) })
    }

    fn lookup<'a>(&'a self, phone: &'a str) -> BoxFuture<'a, Result<Option<String>, SendFailure>> {
        Box::pin(async move {
            self.0.record(Call::Lookup(phone.to_string()));
            if !self.0.accept_sends.load(Ordering::SeqCst) {
                return Err(SendFailure::NotConnected("scripted engine".into()));
            }
            let absent = self.0.not_on_whatsapp.lock().iter().any(|p| p == phone);
            Ok((!absent).then(|| format!("{phone}@s.whatsapp.net")))
        })
    }

    fn send_text<'a>(
        &'a self,
        to: &'a str,
        text: &'a str,
        wa_id: &'a str,
    ) -> BoxFuture<'a, Result<(), SendFailure>> {
        Box::pin(async move {
            if !self.0.accept_sends.load(Ordering::SeqCst) {
                return Err(SendFailure::NotConnected("scripted engine".into()));
            }
            self.0
                .sent
                .lock()
                .push((to.to_string(), text.to_string(), wa_id.to_string()));
            Ok(())
        })
    }
}

/// Scripted engines whose "credentials" are a file `creds` in
/// `data/orgs/<org>/`, set aside by moving that folder to `data/aside/`.
pub struct ScriptFactory {
    pub script: Arc<Script>,
    pub data: PathBuf,
}

impl ScriptFactory {
    pub fn new(script: Arc<Script>, data: &Path) -> ScriptFactory {
        ScriptFactory {
            script,
            data: data.to_path_buf(),
        }
    }
}

impl EngineFactory for ScriptFactory {
    fn open<'a>(
        &'a self,
        org: &'a str,
        _dev: i64,
        events: mpsc::UnboundedSender<EngineEvent>,
    ) -> BoxFuture<'a, Result<Arc<dyn Engine>, EngineError>> {
        Box::pin(async move {
            let dir = self.data.join("orgs").join(org);
            std::fs::create_dir_all(&dir).map_err(|e| EngineError::Unavailable(e.to_string()))?;
            let s = &self.script;
            s.record(Call::Open);
            let left = s.unavailable_opens.load(Ordering::SeqCst);
            if left > 0 {
                s.unavailable_opens.store(left - 1, Ordering::SeqCst);
                return Err(EngineError::Unavailable(
                    "Too many open files (os error 24)".into(),
                ));
            }
            if s.corrupt_next_open.swap(false, Ordering::SeqCst) {
                return Err(EngineError::Corrupt("file is not a database".into()));
            }
            // A fresh device after a move-aside has no credentials.
            if !dir.join("creds").exists() {
                s.creds.store(false, Ordering::SeqCst);
            }
            *s.events.lock() = Some(events);
            Ok(Arc::new(ScriptEngine(s.clone())) as Arc<dyn Engine>)
        })
    }

    fn stored<'a>(&'a self, org: &'a str, _dev: i64) -> BoxFuture<'a, Result<bool, EngineError>> {
        Box::pin(async move {
            let s = &self.script;
            // A corrupt or unavailable store is found by opening it.
            if s.corrupt_next_open.load(Ordering::SeqCst)
                || s.unavailable_opens.load(Ordering::SeqCst) > 0
            {
                return Ok(true);
            }
            Ok(self.data.join("orgs").join(org).join("creds").exists())
        })
    }

    fn set_aside<'a>(
        &'a self,
        org: &'a str,
        _dev: i64,
        why: &'a str,
    ) -> BoxFuture<'a, Result<Option<PathBuf>, String>> {
        Box::pin(async move {
            let dir = self.data.join("orgs").join(org);
            super::move_dir_aside(&dir, &self.data.join("aside"), org, why)
                .map_err(|e| e.to_string())
        })
    }

    fn reinstate<'a>(
        &'a self,
        org: &'a str,
        _dev: i64,
        from: &'a Path,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let dir = self.data.join("orgs").join(org);
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::rename(from, &dir).map_err(|e| e.to_string())?;
            self.script
                .creds
                .store(dir.join("creds").exists(), Ordering::SeqCst);
            Ok(())
        })
    }
}

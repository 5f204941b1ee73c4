//! One supervisor task per organization: it owns the org's engine and carries
//! out what `policy` decides for everything that happens to the link (the
//! supervisor itself decides nothing), runs the timers (retry, login, code
//! expiry, liveness, re-opening the store), moves credentials aside when told
//! to, and publishes every state change with its reason. It is the only writer
//! of the org's status and the only caller of the engine's lifecycle methods.

use parking_lot::Mutex;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{sleep_until, Instant};

use super::liveness::{self, Verdict};
use super::policy::{self, Action, Ctx, Happening, RestartLog};
use super::status::{Offer, Snapshot};
use super::{Journal, OrgRef};
use crate::engine::{CloseReason, Engine, EngineError, EngineEvent, EngineFactory, StartOptions};
use crate::events::{DecryptFailure, Event, PairCodeOffered, QrOffered, StateChanged};
use crate::link::State;
use crate::link::{Purpose, Reason};

/// Orders for a supervisor. `done` is answered once the order was carried
/// out (the state it leads to is published).
#[derive(Debug)]
pub enum Command {
    /// Start pairing (QR, or a pairing code for `pair_phone`) or reconnect now.
    Connect {
        pair_phone: Option<String>,
        done: oneshot::Sender<()>,
    },
    /// Start-up restore: connect if credentials exist.
    Restore,
    /// Unlink from the phone and move credentials aside.
    Logout { done: oneshot::Sender<()> },
    /// The old "clean session": move credentials aside and pair afresh.
    Reset { done: oneshot::Sender<()> },
    /// Put back credentials kept aside (`from`, a copy in the aside
    /// folder): the current ones are set aside as `replaced`, then the org
    /// reconnects with the restored ones. Answers where the replaced ones
    /// went, or why the restore failed (the current ones are then back).
    Reinstate {
        from: PathBuf,
        done: oneshot::Sender<Result<Option<PathBuf>, String>>,
    },
    /// Stop for good (org deleted, gateway stopping); optionally move the
    /// credentials aside first.
    Stop {
        move_aside: bool,
        done: oneshot::Sender<()>,
    },
}

/// What the rest of the gateway needs to hear about a link.
pub trait LinkHooks: Send + Sync {
    /// The link is up: messages may be sent through `engine`.
    fn link_up(&self, org: &OrgRef, engine: Arc<dyn Engine>);
    /// The link is down: stop sending.
    fn link_down(&self, org: &OrgRef);
    /// Acks, receipts and inbound messages.
    fn engine_event(&self, org: &OrgRef, event: EngineEvent);
}

/// Everything a supervisor is given.
pub struct Deps {
    pub factory: Arc<dyn EngineFactory>,
    pub journal: Arc<dyn Journal>,
    pub hooks: Arc<dyn LinkHooks>,
    /// `data/orgs`: the one-folder-per-org layout of earlier versions (a
    /// folder left there under a new org's id is set aside).
    pub orgs_dir: PathBuf,
    /// `data/aside`: credentials moved aside (logged out, reset, corrupt).
    pub aside_dir: PathBuf,
    /// Jitter source in [-1, 1]; injectable for tests.
    pub jitter: Arc<dyn Fn() -> f64 + Send + Sync>,
    /// How many orgs' device stores may be open at once (each holds file
    /// descriptors; see `datadir::budget`). `None`: no limit.
    pub open_budget: Option<Arc<tokio::sync::Semaphore>>,
}

/// The shared slot holding the org's current engine (for sends and `last_seen`).
pub type EngineSlot = Arc<Mutex<Option<Arc<dyn Engine>>>>;

/// What to do when the running attempt reports `Closed`.
#[derive(Debug)]
enum After {
    /// What the table decided before the close (a verdict, a timer).
    Act(Action),
    /// Start the next attempt at once (switch from QR to pairing code).
    Begin,
    /// Move credentials aside, pair afresh.
    Reset,
    /// Logged out on request: credentials aside, `logged_out`.
    LogoutRequested,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Timer {
    Retry,
    Liveness,
    BanOver,
    /// The running attempt must log in (or offer a code) by then.
    Login,
    /// Open the device store again (it was unavailable).
    Reopen,
}

pub struct Supervisor {
    org: OrgRef,
    deps: Arc<Deps>,
    engine: Option<Arc<dyn Engine>>,
    slot: EngineSlot,
    events: Option<mpsc::UnboundedReceiver<EngineEvent>>,
    running: bool,
    after: Option<After>,
    attempt: u32,
    /// Failed opens of the device store in a row.
    open_attempt: u32,
    qr_rounds: u32,
    connected_at: Option<Instant>,
    /// The quiet spell (its last frame) already probed, if any.
    probed_spell: Option<Instant>,
    /// When the server last answered a probe on this link (its pong may be
    /// counted as a frame a moment after the answer is seen).
    probe_answered: Option<Instant>,
    restarts: RestartLog,
    /// A restore was asked for while the store could not be opened.
    want_restore: bool,
    timer: Option<(Instant, Timer)>,
    opts: StartOptions,
    status: watch::Sender<Snapshot>,
    /// Orders waiting for the running attempt to close.
    waiting: Vec<oneshot::Sender<()>>,
    /// This org's share of the open-store budget, while its store is open.
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Supervisor {
    /// Open the org's engine and run its supervisor on a new task.
    pub fn spawn(
        org: OrgRef,
        deps: Arc<Deps>,
    ) -> (mpsc::Sender<Command>, watch::Receiver<Snapshot>, EngineSlot) {
        let (cmd_tx, cmd_rx) = mpsc::channel(32);
        let (status, status_rx) =
            watch::channel(Snapshot::initial(State::Starting, Reason::Starting));
        let slot: EngineSlot = Arc::new(Mutex::new(None));
        let sup = Supervisor {
            org,
            deps,
            engine: None,
            slot: slot.clone(),
            events: None,
            running: false,
            after: None,
            attempt: 0,
            open_attempt: 0,
            qr_rounds: 0,
            connected_at: None,
            probed_spell: None,
            probe_answered: None,
            restarts: RestartLog::default(),
            want_restore: false,
            timer: None,
            opts: StartOptions::default(),
            status,
            waiting: Vec::new(),
            permit: None,
        };
        tokio::spawn(sup.run(cmd_rx));
        (cmd_tx, status_rx, slot)
    }

    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        // A never-linked org opens no engine until it pairs.
        match self.deps.factory.stored(&self.org.id, self.org.inc).await {
            Ok(false) => self.set_state(State::New, Reason::NotLinked),
            _ => {
                self.open_engine().await;
            }
        }
        loop {
            let deadline = self.timer.map(|(t, _)| t);
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(Command::Stop { move_aside, done }) => {
                        self.stop(move_aside).await;
                        let _ = done.send(());
                        return;
                    }
                    Some(cmd) => self.on_command(cmd).await,
                    None => {
                        self.stop(false).await;
                        return;
                    }
                },
                ev = next_event(&mut self.events) => match ev {
                    Some(ev) => self.on_event(ev).await,
                    None => self.events = None,
                },
                _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    if let Some((_, kind)) = self.timer.take() {
                        self.on_timer(kind).await;
                    }
                }
            }
        }
    }

    // ---- state publication -------------------------------------------------

    /// Publish `state` with `reason`. The snapshot always takes the current
    /// attempt and retry time; an event is recorded when the state or the
    /// reason changed.
    fn set_state(&mut self, state: State, reason: Reason) {
        let changed = {
            let cur = self.status.borrow();
            cur.state != state || cur.reason != reason
        };
        let attempt = self.attempt;
        let next_retry_at = self
            .timer
            .filter(|(_, k)| matches!(k, Timer::Retry | Timer::BanOver | Timer::Reopen))
            .map(|(t, _)| t);
        self.status.send_modify(|s| {
            if s.state != state {
                s.since_ms = crate::store::now_ms();
            }
            s.state = state;
            s.reason = reason.clone();
            s.reconnect_attempt = if state == State::Connected {
                0
            } else {
                attempt
            };
            s.next_retry_at = next_retry_at;
            if state != State::Pairing {
                s.qr = None;
                s.pair_code = None;
            }
        });
        if !changed {
            return;
        }
        if let Reason::RetryScheduled { cause, .. } = &reason {
            crate::metrics::reconnect(cause.kind());
        }
        let snap = self.status.borrow().clone();
        tracing::info!(org = %self.org.id, state = state.as_str(), attempt, reason = ?reason, "link state");
        self.deps.journal.record(
            &self.org,
            Event::State(StateChanged::new(
                state,
                reason,
                snap.reconnect_attempt,
                next_retry_at
                    .map(|t| t.saturating_duration_since(Instant::now()).as_millis() as u64),
                snap.phone_number,
            )),
        );
    }

    fn ctx(&mut self) -> Ctx {
        Ctx {
            has_credentials: self.engine.as_ref().is_some_and(|e| e.has_credentials()),
            attempt: self.attempt,
            qr_rounds: self.qr_rounds,
            recent_restarts: self.restarts.recent(Instant::now()),
            jitter: (self.deps.jitter)(),
        }
    }

    fn decide(&mut self, h: Happening) -> Action {
        let ctx = self.ctx();
        policy::decide(h, &ctx)
    }

    // ---- engine lifecycle ------------------------------------------------

    /// Open the org's device store; on success, settle into the idle state
    /// (or connect, if a restore is waiting). `false` when it could not be opened.
    async fn open_engine(&mut self) -> bool {
        let opened = match self.take_budget() {
            Ok(()) => {
                let (tx, rx) = mpsc::unbounded_channel();
                self.deps
                    .factory
                    .open(&self.org.id, self.org.inc, tx)
                    .await
                    .map(|e| (e, rx))
            }
            Err(e) => Err(e),
        };
        if matches!(opened, Err(EngineError::Unavailable(_))) {
            self.permit = None;
        }
        match opened {
            Ok((engine, rx)) => {
                self.install(engine, rx);
                self.open_attempt = 0;
                let creds = self.engine.as_ref().is_some_and(|e| e.has_credentials());
                if creds && self.want_restore {
                    self.begin();
                } else if creds {
                    self.set_state(State::Connecting, Reason::WaitingForTurn);
                } else {
                    self.set_state(State::New, Reason::NotLinked);
                }
                true
            }
            Err(EngineError::Corrupt(why)) => {
                match self.decide(Happening::CredentialsCorrupt) {
                    Action::Quarantine => self.quarantine(why).await,
                    other => {
                        tracing::error!(org = %self.org.id, action = ?other, "unexpected action for corrupt credentials")
                    }
                }
                self.engine.is_some()
            }
            Err(EngineError::Unavailable(error)) => {
                tracing::warn!(org = %self.org.id, %error, "device store unavailable; credentials kept");
                let ctx = Ctx {
                    attempt: self.open_attempt,
                    ..self.ctx()
                };
                if let Action::RetryOpen {
                    delay,
                    attempt,
                    reason,
                } = policy::decide(Happening::StoreUnavailable { error }, &ctx)
                {
                    self.open_attempt = attempt;
                    self.timer = Some((Instant::now() + delay, Timer::Reopen));
                    self.set_state(State::Error, reason);
                }
                false
            }
        }
    }

    /// Take this org's place in the open-store budget (kept while the store
    /// is open); without a place, the store is unavailable for now.
    fn take_budget(&mut self) -> Result<(), EngineError> {
        let Some(budget) = &self.deps.open_budget else {
            return Ok(());
        };
        if self.permit.is_some() {
            return Ok(());
        }
        match budget.clone().try_acquire_owned() {
            Ok(p) => {
                self.permit = Some(p);
                Ok(())
            }
            Err(_) => Err(EngineError::Unavailable(
                "the open-file limit does not allow more organizations' stores open at once; raise it (LimitNOFILE=, ulimit -n)".into(),
            )),
        }
    }

    /// Credentials unreadable: move them aside as `corrupt`, open a fresh device.
    async fn quarantine(&mut self, why: String) {
        let aside = self.set_aside("corrupt").await;
        tracing::warn!(org = %self.org.id, reason = %why, aside = ?aside, "credentials quarantined");
        let aside = aside.map(|p| p.display().to_string());
        let (tx, rx) = mpsc::unbounded_channel();
        let fresh_failed = match self.deps.factory.open(&self.org.id, self.org.inc, tx).await {
            Ok(e) => {
                self.install(e, rx);
                None
            }
            Err(e) => {
                self.permit = None;
                Some(e.to_string())
            }
        };
        self.set_state(
            State::NeedsQr,
            Reason::CredentialsUnreadable {
                why,
                aside,
                fresh_failed,
            },
        );
    }

    fn install(&mut self, engine: Arc<dyn Engine>, rx: mpsc::UnboundedReceiver<EngineEvent>) {
        *self.slot.lock() = Some(engine.clone());
        self.engine = Some(engine);
        self.events = Some(rx);
    }

    async fn drop_engine(&mut self) {
        *self.slot.lock() = None;
        if let Some(e) = self.engine.take() {
            e.shutdown().await;
        }
        self.events = None;
        self.running = false;
        self.permit = None;
    }

    /// Keep a copy of the org's device state aside and clear it; never
    /// deletes what it could not copy.
    async fn set_aside(&self, why: &str) -> Option<PathBuf> {
        match self
            .deps
            .factory
            .set_aside(&self.org.id, self.org.inc, why)
            .await
        {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(org = %self.org.id, error = %e, "could not move credentials aside");
                None
            }
        }
    }

    /// Shut the engine, move its credentials aside and open a fresh device.
    async fn set_aside_and_reopen(&mut self, why: &str) -> Option<PathBuf> {
        self.drop_engine().await;
        let aside = self.set_aside(why).await;
        if let Some(p) = &aside {
            tracing::info!(org = %self.org.id, aside = %p.display(), "credentials moved aside ({why})");
        }
        self.status.send_modify(|s| s.phone_number = None);
        self.open_engine().await;
        aside
    }

    /// Set the current credentials aside as `replaced`, put `from` in their
    /// place, and reconnect with them. If `from` cannot be read, the
    /// replaced ones are put back.
    async fn reinstate(&mut self, from: &Path) -> Result<Option<PathBuf>, String> {
        self.timer = None;
        self.deps.hooks.link_down(&self.org);
        self.drop_engine().await;
        let replaced = self.set_aside("replaced").await;
        let (id, dev) = (self.org.id.clone(), self.org.inc);
        let result = match self.deps.factory.reinstate(&id, dev, from).await {
            Ok(()) => {
                tracing::info!(org = %id, from = %from.display(), "credentials restored");
                Ok(replaced)
            }
            Err(e) => {
                tracing::error!(org = %id, from = %from.display(), error = %e, "cannot restore credentials");
                if let Some(p) = &replaced {
                    if let Err(back) = self.deps.factory.reinstate(&id, dev, p).await {
                        tracing::error!(org = %id, error = %back, "cannot put the replaced credentials back; they stay aside");
                    }
                }
                Err(e)
            }
        };
        self.status.send_modify(|s| s.phone_number = None);
        self.attempt = 0;
        self.qr_rounds = 0;
        self.opts = StartOptions::default();
        if self.open_engine().await && self.engine.as_ref().is_some_and(|e| e.has_credentials()) {
            self.begin();
        }
        result
    }

    /// Begin one connection attempt.
    fn begin(&mut self) {
        let Some(engine) = self.engine.clone() else {
            return;
        };
        self.timer = None;
        self.running = true;
        self.after = None;
        let purpose = if engine.has_credentials() {
            Purpose::Login
        } else if self.opts.pair_phone.is_some() {
            Purpose::PairCode
        } else {
            Purpose::Qr
        };
        let state = if self.attempt == 0 {
            State::Connecting
        } else {
            State::Reconnecting
        };
        self.set_state(
            state,
            Reason::Connecting {
                purpose,
                attempt: self.attempt,
            },
        );
        self.timer = Some((Instant::now() + policy::LOGIN_TIMEOUT, Timer::Login));
        engine.start(self.opts.clone());
    }

    fn close_attempt(&mut self, after: After) {
        self.after = Some(after);
        self.timer = None;
        if let Some(e) = &self.engine {
            e.close();
        }
    }

    /// Carry out what the table decided, with no attempt running.
    async fn carry_out(&mut self, action: Action) {
        match action {
            Action::ReconnectNow => {
                self.restarts.record(Instant::now());
                tracing::info!(org = %self.org.id, "restart requested; reconnecting now");
                self.begin();
            }
            Action::NextRound { qr_rounds } => {
                tracing::info!(org = %self.org.id, round = qr_rounds + 1, "codes expired; offering a new round");
                self.qr_rounds = qr_rounds;
                self.begin();
            }
            Action::Retry {
                delay,
                attempt,
                qr_rounds,
                reason,
            } => {
                self.attempt = attempt;
                self.qr_rounds = qr_rounds;
                self.timer = Some((Instant::now() + delay, Timer::Retry));
                self.set_state(State::Reconnecting, reason);
            }
            Action::Park { state, reason } => self.set_state(state, reason),
            Action::SetAside { why, state, reason } => {
                self.set_aside_and_reopen(why).await;
                self.set_state(state, reason);
            }
            Action::WaitBan { retry_in, reason } => {
                if let Some(d) = retry_in {
                    self.timer = Some((Instant::now() + d, Timer::BanOver));
                }
                self.set_state(State::Banned, reason);
            }
            Action::Quarantine | Action::RetryOpen { .. } | Action::Count => {
                tracing::error!(org = %self.org.id, action = ?action, "action does not apply to a closed attempt");
            }
        }
    }

    /// Act on what happened while an attempt runs: close it first, then
    /// carry the action out when it has closed.
    fn close_and_then(&mut self, action: Action) {
        self.close_attempt(After::Act(action));
    }

    fn answer_waiting(&mut self) {
        for w in self.waiting.drain(..) {
            let _ = w.send(());
        }
    }

    // ---- inputs ------------------------------------------------------------

    async fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Connect { pair_phone, done } => {
                self.connect(pair_phone).await;
                let _ = done.send(());
            }
            Command::Restore => {
                self.want_restore = true;
                let creds = self.engine.as_ref().is_some_and(|e| e.has_credentials());
                if creds && !self.running && self.timer.is_none() {
                    self.begin();
                }
            }
            Command::Logout { done } => {
                if let Some(engine) = self.engine.clone() {
                    if self.running {
                        self.after = Some(After::LogoutRequested);
                        self.timer = None;
                        self.waiting.push(done);
                        engine.logout().await;
                        return;
                    }
                    engine.logout().await;
                }
                self.timer = None;
                self.set_aside_and_reopen("logged_out").await;
                self.set_state(State::LoggedOut, Reason::LoggedOutOnRequest);
                let _ = done.send(());
            }
            Command::Reset { done } => {
                if self.running {
                    self.waiting.push(done);
                    self.close_attempt(After::Reset);
                } else {
                    self.reset_now().await;
                    let _ = done.send(());
                }
            }
            Command::Reinstate { from, done } => {
                let r = self.reinstate(&from).await;
                let _ = done.send(r);
            }
            Command::Stop { done, .. } => {
                let _ = done.send(());
            }
        }
    }

    async fn connect(&mut self, pair_phone: Option<String>) {
        let switch = pair_phone.is_some() && self.opts.pair_phone != pair_phone;
        self.opts = StartOptions { pair_phone };
        if self.running {
            if switch && self.status.borrow().state != State::Connected {
                self.qr_rounds = 0;
                self.close_attempt(After::Begin);
            }
            return;
        }
        if self.engine.is_none() {
            self.open_attempt = 0;
            // Opening may already begin an attempt (a restore was waiting).
            if !self.open_engine().await || self.running {
                return;
            }
        }
        self.attempt = 0;
        self.qr_rounds = 0;
        self.begin();
    }

    async fn reset_now(&mut self) {
        self.timer = None;
        self.set_aside_and_reopen("reset").await;
        self.attempt = 0;
        self.qr_rounds = 0;
        self.opts = StartOptions::default();
        self.begin();
    }

    async fn stop(&mut self, move_aside: bool) {
        self.timer = None;
        self.deps.hooks.link_down(&self.org);
        self.drop_engine().await;
        if move_aside {
            if let Some(p) = self.set_aside("deleted").await {
                tracing::info!(org = %self.org.id, aside = %p.display(), "credentials moved aside (org deleted)");
            }
        }
        self.set_state(State::Stopped, Reason::Stopped);
        self.answer_waiting();
    }

    /// A verdict ends the link: say so at once, act when the attempt closes.
    fn verdict(&mut self, h: Happening) {
        self.deps.hooks.link_down(&self.org);
        self.timer = None;
        let action = self.decide(h);
        let shown = match &action {
            Action::SetAside { state, reason, .. } | Action::Park { state, reason } => {
                Some((*state, reason.clone()))
            }
            Action::WaitBan { reason, .. } => Some((State::Banned, reason.clone())),
            _ => None,
        };
        if let Some((state, reason)) = shown {
            self.set_state(state, reason);
        }
        self.after = Some(After::Act(action));
    }

    async fn on_event(&mut self, ev: EngineEvent) {
        match ev {
            EngineEvent::Qr { code, ttl } => {
                let expires_at = Instant::now() + ttl;
                self.set_state(State::Pairing, Reason::ScanQr);
                self.status.send_modify(|s| {
                    s.qr = Some(Offer {
                        code: code.clone(),
                        expires_at,
                    });
                });
                self.disarm_login();
                self.deps.journal.record(
                    &self.org,
                    Event::Qr(QrOffered {
                        qr: code,
                        expires_in_ms: ttl.as_millis() as u64,
                    }),
                );
            }
            EngineEvent::PairCode { code, ttl } => {
                let expires_at = Instant::now() + ttl;
                self.set_state(State::Pairing, Reason::TypePairCode);
                self.status.send_modify(|s| {
                    s.pair_code = Some(Offer {
                        code: code.clone(),
                        expires_at,
                    });
                });
                // Nobody typed the code in time: an expired round (login timer).
                self.timer = Some((expires_at + policy::PAIR_CODE_GRACE, Timer::Login));
                self.deps.journal.record(
                    &self.org,
                    Event::PairCode(PairCodeOffered {
                        pair_code: code,
                        expires_in_ms: ttl.as_millis() as u64,
                    }),
                );
            }
            EngineEvent::QrExhausted => {
                let action = self.decide(Happening::CodesExpired);
                self.close_and_then(action);
            }
            EngineEvent::Paired { phone } => {
                tracing::info!(org = %self.org.id, phone = %phone, "linked");
                self.status
                    .send_modify(|s| s.phone_number = Some(phone.clone()));
                self.timer = Some((Instant::now() + policy::LOGIN_TIMEOUT, Timer::Login));
                self.set_state(State::Connecting, Reason::Paired { phone });
            }
            EngineEvent::Connected { phone } => {
                let now = Instant::now();
                self.connected_at = Some(now);
                self.qr_rounds = 0;
                self.probed_spell = None;
                self.probe_answered = None;
                self.want_restore = false;
                self.opts = StartOptions::default();
                if let Some(p) = &phone {
                    self.status
                        .send_modify(|s| s.phone_number = Some(p.clone()));
                }
                let shown = self.status.borrow().phone_number.clone();
                self.timer = Some((
                    liveness::on_grid(now + liveness::PROBE_AFTER),
                    Timer::Liveness,
                ));
                self.set_state(State::Connected, Reason::Connected { phone: shown });
                if let Some(e) = &self.engine {
                    self.deps.hooks.link_up(&self.org, e.clone());
                }
            }
            EngineEvent::LoggedOut { detail } => self.verdict(Happening::LoggedOut { detail }),
            EngineEvent::Replaced => self.verdict(Happening::Replaced),
            EngineEvent::Banned { expires_in, detail } => {
                self.verdict(Happening::Banned { expires_in, detail })
            }
            EngineEvent::Outdated => {
                tracing::error!(org = %self.org.id, "client outdated");
                self.verdict(Happening::Outdated)
            }
            EngineEvent::DecryptFailure { from } => {
                crate::metrics::get().decrypt_failures.inc();
                if self.decide(Happening::DecryptFailure) == Action::Count {
                    self.status.send_modify(|s| s.decrypt_failures += 1);
                }
                let n = self.status.borrow().decrypt_failures;
                tracing::warn!(org = %self.org.id, %from, failures = n, "a message could not be decrypted; the sender was asked to resend");
                self.deps.journal.record(
                    &self.org,
                    Event::DecryptFailure(DecryptFailure { from, count: n }),
                );
            }
            EngineEvent::ProbeAnswered => {
                // Look now rather than at the probe's deadline: the link is
                // alive, and the next look is due a whole PROBE_AFTER later.
                if matches!(self.timer, Some((_, Timer::Liveness))) {
                    self.probe_answered = Some(Instant::now());
                    self.timer = None;
                    self.on_timer(Timer::Liveness).await;
                }
            }
            EngineEvent::Closed { reason } => self.on_closed(reason).await,
            other => self.deps.hooks.engine_event(&self.org, other),
        }
    }

    /// A code is on offer: the QR rounds, not the login timer, bound the wait.
    fn disarm_login(&mut self) {
        if matches!(self.timer, Some((_, Timer::Login))) {
            self.timer = None;
        }
    }

    async fn on_closed(&mut self, reason: CloseReason) {
        if !self.running {
            return;
        }
        self.running = false;
        self.deps.hooks.link_down(&self.org);
        if let Some(at) = self.connected_at.take() {
            self.attempt = policy::attempt_after_link(self.attempt, at.elapsed());
        }
        match self.after.take() {
            None => {
                let action = self.decide(Happening::Closed(reason));
                self.carry_out(action).await;
            }
            Some(After::Act(action)) => self.carry_out(action).await,
            Some(After::Begin) => self.begin(),
            Some(After::Reset) => self.reset_now().await,
            Some(After::LogoutRequested) => {
                self.set_aside_and_reopen("logged_out").await;
                self.set_state(State::LoggedOut, Reason::LoggedOutOnRequest);
            }
        }
        self.answer_waiting();
    }

    async fn on_timer(&mut self, kind: Timer) {
        match kind {
            Timer::Retry | Timer::BanOver => {
                if !self.running {
                    self.begin();
                }
            }
            Timer::Reopen => {
                if self.engine.is_none() {
                    self.open_engine().await;
                }
            }
            Timer::Login => {
                if !self.running {
                    return;
                }
                let state = self.status.borrow().state;
                let Some(h) = policy::login_timer(state) else {
                    return;
                };
                if h == Happening::LoginTimeout {
                    tracing::warn!(org = %self.org.id, "no login within {} s; abandoning the attempt", policy::LOGIN_TIMEOUT.as_secs());
                }
                let action = self.decide(h);
                self.close_and_then(action);
            }
            Timer::Liveness => {
                if !self.running || self.status.borrow().state != State::Connected {
                    return;
                }
                let Some(engine) = self.engine.clone() else {
                    return;
                };
                match liveness::check(
                    Instant::now(),
                    engine.last_frame().max(self.probe_answered),
                    self.connected_at,
                    self.probed_spell,
                ) {
                    Verdict::Alive { recheck_at } => {
                        self.probed_spell = None;
                        self.timer = Some((liveness::on_grid(recheck_at), Timer::Liveness));
                    }
                    Verdict::Quiet {
                        probe,
                        since,
                        recheck_at,
                    } => {
                        if probe {
                            tracing::debug!(org = %self.org.id, "link quiet; probing");
                            engine.probe();
                            self.probed_spell = Some(since);
                        }
                        self.timer = Some((liveness::on_grid(recheck_at), Timer::Liveness));
                    }
                    Verdict::Dead { silent } => {
                        tracing::warn!(org = %self.org.id, silent_ms = silent.as_millis() as u64, "keep-alive late: no frame from WhatsApp; reconnecting");
                        self.deps.hooks.link_down(&self.org);
                        let action = self.decide(Happening::KeepaliveDead { silent });
                        // Status leaves `connected` now, not when the close lands.
                        if let Action::Retry { reason, .. } | Action::Park { reason, .. } = &action
                        {
                            let state = match &action {
                                Action::Park { state, .. } => *state,
                                _ => State::Reconnecting,
                            };
                            self.set_state(state, reason.clone());
                        }
                        self.close_and_then(action);
                    }
                }
            }
        }
    }
}

async fn next_event(rx: &mut Option<mpsc::UnboundedReceiver<EngineEvent>>) -> Option<EngineEvent> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

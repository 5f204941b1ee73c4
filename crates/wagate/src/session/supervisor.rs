//! One supervisor task per organization: it owns the org's engine, carries out
//! the action table in `policy` for every way a link can end, runs the QR
//! rounds, watches liveness (a link is `connected` only while frames keep
//! arriving) and publishes every state change. It is the only writer of the
//! org's status and the only caller of the engine's lifecycle methods.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{sleep_until, Instant};

use super::policy::{self, Action};
use super::status::{Offer, Snapshot, State};
use crate::engine::{CloseReason, Engine, EngineError, EngineEvent, EngineFactory, StartOptions};
use crate::hub::Hub;

/// Orders for a supervisor.
#[derive(Debug)]
pub enum Command {
    /// Start pairing (QR, or a pairing code for `pair_phone`) or reconnect now.
    Connect { pair_phone: Option<String> },
    /// Start-up restore: connect if credentials exist.
    Restore,
    /// Unlink from the phone and move credentials aside.
    Logout,
    /// The old "clean session": move credentials aside and pair afresh.
    Reset,
    /// Stop for good (org deleted, gateway stopping); optionally move the
    /// credentials aside first. Answers when done.
    Stop {
        move_aside: bool,
        done: oneshot::Sender<()>,
    },
}

/// What the rest of the gateway needs to hear about a link.
pub trait LinkHooks: Send + Sync {
    /// The link is up: messages may be sent through `engine`.
    fn link_up(&self, org: &str, engine: Arc<dyn Engine>);
    /// The link is down: stop sending.
    fn link_down(&self, org: &str);
    /// Acks, receipts and inbound messages.
    fn engine_event(&self, org: &str, event: EngineEvent);
}

/// Everything a supervisor is given.
pub struct Deps {
    pub factory: Arc<dyn EngineFactory>,
    pub hub: Hub,
    pub hooks: Arc<dyn LinkHooks>,
    /// `data/orgs`: each org's device state lives in `orgs_dir/<org>/`.
    pub orgs_dir: PathBuf,
    /// `data/aside`: credentials moved aside (logged out, reset, corrupt).
    pub aside_dir: PathBuf,
    /// Jitter source in [-1, 1]; injectable for tests.
    pub jitter: Arc<dyn Fn() -> f64 + Send + Sync>,
}

/// The shared slot holding the org's current engine (for sends and `last_seen`).
pub type EngineSlot = Arc<Mutex<Option<Arc<dyn Engine>>>>;

/// What to do when the running attempt reports `Closed`.
#[derive(Debug)]
enum After {
    /// Apply the table to the close reason.
    Policy,
    /// Retry with backoff, for this reason.
    Retry(String),
    /// Start the next attempt at once (next QR round, switch to pair code).
    Now,
    /// Stay in this state until asked.
    Park(State, String),
    /// Move credentials aside, state `logged_out`.
    LoggedOut(String),
    /// Wait out a ban.
    Ban(Option<Duration>, String),
    /// Move credentials aside, pair afresh.
    Reset,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Timer {
    Retry,
    Liveness,
    BanOver,
    /// The running attempt must log in (or offer a code) by then.
    Login,
}

pub struct Supervisor {
    org: String,
    deps: Arc<Deps>,
    dir: PathBuf,
    engine: Option<Arc<dyn Engine>>,
    slot: EngineSlot,
    events: Option<mpsc::Receiver<EngineEvent>>,
    running: bool,
    after: Option<After>,
    attempt: u32,
    qr_rounds: u32,
    connected_at: Option<Instant>,
    probed: bool,
    /// When recent immediate (515) reconnects happened, for the storm guard.
    restarts: Vec<Instant>,
    timer: Option<(Instant, Timer)>,
    opts: StartOptions,
    status: watch::Sender<Snapshot>,
}

/// Engine events buffered per org.
const EVENT_BUFFER: usize = 4096;

impl Supervisor {
    /// Open the org's engine and run its supervisor on a new task.
    pub fn spawn(
        org: &str,
        deps: Arc<Deps>,
    ) -> (mpsc::Sender<Command>, watch::Receiver<Snapshot>, EngineSlot) {
        let (cmd_tx, cmd_rx) = mpsc::channel(32);
        let (status, status_rx) = watch::channel(Snapshot::initial(State::New, "starting"));
        let slot: EngineSlot = Arc::new(Mutex::new(None));
        let sup = Supervisor {
            org: org.to_string(),
            dir: deps.orgs_dir.join(org),
            deps,
            engine: None,
            slot: slot.clone(),
            events: None,
            running: false,
            after: None,
            attempt: 0,
            qr_rounds: 0,
            connected_at: None,
            probed: false,
            restarts: Vec::new(),
            timer: None,
            opts: StartOptions::default(),
            status,
        };
        tokio::spawn(sup.run(cmd_rx));
        (cmd_tx, status_rx, slot)
    }

    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        self.open_engine().await;
        if self.status.borrow().state != State::NeedsQr {
            match &self.engine {
                Some(e) if e.has_credentials() => self.set_state(
                    State::Connecting,
                    "Linked before; waiting for its turn to reconnect".into(),
                ),
                Some(_) => self.set_state(
                    State::New,
                    "Not linked yet: ask for a QR code (POST …/session/connect)".into(),
                ),
                None => {}
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

    fn set_state(&mut self, state: State, detail: String) {
        let changed = {
            let cur = self.status.borrow();
            cur.state != state || cur.detail != detail
        };
        if !changed {
            return;
        }
        let attempt = self.attempt;
        let next_retry_at = self
            .timer
            .filter(|(_, k)| *k == Timer::Retry || *k == Timer::BanOver)
            .map(|(t, _)| t);
        self.status.send_modify(|s| {
            if s.state != state {
                s.since_ms = crate::store::now_ms();
            }
            s.state = state;
            s.detail = detail.clone();
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
        let snap = self.status.borrow().clone();
        tracing::info!(org = %self.org, state = state.as_str(), attempt, "{detail}");
        self.deps.hub.publish(
            &self.org,
            "state",
            json!({
                "state": state,
                "detail": detail,
                "reconnect_attempt": snap.reconnect_attempt,
                "next_retry_in_ms": next_retry_at.map(|t| t.saturating_duration_since(Instant::now()).as_millis() as u64),
                "phone_number": snap.phone_number,
            }),
        );
    }

    // ---- engine lifecycle ------------------------------------------------

    async fn open_engine(&mut self) {
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        let first = self.deps.factory.open(&self.org, &self.dir, tx).await;
        let engine = match first {
            Ok(e) => e,
            Err(EngineError::Corrupt(why)) => {
                let aside = self.move_dir_aside("corrupt");
                tracing::warn!(org = %self.org, reason = %why, aside = ?aside, "credentials quarantined");
                let detail = format!(
                    "The stored WhatsApp credentials could not be read ({why}); they were moved aside to {}. Link again with a new QR code.",
                    aside.map(|p| p.display().to_string()).unwrap_or_else(|| "the aside folder".into())
                );
                let (tx, rx2) = mpsc::channel(EVENT_BUFFER);
                match self.deps.factory.open(&self.org, &self.dir, tx).await {
                    Ok(e) => {
                        self.install(e, rx2);
                        self.set_state(State::NeedsQr, detail);
                    }
                    Err(e) => self.set_state(
                        State::NeedsQr,
                        format!("{detail} (opening a fresh device failed: {e})"),
                    ),
                }
                return;
            }
            Err(EngineError::Other(why)) => {
                tracing::error!(org = %self.org, error = %why, "cannot open the WhatsApp device");
                self.set_state(
                    State::NeedsQr,
                    format!("The WhatsApp device store could not be opened: {why}"),
                );
                return;
            }
        };
        self.install(engine, rx);
    }

    fn install(&mut self, engine: Arc<dyn Engine>, rx: mpsc::Receiver<EngineEvent>) {
        *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(engine.clone());
        self.engine = Some(engine);
        self.events = Some(rx);
    }

    async fn drop_engine(&mut self) {
        *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = None;
        if let Some(e) = self.engine.take() {
            e.shutdown().await;
        }
        self.events = None;
        self.running = false;
    }

    /// Rename the org's device folder into the aside folder; never deletes.
    fn move_dir_aside(&self, why: &str) -> Option<PathBuf> {
        if !self.dir.exists() {
            return None;
        }
        let ts = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
        let target = self.deps.aside_dir.join(format!("{}-{why}-{ts}", self.org));
        if let Err(e) = std::fs::create_dir_all(&self.deps.aside_dir)
            .and_then(|_| std::fs::rename(&self.dir, &target))
        {
            tracing::error!(org = %self.org, error = %e, "could not move credentials aside");
            return None;
        }
        Some(target)
    }

    /// Shut the engine, move its credentials aside and open a fresh device.
    async fn set_aside_and_reopen(&mut self, why: &str) -> Option<PathBuf> {
        self.drop_engine().await;
        let aside = self.move_dir_aside(why);
        if let Some(p) = &aside {
            tracing::info!(org = %self.org, aside = %p.display(), "credentials moved aside ({why})");
        }
        self.status.send_modify(|s| s.phone_number = None);
        self.open_engine().await;
        aside
    }

    /// Begin one connection attempt.
    fn begin(&mut self) {
        let Some(engine) = self.engine.clone() else {
            return;
        };
        self.timer = None;
        self.running = true;
        self.after = None;
        let detail = if engine.has_credentials() {
            if self.attempt == 0 {
                "Connecting to WhatsApp".to_string()
            } else {
                format!("Reconnecting to WhatsApp (attempt {})", self.attempt)
            }
        } else if self.opts.pair_phone.is_some() {
            "Connecting to WhatsApp to get a pairing code".to_string()
        } else {
            "Connecting to WhatsApp to get a QR code".to_string()
        };
        let state = if self.attempt == 0 {
            State::Connecting
        } else {
            State::Reconnecting
        };
        self.set_state(state, detail);
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

    fn schedule_retry(&mut self, why: String) {
        let creds = self.engine.as_ref().is_some_and(|e| e.has_credentials());
        if !creds {
            self.qr_rounds += 1;
            if self.qr_rounds >= policy::QR_ROUNDS {
                self.set_state(
                    State::NeedsQr,
                    format!("Could not get a QR code after {} tries ({why}). Ask again with POST …/session/connect.", self.qr_rounds),
                );
                return;
            }
        }
        self.attempt += 1;
        let delay = policy::backoff_delay(self.attempt, (self.deps.jitter)());
        self.timer = Some((Instant::now() + delay, Timer::Retry));
        tracing::info!(org = %self.org, delay_ms = delay.as_millis() as u64, attempt = self.attempt, reason = %why, "reconnecting in {} ms", delay.as_millis());
        self.set_state(
            State::Reconnecting,
            format!(
                "{why}; retrying in {:.1} s (attempt {})",
                delay.as_secs_f64(),
                self.attempt
            ),
        );
    }

    // ---- inputs ------------------------------------------------------------

    async fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Connect { pair_phone } => {
                let switch = pair_phone.is_some() && self.opts.pair_phone != pair_phone;
                self.opts = StartOptions { pair_phone };
                if self.running {
                    if switch && self.status.borrow().state != State::Connected {
                        self.qr_rounds = 0;
                        self.close_attempt(After::Now);
                    }
                    return;
                }
                if self.engine.is_none() {
                    self.open_engine().await;
                }
                self.attempt = 0;
                self.qr_rounds = 0;
                self.begin();
            }
            Command::Restore => {
                let creds = self.engine.as_ref().is_some_and(|e| e.has_credentials());
                if creds && !self.running && self.timer.is_none() {
                    self.begin();
                }
            }
            Command::Logout => {
                let detail = "Logged out on request; the device was unlinked. Link again with a new QR code.".to_string();
                if let Some(engine) = self.engine.clone() {
                    if self.running {
                        self.after = Some(After::LoggedOut(detail));
                        self.timer = None;
                        engine.logout().await;
                        return;
                    }
                    engine.logout().await;
                }
                self.timer = None;
                self.set_aside_and_reopen("logged_out").await;
                self.set_state(State::LoggedOut, detail);
            }
            Command::Reset => {
                if self.running {
                    self.close_attempt(After::Reset);
                } else {
                    self.reset_now().await;
                }
            }
            Command::Stop { .. } => {}
        }
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
            if let Some(p) = self.move_dir_aside("deleted") {
                tracing::info!(org = %self.org, aside = %p.display(), "credentials moved aside (org deleted)");
            }
        }
        self.set_state(State::Stopped, "Supervisor stopped".into());
    }

    async fn on_event(&mut self, ev: EngineEvent) {
        match ev {
            EngineEvent::Qr { code, ttl } => {
                let expires_at = Instant::now() + ttl;
                self.set_state(
                    State::Pairing,
                    "Scan the QR code with WhatsApp: Settings → Linked devices → Link a device"
                        .into(),
                );
                self.status.send_modify(|s| {
                    s.qr = Some(Offer {
                        code: code.clone(),
                        expires_at,
                    });
                });
                self.disarm_login();
                self.deps.hub.publish(
                    &self.org,
                    "qr",
                    json!({"qr": code, "expires_in_ms": ttl.as_millis() as u64}),
                );
            }
            EngineEvent::PairCode { code, ttl } => {
                let expires_at = Instant::now() + ttl;
                self.set_state(
                    State::Pairing,
                    "Type the pairing code in WhatsApp: Settings → Linked devices → Link a device → Link with phone number instead".into(),
                );
                self.status.send_modify(|s| {
                    s.pair_code = Some(Offer {
                        code: code.clone(),
                        expires_at,
                    });
                });
                // Nobody typed the code in time: treated like an expired QR round.
                self.timer = Some((expires_at + Duration::from_secs(5), Timer::Login));
                self.deps.hub.publish(
                    &self.org,
                    "pair_code",
                    json!({"pair_code": code, "expires_in_ms": ttl.as_millis() as u64}),
                );
            }
            EngineEvent::QrExhausted => self.round_expired(),
            EngineEvent::Paired { phone } => {
                tracing::info!(org = %self.org, phone = %phone, "linked");
                self.status
                    .send_modify(|s| s.phone_number = Some(phone.clone()));
                self.timer = Some((Instant::now() + policy::LOGIN_TIMEOUT, Timer::Login));
                self.set_state(State::Connecting, format!("Linked to +{phone}; logging in"));
            }
            EngineEvent::Connected { phone } => {
                let now = Instant::now();
                self.connected_at = Some(now);
                self.qr_rounds = 0;
                self.probed = false;
                self.opts = StartOptions::default();
                if let Some(p) = &phone {
                    self.status
                        .send_modify(|s| s.phone_number = Some(p.clone()));
                }
                let shown = self.status.borrow().phone_number.clone();
                self.timer = Some((now + policy::PROBE_AFTER, Timer::Liveness));
                self.set_state(
                    State::Connected,
                    match shown {
                        Some(p) => format!("WhatsApp connected as +{p}"),
                        None => "WhatsApp connected".into(),
                    },
                );
                if let Some(e) = &self.engine {
                    self.deps.hooks.link_up(&self.org, e.clone());
                }
            }
            EngineEvent::LoggedOut { detail } => {
                let detail = format!(
                    "The phone unlinked this device ({detail}). Link again with a new QR code."
                );
                self.deps.hooks.link_down(&self.org);
                self.timer = None;
                self.set_state(State::LoggedOut, detail.clone());
                self.after = Some(After::LoggedOut(detail));
            }
            EngineEvent::Replaced => {
                let detail = "Another WhatsApp Web session took over this link; wagate will not fight it. Use POST …/session/connect to take it back.".to_string();
                self.deps.hooks.link_down(&self.org);
                self.timer = None;
                self.set_state(State::Replaced, detail.clone());
                self.after = Some(After::Park(State::Replaced, detail));
            }
            EngineEvent::Banned { expires_in, detail } => {
                let detail = match expires_in {
                    Some(d) => format!("WhatsApp temporarily banned this number ({detail}); retrying in {} s. Messages stay queued.", d.as_secs()),
                    None => format!("WhatsApp temporarily banned this number ({detail}). Messages stay queued."),
                };
                self.deps.hooks.link_down(&self.org);
                self.timer = None;
                self.set_state(State::Banned, detail.clone());
                self.after = Some(After::Ban(expires_in, detail));
            }
            EngineEvent::Outdated => {
                let detail =
                    "WhatsApp refused this client version as outdated (405): upgrade wagate."
                        .to_string();
                tracing::error!(org = %self.org, "client outdated");
                self.deps.hooks.link_down(&self.org);
                self.timer = None;
                self.set_state(State::Outdated, detail.clone());
                self.after = Some(After::Park(State::Outdated, detail));
            }
            EngineEvent::DecryptFailure { from } => {
                self.status.send_modify(|s| s.decrypt_failures += 1);
                let n = self.status.borrow().decrypt_failures;
                tracing::warn!(org = %self.org, %from, failures = n, "a message could not be decrypted; the sender was asked to resend");
                self.deps.hub.publish(
                    &self.org,
                    "decrypt_failure",
                    json!({"from": from, "count": n}),
                );
            }
            EngineEvent::Closed { reason } => self.on_closed(reason).await,
            other => self.deps.hooks.engine_event(&self.org, other),
        }
    }

    /// A round of QR codes (or a pairing code) expired unused.
    fn round_expired(&mut self) {
        self.qr_rounds += 1;
        if self.qr_rounds >= policy::QR_ROUNDS {
            self.close_attempt(After::Park(
                State::NeedsQr,
                format!("No one linked the device after {} rounds of codes. Ask for a new code with POST …/session/connect.", self.qr_rounds),
            ));
        } else {
            tracing::info!(org = %self.org, round = self.qr_rounds + 1, "codes expired; offering a new round");
            self.close_attempt(After::Now);
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
            if at.elapsed() >= policy::STABLE_AFTER {
                self.attempt = 0;
            }
        }
        match self.after.take().unwrap_or(After::Policy) {
            After::Policy => match policy::on_close(&reason) {
                Action::ReconnectNow => {
                    let now = Instant::now();
                    self.restarts
                        .retain(|t| now.duration_since(*t) < policy::RESTART_WINDOW);
                    if self.restarts.len() >= policy::RESTART_BURST {
                        self.schedule_retry(format!(
                            "{} {} times within a minute",
                            policy::describe(&reason),
                            self.restarts.len() + 1
                        ));
                    } else {
                        self.restarts.push(now);
                        tracing::info!(org = %self.org, "{}; reconnecting now", policy::describe(&reason));
                        self.begin();
                    }
                }
                Action::Backoff => self.schedule_retry(policy::describe(&reason)),
            },
            After::Retry(why) => self.schedule_retry(why),
            After::Now => self.begin(),
            After::Park(state, detail) => self.set_state(state, detail),
            After::LoggedOut(detail) => {
                self.set_aside_and_reopen("logged_out").await;
                self.set_state(State::LoggedOut, detail);
            }
            After::Ban(expires_in, detail) => {
                if let Some(d) = expires_in {
                    self.timer = Some((Instant::now() + d, Timer::BanOver));
                }
                self.set_state(State::Banned, detail);
            }
            After::Reset => self.reset_now().await,
        }
    }

    async fn on_timer(&mut self, kind: Timer) {
        match kind {
            Timer::Retry | Timer::BanOver => {
                if !self.running {
                    self.begin();
                }
            }
            Timer::Login => {
                if !self.running || self.status.borrow().state == State::Connected {
                    return;
                }
                if self.status.borrow().state == State::Pairing {
                    self.round_expired();
                    return;
                }
                let why = format!(
                    "WhatsApp did not complete the login within {} s",
                    policy::LOGIN_TIMEOUT.as_secs()
                );
                tracing::warn!(org = %self.org, "{why}; abandoning the attempt");
                self.close_attempt(After::Retry(why));
            }
            Timer::Liveness => {
                if !self.running || self.status.borrow().state != State::Connected {
                    return;
                }
                let Some(engine) = self.engine.clone() else {
                    return;
                };
                let now = Instant::now();
                let last = engine
                    .last_frame()
                    .into_iter()
                    .chain(self.connected_at)
                    .max()
                    .unwrap_or(now);
                let silent = now.saturating_duration_since(last);
                if silent >= policy::DEAD_AFTER {
                    tracing::warn!(org = %self.org, silent_ms = silent.as_millis() as u64, "keep-alive late: no frame from WhatsApp; reconnecting");
                    self.deps.hooks.link_down(&self.org);
                    let why = format!(
                        "No sign of life from WhatsApp for {} s (keep-alive late)",
                        silent.as_secs()
                    );
                    self.set_state(State::Reconnecting, format!("{why}; reconnecting"));
                    self.close_attempt(After::Retry(why));
                } else if silent >= policy::PROBE_AFTER {
                    if !self.probed {
                        tracing::debug!(org = %self.org, "link quiet; probing");
                        engine.probe();
                        self.probed = true;
                    }
                    self.timer = Some((last + policy::DEAD_AFTER, Timer::Liveness));
                } else {
                    self.probed = false;
                    self.timer = Some((last + policy::PROBE_AFTER, Timer::Liveness));
                }
            }
        }
    }
}

async fn next_event(rx: &mut Option<mpsc::Receiver<EngineEvent>>) -> Option<EngineEvent> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

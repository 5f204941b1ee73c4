//! The supervisor's action table, row by row, against the scripted engine
//! under paused tokio time.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use parking_lot::Mutex;

use super::liveness;
use super::{Cause, Command, Deps, Handle, Journal, LinkHooks, OrgRef, Reason, Sessions, State};
use crate::engine::scripted::{Call, Script, ScriptFactory};
use crate::engine::{CloseReason, Engine, EngineEvent, StartOptions};

struct NoHooks;
impl LinkHooks for NoHooks {
    fn link_up(&self, _: &OrgRef, _: Arc<dyn Engine>) {}
    fn link_down(&self, _: &OrgRef) {}
    fn engine_event(&self, _: &OrgRef, _: EngineEvent) {}
}

/// Keeps what the supervisors record.
#[derive(Default)]
struct Recorder(Mutex<Vec<(OrgRef, &'static str, serde_json::Value)>>);
impl Journal for Recorder {
    fn record(&self, org: &OrgRef, event: crate::events::Event) {
        self.0
            .lock()
            .push((org.clone(), event.kind().as_str(), event.data()));
    }
}

impl Recorder {
    fn states(&self) -> Vec<String> {
        self.0
            .lock()
            .iter()
            .filter(|(_, k, _)| *k == "state")
            .map(|(_, _, d)| d["state"].as_str().unwrap_or("").to_string())
            .collect()
    }
}

/// Supervisors over `script` with their data under `data`.
fn sessions_over(
    script: &Arc<Script>,
    data: &std::path::Path,
    journal: Arc<Recorder>,
    jitter: f64,
    open_budget: Option<Arc<tokio::sync::Semaphore>>,
) -> Sessions {
    Sessions::new(Deps {
        factory: Arc::new(ScriptFactory::new(script.clone(), data)),
        journal,
        hooks: Arc::new(NoHooks),
        orgs_dir: data.join("orgs"),
        aside_dir: data.join("aside"),
        jitter: Arc::new(move || jitter),
        open_budget,
    })
}

/// A (scripted) device stored for `org`, so its engine opens at start.
fn stored_creds(data: &std::path::Path, org: &str) {
    let dir = data.join("orgs").join(org);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("creds"), b"x").unwrap();
}

/// Org 4's device folder, holding (scripted) credentials.
fn linked_before(data: &std::path::Path) -> std::path::PathBuf {
    let dir = data.join("orgs").join("4");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("creds"), b"x").unwrap();
    dir
}

fn org4() -> OrgRef {
    OrgRef {
        id: "4".into(),
        inc: 1,
    }
}

/// Ask for a connect (QR, or a code for `phone`) and wait until it is carried out.
async fn connect(h: &Handle, phone: Option<&str>) {
    h.ask(|done| Command::Connect {
        pair_phone: phone.map(str::to_string),
        done,
    })
    .await
    .unwrap();
}

struct Rig {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    script: Arc<Script>,
    journal: Arc<Recorder>,
    sessions: Sessions,
    h: Handle,
}

fn rig_with(creds: bool, jitter: f64, corrupt: bool) -> Rig {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().to_path_buf();
    let org_dir = data.join("orgs").join("4");
    std::fs::create_dir_all(&org_dir).unwrap();
    if creds {
        std::fs::write(org_dir.join("creds"), b"x").unwrap();
    }
    let script = Script::new(creds);
    script.corrupt_next_open.store(corrupt, Ordering::SeqCst);
    let journal = Arc::new(Recorder::default());
    let sessions = sessions_over(&script, &data, journal.clone(), jitter, None);
    let h = sessions.add(&org4());
    Rig {
        _tmp: tmp,
        data,
        script,
        journal,
        sessions,
        h,
    }
}

fn rig(creds: bool) -> Rig {
    rig_with(creds, 0.0, false)
}

/// Wait (in virtual time) until the status is `state`; returns when it got there.
async fn wait_state(h: &Handle, state: State, within: Duration) -> Instant {
    let mut rx = h.status.clone();
    let deadline = Instant::now() + within;
    loop {
        if rx.borrow_and_update().state == state {
            return Instant::now();
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => continue,
            _ => panic!(
                "state {:?} not reached within {within:?}; now {:?}: {:?}",
                state,
                h.snapshot().state,
                h.snapshot().reason
            ),
        }
    }
}

/// Wait until the engine has been started `n` times in all; returns the time of the n-th.
async fn wait_starts(s: &Script, n: usize, within: Duration) -> Instant {
    let deadline = Instant::now() + within;
    loop {
        let starts = s.starts();
        if starts.len() >= n {
            return starts[n - 1];
        }
        if Instant::now() >= deadline {
            panic!("only {} starts within {within:?}", starts.len());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

async fn connected(r: &Rig) {
    r.script
        .emit(EngineEvent::Connected {
            phone: Some("573001112233".into()),
        })
        .await;
    wait_state(&r.h, State::Connected, Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn restore_connects_an_org_with_credentials() {
    let r = rig(true);
    wait_state(&r.h, State::Connecting, Duration::from_secs(1)).await;
    assert!(r.script.starts().is_empty(), "no connect before its turn");
    r.sessions
        .restore_all(20, Default::default())
        .await
        .unwrap();
    wait_starts(&r.script, 1, Duration::from_secs(1)).await;
    connected(&r).await;
    let v = r.h.status();
    assert!(v.connected());
    assert_eq!(v.phone_number.as_deref(), Some("573001112233"));
    assert_eq!(v.reconnect_attempt, 0);
}

#[tokio::test(start_paused = true)]
async fn backoff_follows_2_4_8_16_30_30() {
    let r = rig(true);
    r.h.send(Command::Restore).await.unwrap();
    let mut last = wait_starts(&r.script, 1, Duration::from_secs(1)).await;
    let mut gaps = vec![];
    for n in 2..=8 {
        r.script
            .emit(EngineEvent::Closed {
                reason: CloseReason::Network("connection refused".into()),
            })
            .await;
        let at = wait_starts(&r.script, n, Duration::from_secs(60)).await;
        gaps.push((at - last).as_secs_f64().round() as u64);
        last = at;
        if n == 3 {
            let v = r.h.status();
            assert_eq!(v.state, State::Reconnecting);
        }
    }
    assert_eq!(gaps, vec![2, 4, 8, 16, 30, 30, 30]);
}

#[tokio::test(start_paused = true)]
async fn status_shows_attempt_and_next_retry_while_waiting() {
    let r = rig(true);
    r.h.send(Command::Restore).await.unwrap();
    wait_starts(&r.script, 1, Duration::from_secs(1)).await;
    r.script
        .emit(EngineEvent::Closed {
            reason: CloseReason::ServerError(503, "unavailable".into()),
        })
        .await;
    wait_state(&r.h, State::Reconnecting, Duration::from_secs(1)).await;
    settle().await;
    let v = r.h.status();
    assert_eq!(v.reconnect_attempt, 1);
    assert_eq!(v.next_retry_in_ms, Some(2000));
    assert!(
        matches!(
            &v.reason,
            Reason::RetryScheduled {
                cause: Cause::ServerError { code: 503, .. },
                delay_ms: 2000,
                attempt: 1
            }
        ),
        "{:?}",
        v.reason
    );
}

#[tokio::test(start_paused = true)]
async fn jitter_keeps_delays_within_ten_percent() {
    for j in [-1.0, 1.0] {
        let r = rig_with(true, j, false);
        r.h.send(Command::Restore).await.unwrap();
        let mut last = wait_starts(&r.script, 1, Duration::from_secs(1)).await;
        for (n, base) in [
            (2usize, 2.0f64),
            (3, 4.0),
            (4, 8.0),
            (5, 16.0),
            (6, 30.0),
            (7, 30.0),
        ] {
            r.script
                .emit(EngineEvent::Closed {
                    reason: CloseReason::Network("x".into()),
                })
                .await;
            let at = wait_starts(&r.script, n, Duration::from_secs(60)).await;
            let gap = (at - last).as_secs_f64();
            let want = base * (1.0 + 0.1 * j);
            assert!((gap - want).abs() < 0.05, "gap {gap} want {want}");
            last = at;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn restart_required_reconnects_immediately_without_counting() {
    let r = rig(true);
    r.h.send(Command::Restore).await.unwrap();
    let first = wait_starts(&r.script, 1, Duration::from_secs(1)).await;
    r.script
        .emit(EngineEvent::Closed {
            reason: CloseReason::RestartRequired,
        })
        .await;
    let second = wait_starts(&r.script, 2, Duration::from_secs(1)).await;
    assert!(second - first < Duration::from_millis(50));
    assert_eq!(r.h.status().reconnect_attempt, 0);
}

#[tokio::test(start_paused = true)]
async fn a_stable_minute_resets_the_backoff() {
    let r = rig(true);
    r.h.send(Command::Restore).await.unwrap();
    wait_starts(&r.script, 1, Duration::from_secs(1)).await;
    // Fail twice: next delay would be 8 s.
    for n in 2..=3 {
        r.script
            .emit(EngineEvent::Closed {
                reason: CloseReason::Network("x".into()),
            })
            .await;
        wait_starts(&r.script, n, Duration::from_secs(60)).await;
    }
    connected(&r).await;
    // Short-lived link: backoff keeps growing (8 s).
    tokio::time::sleep(Duration::from_secs(5)).await;
    r.script.frame_now();
    let t = Instant::now();
    r.script
        .emit(EngineEvent::Closed {
            reason: CloseReason::Network("x".into()),
        })
        .await;
    let at = wait_starts(&r.script, 4, Duration::from_secs(60)).await;
    assert_eq!((at - t).as_secs(), 8);
    // Stable link (frames keep coming for 70 s): back to 2 s.
    connected(&r).await;
    for _ in 0..7 {
        tokio::time::sleep(Duration::from_secs(10)).await;
        r.script.frame_now();
    }
    assert_eq!(r.h.snapshot().state, State::Connected);
    let t = Instant::now();
    r.script
        .emit(EngineEvent::Closed {
            reason: CloseReason::Network("x".into()),
        })
        .await;
    let at = wait_starts(&r.script, 5, Duration::from_secs(60)).await;
    assert_eq!((at - t).as_secs(), 2);
}

#[tokio::test(start_paused = true)]
async fn retries_are_unlimited_while_credentials_exist() {
    let r = rig(true);
    r.h.send(Command::Restore).await.unwrap();
    wait_starts(&r.script, 1, Duration::from_secs(1)).await;
    for n in 2..=40 {
        r.script
            .emit(EngineEvent::Closed {
                reason: CloseReason::Network("down".into()),
            })
            .await;
        wait_starts(&r.script, n, Duration::from_secs(40)).await;
    }
    assert_eq!(r.h.snapshot().state, State::Reconnecting);
}

#[tokio::test(start_paused = true)]
async fn qr_rounds_then_needs_qr() {
    let r = rig(false);
    wait_state(&r.h, State::New, Duration::from_secs(1)).await;
    connect(&r.h, None).await;
    for round in 1..=3 {
        wait_starts(&r.script, round, Duration::from_secs(1)).await;
        r.script
            .emit(EngineEvent::Qr {
                code: format!("ref{round},a,b,c"),
                ttl: Duration::from_secs(60),
            })
            .await;
        wait_state(&r.h, State::Pairing, Duration::from_secs(1)).await;
        assert!(r.h.status().qr_available);
        assert_eq!(r.h.snapshot().qr.unwrap().code, format!("ref{round},a,b,c"));
        r.script.emit(EngineEvent::QrExhausted).await;
    }
    wait_state(&r.h, State::NeedsQr, Duration::from_secs(1)).await;
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(
        r.script.starts().len(),
        3,
        "no fourth round without being asked"
    );
    assert!(!r.h.status().qr_available);
    // Asking again starts fresh rounds.
    connect(&r.h, None).await;
    wait_starts(&r.script, 4, Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn pairing_then_515_then_connected() {
    let r = rig(false);
    connect(&r.h, Some("573001112233")).await;
    wait_starts(&r.script, 1, Duration::from_secs(1)).await;
    assert_eq!(
        r.script.last_call(),
        Some(Call::Start(StartOptions {
            pair_phone: Some("573001112233".into())
        }))
    );
    r.script
        .emit(EngineEvent::PairCode {
            code: "ABCD1234".into(),
            ttl: Duration::from_secs(180),
        })
        .await;
    wait_state(&r.h, State::Pairing, Duration::from_secs(1)).await;
    assert_eq!(r.h.status().pair_code.as_deref(), Some("ABCD1234"));
    r.script.creds.store(true, Ordering::SeqCst);
    r.script
        .emit(EngineEvent::Paired {
            phone: "573001112233".into(),
        })
        .await;
    wait_state(&r.h, State::Connecting, Duration::from_secs(1)).await;
    r.script
        .emit(EngineEvent::Closed {
            reason: CloseReason::RestartRequired,
        })
        .await;
    wait_starts(&r.script, 2, Duration::from_millis(100)).await;
    connected(&r).await;
    assert_eq!(r.h.status().phone_number.as_deref(), Some("573001112233"));
}

#[tokio::test(start_paused = true)]
async fn logged_out_moves_credentials_aside_and_waits() {
    let r = rig(true);
    r.h.send(Command::Restore).await.unwrap();
    wait_starts(&r.script, 1, Duration::from_secs(1)).await;
    connected(&r).await;
    r.script
        .emit(EngineEvent::LoggedOut {
            detail: "401 device removed".into(),
        })
        .await;
    wait_state(&r.h, State::LoggedOut, Duration::from_secs(1)).await;
    r.script
        .emit(EngineEvent::Closed {
            reason: CloseReason::Network("closed".into()),
        })
        .await;
    // The moved folder holds the old credentials; nothing was deleted.
    let deadline = Instant::now() + Duration::from_secs(1);
    let aside = loop {
        let found: Vec<_> = std::fs::read_dir(r.data.join("aside"))
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        if let Some(p) = found.into_iter().find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("4-logged_out-")
        }) {
            break p;
        }
        assert!(Instant::now() < deadline, "credentials not moved aside");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(std::fs::read(aside.join("creds")).unwrap(), b"x");
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(r.script.starts().len(), 1, "no reconnect after logout");
    assert_eq!(r.h.snapshot().state, State::LoggedOut);
    assert!(r.h.status().phone_number.is_none());
}

#[tokio::test(start_paused = true)]
async fn replaced_stops_without_a_reconnect_storm() {
    let r = rig(true);
    r.h.send(Command::Restore).await.unwrap();
    wait_starts(&r.script, 1, Duration::from_secs(1)).await;
    connected(&r).await;
    r.script.emit(EngineEvent::Replaced).await;
    r.script
        .emit(EngineEvent::Closed {
            reason: CloseReason::ServerError(440, "conflict".into()),
        })
        .await;
    wait_state(&r.h, State::Replaced, Duration::from_secs(1)).await;
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(r.script.starts().len(), 1);
    assert_eq!(r.h.snapshot().state, State::Replaced);
    // Resumes only when asked.
    connect(&r.h, None).await;
    wait_starts(&r.script, 2, Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn banned_waits_until_the_expiry_it_names() {
    let r = rig(true);
    r.h.send(Command::Restore).await.unwrap();
    let t0 = wait_starts(&r.script, 1, Duration::from_secs(1)).await;
    r.script
        .emit(EngineEvent::Banned {
            expires_in: Some(Duration::from_secs(120)),
            detail: "402".into(),
        })
        .await;
    r.script
        .emit(EngineEvent::Closed {
            reason: CloseReason::ServerError(402, String::new()),
        })
        .await;
    wait_state(&r.h, State::Banned, Duration::from_secs(1)).await;
    let at = wait_starts(&r.script, 2, Duration::from_secs(200)).await;
    assert_eq!((at - t0).as_secs(), 120);
}

#[tokio::test(start_paused = true)]
async fn outdated_parks_with_a_clear_message() {
    let r = rig(true);
    r.h.send(Command::Restore).await.unwrap();
    wait_starts(&r.script, 1, Duration::from_secs(1)).await;
    r.script.emit(EngineEvent::Outdated).await;
    r.script
        .emit(EngineEvent::Closed {
            reason: CloseReason::ServerError(405, String::new()),
        })
        .await;
    wait_state(&r.h, State::Outdated, Duration::from_secs(1)).await;
    assert_eq!(r.h.status().reason, Reason::Outdated);
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(r.script.starts().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn corrupt_credentials_are_quarantined_not_fatal() {
    let r = rig_with(true, 0.0, true);
    wait_state(&r.h, State::NeedsQr, Duration::from_secs(1)).await;
    let aside: Vec<String> = std::fs::read_dir(r.data.join("aside"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(aside.len(), 1);
    assert!(aside[0].starts_with("4-corrupt-"), "{aside:?}");
    assert!(
        matches!(r.h.status().reason, Reason::CredentialsUnreadable { .. }),
        "{:?}",
        r.h.status().reason
    );
    // Restore does nothing (no credentials); a connect asks for a QR.
    r.sessions
        .restore_all(20, Default::default())
        .await
        .unwrap();
    settle().await;
    assert!(r.script.starts().is_empty());
    connect(&r.h, None).await;
    wait_starts(&r.script, 1, Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn silence_turns_status_within_30_seconds() {
    let r = rig(true);
    r.h.send(Command::Restore).await.unwrap();
    wait_starts(&r.script, 1, Duration::from_secs(1)).await;
    connected(&r).await;
    let died = Instant::now();
    // The network goes silent: no frame ever again, no close either.
    let left = wait_state(&r.h, State::Reconnecting, Duration::from_secs(60)).await;
    let took = left - died;
    assert!(took <= Duration::from_secs(30), "took {took:?}");
    let probes = r.script.calls_of(|c| *c == Call::Probe);
    assert_eq!(probes.len(), 1, "one probe before giving up");
    assert!(r.script.calls_of(|c| *c == Call::Close).len() == 1);
    // It reconnects by itself.
    wait_starts(&r.script, 2, Duration::from_secs(5)).await;
}

#[tokio::test(start_paused = true)]
async fn a_link_with_frames_stays_connected() {
    let r = rig(true);
    r.h.send(Command::Restore).await.unwrap();
    wait_starts(&r.script, 1, Duration::from_secs(1)).await;
    connected(&r).await;
    // Frames every 20 s (a pong answering each probe) for 10 minutes.
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_secs(20)).await;
        r.script.frame_now();
    }
    assert_eq!(r.h.snapshot().state, State::Connected);
    assert_eq!(r.script.starts().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_idle_link_that_answers_each_probe_stays_connected() {
    // A healthy idle link: nothing arrives but the pong to each of our probes
    // (this scripted engine has no keep-alive of its own). Before, the link
    // was declared dead 35 s after each connect.
    let r = rig(true);
    r.script.answer_probes.store(true, Ordering::SeqCst);
    r.h.send(Command::Restore).await.unwrap();
    wait_starts(&r.script, 1, Duration::from_secs(1)).await;
    connected(&r).await;
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(r.h.snapshot().state, State::Connected);
    assert_eq!(r.script.starts().len(), 1, "never reconnected");
    let probes = r.script.calls_of(|c| *c == Call::Probe).len();
    assert!(
        (26..=28).contains(&probes),
        "one probe per quiet spell (every 22 s) over 10 minutes, got {probes}"
    );
    // The supervisor looks at the link when a spell is due and when the
    // probe's answer arrives, never at the probe's deadline in between: each
    // look is either with the answer (no time passed) or a whole PROBE_AFTER
    // after the previous one.
    let looks = r.script.looks.lock().clone();
    let gaps: Vec<Duration> = looks.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.iter()
            .all(|g| *g < Duration::from_millis(10) || *g >= liveness::PROBE_AFTER),
        "a look between a probe and the next spell: {gaps:?}"
    );
    assert!(
        looks.len() <= 2 * probes + 2,
        "{} looks for {probes} probes",
        looks.len()
    );
}

#[tokio::test(start_paused = true)]
async fn the_checks_of_many_links_fall_on_one_grid() {
    // Two links that came up 300 ms apart are looked at in the same instants
    // (one wake for both), on the grid's points.
    let (a, b) = (rig(true), rig(true));
    for r in [&a, &b] {
        r.script.answer_probes.store(true, Ordering::SeqCst);
        r.h.send(Command::Restore).await.unwrap();
        wait_starts(&r.script, 1, Duration::from_secs(1)).await;
    }
    let g = liveness::on_grid(Instant::now() + Duration::from_millis(1));
    tokio::time::sleep_until(g + Duration::from_millis(100)).await;
    connected(&a).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    connected(&b).await;
    tokio::time::sleep(Duration::from_secs(300)).await;
    let (la, lb) = (a.script.looks.lock().clone(), b.script.looks.lock().clone());
    assert!(la.len() >= 13, "a look per quiet spell: {}", la.len());
    assert_eq!(la, lb, "both links looked at in the same instants");
    for t in &la {
        let off = (*t - g).as_millis() % liveness::GRID.as_millis();
        assert!(off <= 1, "a look {off} ms off the grid");
    }
}

#[tokio::test(start_paused = true)]
async fn reset_moves_credentials_aside_and_pairs_afresh() {
    let r = rig(true);
    r.h.send(Command::Restore).await.unwrap();
    wait_starts(&r.script, 1, Duration::from_secs(1)).await;
    connected(&r).await;
    r.h.ask(|done| Command::Reset { done }).await.unwrap();
    wait_starts(&r.script, 2, Duration::from_secs(1)).await;
    assert!(!r.script.creds.load(Ordering::SeqCst));
    let aside: Vec<String> = std::fs::read_dir(r.data.join("aside"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(aside.iter().any(|n| n.starts_with("4-reset-")), "{aside:?}");
}

#[tokio::test(start_paused = true)]
async fn logout_on_request_unlinks_and_moves_aside() {
    let r = rig(true);
    r.h.send(Command::Restore).await.unwrap();
    wait_starts(&r.script, 1, Duration::from_secs(1)).await;
    connected(&r).await;
    r.h.ask(|done| Command::Logout { done }).await.unwrap();
    wait_state(&r.h, State::LoggedOut, Duration::from_secs(1)).await;
    assert_eq!(r.script.calls_of(|c| *c == Call::Logout).len(), 1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(std::fs::read_dir(r.data.join("aside")).unwrap().count() == 1);
}

#[tokio::test(start_paused = true)]
async fn pairing_without_network_gives_up_after_three_tries() {
    let r = rig(false);
    connect(&r.h, None).await;
    for n in 1..=3 {
        wait_starts(&r.script, n, Duration::from_secs(60)).await;
        r.script
            .emit(EngineEvent::Closed {
                reason: CloseReason::Network("refused".into()),
            })
            .await;
    }
    wait_state(&r.h, State::NeedsQr, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(r.script.starts().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn restore_is_paced() {
    let tmp = tempfile::tempdir().unwrap();
    let script = Script::new(true);
    let sessions = sessions_over(&script, tmp.path(), Arc::default(), 0.0, None);
    let mut handles = vec![];
    for i in 0..100 {
        stored_creds(tmp.path(), &format!("o{i}"));
        handles.push(sessions.add(&OrgRef {
            id: format!("o{i}"),
            inc: i,
        }));
        // A never-linked org beside each: it takes no turn.
        sessions.add(&OrgRef {
            id: format!("n{i}"),
            inc: 1000 + i,
        });
    }
    settle().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The higher the number, the more recently the org was active.
    let activity = (0..100).map(|i| (i, 1_000 + i)).collect();
    let t0 = Instant::now();
    let restoring = sessions.restore_all(20, activity);
    tokio::time::sleep(Duration::from_millis(60)).await;
    let waiting = |h: &Handle| h.snapshot().reason == Reason::WaitingForTurn;
    assert!(
        !waiting(&handles[99]) && !waiting(&handles[98]),
        "the most recent go first"
    );
    assert!(waiting(&handles[0]) && waiting(&handles[50]));
    restoring.await.unwrap();
    let starts = wait_starts(&script, 100, Duration::from_secs(10)).await;
    let span = starts - t0;
    // 100 linked orgs at 20 a second take about 5 s, not all at once.
    assert!(span >= Duration::from_secs(4), "{span:?}");
    assert!(span <= Duration::from_secs(6), "{span:?}");
    assert_eq!(
        script.starts().len(),
        100,
        "never-linked orgs do not connect"
    );
}

#[tokio::test(start_paused = true)]
async fn a_login_that_never_completes_is_abandoned_and_retried() {
    let r = rig(true);
    r.h.send(Command::Restore).await.unwrap();
    let t0 = wait_starts(&r.script, 1, Duration::from_secs(1)).await;
    // The engine opened a socket but the server never answers the login.
    let closed = loop {
        if let Some(t) = r.script.calls_of(|c| *c == Call::Close).first() {
            break *t;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            Instant::now() - t0 < Duration::from_secs(60),
            "never abandoned"
        );
    };
    assert_eq!((closed - t0).as_secs(), 45);
    settle().await;
    let v = r.h.status();
    assert_eq!(v.state, State::Reconnecting);
    assert!(
        matches!(
            v.reason,
            Reason::RetryScheduled {
                cause: Cause::LoginTimeout { secs: 45 },
                ..
            }
        ),
        "{:?}",
        v.reason
    );
    let again = wait_starts(&r.script, 2, Duration::from_secs(5)).await;
    assert_eq!((again - closed).as_secs(), 2, "retried with the backoff");
}

#[tokio::test(start_paused = true)]
async fn an_unused_pairing_code_counts_as_an_expired_round() {
    let r = rig(false);
    connect(&r.h, Some("573001112233")).await;
    let t0 = wait_starts(&r.script, 1, Duration::from_secs(1)).await;
    r.script
        .emit(EngineEvent::PairCode {
            code: "ABCD1234".into(),
            ttl: Duration::from_secs(60),
        })
        .await;
    let t1 = wait_starts(&r.script, 2, Duration::from_secs(120)).await;
    assert_eq!((t1 - t0).as_secs(), 65, "a new round once the code expired");
}

#[tokio::test(start_paused = true)]
async fn repeated_restart_requests_do_not_storm() {
    let r = rig(true);
    r.h.send(Command::Restore).await.unwrap();
    let mut last = wait_starts(&r.script, 1, Duration::from_secs(1)).await;
    let mut gaps = vec![];
    for n in 2..=5 {
        r.script
            .emit(EngineEvent::Closed {
                reason: CloseReason::RestartRequired,
            })
            .await;
        let at = wait_starts(&r.script, n, Duration::from_secs(10)).await;
        gaps.push((at - last).as_millis() as u64);
        last = at;
    }
    // Three immediate restarts, then the backoff (2 s) applies.
    // (Gaps are measured with the helper's 10 ms polling.)
    assert!(gaps[..3].iter().all(|g| *g < 50), "{gaps:?}");
    assert!((2000..=2020).contains(&gaps[3]), "{gaps:?}");
}

#[tokio::test(start_paused = true)]
async fn an_unavailable_store_keeps_the_credentials_and_is_retried() {
    let tmp = tempfile::tempdir().unwrap();
    let org_dir = linked_before(tmp.path());
    let script = Script::new(true);
    // Out of descriptors for the first two opens.
    script.unavailable_opens.store(2, Ordering::SeqCst);
    let journal = Arc::new(Recorder::default());
    let sessions = sessions_over(&script, tmp.path(), journal.clone(), 0.0, None);
    let h = sessions.add(&org4());
    let t0 = wait_state(&h, State::Error, Duration::from_secs(1)).await;
    assert!(
        matches!(
            h.status().reason,
            Reason::StoreUnavailable {
                delay_ms: 2000,
                attempt: 1,
                ..
            }
        ),
        "{:?}",
        h.status().reason
    );
    assert_eq!(h.status().next_retry_in_ms, Some(2000));
    // The restore arrives while the store is unavailable: remembered.
    h.send(Command::Restore).await.unwrap();
    let start = wait_starts(&script, 1, Duration::from_secs(30)).await;
    // Two failed opens: retried after 2 s, then 4 s; then connected as asked.
    assert_eq!((start - t0).as_secs(), 6);
    assert!(
        !tmp.path().join("aside").exists(),
        "nothing was moved aside"
    );
    assert_eq!(std::fs::read(org_dir.join("creds")).unwrap(), b"x");
    assert_eq!(
        journal.states(),
        vec!["error", "error", "connecting"],
        "each failed open is recorded (its retry time changed), then the connect"
    );
}

#[tokio::test(start_paused = true)]
async fn every_state_change_is_recorded_with_its_reason() {
    let r = rig(true);
    r.h.send(Command::Restore).await.unwrap();
    wait_starts(&r.script, 1, Duration::from_secs(1)).await;
    connected(&r).await;
    r.script.emit(EngineEvent::Replaced).await;
    r.script
        .emit(EngineEvent::Closed {
            reason: CloseReason::Verdict,
        })
        .await;
    wait_state(&r.h, State::Replaced, Duration::from_secs(1)).await;
    settle().await;
    let recorded = r.journal.0.lock().clone();
    let states: Vec<(&str, &str)> = recorded
        .iter()
        .filter(|(_, k, _)| *k == "state")
        .map(|(_, _, d)| {
            (
                d["state"].as_str().unwrap(),
                d["reason"]["code"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        vec![
            ("connecting", "waiting_for_turn"),
            ("connecting", "connecting"),
            ("connected", "connected"),
            ("replaced", "replaced"),
        ]
    );
    assert!(recorded.iter().all(|(o, _, _)| *o == org4()));
    // Nothing reconnects after a verdict's close.
    tokio::time::sleep(Duration::from_secs(300)).await;
    assert_eq!(r.script.starts().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn orgs_beyond_the_descriptor_budget_wait_in_error_and_get_a_place_later() {
    let tmp = tempfile::tempdir().unwrap();
    let script = Script::new(false);
    let budget = Arc::new(tokio::sync::Semaphore::new(2));
    let sessions = sessions_over(
        &script,
        tmp.path(),
        Arc::default(),
        0.0,
        Some(budget.clone()),
    );
    // Orgs with stored credentials: each opens its engine at start.
    for i in 1..=3 {
        stored_creds(tmp.path(), &format!("o{i}"));
    }
    let orgs: Vec<Handle> = (1..=3)
        .map(|i| {
            sessions.add(&OrgRef {
                id: format!("o{i}"),
                inc: i,
            })
        })
        .collect();
    settle().await;
    let states: Vec<State> = orgs.iter().map(|h| h.snapshot().state).collect();
    assert_eq!(states.iter().filter(|s| **s == State::New).count(), 2);
    let waiting = orgs
        .iter()
        .find(|h| h.snapshot().state == State::Error)
        .expect("one org over the budget")
        .clone();
    assert!(matches!(
        waiting.status().reason,
        Reason::StoreUnavailable { .. }
    ));
    // One org goes away: its place is free, and the waiting org opens at
    // its next try.
    let gone = orgs
        .iter()
        .find(|h| h.snapshot().state == State::New)
        .unwrap()
        .org
        .id
        .clone();
    sessions.remove(&gone, false).await;
    wait_state(&waiting, State::New, Duration::from_secs(10)).await;
    assert_eq!(budget.available_permits(), 0);
    assert!(!tmp.path().join("aside").exists());
}

#[tokio::test(start_paused = true)]
async fn a_connect_that_reopens_the_store_starts_one_attempt_not_two() {
    let tmp = tempfile::tempdir().unwrap();
    linked_before(tmp.path());
    let script = Script::new(true);
    script.unavailable_opens.store(1, Ordering::SeqCst);
    let sessions = sessions_over(&script, tmp.path(), Arc::default(), 0.0, None);
    let h = sessions.add(&org4());
    wait_state(&h, State::Error, Duration::from_secs(1)).await;
    // A restore waits for the store; then someone presses "connect".
    h.send(Command::Restore).await.unwrap();
    connect(&h, None).await;
    settle().await;
    assert_eq!(script.starts().len(), 1);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        script.starts().len(),
        1,
        "the reopen timer started nothing more"
    );
}

#[tokio::test(start_paused = true)]
async fn stop_all_stops_every_org_at_once_and_gives_up_on_a_stuck_one() {
    let tmp = tempfile::tempdir().unwrap();
    let script = Script::new(false);
    let sessions = sessions_over(&script, tmp.path(), Arc::default(), 0.0, None);
    for i in 0..100 {
        stored_creds(tmp.path(), &format!("o{i}"));
    }
    let handles: Vec<Handle> = (0..100)
        .map(|i| {
            sessions.add(&OrgRef {
                id: format!("o{i}"),
                inc: i,
            })
        })
        .collect();
    settle().await;
    let t0 = Instant::now();
    assert_eq!(sessions.stop_all(Duration::from_secs(5)).await, 0);
    assert!(
        t0.elapsed() < Duration::from_millis(100),
        "{:?}",
        t0.elapsed()
    );
    assert!(handles.iter().all(|h| h.snapshot().state == State::Stopped));
    assert!(sessions.list().is_empty());

    // An engine that never finishes closing holds nobody else up, and the
    // stop gives up on it at the deadline.
    let script = Script::new(false);
    let sessions = sessions_over(&script, tmp.path(), Arc::default(), 0.0, None);
    for i in 0..3 {
        stored_creds(tmp.path(), &format!("h{i}"));
        sessions.add(&OrgRef {
            id: format!("h{i}"),
            inc: 100 + i,
        });
    }
    settle().await;
    script.hang_shutdown.store(true, Ordering::SeqCst);
    let t0 = Instant::now();
    assert_eq!(sessions.stop_all(Duration::from_secs(5)).await, 3);
    assert_eq!(t0.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn a_never_linked_org_opens_no_engine_until_it_pairs() {
    let r = rig(false);
    wait_state(&r.h, State::New, Duration::from_secs(1)).await;
    settle().await;
    let opened = |s: &Script| {
        s.calls
            .lock()
            .iter()
            .filter(|(_, c)| *c == Call::Open)
            .count()
    };
    assert_eq!(opened(&r.script), 0, "no engine for a never-linked org");
    assert_eq!(r.h.snapshot().reason, Reason::NotLinked);
    // A start-up restore does not open one either.
    r.h.send(Command::Restore).await.unwrap();
    settle().await;
    assert_eq!(opened(&r.script), 0);
    // Pairing opens it and starts the attempt.
    connect(&r.h, None).await;
    assert_eq!(opened(&r.script), 1);
    assert_eq!(r.script.starts().len(), 1);
}

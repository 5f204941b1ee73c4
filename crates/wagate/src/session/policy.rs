//! The action table: everything that can happen to a link maps to exactly one
//! action. Pure functions of what happened and a few counters, so the table
//! can be read, and tested row by row, apart from the supervisor that carries
//! the actions out. Mirrors the table in ARCHITECTURE.md; liveness (when a
//! quiet link is dead) is in `liveness.rs`.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::engine::CloseReason;
use crate::link::State;
use crate::link::{Cause, Reason};

/// First retry delay; doubles per failed attempt.
pub const BACKOFF_BASE: Duration = Duration::from_secs(2);
/// Retry delays never exceed this (before jitter).
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// Jitter spreads retries by up to this fraction either way.
pub const JITTER: f64 = 0.1;
/// A link that stayed up this long resets the backoff.
pub const STABLE_AFTER: Duration = Duration::from_secs(60);
/// QR rounds (or tries to get one) offered to an unlinked org before parking
/// in `needs_qr`.
pub const QR_ROUNDS: u32 = 3;
/// An attempt that has neither offered a code nor logged in by then is
/// abandoned and retried (a stalled handshake or a login the server never
/// answers). Generous: the first login after pairing alone takes about 10 s.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(45);
/// An unused pairing code counts as an expired round this long after it expires.
pub const PAIR_CODE_GRACE: Duration = Duration::from_secs(5);
/// Immediate (515) reconnects allowed within `RESTART_WINDOW` before the
/// next one waits the backoff: a server asking for restarts in a loop must
/// not get a reconnect storm.
pub const RESTART_BURST: u32 = 3;
pub const RESTART_WINDOW: Duration = Duration::from_secs(60);

/// What the table needs to know about the org when something happens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ctx {
    /// The device holds credentials (was linked).
    pub has_credentials: bool,
    /// Failed attempts since the link was last stable.
    pub attempt: u32,
    /// Code rounds (or tries to get codes) used without credentials.
    pub qr_rounds: u32,
    /// Immediate restarts within the last `RESTART_WINDOW`.
    pub recent_restarts: u32,
    /// Jitter draw in [-1, 1].
    pub jitter: f64,
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Happening {
    /// The attempt ended and no verdict came before it.
    Closed(CloseReason),
    /// Verdict: the phone or WhatsApp unlinked the device (401, 403, 406, 516).
    LoggedOut { detail: String },
    /// Verdict: another client took over (conflict).
    Replaced,
    /// Verdict: temporary ban (402), with the expiry the server named.
    Banned {
        expires_in: Option<Duration>,
        detail: String,
    },
    /// Verdict: client outdated (405).
    Outdated,
    /// A round of QR codes, or a pairing code, expired unused.
    CodesExpired,
    /// The attempt neither logged in nor offered a code within `LOGIN_TIMEOUT`.
    LoginTimeout,
    /// No frame for `silent` (see `liveness`).
    KeepaliveDead { silent: Duration },
    /// The stored credentials are unreadable (bad header, failed
    /// `quick_check`, the library refused them).
    CredentialsCorrupt,
    /// The device store could not be opened for a reason that is not its
    /// content (descriptors, disk, permissions, I/O).
    StoreUnavailable { error: String },
    /// One contact's message could not be decrypted.
    DecryptFailure,
}

/// What to do about it.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Start the next attempt at once; the attempt is not counted (515).
    ReconnectNow,
    /// Offer the next round of codes at once.
    NextRound { qr_rounds: u32 },
    /// Wait `delay`, then make attempt number `attempt`.
    Retry {
        delay: Duration,
        attempt: u32,
        qr_rounds: u32,
        reason: Reason,
    },
    /// Stay in `state` until someone asks.
    Park { state: State, reason: Reason },
    /// Move the credentials aside (never deleted), then park in `state`.
    SetAside {
        why: &'static str,
        state: State,
        reason: Reason,
    },
    /// Wait out a ban; retry when it ends if the server said when.
    WaitBan {
        retry_in: Option<Duration>,
        reason: Reason,
    },
    /// Credentials aside as `corrupt`, a fresh device, `needs_qr`; other
    /// orgs unaffected.
    Quarantine,
    /// Keep the credentials; state `error`; open the store again after `delay`.
    RetryOpen {
        delay: Duration,
        attempt: u32,
        reason: Reason,
    },
    /// Count it (shown in status); never a reason to unlink.
    Count,
}

/// The table.
pub fn decide(h: Happening, ctx: &Ctx) -> Action {
    match h {
        Happening::Closed(CloseReason::RestartRequired) => {
            if ctx.recent_restarts >= RESTART_BURST {
                retry(
                    Cause::RestartStorm {
                        count: ctx.recent_restarts + 1,
                    },
                    ctx,
                )
            } else {
                Action::ReconnectNow
            }
        }
        Happening::Closed(CloseReason::ServerError(code, text)) => {
            retry(Cause::ServerError { code, text }, ctx)
        }
        Happening::Closed(CloseReason::Network(text)) => retry(Cause::Network { text }, ctx),
        // A close after a verdict is decided by the verdict; this arm is
        // reached only if the engine broke its contract.
        Happening::Closed(CloseReason::Requested | CloseReason::Verdict) => {
            retry(Cause::Requested, ctx)
        }
        Happening::LoggedOut { detail } => Action::SetAside {
            why: "logged_out",
            state: State::LoggedOut,
            reason: Reason::PhoneUnlinked { detail },
        },
        Happening::Replaced => Action::Park {
            state: State::Replaced,
            reason: Reason::Replaced,
        },
        Happening::Banned { expires_in, detail } => Action::WaitBan {
            retry_in: expires_in,
            reason: Reason::Banned {
                expires_in_s: expires_in.map(|d| d.as_secs()),
                detail,
            },
        },
        Happening::Outdated => Action::Park {
            state: State::Outdated,
            reason: Reason::Outdated,
        },
        Happening::CodesExpired => {
            let rounds = ctx.qr_rounds + 1;
            if rounds >= QR_ROUNDS {
                Action::Park {
                    state: State::NeedsQr,
                    reason: Reason::CodesUnused { rounds },
                }
            } else {
                Action::NextRound { qr_rounds: rounds }
            }
        }
        Happening::LoginTimeout => retry(
            Cause::LoginTimeout {
                secs: LOGIN_TIMEOUT.as_secs(),
            },
            ctx,
        ),
        Happening::KeepaliveDead { silent } => retry(
            Cause::KeepaliveLate {
                silent_s: silent.as_secs(),
            },
            ctx,
        ),
        Happening::CredentialsCorrupt => Action::Quarantine,
        Happening::StoreUnavailable { error } => {
            let attempt = ctx.attempt + 1;
            let delay = backoff_delay(attempt, ctx.jitter);
            Action::RetryOpen {
                delay,
                attempt,
                reason: Reason::StoreUnavailable {
                    error,
                    delay_ms: delay.as_millis() as u64,
                    attempt,
                },
            }
        }
        Happening::DecryptFailure => Action::Count,
    }
}

/// Retry with the backoff; without credentials each try counts toward the
/// code rounds, and the last one parks the org in `needs_qr`.
fn retry(cause: Cause, ctx: &Ctx) -> Action {
    let mut qr_rounds = ctx.qr_rounds;
    if !ctx.has_credentials {
        qr_rounds += 1;
        if qr_rounds >= QR_ROUNDS {
            return Action::Park {
                state: State::NeedsQr,
                reason: Reason::NoCodeAfterTries {
                    tries: qr_rounds,
                    cause,
                },
            };
        }
    }
    let attempt = ctx.attempt + 1;
    let delay = backoff_delay(attempt, ctx.jitter);
    Action::Retry {
        delay,
        attempt,
        qr_rounds,
        reason: Reason::RetryScheduled {
            cause,
            delay_ms: delay.as_millis() as u64,
            attempt,
        },
    }
}

/// The login timer fired while the link was in `state`: nothing (it made
/// it), an expired round (a code was on offer), or an abandoned attempt.
pub fn login_timer(state: State) -> Option<Happening> {
    match state {
        State::Connected => None,
        State::Pairing => Some(Happening::CodesExpired),
        _ => Some(Happening::LoginTimeout),
    }
}

/// The failed-attempt count after a link that was up for `up_for` ended: a
/// stable link starts the backoff over.
pub fn attempt_after_link(attempt: u32, up_for: Duration) -> u32 {
    if up_for >= STABLE_AFTER {
        0
    } else {
        attempt
    }
}

/// Delay before retry number `attempt` (1-based): 2 s, 4 s, 8 s, … capped at
/// 30 s, times a jitter factor `j` in [-1, 1] scaled by `JITTER`.
pub fn backoff_delay(attempt: u32, j: f64) -> Duration {
    let exp = attempt.saturating_sub(1).min(16);
    let base = BACKOFF_BASE
        .saturating_mul(1u32 << exp)
        .min(BACKOFF_CAP)
        .as_secs_f64();
    let factor = 1.0 + JITTER * j.clamp(-1.0, 1.0);
    Duration::from_secs_f64(base * factor)
}

/// The storm guard's memory: when the recent immediate restarts happened.
#[derive(Debug, Default)]
pub struct RestartLog(VecDeque<Instant>);

impl RestartLog {
    /// Immediate restarts within the window ending `now`.
    pub fn recent(&mut self, now: Instant) -> u32 {
        while self
            .0
            .front()
            .is_some_and(|t| now.duration_since(*t) >= RESTART_WINDOW)
        {
            self.0.pop_front();
        }
        self.0.len() as u32
    }

    pub fn record(&mut self, now: Instant) {
        self.0.push_back(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(creds: bool) -> Ctx {
        Ctx {
            has_credentials: creds,
            attempt: 0,
            qr_rounds: 0,
            recent_restarts: 0,
            jitter: 0.0,
        }
    }

    fn retry_after(secs: u64, attempt: u32, cause: Cause) -> Action {
        Action::Retry {
            delay: Duration::from_secs(secs),
            attempt,
            qr_rounds: 0,
            reason: Reason::RetryScheduled {
                cause,
                delay_ms: secs * 1000,
                attempt,
            },
        }
    }

    /// Every row of ARCHITECTURE.md's table: (row, what happened, context, action).
    #[test]
    fn the_action_table_row_by_row() {
        let linked = ctx(true);
        let unlinked = ctx(false);
        let rows: Vec<(&str, Happening, Ctx, Action)> = vec![
            (
                "1. 515 restart required: reconnect at once, not counted",
                Happening::Closed(CloseReason::RestartRequired),
                Ctx {
                    recent_restarts: 2,
                    ..linked
                },
                Action::ReconnectNow,
            ),
            (
                "1b. a 4th 515 within a minute waits the backoff (storm guard)",
                Happening::Closed(CloseReason::RestartRequired),
                Ctx {
                    recent_restarts: 3,
                    ..linked
                },
                retry_after(2, 1, Cause::RestartStorm { count: 4 }),
            ),
            (
                "2. server error: backoff from 2 s",
                Happening::Closed(CloseReason::ServerError(503, "down".into())),
                linked,
                retry_after(
                    2,
                    1,
                    Cause::ServerError {
                        code: 503,
                        text: "down".into(),
                    },
                ),
            ),
            (
                "2b. the socket died on the 4th failed attempt: 16 s",
                Happening::Closed(CloseReason::Network("reset".into())),
                Ctx {
                    attempt: 3,
                    ..linked
                },
                retry_after(
                    16,
                    4,
                    Cause::Network {
                        text: "reset".into(),
                    },
                ),
            ),
            (
                "2c. unlimited while credentials exist, capped at 30 s",
                Happening::Closed(CloseReason::Network("refused".into())),
                Ctx {
                    attempt: 500,
                    ..linked
                },
                retry_after(
                    30,
                    501,
                    Cause::Network {
                        text: "refused".into(),
                    },
                ),
            ),
            (
                "3. keep-alive late: backoff",
                Happening::KeepaliveDead {
                    silent: Duration::from_secs(25),
                },
                linked,
                retry_after(2, 1, Cause::KeepaliveLate { silent_s: 25 }),
            ),
            (
                "4. no login within 45 s: backoff",
                Happening::LoginTimeout,
                linked,
                retry_after(2, 1, Cause::LoginTimeout { secs: 45 }),
            ),
            (
                "5. pairing code unused past its expiry: an expired round",
                Happening::CodesExpired,
                unlinked,
                Action::NextRound { qr_rounds: 1 },
            ),
            (
                "6. logged out: credentials aside, logged_out",
                Happening::LoggedOut {
                    detail: "401".into(),
                },
                linked,
                Action::SetAside {
                    why: "logged_out",
                    state: State::LoggedOut,
                    reason: Reason::PhoneUnlinked {
                        detail: "401".into(),
                    },
                },
            ),
            (
                "7. replaced: park, no reconnect",
                Happening::Replaced,
                linked,
                Action::Park {
                    state: State::Replaced,
                    reason: Reason::Replaced,
                },
            ),
            (
                "8. temporary ban: wait until its expiry",
                Happening::Banned {
                    expires_in: Some(Duration::from_secs(600)),
                    detail: "402".into(),
                },
                linked,
                Action::WaitBan {
                    retry_in: Some(Duration::from_secs(600)),
                    reason: Reason::Banned {
                        expires_in_s: Some(600),
                        detail: "402".into(),
                    },
                },
            ),
            (
                "9. outdated: park with a clear message",
                Happening::Outdated,
                linked,
                Action::Park {
                    state: State::Outdated,
                    reason: Reason::Outdated,
                },
            ),
            (
                "10. QR codes expired: next round",
                Happening::CodesExpired,
                Ctx {
                    qr_rounds: 1,
                    ..unlinked
                },
                Action::NextRound { qr_rounds: 2 },
            ),
            (
                "10b. the third round expired: needs_qr",
                Happening::CodesExpired,
                Ctx {
                    qr_rounds: 2,
                    ..unlinked
                },
                Action::Park {
                    state: State::NeedsQr,
                    reason: Reason::CodesUnused { rounds: 3 },
                },
            ),
            (
                "11. no credentials, connect failure: counts toward the rounds",
                Happening::Closed(CloseReason::Network("refused".into())),
                unlinked,
                Action::Retry {
                    delay: Duration::from_secs(2),
                    attempt: 1,
                    qr_rounds: 1,
                    reason: Reason::RetryScheduled {
                        cause: Cause::Network {
                            text: "refused".into(),
                        },
                        delay_ms: 2000,
                        attempt: 1,
                    },
                },
            ),
            (
                "11b. no credentials, the third failure: needs_qr",
                Happening::Closed(CloseReason::Network("refused".into())),
                Ctx {
                    qr_rounds: 2,
                    attempt: 2,
                    ..unlinked
                },
                Action::Park {
                    state: State::NeedsQr,
                    reason: Reason::NoCodeAfterTries {
                        tries: 3,
                        cause: Cause::Network {
                            text: "refused".into(),
                        },
                    },
                },
            ),
            (
                "12. credentials unreadable: quarantine",
                Happening::CredentialsCorrupt,
                linked,
                Action::Quarantine,
            ),
            (
                "13. a message that cannot be decrypted: counted, never an unlink",
                Happening::DecryptFailure,
                linked,
                Action::Count,
            ),
            (
                "14. the device store cannot be opened (EMFILE, ENOSPC …): keep credentials, retry",
                Happening::StoreUnavailable {
                    error: "Too many open files".into(),
                },
                Ctx {
                    attempt: 1,
                    ..linked
                },
                Action::RetryOpen {
                    delay: Duration::from_secs(4),
                    attempt: 2,
                    reason: Reason::StoreUnavailable {
                        error: "Too many open files".into(),
                        delay_ms: 4000,
                        attempt: 2,
                    },
                },
            ),
        ];
        for (row, h, c, want) in rows {
            assert_eq!(decide(h, &c), want, "row {row}");
        }
    }

    #[test]
    fn no_action_ever_moves_credentials_for_a_resource_error() {
        for attempt in [0, 1, 5, 1000] {
            for creds in [true, false] {
                let a = decide(
                    Happening::StoreUnavailable {
                        error: "No space left on device".into(),
                    },
                    &Ctx {
                        attempt,
                        ..ctx(creds)
                    },
                );
                assert!(matches!(a, Action::RetryOpen { .. }), "{a:?}");
            }
        }
    }

    #[test]
    fn the_login_timer_tells_a_stalled_attempt_from_an_unused_code() {
        assert_eq!(login_timer(State::Connected), None);
        assert_eq!(login_timer(State::Pairing), Some(Happening::CodesExpired));
        assert_eq!(
            login_timer(State::Connecting),
            Some(Happening::LoginTimeout)
        );
        assert_eq!(
            login_timer(State::Reconnecting),
            Some(Happening::LoginTimeout)
        );
    }

    #[test]
    fn a_stable_minute_resets_the_attempts() {
        assert_eq!(attempt_after_link(5, Duration::from_secs(59)), 5);
        assert_eq!(attempt_after_link(5, STABLE_AFTER), 0);
    }

    #[test]
    fn the_storm_guard_forgets_after_a_minute() {
        let t0 = Instant::now();
        let mut log = RestartLog::default();
        for i in 0..3 {
            log.record(t0 + Duration::from_secs(i));
        }
        assert_eq!(log.recent(t0 + Duration::from_secs(10)), 3);
        assert_eq!(log.recent(t0 + Duration::from_secs(60)), 2);
        assert_eq!(log.recent(t0 + Duration::from_secs(63)), 0);
    }

    #[test]
    fn backoff_doubles_then_caps() {
        let secs: Vec<u64> = (1..=7).map(|a| backoff_delay(a, 0.0).as_secs()).collect();
        assert_eq!(secs, vec![2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(backoff_delay(1000, 0.0), BACKOFF_CAP);
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        assert_eq!(backoff_delay(1, 1.0), Duration::from_secs_f64(2.2));
        assert_eq!(backoff_delay(1, -1.0), Duration::from_secs_f64(1.8));
        assert_eq!(backoff_delay(9, 5.0), Duration::from_secs_f64(33.0));
    }
}

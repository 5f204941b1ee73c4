//! The action table: every reason a link can drop maps to exactly one action.
//! Pure functions, so the table can be read (and tested) apart from the
//! supervisor that carries it out. Mirrors the table in ARCHITECTURE.md.

use std::time::Duration;

use crate::engine::CloseReason;

/// First retry delay; doubles per failed attempt.
pub const BACKOFF_BASE: Duration = Duration::from_secs(2);
/// Retry delays never exceed this (before jitter).
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// Jitter spreads retries by up to this fraction either way.
pub const JITTER: f64 = 0.1;
/// A link that stayed up this long resets the backoff.
pub const STABLE_AFTER: Duration = Duration::from_secs(60);
/// QR rounds offered to an unlinked org before parking in `needs_qr`.
pub const QR_ROUNDS: u32 = 3;
/// With no frame for this long, ask the server for a sign of life.
pub const PROBE_AFTER: Duration = Duration::from_secs(10);
/// With no frame for this long, the link is dead: status leaves `connected`.
pub const DEAD_AFTER: Duration = Duration::from_secs(25);

/// An attempt that has neither offered a code nor logged in by then is
/// abandoned and retried (a stalled handshake or a login the server never
/// answers). Generous: the first login after pairing alone takes about 10 s.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(45);

/// Immediate (515) reconnects allowed within `RESTART_WINDOW` before the
/// next one waits the backoff: a server asking for restarts in a loop must
/// not get a reconnect storm.
pub const RESTART_BURST: usize = 3;
pub const RESTART_WINDOW: Duration = Duration::from_secs(60);

/// What to do when an attempt closed for `reason` and no verdict (logged out,
/// replaced, banned, outdated) came before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Reconnect at once without counting an attempt (515 restart required).
    ReconnectNow,
    /// Reconnect after the backoff delay for the next attempt.
    Backoff,
}

pub fn on_close(reason: &CloseReason) -> Action {
    match reason {
        CloseReason::RestartRequired => Action::ReconnectNow,
        CloseReason::ServerError(..) | CloseReason::Network(_) | CloseReason::Requested => {
            Action::Backoff
        }
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

/// A human sentence for why an attempt closed.
pub fn describe(reason: &CloseReason) -> String {
    match reason {
        CloseReason::RestartRequired => "WhatsApp asked for a restart (515)".into(),
        CloseReason::ServerError(code, text) if text.is_empty() => {
            format!("WhatsApp server error {code}")
        }
        CloseReason::ServerError(code, text) => format!("WhatsApp server error {code}: {text}"),
        CloseReason::Network(text) => format!("connection lost: {text}"),
        CloseReason::Requested => "connection closed by the gateway".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn restart_required_reconnects_now_everything_else_backs_off() {
        assert_eq!(
            on_close(&CloseReason::RestartRequired),
            Action::ReconnectNow
        );
        assert_eq!(
            on_close(&CloseReason::ServerError(503, String::new())),
            Action::Backoff
        );
        assert_eq!(
            on_close(&CloseReason::Network("reset".into())),
            Action::Backoff
        );
        assert_eq!(on_close(&CloseReason::Requested), Action::Backoff);
    }
}

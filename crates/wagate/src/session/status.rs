//! What the gateway says about one organization's link: the state names the
//! API promises, and the snapshot the supervisor publishes on every change.

use serde::Serialize;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Created, never linked, nobody asked to link yet.
    New,
    /// A QR code or pairing code is on offer.
    Pairing,
    /// Logging in with stored credentials (or after pairing).
    Connecting,
    /// Logged in and frames keep arriving.
    Connected,
    /// The link dropped; waiting to retry (see `next_retry_in_ms`).
    Reconnecting,
    /// No usable credentials; someone must link again.
    NeedsQr,
    /// The phone unlinked this device; credentials moved aside.
    LoggedOut,
    /// Another client took over; not fighting it.
    Replaced,
    /// Temporarily banned by WhatsApp.
    Banned,
    /// WhatsApp says this client version is too old.
    Outdated,
    /// The supervisor is not running (org being deleted or gateway stopping).
    Stopped,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::New => "new",
            State::Pairing => "pairing",
            State::Connecting => "connecting",
            State::Connected => "connected",
            State::Reconnecting => "reconnecting",
            State::NeedsQr => "needs_qr",
            State::LoggedOut => "logged_out",
            State::Replaced => "replaced",
            State::Banned => "banned",
            State::Outdated => "outdated",
            State::Stopped => "stopped",
        }
    }
}

/// A code on offer to link the device.
#[derive(Debug, Clone, PartialEq)]
pub struct Offer {
    pub code: String,
    pub expires_at: Instant,
}

/// The supervisor's published view of one link.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub state: State,
    /// Wall-clock time (ms since epoch) the state was entered.
    pub since_ms: i64,
    pub reconnect_attempt: u32,
    pub next_retry_at: Option<Instant>,
    pub phone_number: Option<String>,
    pub detail: String,
    pub qr: Option<Offer>,
    pub pair_code: Option<Offer>,
    /// Decryption failures counted for this org (never a reason to unlink).
    pub decrypt_failures: u64,
}

impl Snapshot {
    pub fn initial(state: State, detail: &str) -> Snapshot {
        Snapshot {
            state,
            since_ms: crate::store::now_ms(),
            reconnect_attempt: 0,
            next_retry_at: None,
            phone_number: None,
            detail: detail.to_string(),
            qr: None,
            pair_code: None,
            decrypt_failures: 0,
        }
    }
}

/// The JSON shape of `GET /v1/orgs/{org}/session`.
#[derive(Debug, Clone, Serialize)]
pub struct StatusView {
    pub org: String,
    pub state: State,
    pub connected: bool,
    pub since: String,
    pub last_seen: Option<String>,
    pub reconnect_attempt: u32,
    pub next_retry_in_ms: Option<u64>,
    pub phone_number: Option<String>,
    pub detail: String,
    pub qr_available: bool,
    pub pair_code: Option<String>,
    pub pair_code_expires_in_ms: Option<u64>,
    pub queued_messages: Option<i64>,
    /// Messages that could not be decrypted since start (the library asks the
    /// senders to resend; the link is kept).
    pub decrypt_failures: u64,
}

pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

impl StatusView {
    pub fn build(org: &str, s: &Snapshot, last_frame: Option<Instant>) -> StatusView {
        let now = Instant::now();
        let wall_now = crate::store::now_ms();
        let live = |o: &Option<Offer>| o.as_ref().filter(|o| o.expires_at > now).cloned();
        let pair = live(&s.pair_code);
        let last_seen = last_frame.map(|t| {
            let ago = now.saturating_duration_since(t).as_millis() as i64;
            rfc3339(wall_now - ago)
        });
        let detail = match s.decrypt_failures {
            0 => s.detail.clone(),
            n => format!(
                "{} ({n} incoming message(s) could not be decrypted; WhatsApp asked the senders to resend)",
                s.detail
            ),
        };
        StatusView {
            org: org.to_string(),
            state: s.state,
            connected: s.state == State::Connected,
            since: rfc3339(s.since_ms),
            last_seen,
            reconnect_attempt: s.reconnect_attempt,
            next_retry_in_ms: s
                .next_retry_at
                .map(|t| t.saturating_duration_since(now).as_millis() as u64),
            phone_number: s.phone_number.clone(),
            detail,
            qr_available: live(&s.qr).is_some(),
            pair_code_expires_in_ms: pair
                .as_ref()
                .map(|p| p.expires_at.saturating_duration_since(now).as_millis() as u64),
            pair_code: pair.map(|p| p.code),
            queued_messages: None,
            decrypt_failures: s.decrypt_failures,
        }
    }
}

//! What the gateway knows about one organization's link: the states it
//! promises, the snapshot the supervisor publishes on every change, and the
//! `Status` the surfaces render (as data; the wording is theirs).

use tokio::time::Instant;

use super::reason::Reason;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The supervisor is opening the org's stored state (at start-up): not
    /// yet known whether it was linked.
    Starting,
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
    /// The org's device store cannot be opened now (descriptors, disk,
    /// permissions); credentials kept, retried with the backoff.
    Error,
    /// The supervisor is not running (org being deleted or gateway stopping).
    Stopped,
}

impl State {
    pub const ALL: [State; 13] = [
        State::Starting,
        State::New,
        State::Pairing,
        State::Connecting,
        State::Connected,
        State::Reconnecting,
        State::NeedsQr,
        State::LoggedOut,
        State::Replaced,
        State::Banned,
        State::Outdated,
        State::Error,
        State::Stopped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
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
            State::Error => "error",
            State::Stopped => "stopped",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// States in which someone must link the number (QR or code), rather
    /// than wait for a reconnect.
    pub fn needs_link(self) -> bool {
        matches!(
            self,
            State::New | State::NeedsQr | State::LoggedOut | State::Pairing
        )
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
    pub reason: Reason,
    pub qr: Option<Offer>,
    pub pair_code: Option<Offer>,
    /// Decryption failures counted for this org (never a reason to unlink).
    pub decrypt_failures: u64,
}

impl Snapshot {
    pub fn initial(state: State, reason: Reason) -> Snapshot {
        Snapshot {
            state,
            since_ms: crate::store::now_ms(),
            reconnect_attempt: 0,
            next_retry_at: None,
            phone_number: None,
            reason,
            qr: None,
            pair_code: None,
            decrypt_failures: 0,
        }
    }

    /// The QR code on offer now, with its remaining life.
    pub fn live_qr(&self) -> Option<(String, std::time::Duration)> {
        let now = Instant::now();
        self.qr
            .as_ref()
            .filter(|o| o.expires_at > now && self.state == State::Pairing)
            .map(|o| (o.code.clone(), o.expires_at - now))
    }
}

/// One org's link as the surfaces show it.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub org: String,
    pub state: State,
    pub since_ms: i64,
    /// When the last frame from WhatsApp arrived (ms since epoch).
    pub last_seen_ms: Option<i64>,
    pub reconnect_attempt: u32,
    pub next_retry_in_ms: Option<u64>,
    pub phone_number: Option<String>,
    pub reason: Reason,
    pub qr_available: bool,
    pub pair_code: Option<String>,
    pub pair_code_expires_in_ms: Option<u64>,
    pub queued_messages: Option<i64>,
    /// When the last queued message is expected to leave (the org's pacing).
    pub queue_empty_eta_ms: Option<i64>,
    /// Queued messages held by a sending limit.
    pub held_messages: Option<i64>,
    /// The sending limits WhatsApp last announced for the number.
    pub limits: Option<crate::store::limits::Limits>,
    /// Messages that could not be decrypted since start (the library asks the
    /// senders to resend; the link is kept).
    pub decrypt_failures: u64,
    /// Several nodes: the node whose link this is (none with one gateway).
    pub node: Option<String>,
}

impl Status {
    pub fn build(org: &str, s: &Snapshot, last_frame: Option<Instant>) -> Status {
        let now = Instant::now();
        let wall_now = crate::store::now_ms();
        let pair = s.pair_code.as_ref().filter(|o| o.expires_at > now);
        Status {
            org: org.to_string(),
            state: s.state,
            since_ms: s.since_ms,
            last_seen_ms: last_frame
                .map(|t| wall_now - now.saturating_duration_since(t).as_millis() as i64),
            reconnect_attempt: s.reconnect_attempt,
            next_retry_in_ms: s
                .next_retry_at
                .map(|t| t.saturating_duration_since(now).as_millis() as u64),
            phone_number: s.phone_number.clone(),
            reason: s.reason.clone(),
            qr_available: s.live_qr().is_some(),
            pair_code_expires_in_ms: pair
                .map(|p| p.expires_at.saturating_duration_since(now).as_millis() as u64),
            pair_code: pair.map(|p| p.code.clone()),
            queued_messages: None,
            queue_empty_eta_ms: None,
            held_messages: None,
            limits: None,
            decrypt_failures: s.decrypt_failures,
            node: None,
        }
    }

    pub fn connected(&self) -> bool {
        self.state == State::Connected
    }
}

/// Milliseconds since the epoch as RFC 3339 (UTC, milliseconds).
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

//! The states a link can be in, as the gateway promises them on every
//! surface (the API, events, the dashboard).

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

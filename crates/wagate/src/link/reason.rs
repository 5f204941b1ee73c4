//! Why a link is in its state, as data: a reason code plus what the sentence
//! needs (a number, a delay, the phone). The supervisor records reasons; each
//! surface words them for its readers (English in the API, Spanish or English
//! on the dashboard). Reasons are kept in the event log as JSON
//! (`{"code": "retry_scheduled", …}`), so their shape is stable.

use serde::{Deserialize, Serialize};

/// What a connection attempt is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Log in with stored credentials.
    Login,
    /// Get QR codes to link a new device.
    Qr,
    /// Get an 8-character pairing code for a phone number.
    PairCode,
}

/// Why an attempt ended or was abandoned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Cause {
    /// The server asked for a restart (515) more often than the storm guard allows.
    RestartStorm { count: u32 },
    /// A stream error or connect failure with this code (503, 500 …).
    ServerError { code: u16, text: String },
    /// The socket died or could not be opened.
    Network { text: String },
    /// The gateway closed the attempt.
    Requested,
    /// The attempt neither logged in nor offered a code in time.
    LoginTimeout { secs: u64 },
    /// No frame from the server for this long.
    KeepaliveLate { silent_s: u64 },
}

impl Cause {
    /// The cause's name, for a metric label (a bounded set).
    pub fn kind(&self) -> &'static str {
        match self {
            Cause::RestartStorm { .. } => "restart_storm",
            Cause::ServerError { .. } => "server_error",
            Cause::Network { .. } => "network",
            Cause::Requested => "requested",
            Cause::LoginTimeout { .. } => "login_timeout",
            Cause::KeepaliveLate { .. } => "keepalive_late",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Reason {
    /// The supervisor is opening the org's device.
    Starting,
    /// Linked before; waits for its turn in the paced restore at start-up.
    WaitingForTurn,
    /// Never linked; someone must ask for a QR or pairing code.
    NotLinked,
    /// An attempt is under way.
    Connecting { purpose: Purpose, attempt: u32 },
    /// A QR code is on offer.
    ScanQr,
    /// A pairing code is on offer.
    TypePairCode,
    /// The phone linked the device; logging in follows.
    Paired { phone: String },
    /// Logged in.
    Connected { phone: Option<String> },
    /// The attempt ended; the next one starts after `delay_ms`.
    RetryScheduled {
        cause: Cause,
        delay_ms: u64,
        attempt: u32,
    },
    /// No QR code could be had after `tries` attempts without credentials.
    NoCodeAfterTries { tries: u32, cause: Cause },
    /// Rounds of codes expired without anyone linking.
    CodesUnused { rounds: u32 },
    /// The phone (or WhatsApp) unlinked the device.
    PhoneUnlinked { detail: String },
    /// Logged out because someone asked to.
    LoggedOutOnRequest,
    /// Another client took over the session.
    Replaced,
    /// WhatsApp banned the number for a while.
    Banned {
        expires_in_s: Option<u64>,
        detail: String,
    },
    /// WhatsApp refused this client version.
    Outdated,
    /// The stored credentials were unreadable and were moved aside.
    CredentialsUnreadable {
        why: String,
        aside: Option<String>,
        /// Opening a fresh device afterwards failed too.
        fresh_failed: Option<String>,
    },
    /// The org's device store could not be opened for a reason that is not
    /// its content (out of descriptors, disk full, permissions, I/O): the
    /// credentials are kept and the open is retried after `delay_ms`.
    StoreUnavailable {
        error: String,
        delay_ms: u64,
        attempt: u32,
    },
    /// The supervisor stopped (org deleted, gateway stopping).
    Stopped,
    /// Several nodes: the node that holds this link stopped renewing its
    /// leases (dead, paused, cut off); another node takes the org over
    /// when the lease lapses.
    OwnerSilent { node: String },
}

impl Reason {
    /// The reason's code, as it appears in JSON.
    pub fn code(&self) -> &'static str {
        match self {
            Reason::Starting => "starting",
            Reason::WaitingForTurn => "waiting_for_turn",
            Reason::OwnerSilent { .. } => "owner_silent",
            Reason::NotLinked => "not_linked",
            Reason::Connecting { .. } => "connecting",
            Reason::ScanQr => "scan_qr",
            Reason::TypePairCode => "type_pair_code",
            Reason::Paired { .. } => "paired",
            Reason::Connected { .. } => "connected",
            Reason::RetryScheduled { .. } => "retry_scheduled",
            Reason::NoCodeAfterTries { .. } => "no_code_after_tries",
            Reason::CodesUnused { .. } => "codes_unused",
            Reason::PhoneUnlinked { .. } => "phone_unlinked",
            Reason::LoggedOutOnRequest => "logged_out_on_request",
            Reason::Replaced => "replaced",
            Reason::Banned { .. } => "banned",
            Reason::Outdated => "outdated",
            Reason::CredentialsUnreadable { .. } => "credentials_unreadable",
            Reason::StoreUnavailable { .. } => "store_unavailable",
            Reason::Stopped => "stopped",
        }
    }

    /// One of each kind, for tests that check every reason is worded.
    pub fn samples() -> Vec<Reason> {
        let causes = [
            Cause::RestartStorm { count: 4 },
            Cause::ServerError {
                code: 503,
                text: "service unavailable".into(),
            },
            Cause::Network {
                text: "connection reset".into(),
            },
            Cause::Requested,
            Cause::LoginTimeout { secs: 45 },
            Cause::KeepaliveLate { silent_s: 25 },
        ];
        let mut v = vec![
            Reason::Starting,
            Reason::WaitingForTurn,
            Reason::NotLinked,
            Reason::Connecting {
                purpose: Purpose::Login,
                attempt: 0,
            },
            Reason::Connecting {
                purpose: Purpose::Login,
                attempt: 3,
            },
            Reason::Connecting {
                purpose: Purpose::Qr,
                attempt: 0,
            },
            Reason::Connecting {
                purpose: Purpose::PairCode,
                attempt: 0,
            },
            Reason::ScanQr,
            Reason::TypePairCode,
            Reason::Paired {
                phone: "573001112233".into(),
            },
            Reason::Connected {
                phone: Some("573001112233".into()),
            },
            Reason::Connected { phone: None },
            Reason::CodesUnused { rounds: 3 },
            Reason::PhoneUnlinked {
                detail: "device removed".into(),
            },
            Reason::LoggedOutOnRequest,
            Reason::Replaced,
            Reason::Banned {
                expires_in_s: Some(3600),
                detail: "temporary ban".into(),
            },
            Reason::Banned {
                expires_in_s: None,
                detail: "temporary ban".into(),
            },
            Reason::Outdated,
            Reason::CredentialsUnreadable {
                why: "wa.db is not a SQLite database".into(),
                aside: Some("data/aside/4-corrupt-x".into()),
                fresh_failed: None,
            },
            Reason::StoreUnavailable {
                error: "Too many open files".into(),
                delay_ms: 4000,
                attempt: 2,
            },
            Reason::Stopped,
            Reason::OwnerSilent {
                node: "node-a".into(),
            },
        ];
        for cause in causes {
            v.push(Reason::RetryScheduled {
                cause: cause.clone(),
                delay_ms: 2000,
                attempt: 1,
            });
            v.push(Reason::NoCodeAfterTries { tries: 3, cause });
        }
        v
    }
}

//! What the gateway knows about one organization's link: the states it
//! promises, the snapshot the supervisor publishes on every change, and the
//! `Status` the surfaces render (as data; the wording is theirs).

use tokio::time::Instant;

use crate::link::{Reason, State};

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

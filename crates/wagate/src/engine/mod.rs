//! The engine boundary: the only door to WhatsApp. Everything above this module
//! speaks in the small vocabulary defined here (`EngineEvent`, `CloseReason`,
//! `SendFailure`); only `engine::wa` knows the `whatsapp-rust` library.
//!
//! Contract every engine keeps (the supervisor relies on it):
//! - `start` begins exactly one connection attempt; that attempt ends with
//!   exactly one `EngineEvent::Closed`, however it ends.
//! - Verdict events (`LoggedOut`, `Replaced`, `Banned`, `Outdated`) come before
//!   the `Closed` of the attempt they end.
//! - The engine never reconnects by itself.

pub mod diagnose;
pub mod inbound;
pub mod limits;
#[cfg(test)]
pub mod scripted;
pub mod transport;
pub mod wa;

pub use crate::datadir::{aside_name, move_dir_aside};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a connection attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The server asked for a restart (stream error 515), e.g. right after pairing.
    RestartRequired,
    /// A stream error or connect failure with this code (503, 500, …).
    ServerError(u16, String),
    /// The socket died or could not be opened.
    Network(String),
    /// We closed it (`close`, `shutdown`), e.g. after a keep-alive timeout.
    Requested,
    /// It ended with a verdict (logged out, replaced, banned, outdated) that
    /// was reported as its own event before this close; the verdict decides.
    Verdict,
}

/// A message receipt kind from the recipient's device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptKind {
    Delivered,
    Read,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EngineEvent {
    /// A QR code to show; valid for `ttl`.
    Qr { code: String, ttl: Duration },
    /// A pairing code to type on the phone; valid for `ttl`.
    PairCode { code: String, ttl: Duration },
    /// The library ran out of QR codes for this round.
    QrExhausted,
    /// A phone scanned the QR / entered the code; a restart follows.
    Paired { phone: String },
    /// Logged in and ready.
    Connected { phone: Option<String> },
    /// The phone unlinked this device or the server removed it (401, 403, 406).
    LoggedOut { detail: String },
    /// Another client took over this session (conflict).
    Replaced,
    /// Temporary ban (402); `expires_in` when the server named an expiry.
    Banned {
        expires_in: Option<Duration>,
        detail: String,
    },
    /// This client version is too old (405).
    Outdated,
    /// The server acknowledged the message with this WhatsApp id (or refused it).
    ServerAck {
        wa_id: String,
        error: Option<String>,
    },
    /// The recipient's device reported these message ids delivered or read.
    Receipt {
        wa_ids: Vec<String>,
        kind: ReceiptKind,
        committed: Commit,
    },
    /// The server announced a sending limit on this number (a reach-out
    /// timelock, message capping), or that one lifted.
    Limit(LimitNotice),
    /// An inbound message: its text (a caption, the text of a quoting or
    /// disappearing message), or a reaction's emoji.
    Message {
        wa_id: String,
        /// The sender's phone number; its LID only when WhatsApp addressed
        /// it by LID and gave no number for it.
        from: String,
        /// The sender's LID, when known.
        from_lid: Option<String>,
        text: String,
        /// The WhatsApp id of the message it quotes.
        quoted: Option<String>,
        /// A reaction: the WhatsApp id of the message reacted to (`text` is
        /// the emoji; empty when a reaction is taken back).
        reaction_to: Option<String>,
        committed: Commit,
    },
    /// A message from `from` could not be decrypted (bad MAC, no session…);
    /// the library asks the sender to retry. Never a reason to unlink.
    DecryptFailure { from: String },
    /// The server answered a `probe`: the link was alive just now.
    ProbeAnswered,
    /// The attempt is over; see the contract above.
    Closed { reason: CloseReason },
}

/// A sending limit as the server announces it (`<notification type="mex">`
/// with `NotificationUserReachoutTimelockUpdate` or
/// `MessageCappingInfoNotification`; see ARCHITECTURE.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitNotice {
    /// First messages to new contacts are refused until `until_ms` (`None`
    /// while active: the server named no end), or no longer (`active: false`).
    Reachout {
        active: bool,
        until_ms: Option<i64>,
        kind: Option<String>,
    },
    /// The quota of new chats in this cycle.
    Capping {
        used: Option<i64>,
        total: Option<i64>,
        cycle_end_ms: Option<i64>,
        status: Option<String>,
    },
}

/// Tells the engine that an event it reported is durable. The library
/// acknowledges a receipt or a message to the server once its event handler
/// returns; the server then forgets it. So for those two the engine waits
/// (a while) until the outbox has committed the event: a gateway killed in
/// between gets them again at its next login instead of losing them.
#[derive(Clone, Debug, Default)]
pub struct Commit(Option<Arc<parking_lot::Mutex<Option<std::sync::mpsc::Sender<()>>>>>);

impl Commit {
    /// A commit notice and the receiver that waits for it.
    pub fn new() -> (Commit, std::sync::mpsc::Receiver<()>) {
        let (tx, rx) = std::sync::mpsc::channel();
        (
            Commit(Some(Arc::new(parking_lot::Mutex::new(Some(tx))))),
            rx,
        )
    }

    /// The event is committed.
    pub fn done(&self) {
        if let Some(slot) = &self.0 {
            if let Some(tx) = slot.lock().take() {
                let _ = tx.send(());
            }
        }
    }
}

/// Commit notices carry no data: any two are equal (events compare by content).
impl PartialEq for Commit {
    fn eq(&self, _: &Commit) -> bool {
        true
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// The credentials' *content* is unusable (not a database, a failed
    /// `quick_check`, the library refusing the data): quarantine them.
    #[error("credentials unreadable: {0}")]
    Corrupt(String),
    /// The store could not be opened for a reason outside its content (out of
    /// descriptors, disk full, permissions, I/O): keep it, try again later.
    #[error("device store unavailable: {0}")]
    Unavailable(String),
}

/// Why a send did not go out.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendFailure {
    /// Not connected now; retry when the link is back.
    #[error("not connected: {0}")]
    NotConnected(String),
    /// The message itself cannot be sent (bad recipient …); do not retry.
    #[error("{0}")]
    Rejected(String),
}

/// How to begin an attempt without credentials.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartOptions {
    /// Ask for an 8-character pairing code for this number instead of a QR.
    pub pair_phone: Option<String>,
}

/// One organization's WhatsApp device.
pub trait Engine: Send + Sync {
    /// Whether this device holds credentials (was linked before).
    fn has_credentials(&self) -> bool;
    /// Begin one connection attempt (see the contract above).
    fn start(&self, opts: StartOptions);
    /// End the current attempt without forgetting anything; a `Closed` follows.
    fn close(&self);
    /// Ask the server for a sign of life now (a keep-alive ping); any frame
    /// counts. When the answer comes, emit `ProbeAnswered`.
    fn probe(&self);
    /// When the last frame arrived from the server on this attempt.
    fn last_frame(&self) -> Option<Instant>;
    /// What the client holds in memory, as text (the library's own report);
    /// `None` when the engine keeps no such account.
    fn memory_report(&self) -> BoxFuture<'_, Option<String>> {
        Box::pin(async { None })
    }
    /// Unlink this device from the phone (best effort) and stop.
    fn logout(&self) -> BoxFuture<'_, ()>;
    /// Stop for good and release files; the engine is not used again.
    fn shutdown(&self) -> BoxFuture<'_, ()>;
    /// Show "typing…" to `to` (best effort: a failure changes nothing).
    fn typing<'a>(&'a self, to: &'a str) -> BoxFuture<'a, ()>;
    /// Ask the server whether `phone` is on WhatsApp: its jid when it is,
    /// `None` when it is not; `Err` when the question could not be asked.
    fn lookup<'a>(&'a self, phone: &'a str) -> BoxFuture<'a, Result<Option<String>, SendFailure>>;
    /// Send a text to the international phone number `to` with WhatsApp id `wa_id`.
    fn send_text<'a>(
        &'a self,
        to: &'a str,
        text: &'a str,
        wa_id: &'a str,
    ) -> BoxFuture<'a, Result<(), SendFailure>>;
}

/// Opens engines for organizations.
pub trait EngineFactory: Send + Sync {
    /// Open org `org`'s device, number `dev` (created if missing); events go
    /// to `events` (unbounded: acks and receipts are never dropped).
    fn open<'a>(
        &'a self,
        org: &'a str,
        dev: i64,
        events: mpsc::UnboundedSender<EngineEvent>,
    ) -> BoxFuture<'a, Result<Arc<dyn Engine>, EngineError>>;

    /// Whether org `org` has a linked device stored (credentials). An org
    /// without one opens its engine only to pair: a never-linked org costs
    /// a row, not a client.
    fn stored<'a>(&'a self, org: &'a str, dev: i64) -> BoxFuture<'a, Result<bool, EngineError>>;

    /// Keep a copy of device `dev`'s state in the aside folder, named after
    /// `org` and `why`, then clear it, so that the next `open` starts a fresh
    /// device. Returns where the copy went (`None`: there was nothing to
    /// keep). What could not be copied is never cleared.
    fn set_aside<'a>(
        &'a self,
        org: &'a str,
        dev: i64,
        why: &'a str,
    ) -> BoxFuture<'a, Result<Option<PathBuf>, String>>;

    /// Make the copy at `from` (one `set_aside` made, or an earlier
    /// version's `wa.db` folder) device `dev`'s state, replacing what it
    /// has (the caller set that aside first).
    fn reinstate<'a>(
        &'a self,
        org: &'a str,
        dev: i64,
        from: &'a std::path::Path,
    ) -> BoxFuture<'a, Result<(), String>>;
}

/// A fresh WhatsApp message id in the form WhatsApp Web uses (`3EB0` + 16 hex).
pub fn new_wa_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut b);
    format!("3EB0{}", hex::encode_upper(b))
}

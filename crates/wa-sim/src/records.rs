//! What the simulated server keeps beside its persisted state, as plain
//! records: the limits in force per number, pending pairing-code flows,
//! the key bundles devices uploaded, and the messages phones sent. `Sim`
//! holds them; the modules that act on them (`limits`, `paircode`,
//! `messaging`) import them from here, so none of them is imported back.

use std::collections::HashMap;
use std::sync::Mutex;

use wacore_libsignal::protocol::KeyPair;

/// A timelock in force for one number.
#[derive(Debug, Clone)]
pub struct Reachout {
    pub until_ms: i64,
    /// Tell the devices (a silent one shows only as 463s).
    pub announce: bool,
    pub announced: bool,
}

/// A new-chat quota in force for one number.
#[derive(Debug, Clone)]
pub struct Capping {
    pub total: i64,
    pub used: i64,
    pub cycle_end_ms: i64,
}

impl Capping {
    pub fn status(&self) -> &'static str {
        if self.used >= self.total {
            "CAPPED"
        } else if self.used * 10 >= self.total * 9 {
            "SECOND_WARNING"
        } else if self.used * 10 >= self.total * 7 {
            "FIRST_WARNING"
        } else {
            "NONE"
        }
    }
}

/// One companion waiting for its code to be typed on a phone.
pub struct Pending {
    pub conn: u64,
    pub reference: String,
    pub wrapped_companion: Vec<u8>,
    /// Set once the code was typed: our ephemeral key and the companion's.
    pub primary: Option<(KeyPair, [u8; 32])>,
}

/// Pending pairing-code flows by phone number.
#[derive(Default)]
pub struct Codes(pub Mutex<HashMap<String, Pending>>);

/// The key bundle a linked device uploaded (`iq xmlns="encrypt" type="set"`),
/// as the server holds it: a phone opening a Signal session to the device
/// takes one of its one-time pre-keys (which the server then forgets).
#[derive(Debug, Clone)]
pub struct Uploaded {
    pub registration: u32,
    pub identity: [u8; 32],
    /// One-time pre-keys held, by id (in the order they were uploaded).
    pub prekeys: Vec<(u32, [u8; 32])>,
    pub signed: (u32, [u8; 32], Vec<u8>),
}

/// What a phone writes: text, a reply quoting a message, or a reaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compose {
    Text(String),
    /// A reply that quotes message `quoted` (its WhatsApp id) of the number.
    Quote {
        text: String,
        quoted: String,
    },
    /// A reaction (`emoji`; empty takes it back) to message `target`.
    React {
        emoji: String,
        target: String,
    },
}

/// A message a phone sent, kept for retry receipts and "who wrote to whom".
#[derive(Debug, Clone)]
pub struct Sent {
    pub from: String,
    pub to: String,
    pub what: Compose,
    pub by: Addressed,
}

/// How a phone's message names its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressed {
    /// By phone number (`…@s.whatsapp.net`).
    Phone,
    /// By LID, with the number beside it (`sender_pn`), as LID-migrated
    /// chats usually are.
    Lid,
    /// By LID alone: the receiver must know the number from earlier (a
    /// contact look-up, a message that carried it).
    LidOnly,
}

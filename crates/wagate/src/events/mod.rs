//! The gateway's events, typed: the closed list of kinds (`Kind`), one
//! documented struct per kind, the `Event` that carries one, and the only
//! way one is written (`emit`, inside the transaction of the change it
//! reports) and read back (`decode`, `wire`). Every surface — the event
//! stream, webhooks, the history API, the dashboard — renders what `wire`
//! gives, so a kind has one shape everywhere. Times follow `crate::times`.

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::{RefOr, Schema};
use utoipa::ToSchema;

use crate::db::DbResult;
use crate::link::{words, Reason, State};
use crate::store::{MessageRow, Tx};
use crate::times::rfc3339;

/// Every kind of event, in the order the documentation lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    State,
    Qr,
    PairCode,
    MessageStatus,
    MessageReceived,
    MessageReaction,
    SendLimited,
    DecryptFailure,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::State,
        Kind::Qr,
        Kind::PairCode,
        Kind::MessageStatus,
        Kind::MessageReceived,
        Kind::MessageReaction,
        Kind::SendLimited,
        Kind::DecryptFailure,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::State => "state",
            Kind::Qr => "qr",
            Kind::PairCode => "pair_code",
            Kind::MessageStatus => "message.status",
            Kind::MessageReceived => "message.received",
            Kind::MessageReaction => "message.reaction",
            Kind::SendLimited => "send.limited",
            Kind::DecryptFailure => "decrypt_failure",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The name and JSON schema of this kind's data (for `/openapi.json`).
    pub fn schema(self) -> (String, RefOr<Schema>) {
        fn of<T: ToSchema>() -> (String, RefOr<Schema>) {
            (T::name().into_owned(), T::schema())
        }
        match self {
            Kind::State => of::<StateChanged>(),
            Kind::Qr => of::<QrOffered>(),
            Kind::PairCode => of::<PairCodeOffered>(),
            Kind::MessageStatus => of::<MessageStatus>(),
            Kind::MessageReceived => of::<MessageReceived>(),
            Kind::MessageReaction => of::<MessageReaction>(),
            Kind::SendLimited => of::<SendLimited>(),
            Kind::DecryptFailure => of::<DecryptFailure>(),
        }
    }
}

/// `state`: the link moved to `state`, for `reason`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StateChanged {
    /// The link's state (`connected`, `reconnecting`, `needs_qr`, …).
    #[schema(example = "connected")]
    pub state: String,
    /// Why, as data (`{"code": …}`); absent in events written before reasons.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub reason: Option<Reason>,
    /// The reason as a sentence, in English.
    #[serde(default)]
    pub detail: String,
    #[serde(default)]
    pub reconnect_attempt: u32,
    /// When the next try is due, from the event's time.
    #[serde(default)]
    pub next_retry_in_ms: Option<u64>,
    #[serde(default)]
    pub phone_number: Option<String>,
}

impl StateChanged {
    pub fn new(
        state: State,
        reason: Reason,
        reconnect_attempt: u32,
        next_retry_in_ms: Option<u64>,
        phone_number: Option<String>,
    ) -> StateChanged {
        StateChanged {
            state: state.as_str().to_string(),
            detail: words::detail(&reason, 0),
            reason: Some(reason),
            reconnect_attempt,
            next_retry_in_ms,
            phone_number,
        }
    }

    /// The state, if it is one this gateway knows.
    pub fn link_state(&self) -> Option<State> {
        State::parse(&self.state)
    }
}

/// `qr`: a QR code to scan with the phone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct QrOffered {
    /// The text the QR encodes.
    pub qr: String,
    pub expires_in_ms: u64,
}

/// `pair_code`: a code to type on the phone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PairCodeOffered {
    pub pair_code: String,
    pub expires_in_ms: u64,
}

/// `message.status`: a message of ours moved. Every field is always there
/// (`null` when it does not apply).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MessageStatus {
    /// Our id (`msg_…`).
    pub id: String,
    #[schema(example = "delivered")]
    pub status: String,
    /// The phone number it is for.
    #[serde(default)]
    pub to: Option<String>,
    /// Why it failed or expired.
    #[serde(default)]
    pub error: Option<String>,
    /// Queued but held by a WhatsApp limit (`reachout_timelock`, `message_cap`).
    #[serde(default)]
    pub held_reason: Option<String>,
    /// When a held message is tried again (RFC 3339).
    #[serde(default)]
    pub retry_at: Option<String>,
}

impl MessageStatus {
    /// The event for `row` as it is now.
    pub fn of(row: &MessageRow) -> MessageStatus {
        MessageStatus {
            id: row.id.clone(),
            status: row.status.as_str().to_string(),
            to: Some(row.to.clone()),
            error: row.error.clone(),
            held_reason: row.held_reason.clone(),
            retry_at: row.held_reason.as_ref().and(row.retry_at_ms).map(rfc3339),
        }
    }
}

/// `message.received`: a patient wrote to the org.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MessageReceived {
    /// WhatsApp's id of the message.
    pub wa_id: String,
    /// The sender's phone number.
    pub from: String,
    pub from_lid: Option<String>,
    pub text: String,
    /// When it was received (RFC 3339).
    #[serde(default)]
    pub received_at: Option<String>,
    /// The same, in Unix milliseconds (kept for older clients).
    pub received_ms: i64,
    /// Our message it quotes.
    pub in_reply_to: Option<String>,
    /// When it quotes none: our latest message to that contact (72 h).
    pub last_outbound_id: Option<String>,
    pub quoted_wa_id: Option<String>,
}

/// `message.reaction`: a patient reacted to a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MessageReaction {
    pub wa_id: String,
    pub from: String,
    pub from_lid: Option<String>,
    /// Empty: the reaction was taken back.
    pub emoji: String,
    /// Ours, else WhatsApp's id of the message reacted to.
    pub message_id: String,
    #[serde(default)]
    pub received_at: Option<String>,
    pub received_ms: i64,
}

/// `send.limited`: a WhatsApp sending limit began, changed or lifted.
/// Every field is always there (`null` when it does not apply).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SendLimited {
    /// `reachout_timelock` or `message_cap`.
    pub reason: String,
    pub active: bool,
    /// Until when (RFC 3339).
    #[serde(default)]
    pub until: Option<String>,
    /// How many held messages it moved.
    #[serde(default)]
    pub held: Option<u64>,
    /// 463 when a send was refused for it.
    #[serde(default)]
    pub code: Option<u16>,
    /// The refused message.
    #[serde(default)]
    pub message_id: Option<String>,
    #[serde(default)]
    pub enforcement_type: Option<String>,
    #[serde(default)]
    pub used: Option<i64>,
    #[serde(default)]
    pub total: Option<i64>,
    /// When the cap's cycle ends (RFC 3339).
    #[serde(default)]
    pub cycle_end: Option<String>,
    #[serde(default)]
    pub capping_status: Option<String>,
}

/// `decrypt_failure`: a message from `from` could not be decrypted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DecryptFailure {
    pub from: String,
    /// Failures counted for the org so far.
    pub count: u64,
}

/// One event, of one kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    State(StateChanged),
    Qr(QrOffered),
    PairCode(PairCodeOffered),
    MessageStatus(MessageStatus),
    MessageReceived(MessageReceived),
    MessageReaction(MessageReaction),
    SendLimited(SendLimited),
    DecryptFailure(DecryptFailure),
}

impl Event {
    pub fn kind(&self) -> Kind {
        match self {
            Event::State(_) => Kind::State,
            Event::Qr(_) => Kind::Qr,
            Event::PairCode(_) => Kind::PairCode,
            Event::MessageStatus(_) => Kind::MessageStatus,
            Event::MessageReceived(_) => Kind::MessageReceived,
            Event::MessageReaction(_) => Kind::MessageReaction,
            Event::SendLimited(_) => Kind::SendLimited,
            Event::DecryptFailure(_) => Kind::DecryptFailure,
        }
    }

    /// The event's data as JSON: the one serialization every surface uses.
    pub fn data(&self) -> Value {
        let v = match self {
            Event::State(e) => serde_json::to_value(e),
            Event::Qr(e) => serde_json::to_value(e),
            Event::PairCode(e) => serde_json::to_value(e),
            Event::MessageStatus(e) => serde_json::to_value(e),
            Event::MessageReceived(e) => serde_json::to_value(e),
            Event::MessageReaction(e) => serde_json::to_value(e),
            Event::SendLimited(e) => serde_json::to_value(e),
            Event::DecryptFailure(e) => serde_json::to_value(e),
        };
        // Plain structs of strings and numbers always serialize.
        v.unwrap_or(Value::Null)
    }

    /// A stored event read back: `None` for a kind this gateway does not
    /// know or data that is not of its kind. Data written by older
    /// releases decodes too (fields added since take their defaults; a
    /// `state` event gains its `detail` from its reason).
    pub fn decode(kind: &str, data: &Value) -> Option<Event> {
        fn de<T: serde::de::DeserializeOwned>(v: &Value) -> Option<T> {
            serde_json::from_value(v.clone()).ok()
        }
        Some(match Kind::parse(kind)? {
            Kind::State => {
                let mut s: StateChanged = de(data)?;
                if s.detail.is_empty() {
                    if let Some(r) = &s.reason {
                        s.detail = words::detail(r, 0);
                    }
                }
                Event::State(s)
            }
            Kind::Qr => Event::Qr(de(data)?),
            Kind::PairCode => Event::PairCode(de(data)?),
            Kind::MessageStatus => Event::MessageStatus(de(data)?),
            Kind::MessageReceived => {
                let mut m: MessageReceived = de(data)?;
                m.received_at.get_or_insert_with(|| rfc3339(m.received_ms));
                Event::MessageReceived(m)
            }
            Kind::MessageReaction => {
                let mut m: MessageReaction = de(data)?;
                m.received_at.get_or_insert_with(|| rfc3339(m.received_ms));
                Event::MessageReaction(m)
            }
            Kind::SendLimited => Event::SendLimited(de(data)?),
            Kind::DecryptFailure => Event::DecryptFailure(de(data)?),
        })
    }
}

/// A stored event's data as every surface shows it: decoded into its kind
/// and serialized again (so an old row shows today's fields), or as stored
/// when it does not decode.
pub fn wire(kind: &str, data: &Value) -> Value {
    Event::decode(kind, data).map_or_else(|| data.clone(), |e| e.data())
}

/// Record `event` of org incarnation `inc` (id `org`) in this transaction:
/// the only way an event is written. Its webhooks' deliveries commit with it.
pub fn emit(tx: &mut Tx, inc: i64, org: &str, event: &Event) -> DbResult<i64> {
    tx.record_event(inc, org, event.kind().as_str(), event.data())
}

/// Record the `message.status` event of `row`, as it is now.
pub fn emit_status(tx: &mut Tx, org: &str, row: &MessageRow) -> DbResult<i64> {
    emit(
        tx,
        row.inc,
        org,
        &Event::MessageStatus(MessageStatus::of(row)),
    )
}

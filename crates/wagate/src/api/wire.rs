//! The API's JSON shapes. Store rows and session types are not `Serialize`:
//! this file decides what leaves the gateway, field by field.

use serde::Serialize;
use serde_json::Value;

use super::words;
use crate::app::link::StateChange;
use crate::app::orgs::OrgSummary;
use crate::session::status::rfc3339;
use crate::session::{Reason, Status};
use crate::store::inbound::InboundRow;
use crate::store::{EventRow, MessageRow};

/// `GET /v1/orgs/{org}/session`, and the `status` event.
#[derive(Debug, Serialize)]
pub struct StatusJson {
    pub org: String,
    pub state: &'static str,
    pub connected: bool,
    pub since: String,
    pub last_seen: Option<String>,
    pub reconnect_attempt: u32,
    pub next_retry_in_ms: Option<u64>,
    pub phone_number: Option<String>,
    pub detail: String,
    pub reason: Reason,
    pub qr_available: bool,
    pub pair_code: Option<String>,
    pub pair_code_expires_in_ms: Option<u64>,
    pub queued_messages: Option<i64>,
    pub queue_empty_eta_ms: Option<i64>,
    /// Queued messages waiting on a sending limit (see `held_reason`).
    pub held_messages: Option<i64>,
    /// Until when WhatsApp refuses first messages to new contacts (null: not now).
    pub reachout_timelock_until: Option<String>,
    /// The new-chat quota the server last announced (null: never announced).
    pub message_capping: Option<CappingJson>,
    pub decrypt_failures: u64,
}

/// WhatsApp's quota of new chats per cycle, as the server announced it.
#[derive(Debug, Serialize)]
pub struct CappingJson {
    pub used: Option<i64>,
    /// -1: no cap.
    pub total: Option<i64>,
    pub cycle_end: Option<String>,
    /// `NONE`, `FIRST_WARNING`, `SECOND_WARNING` or `CAPPED`.
    pub status: Option<String>,
    /// Whether new chats are held now.
    pub capped: bool,
}

impl From<&Status> for StatusJson {
    fn from(s: &Status) -> StatusJson {
        StatusJson {
            org: s.org.clone(),
            state: s.state.as_str(),
            connected: s.connected(),
            since: rfc3339(s.since_ms),
            last_seen: s.last_seen_ms.map(rfc3339),
            reconnect_attempt: s.reconnect_attempt,
            next_retry_in_ms: s.next_retry_in_ms,
            phone_number: s.phone_number.clone(),
            detail: words::detail(&s.reason, s.decrypt_failures),
            reason: s.reason.clone(),
            qr_available: s.qr_available,
            pair_code: s.pair_code.clone(),
            pair_code_expires_in_ms: s.pair_code_expires_in_ms,
            queued_messages: s.queued_messages,
            queue_empty_eta_ms: s.queue_empty_eta_ms,
            held_messages: s.held_messages,
            reachout_timelock_until: s
                .limits
                .as_ref()
                .and_then(|l| l.reachout_active(crate::store::now_ms()))
                .map(rfc3339),
            message_capping: s.limits.as_ref().and_then(|l| {
                (l.cap_total.is_some() || l.cap_status.is_some()).then(|| CappingJson {
                    used: l.cap_used,
                    total: l.cap_total,
                    cycle_end: l.cap_cycle_end_ms.map(rfc3339),
                    status: l.cap_status.clone(),
                    capped: l.capped(crate::store::now_ms()).is_some(),
                })
            }),
            decrypt_failures: s.decrypt_failures,
        }
    }
}

/// One outgoing message.
#[derive(Debug, Serialize)]
pub struct MessageJson {
    pub id: String,
    pub to: String,
    pub text: String,
    pub status: &'static str,
    pub error: Option<String>,
    pub wa_id: String,
    pub idempotency_key: Option<String>,
    pub attempts: i64,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// When it is to leave (absent: at once).
    pub send_at_ms: Option<i64>,
    /// After this it is never sent.
    pub send_before_ms: Option<i64>,
    /// When a queued or scheduled message is expected to leave (an estimate
    /// from the org's pacing); null otherwise.
    pub eta_ms: Option<i64>,
    /// Why a queued message waits on WhatsApp's limits (`reachout_timelock`,
    /// `message_cap`, `new_contact_cap`); null when it does not.
    pub held_reason: Option<String>,
    /// When a held message is tried again.
    pub retry_at: Option<String>,
}

impl From<&MessageRow> for MessageJson {
    fn from(m: &MessageRow) -> MessageJson {
        MessageJson {
            id: m.id.clone(),
            to: m.to.clone(),
            text: m.text.clone(),
            status: m.status.as_str(),
            error: m.error.clone(),
            wa_id: m.wa_id.clone(),
            idempotency_key: m.idempotency_key.clone(),
            attempts: m.attempts,
            created_ms: m.created_ms,
            updated_ms: m.updated_ms,
            send_at_ms: m.send_at_ms,
            send_before_ms: m.send_before_ms,
            eta_ms: None,
            held_reason: held(m).and(m.held_reason.clone()),
            retry_at: held(m).and(m.retry_at_ms).map(rfc3339),
        }
    }
}

/// Whether a message waits on a limit (only a queued one can).
fn held(m: &MessageRow) -> Option<()> {
    (m.status == crate::store::MessageStatus::Queued && m.retry_at_ms.is_some()).then_some(())
}

/// One received message.
#[derive(Debug, Serialize)]
pub struct InboundJson {
    pub wa_id: String,
    /// The sender's phone number (its LID only when WhatsApp gave none).
    pub from: String,
    pub from_lid: Option<String>,
    /// The text; for a reaction, its emoji.
    pub text: String,
    pub received_ms: i64,
    /// Our message it quotes.
    pub in_reply_to: Option<String>,
    /// Our latest message to this contact within 72 h, when it quotes none.
    pub last_outbound_id: Option<String>,
    /// The WhatsApp id it quotes (ours or not).
    pub quoted_wa_id: Option<String>,
    /// A reaction: the message reacted to.
    pub reaction_to: Option<String>,
}

impl From<&InboundRow> for InboundJson {
    fn from(r: &InboundRow) -> InboundJson {
        InboundJson {
            wa_id: r.wa_id.clone(),
            from: r.from.clone(),
            from_lid: r.from_lid.clone(),
            text: r.text.clone(),
            received_ms: r.received_ms,
            in_reply_to: r.in_reply_to.clone(),
            last_outbound_id: r.last_outbound_id.clone(),
            quoted_wa_id: r.quoted_wa_id.clone(),
            reaction_to: r.reaction_to.clone(),
        }
    }
}

/// An organization (the token only in the answer to its creation).
#[derive(Debug, Serialize)]
pub struct OrgJson {
    pub id: String,
    pub name: String,
    pub default_country_code: Option<String>,
    pub created_at: String,
    pub state: &'static str,
    pub phone_number: Option<String>,
    pub queued_messages: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl From<&OrgSummary> for OrgJson {
    fn from(o: &OrgSummary) -> OrgJson {
        OrgJson {
            id: o.row.id.clone(),
            name: o.row.name.clone(),
            default_country_code: o.row.default_country_code.clone(),
            created_at: rfc3339(o.row.created_ms),
            state: o.status.state.as_str(),
            phone_number: o.status.phone_number.clone(),
            queued_messages: o.status.queued_messages,
            token: None,
        }
    }
}

/// One entry of `GET …/session/history`.
#[derive(Debug, Serialize)]
pub struct StateChangeJson {
    pub at: String,
    pub state: String,
    pub detail: String,
    pub reason: Option<Reason>,
}

impl From<&StateChange> for StateChangeJson {
    fn from(c: &StateChange) -> StateChangeJson {
        StateChangeJson {
            at: rfc3339(c.at_ms),
            state: c.state.clone(),
            detail: match (&c.reason, &c.legacy_detail) {
                (Some(r), _) => words::detail(r, 0),
                (None, Some(d)) => d.clone(),
                (None, None) => String::new(),
            },
            reason: c.reason.clone(),
        }
    }
}

/// An event's payload as the API sends it: `state` events gain their
/// English `detail`.
pub fn event_data(e: &EventRow) -> Value {
    let mut data = e.data.clone();
    if e.kind == "state" {
        if let Ok(r) = serde_json::from_value::<Reason>(data["reason"].clone()) {
            data["detail"] = Value::String(words::detail(&r, 0));
        }
    }
    data
}

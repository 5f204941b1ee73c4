//! The API's JSON shapes. Store rows and session types are not `Serialize`:
//! this file decides what leaves the gateway, field by field. Each shape is
//! also its schema in `/openapi.json` (`ToSchema`), so the description is the
//! type the handler answers with.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::schema::{DeliveryStatusName, LinkState, MessageStatusName};
use crate::app::link::StateChange;
use crate::app::orgs::OrgSummary;
use crate::app::webhooks::WebhookView;
use crate::link::words;
use crate::session::{Reason, Status};
use crate::store::inbound::InboundRow;
use crate::store::webhooks::{Delivery, Webhook};
use crate::store::{EventRow, MessageRow};
use crate::times::rfc3339;

/// `GET /v1/orgs/{org}/session`, and the `status` event.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusJson {
    pub org: String,
    #[schema(value_type = LinkState)]
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
    /// Several nodes on one PostgreSQL: the node that owns the org's link
    /// (null with one gateway).
    pub node: Option<String>,
}

/// WhatsApp's quota of new chats per cycle, as the server announced it.
#[derive(Debug, Serialize, ToSchema)]
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
            node: s.node.clone(),
        }
    }
}

/// One outgoing message.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageJson {
    pub id: String,
    pub to: String,
    pub text: String,
    #[schema(value_type = MessageStatusName)]
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
#[derive(Debug, Serialize, ToSchema)]
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
#[derive(Debug, Serialize, ToSchema)]
pub struct OrgJson {
    pub id: String,
    pub name: String,
    pub default_country_code: Option<String>,
    pub created_at: String,
    #[schema(value_type = LinkState)]
    pub state: &'static str,
    pub phone_number: Option<String>,
    pub queued_messages: Option<i64>,
    /// Several nodes on one PostgreSQL: the node that owns the org's link
    /// (null with one gateway).
    pub node: Option<String>,
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
            node: o.status.node.clone(),
            phone_number: o.status.phone_number.clone(),
            queued_messages: o.status.queued_messages,
            token: None,
        }
    }
}

/// One entry of `GET …/session/history`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StateChangeJson {
    pub at: String,
    /// The state it entered (a `LinkState`; older logs may hold other names).
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
    crate::events::wire(&e.kind, &e.data)
}

/// `GET /v1/orgs`.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrgList {
    pub orgs: Vec<OrgJson>,
}

/// What a `DELETE` removed.
#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    /// The id of what was deleted.
    pub deleted: String,
}

/// A pairing code to type on the phone (`session/connect` with a number).
#[derive(Debug, Serialize, ToSchema)]
pub struct PairCodeJson {
    /// Eight letters and digits, shown as `ABCD-EFGH`.
    pub pair_code: String,
    pub expires_in_ms: u64,
}

/// The QR on offer (`session/qr`, JSON format).
#[derive(Debug, Serialize, ToSchema)]
pub struct QrJson {
    /// The text the QR encodes; a phone scans it.
    pub qr: String,
    pub expires_in_ms: u64,
}

/// `GET …/session/history`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryJson {
    /// Newest first, at most 50.
    pub changes: Vec<StateChangeJson>,
}

/// A copy of an org's credentials kept aside.
#[derive(Debug, Serialize, ToSchema)]
pub struct AsideJson {
    /// The copy's name (what `credentials/restore` takes).
    pub name: String,
    /// Why it was set aside: `logged_out`, `reset`, `corrupt`, `deleted`, `replaced`, `migrated`, …
    pub reason: String,
    /// When, as in its name (`20261129T091500.123Z`).
    pub at: String,
    pub bytes: u64,
}

/// `GET …/credentials`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AsideList {
    /// Newest first.
    pub aside: Vec<AsideJson>,
}

/// `POST …/credentials/restore`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RestoredJson {
    /// The copy put back.
    pub restored: String,
    /// The name under which the credentials it replaced were kept.
    pub replaced_aside: Option<String>,
    pub status: StatusJson,
}

/// `GET …/debug/memory`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemoryJson {
    pub org: String,
    /// The library's own report, as text; null when no client is open.
    pub report: Option<String>,
}

/// `GET …/contacts/{phone}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactJson {
    /// The number in international form.
    pub phone: String,
    pub on_whatsapp: bool,
    /// Its WhatsApp address, when it is on WhatsApp.
    pub jid: Option<String>,
    pub checked_at: String,
    /// Answered from the org's cache, without asking WhatsApp.
    pub cached: bool,
}

/// A page of outgoing messages.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessagePage {
    pub messages: Vec<MessageJson>,
    /// Pass it back as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// A page of received messages.
#[derive(Debug, Serialize, ToSchema)]
pub struct InboundPage {
    pub messages: Vec<InboundJson>,
    /// Pass it back as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// A webhook endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookJson {
    pub id: String,
    pub url: String,
    /// The event kinds it receives; null: every kind.
    pub events: Option<Vec<String>>,
    /// Why it no longer receives (its receiver answered `410 Gone`); null while active.
    pub disabled: Option<String>,
    pub created_at: String,
    /// Until when the previous secret still signs beside the new one.
    pub secret_rotated_until: Option<String>,
}

impl From<&Webhook> for WebhookJson {
    fn from(w: &Webhook) -> WebhookJson {
        WebhookJson {
            id: w.id.clone(),
            url: w.url.clone(),
            events: w.events.clone(),
            disabled: w.disabled.clone(),
            created_at: rfc3339(w.created_ms),
            secret_rotated_until: w.prev_until_ms.map(rfc3339),
        }
    }
}

/// A webhook endpoint with its secret: only in the answers that make one.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookSecretJson {
    #[serde(flatten)]
    pub hook: WebhookJson,
    /// Signs every delivery (`Wagate-Signature`); shown only here.
    pub secret: String,
}

impl From<&Webhook> for WebhookSecretJson {
    fn from(w: &Webhook) -> WebhookSecretJson {
        WebhookSecretJson {
            hook: WebhookJson::from(w),
            secret: w.secret.clone(),
        }
    }
}

/// How many of an endpoint's deliveries are in each state.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryCounts {
    pub pending: i64,
    pub delivered: i64,
    pub failed: i64,
}

/// A webhook endpoint with its delivery counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookViewJson {
    #[serde(flatten)]
    pub hook: WebhookJson,
    pub deliveries: DeliveryCounts,
}

impl From<&WebhookView> for WebhookViewJson {
    fn from(v: &WebhookView) -> WebhookViewJson {
        WebhookViewJson {
            hook: WebhookJson::from(&v.hook),
            deliveries: DeliveryCounts {
                pending: v.pending,
                delivered: v.delivered,
                failed: v.failed,
            },
        }
    }
}

/// `GET …/webhooks`.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    pub webhooks: Vec<WebhookViewJson>,
}

/// One delivery of an event to an endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryJson {
    /// `dlv_<number>`.
    pub id: String,
    /// `evt_<number>`: the `id` in the webhook's body, for de-duplication.
    pub event_id: String,
    /// The event kind.
    #[serde(rename = "type")]
    pub kind: String,
    #[schema(value_type = DeliveryStatusName)]
    pub status: &'static str,
    pub attempts: i64,
    /// When it is tried next; null once delivered or failed.
    pub next_attempt_at: Option<String>,
    /// The receiver's last HTTP status; null when it never answered.
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Delivery> for DeliveryJson {
    fn from(d: &Delivery) -> DeliveryJson {
        DeliveryJson {
            id: format!("dlv_{}", d.seq),
            event_id: format!("evt_{}", d.event),
            kind: d.kind.clone(),
            status: d.status.as_str(),
            attempts: d.attempts,
            next_attempt_at: d.due_ms.map(rfc3339),
            last_status_code: d.last_code,
            last_error: d.last_error.clone(),
            created_at: rfc3339(d.created_ms),
            updated_at: rfc3339(d.updated_ms),
        }
    }
}

/// A page of deliveries, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryPage {
    pub deliveries: Vec<DeliveryJson>,
    /// Pass it back as `before` for the next page; null on the last.
    pub next_before: Option<String>,
}

/// How many deliveries were queued again.
#[derive(Debug, Serialize, ToSchema)]
pub struct Queued {
    pub queued: u64,
}

/// `GET /api/status` (the old Node server's shape).
#[derive(Debug, Serialize, ToSchema)]
pub struct CompatStatus {
    #[schema(value_type = LinkState)]
    pub status: &'static str,
    pub connected: bool,
    pub phone_number: Option<String>,
    /// The same as `phone_number` (the old server's name).
    pub phone: Option<String>,
    pub detail: String,
    pub since: String,
    pub last_seen: Option<String>,
    pub reconnect_attempt: u32,
    pub next_retry_in_ms: Option<u64>,
    pub queued_messages: Option<i64>,
}

impl From<StatusJson> for CompatStatus {
    fn from(v: StatusJson) -> CompatStatus {
        CompatStatus {
            status: v.state,
            connected: v.connected,
            phone: v.phone_number.clone(),
            phone_number: v.phone_number,
            detail: v.detail,
            since: v.since,
            last_seen: v.last_seen,
            reconnect_attempt: v.reconnect_attempt,
            next_retry_in_ms: v.next_retry_in_ms,
            queued_messages: v.queued_messages,
        }
    }
}

/// `POST /api/send-message` (the old Node server's shape).
#[derive(Debug, Serialize, ToSchema)]
pub struct CompatSent {
    /// Always true (a refusal is an error answer).
    pub success: bool,
    pub message_id: String,
    #[schema(value_type = MessageStatusName)]
    pub status: &'static str,
}

/// `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
}

/// `GET /readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    /// Always `ready` (otherwise the answer is 503 `not_ready`).
    pub status: &'static str,
    /// How many organizations the database holds.
    pub orgs: i64,
}

//! Schemas that exist only for `/openapi.json`: the request bodies as the
//! handlers read them (field by field, through `Body`), the error envelope,
//! and the closed lists of names (link states, message statuses, event
//! kinds) taken from the lists the code itself uses, so they cannot drift.

use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::{KnownFormat, RefOr};
use utoipa::{PartialSchema, ToSchema};

use crate::app::ErrorCode;
use crate::session::State;
use crate::store::webhooks::DeliveryStatus;
use crate::store::MessageStatus;

/// A string schema limited to `values`.
fn names<'a>(values: impl IntoIterator<Item = &'a str>, about: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values))
        .description(Some(about))
        .into()
}

macro_rules! name_list {
    ($(#[$doc:meta])* $name:ident, $values:expr, $about:literal) => {
        $(#[$doc])*
        pub struct $name;

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                names($values, $about)
            }
        }

        impl ToSchema for $name {}
    };
}

name_list!(
    /// A link's state.
    LinkState,
    State::ALL.iter().map(|s| s.as_str()),
    "The link's state: `connected` is the only one in which messages leave."
);
name_list!(
    /// A message's status.
    MessageStatusName,
    MessageStatus::ALL.iter().map(|s| s.as_str()),
    "scheduled → queued → sent → delivered → read; or failed, expired, canceled."
);
name_list!(
    /// A webhook delivery's status.
    DeliveryStatusName,
    DeliveryStatus::ALL.iter().map(|s| s.as_str()),
    "pending until the receiver answers 2xx (delivered) or the last try fails (failed)."
);
name_list!(
    /// An event kind a webhook can ask for.
    EventKind,
    crate::events::Kind::ALL.map(crate::events::Kind::as_str),
    "An event kind."
);
name_list!(
    /// The QR's form.
    QrFormat,
    ["json", "svg", "png"],
    "json (the code's text), svg or png."
);
name_list!(
    /// Every public error code.
    ErrorCodeName,
    ErrorCode::ALL.iter().map(|c| c.as_str()),
    "What went wrong, for programs; docs/api.md lists each code."
);

/// A string matching `pattern`, or a whole number from `min` (to `max`)
/// read as its digits (`"org_id": 4`).
fn string_or_integer(pattern: &str, min: i64, max: Option<i64>) -> Schema {
    Schema::OneOf(
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(pattern)),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(min))
                    .maximum(max),
            )
            .build(),
    )
}

/// An org id: 1–64 letters, digits, `-` or `_`, starting with a letter or digit.
pub const ORG_ID_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$";

fn org_id() -> Schema {
    string_or_integer(ORG_ID_PATTERN, 0, None)
}

fn country_code() -> Schema {
    string_or_integer("^\\+?[1-9][0-9]{0,2}$", 1, Some(999))
}

/// A moment: RFC 3339 with its offset, or whole Unix milliseconds.
fn moment() -> Schema {
    Schema::OneOf(
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
            )
            .item(ObjectBuilder::new().schema_type(Type::Integer))
            .description(Some(
                "RFC 3339 with its offset (`2026-12-01T09:00:00-05:00`) or Unix milliseconds",
            ))
            .build(),
    )
}

/// One Server-Sent Event of `GET …/events`, as a client's parser reads it.
#[derive(ToSchema)]
pub struct StreamEvent {
    /// `status` (first, the current status), then an event kind (`state`,
    /// `qr`, `message.status`, `message.received`, …), or `lagged` when the
    /// client fell behind and missed some.
    pub event: String,
    /// The event's payload, JSON text.
    pub data: String,
    /// The event's sequence number (absent on `status` and `lagged`); send
    /// it back as `Last-Event-ID` to resume.
    pub id: Option<String>,
}

/// The body of every error answer.
#[derive(ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(ToSchema)]
pub struct ErrorDetail {
    #[schema(value_type = ErrorCodeName)]
    pub code: String,
    /// A sentence a person understands.
    pub message: String,
}

/// `POST /v1/orgs`.
#[derive(ToSchema)]
pub struct NewOrgBody {
    /// 1–64 letters, digits, `-` or `_`, starting with a letter or digit; an
    /// integer is read as its digits.
    #[schema(schema_with = org_id)]
    pub id: String,
    /// 1–200 characters, not only blanks; the id when left out.
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub name: Option<String>,
    /// 1–3 digits (`"57"`), used for numbers written without `+`.
    #[schema(schema_with = country_code, nullable)]
    pub default_country_code: Option<String>,
}

/// `POST …/session/connect`: empty for a QR, a number for a pairing code.
#[derive(ToSchema)]
pub struct ConnectBody {
    /// The number to link with an 8-character pairing code instead of a QR.
    pub phone_number: Option<String>,
}

/// `POST …/messages`.
#[derive(ToSchema)]
pub struct SendBody {
    /// The patient's number (`"+57 300 111 2233"`; without `+`, the org's
    /// default country code applies).
    #[schema(min_length = 1)]
    pub to: String,
    /// 1–60,000 characters, not only blanks.
    #[schema(min_length = 1, max_length = 60000, pattern = "\\S")]
    pub text: String,
    /// When to send (a future moment makes the message `scheduled`).
    #[schema(schema_with = moment, nullable)]
    pub send_at: Option<String>,
    /// After this it is never sent (it becomes `expired`).
    #[schema(schema_with = moment, nullable)]
    pub send_before: Option<String>,
    /// 1–200 characters; the `Idempotency-Key` header wins when both are given.
    #[schema(min_length = 1, max_length = 200)]
    pub idempotency_key: Option<String>,
}

/// `PATCH …/messages/{id}`: what is left out is kept.
#[derive(ToSchema)]
pub struct RescheduleBody {
    #[schema(schema_with = moment, nullable)]
    pub send_at: Option<String>,
    #[schema(schema_with = moment, nullable)]
    pub send_before: Option<String>,
}

/// Quiet hours in the policy's time zone (`"HH:MM"`, 24-hour).
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuietHoursBody {
    pub start: String,
    pub end: String,
}

/// `PUT …/sending-policy`: only the fields that change (any other field is
/// refused).
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyChange {
    /// 0–3,600,000.
    pub min_gap_ms: Option<i64>,
    /// 0–3,600,000, not less than `min_gap_ms`.
    pub max_gap_ms: Option<i64>,
    /// 1–1,000,000; null: no cap.
    pub hourly_cap: Option<i64>,
    /// 1–1,000,000; null: no cap.
    pub daily_cap: Option<i64>,
    /// 1–1,000,000; null: no cap.
    pub new_contacts_per_day: Option<i64>,
    /// null: none.
    pub quiet_hours: Option<QuietHoursBody>,
    /// An IANA zone name (`America/Bogota`).
    pub timezone: Option<String>,
    pub typing: Option<bool>,
    /// 0–1,000.
    pub typing_ms_per_char: Option<i64>,
    /// 0–60,000.
    pub typing_max_ms: Option<i64>,
}

/// `POST …/webhooks`.
#[derive(ToSchema)]
pub struct NewWebhookBody {
    /// `http(s)://host/…`; hosts that resolve to private addresses need `--webhook-allow`.
    #[schema(pattern = "^https?://")]
    pub url: String,
    /// The kinds to receive; null or left out: every kind.
    #[schema(value_type = Option<Vec<EventKind>>)]
    pub events: Option<Vec<String>>,
    /// 16–200 characters; one is made when left out (and shown once).
    #[schema(min_length = 16, max_length = 200)]
    pub secret: Option<String>,
}

/// `POST …/webhooks/{id}/replay`.
#[derive(ToSchema)]
pub struct ReplayBody {
    /// Every delivery made since this moment is queued again.
    #[schema(schema_with = moment)]
    pub since: String,
}

/// `POST …/credentials/restore`.
#[derive(ToSchema)]
pub struct RestoreBody {
    /// A copy's `name` from `GET …/credentials`.
    #[schema(min_length = 1)]
    pub name: String,
}

/// `POST /api/send-message` (the old Node server's shape).
#[derive(ToSchema)]
pub struct CompatSendBody {
    #[schema(schema_with = org_id)]
    pub org_id: String,
    #[schema(min_length = 1)]
    pub phone: String,
    #[schema(min_length = 1, max_length = 60000, pattern = "\\S")]
    pub message: String,
    #[schema(min_length = 1, max_length = 200)]
    pub idempotency_key: Option<String>,
}

//! The service layer's error: a public code from the one list of codes
//! (`ErrorCode`) and a sentence a person understands. The codes are the
//! contract (the table in docs/api.md is checked against `ErrorCode::ALL`); each
//! surface maps a code's `Kind` to its own answer (an HTTP status in `api/`,
//! a page or a note in `web/`).

use std::fmt;

/// What sort of failure a code is; surfaces map kinds, not codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The request itself could not be read (400).
    BadRequest,
    /// No valid token (401).
    Unauthorized,
    /// The token may not do that (403).
    Forbidden,
    /// No such thing (404).
    NotFound,
    /// Not with this method (405).
    MethodNotAllowed,
    /// Not in the current state (409).
    Conflict,
    /// The body is too large (413).
    TooLarge,
    /// A field is wrong (422).
    Invalid,
    /// Asked too often; try again after a while (429).
    TooMany,
    /// WhatsApp did not answer in time (504).
    Timeout,
    /// Temporarily unable (503).
    Unavailable,
    /// Our fault (500).
    Internal,
}

macro_rules! codes {
    ($( $(#[$doc:meta])* $name:ident = $text:literal, $kind:ident, $about:literal; )*) => {
        /// Every public error code, once.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode { $( $(#[$doc])* $name, )* }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[ $( ErrorCode::$name, )* ];

            /// The code as it appears in `{"error":{"code":…}}`.
            pub fn as_str(self) -> &'static str {
                match self { $( ErrorCode::$name => $text, )* }
            }

            pub fn kind(self) -> Kind {
                match self { $( ErrorCode::$name => Kind::$kind, )* }
            }

            /// When it is answered (for the table in docs/api.md).
            pub fn about(self) -> &'static str {
                match self { $( ErrorCode::$name => $about, )* }
            }
        }
    };
}

codes! {
    MalformedJson = "malformed_json", BadRequest, "the body is not valid JSON";
    BadBody = "bad_body", BadRequest, "the body could not be read (broken or stalled upload)";
    InvalidPath = "invalid_path", BadRequest, "the address has bytes that are not valid UTF-8";
    InvalidQuery = "invalid_query", BadRequest, "the query string cannot be decoded";
    Unauthorized = "unauthorized", Unauthorized, "no `Authorization: Bearer` token, or an unknown one";
    Forbidden = "forbidden", Forbidden, "the token may not act on that organization, or the action needs the admin token";
    NotFound = "not_found", NotFound, "no such endpoint";
    OrgNotFound = "org_not_found", NotFound, "no organization with that id (admin token)";
    MessageNotFound = "message_not_found", NotFound, "no message with that id in this organization";
    WebhookNotFound = "webhook_not_found", NotFound, "no webhook with that id in this organization";
    DeliveryNotFound = "delivery_not_found", NotFound, "no delivery with that id for this webhook";
    CopyNotFound = "copy_not_found", NotFound, "no copy of this organization's credentials by that name in the aside folder";
    RestoreFailed = "restore_failed", Invalid, "the copy could not be restored (the current credentials were put back)";
    MethodNotAllowed = "method_not_allowed", MethodNotAllowed, "the endpoint exists but not with that method";
    OrgExists = "org_exists", Conflict, "an organization with that id exists";
    NoQr = "no_qr", Conflict, "no QR code is on offer now (start pairing with `session/connect`)";
    AlreadyLinked = "already_linked", Conflict, "a pairing code was asked for an org that is linked and connected";
    NoPairCode = "no_pair_code", Conflict, "WhatsApp gave no pairing code (the link went elsewhere; see `detail`)";
    NotCancelable = "not_cancelable", Conflict, "the message was already handed to WhatsApp (or has ended); only `scheduled`, unsent `queued` and held messages can be canceled";
    WebhookDisabled = "webhook_disabled", Conflict, "the webhook was disabled (its receiver answered 410 Gone); add it again";
    TooManyWebhooks = "too_many_webhooks", Conflict, "an organization has at most 10 webhooks";
    NotReschedulable = "not_reschedulable", Conflict, "only a `scheduled` message can be given a new `send_at`";
    PayloadTooLarge = "payload_too_large", TooLarge, "the body (or its declared `Content-Length`) is over 64 KiB";
    InvalidBody = "invalid_body", Invalid, "the body is JSON but not an object (an empty body or `null` reads as `{}`), or names a field twice";
    InvalidField = "invalid_field", Invalid, "a field has the wrong JSON type, or a text holds a control character (tab, newline and carriage return are allowed)";
    MissingId = "missing_id", Invalid, "`id` is missing";
    InvalidOrgId = "invalid_org_id", Invalid, "an org id is 1–64 letters, digits, `-` or `_`, starting with a letter or digit";
    InvalidName = "invalid_name", Invalid, "a name is 1–200 characters";
    InvalidCountryCode = "invalid_country_code", Invalid, "`default_country_code` is 1–3 digits";
    MissingOrgId = "missing_org_id", Invalid, "`org_id` is missing (compatibility endpoints)";
    InvalidPhone = "invalid_phone", Invalid, "the number is missing, not a string, or not a phone number";
    EmptyText = "empty_text", Invalid, "the text is missing or blank";
    TextTooLong = "text_too_long", Invalid, "the text is over 60,000 characters";
    InvalidIdempotencyKey = "invalid_idempotency_key", Invalid, "an idempotency key is 1–200 characters, no control characters";
    IdempotencyKeyReused = "idempotency_key_reused", Invalid, "the idempotency key was used for a different message";
    InvalidStatus = "invalid_status", Invalid, "`status` is not a message status";
    InvalidSendAt = "invalid_send_at", Invalid, "`send_at` is not RFC 3339 with an offset nor Unix milliseconds, or lies more than a year ahead (a PATCH with nothing to change also says so)";
    InvalidWebhookUrl = "invalid_webhook_url", Invalid, "the webhook URL is not http(s)://host/…, or its host resolves only to loopback, private, link-local or other non-public addresses (allow them with `--webhook-allow`)";
    InvalidPolicy = "invalid_policy", Invalid, "a sending-policy field is out of range or unknown (the message names it)";
    InvalidSendBefore = "invalid_send_before", Invalid, "`send_before` does not parse, has passed, or is not later than `send_at`";
    InvalidLimit = "invalid_limit", Invalid, "`limit` is not a whole number from 1 to 1000";
    InvalidCursor = "invalid_cursor", Invalid, "`cursor` is not a value returned as `next_cursor`";
    InvalidFormat = "invalid_format", Invalid, "the QR `format` is not json, svg or png";
    RateLimited = "rate_limited", TooMany, "too many contact look-ups for this organization; `Retry-After` says when to ask again (bulk look-ups get numbers banned)";
    NotConnected = "not_connected", Unavailable, "the org's number is not connected now, and the answer needs WhatsApp";
    PairCodeTimeout = "pair_code_timeout", Timeout, "WhatsApp handed out no pairing code within 30 s";
    SessionStopped = "session_stopped", Unavailable, "the org's supervisor is not running (being deleted, or the gateway is stopping)";
    OwnerUnreachable = "owner_unreachable", Unavailable, "several nodes: the node that owns the org's link does not answer; another takes the org over once its lease lapses (within 15 s by default), so ask again then";
    DatabaseUnavailable = "database_unavailable", Unavailable, "the database cannot be reached now (PostgreSQL down, restarting or cut off): ask again after `Retry-After` seconds, a send with the same `Idempotency-Key` so it cannot go twice";
    NotReady = "not_ready", Unavailable, "the database cannot be read (`/readyz`)";
    TooManyConnections = "too_many_connections", Unavailable, "every one of the gateway's connections (`--max-connections`) has a request in flight";
    Internal = "internal", Internal, "a fault in the gateway; the log says more";
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal or failure of the service layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppError {
    pub code: ErrorCode,
    pub message: String,
    /// When asking again makes sense (`rate_limited`), in seconds.
    pub retry_after_s: Option<u64>,
}

impl AppError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> AppError {
        AppError {
            code,
            message: message.into(),
            retry_after_s: None,
        }
    }

    /// The same refusal, worth asking again after `secs`.
    pub fn retry_after(mut self, secs: u64) -> AppError {
        self.retry_after_s = Some(secs);
        self
    }

    /// An internal fault: logged with its cause, answered without it.
    pub fn internal(context: &str, e: impl fmt::Display) -> AppError {
        tracing::error!(error = %e, "{context}");
        AppError::new(
            ErrorCode::Internal,
            format!("{context}; see the server log"),
        )
    }

    pub fn kind(&self) -> Kind {
        self.code.kind()
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for AppError {}

/// How long a client is asked to wait before trying again while the
/// database cannot be reached (a PostgreSQL restart takes seconds).
const DATABASE_RETRY_S: u64 = 5;

impl From<crate::store::StoreError> for AppError {
    fn from(e: crate::store::StoreError) -> AppError {
        if e.is_unavailable() {
            tracing::warn!(error = %e, "a request met the database unreachable");
            return AppError {
                code: ErrorCode::DatabaseUnavailable,
                message: "the database cannot be reached now; ask again in a few seconds (a send with the same Idempotency-Key, so it cannot go out twice)".into(),
                retry_after_s: Some(DATABASE_RETRY_S),
            };
        }
        AppError::internal("database error", e)
    }
}

impl From<crate::session::Stopped> for AppError {
    fn from(_: crate::session::Stopped) -> AppError {
        AppError::new(
            ErrorCode::SessionStopped,
            "the session supervisor is not running (the organization is being deleted or the gateway is stopping)",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_described() {
        let mut seen = std::collections::HashSet::new();
        for c in ErrorCode::ALL {
            assert!(seen.insert(c.as_str()), "{c} twice");
            assert!(
                c.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{c}"
            );
            assert!(!c.about().is_empty());
        }
    }

    /// The error table of docs/api.md lists exactly the codes of `ErrorCode`.
    #[test]
    fn the_api_docs_document_every_code_and_no_other() {
        let readme = include_str!("../../../../docs/api.md");
        let start = readme
            .find("<!-- error-codes -->")
            .expect("docs/api.md has an error-code table");
        let end = readme[start..]
            .find("<!-- /error-codes -->")
            .expect("the table ends")
            + start;
        let mut listed: Vec<&str> = readme[start..end]
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split('`').next())
            .collect();
        listed.sort();
        let mut codes: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        codes.sort();
        assert_eq!(listed, codes);
    }
}

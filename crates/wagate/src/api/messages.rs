//! `/v1/orgs/{org}/messages`: accept a send (202 after the durable write),
//! read one message, list them in acceptance order with a cursor.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::error::{ApiError, Body};
use super::{org_for, AppState};
use crate::auth::Caller;
use crate::store::{self, MessageRow, MessageStatus, OrgRow};

/// Longest text accepted (WhatsApp's own limit is about 65,536 characters).
pub const MAX_TEXT_CHARS: usize = 60_000;
pub const MAX_IDEMPOTENCY_KEY: usize = 200;
pub const MAX_PAGE: i64 = 1000;

/// Validate and accept one send; shared by `/v1` and the compat endpoint.
pub async fn accept(
    st: &AppState,
    org: &OrgRow,
    to: Option<String>,
    text: Option<String>,
    idem: Option<String>,
) -> Result<(MessageRow, bool), ApiError> {
    let to = to.ok_or_else(|| {
        ApiError::unprocessable("invalid_phone", "the recipient phone number is required")
    })?;
    let phone = crate::phone::normalize(&to, org.default_country_code.as_deref())
        .map_err(|e| ApiError::unprocessable("invalid_phone", e.to_string()))?;
    let text = text.unwrap_or_default();
    if text.trim().is_empty() {
        return Err(ApiError::unprocessable(
            "empty_text",
            "the message text is required and must not be blank",
        ));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(ApiError::unprocessable(
            "text_too_long",
            format!("the message text is longer than {MAX_TEXT_CHARS} characters"),
        ));
    }
    if let Some(k) = &idem {
        if k.is_empty() || k.len() > MAX_IDEMPOTENCY_KEY {
            return Err(ApiError::unprocessable(
                "invalid_idempotency_key",
                format!("Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} characters"),
            ));
        }
    }
    let (row, created) = st.outbox.accept(&org.id, phone, text, idem).await?;
    if created {
        tracing::info!(org = %org.id, id = %row.id, "message accepted");
    }
    Ok((row, created))
}

pub fn idem_from(headers: &HeaderMap, body: &Body) -> Result<Option<String>, ApiError> {
    match headers.get("idempotency-key") {
        Some(v) => v.to_str().map(|s| Some(s.to_string())).map_err(|_| {
            ApiError::unprocessable(
                "invalid_idempotency_key",
                "Idempotency-Key must be printable ASCII",
            )
        }),
        None => body.opt_str("idempotency_key"),
    }
}

pub async fn send(
    State(st): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (row, _) = org_for(&st, &caller, &org).await?;
    let idem = idem_from(&headers, &body)?;
    let to = body.opt_id("to")?;
    let text = body.opt_str("text")?;
    let (msg, created) = accept(&st, &row, to, text, idem).await?;
    let mut resp = (StatusCode::ACCEPTED, Json(msg)).into_response();
    if !created {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(resp)
}

pub async fn get_one(
    State(st): State<AppState>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
) -> Result<Json<MessageRow>, ApiError> {
    org_for(&st, &caller, &org).await?;
    let (o, i) = (org.clone(), id.clone());
    st.store
        .read(move |c| store::messages::get(c, &o, &i))
        .await?
        .map(Json)
        .ok_or_else(|| {
            ApiError::not_found(
                "message_not_found",
                format!("no message '{id}' in this organization"),
            )
        })
}

pub async fn list(
    State(st): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    org_for(&st, &caller, &org).await?;
    let status = match q.get("status") {
        None => None,
        Some(s) => Some(MessageStatus::parse(s).ok_or_else(|| {
            ApiError::unprocessable(
                "invalid_status",
                "status must be one of queued, sent, delivered, read, failed",
            )
        })?),
    };
    let (after, limit) = page(&q)?;
    let o = org.clone();
    let rows = st
        .store
        .read(move |c| store::messages::list(c, &o, status, after, limit))
        .await?;
    let next = next_cursor(rows.len(), limit, rows.last().map(|r| r.seq));
    Ok(Json(json!({"messages": rows, "next_cursor": next})))
}

/// `limit` (1-1000, default 100) and `cursor` from a listing's query.
pub fn page(q: &HashMap<String, String>) -> Result<(i64, i64), ApiError> {
    let limit = match q.get("limit") {
        None => 100,
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                ApiError::unprocessable(
                    "invalid_limit",
                    format!("limit must be a whole number from 1 to {MAX_PAGE}"),
                )
            })?,
    };
    let after = match q.get("cursor") {
        None => 0,
        Some(c) => c.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            ApiError::unprocessable(
                "invalid_cursor",
                "cursor must be a value returned as next_cursor",
            )
        })?,
    };
    Ok((after, limit))
}

/// The cursor for the next page: the last row's sequence when the page is full.
pub fn next_cursor(len: usize, limit: i64, last_seq: Option<i64>) -> Option<String> {
    if len as i64 == limit {
        last_seq.map(|s| s.to_string())
    } else {
        None
    }
}

/// `GET /v1/orgs/{org}/inbound`: messages received from patients, oldest first.
pub async fn inbound(
    State(st): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    org_for(&st, &caller, &org).await?;
    let (after, limit) = page(&q)?;
    let o = org.clone();
    let rows = st
        .store
        .read(move |c| store::inbound::list(c, &o, after, limit))
        .await?;
    let next = next_cursor(rows.len(), limit, rows.last().map(|r| r.seq));
    Ok(Json(json!({"messages": rows, "next_cursor": next})))
}

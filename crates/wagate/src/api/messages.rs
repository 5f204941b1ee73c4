//! `/v1/orgs/{org}/messages` and `/inbound`: accept a send, now or at
//! `send_at` (202 after the durable write), read, cancel (`DELETE`) or move
//! (`PATCH`) one message, list them with a cursor, list received messages.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::error::{ApiError, Body, PathParams, QueryMap};
use super::schema::{MessageStatusName, RescheduleBody, SendBody};
use super::wire::{InboundJson, InboundPage, MessageJson, MessagePage};
use crate::app::messages::{Page, SendRequest};
use crate::app::{App, ErrorCode};
use crate::auth::Caller;

/// The idempotency key: the `Idempotency-Key` header (any UTF-8), else the
/// body's `idempotency_key`.
pub fn idem_from(headers: &HeaderMap, body: &Body) -> Result<Option<String>, ApiError> {
    match headers.get("idempotency-key") {
        Some(v) => std::str::from_utf8(v.as_bytes())
            .map(|s| Some(s.to_string()))
            .map_err(|_| {
                ApiError::new(
                    ErrorCode::InvalidIdempotencyKey,
                    "Idempotency-Key must be UTF-8 text",
                )
            }),
        None => body.opt_str("idempotency_key"),
    }
}

/// Send a message, now or at `send_at`.
///
/// 202 once it is written to disk: it will leave, paced by the org's sending
/// policy, once and only once. A retry with the same `Idempotency-Key`
/// answers the first message again (header `Idempotent-Replayed: true`).
#[utoipa::path(post, path = "/v1/orgs/{org}/messages", tag = "messages",
    params(("Idempotency-Key" = Option<String>, Header, description = "1–200 characters; makes a retry return the first message")),
    request_body = SendBody,
    responses((status = 202, description = "accepted (`queued`, or `scheduled` with a future `send_at`)", body = MessageJson,
        headers(("Idempotent-Replayed" = String, description = "`true` when this answers an earlier request with the same key")))))]
pub async fn send(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams(org): PathParams<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let req = SendRequest {
        to: body.opt_phone("to")?,
        text: body.opt_str("text")?,
        idempotency_key: idem_from(&headers, &body)?,
        send_at: body.opt_when("send_at"),
        send_before: body.opt_when("send_before"),
    };
    let accepted = app.send(&caller, &org, req).await?;
    let mut resp = (
        StatusCode::ACCEPTED,
        Json(MessageJson::from(&accepted.message)),
    )
        .into_response();
    if accepted.replayed {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(resp)
}

/// Rows as JSON, each queued or scheduled one with its `eta_ms`.
async fn with_etas(
    app: &App,
    caller: &Caller,
    org: &str,
    rows: &[crate::store::MessageRow],
) -> Result<Vec<MessageJson>, ApiError> {
    let etas = app.etas(caller, org, rows).await?;
    Ok(rows
        .iter()
        .map(|r| MessageJson {
            eta_ms: etas.get(&r.id).copied(),
            ..MessageJson::from(r)
        })
        .collect())
}

/// One message, with its status.
#[utoipa::path(get, path = "/v1/orgs/{org}/messages/{id}", tag = "messages",
    responses((status = 200, description = "the message", body = MessageJson)))]
pub async fn get_one(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams((org, id)): PathParams<(String, String)>,
) -> Result<Json<MessageJson>, ApiError> {
    let row = app.message(&caller, &org, &id).await?;
    let mut one = with_etas(&app, &caller, &org, std::slice::from_ref(&row)).await?;
    Ok(Json(one.remove(0)))
}

/// Cancel a message not yet handed to WhatsApp.
///
/// A `scheduled` message, or a `queued` one not yet handed over or held by
/// a limit; it becomes `canceled`.
#[utoipa::path(delete, path = "/v1/orgs/{org}/messages/{id}", tag = "messages",
    responses((status = 200, description = "canceled", body = MessageJson),
              (status = 409, description = "`not_cancelable`")))]
pub async fn cancel(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams((org, id)): PathParams<(String, String)>,
) -> Result<Json<MessageJson>, ApiError> {
    Ok(Json(MessageJson::from(
        &app.cancel_message(&caller, &org, &id).await?,
    )))
}

/// Move a scheduled message (what is left out is kept).
#[utoipa::path(patch, path = "/v1/orgs/{org}/messages/{id}", tag = "messages",
    request_body = RescheduleBody,
    responses((status = 200, description = "moved", body = MessageJson),
              (status = 409, description = "`not_reschedulable`")))]
pub async fn reschedule(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams((org, id)): PathParams<(String, String)>,
    body: Body,
) -> Result<Json<MessageJson>, ApiError> {
    let row = app
        .reschedule_message(
            &caller,
            &org,
            &id,
            body.opt_when("send_at"),
            body.opt_when("send_before"),
        )
        .await?;
    Ok(Json(MessageJson::from(&row)))
}

fn page(q: &QueryMap) -> Result<Page, ApiError> {
    Ok(Page::parse(q.get("limit"), q.get("cursor"))?)
}

/// Messages in acceptance order, oldest first (`?status=scheduled`: by due time).
#[utoipa::path(get, path = "/v1/orgs/{org}/messages", tag = "messages",
    params(("status" = inline(Option<MessageStatusName>), Query, description = "only messages in this status"),
           ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "1–1000, default 100"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, description = "a page", body = MessagePage)))]
pub async fn list(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams(org): PathParams<String>,
    q: QueryMap,
) -> Result<Json<MessagePage>, ApiError> {
    let l = app
        .messages(&caller, &org, q.get("status"), page(&q)?)
        .await?;
    let messages = with_etas(&app, &caller, &org, &l.rows).await?;
    Ok(Json(MessagePage {
        messages,
        next_cursor: l.next_cursor,
    }))
}

/// Messages patients sent to the org, oldest first, each stored once.
#[utoipa::path(get, path = "/v1/orgs/{org}/inbound", tag = "messages",
    params(("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "1–1000, default 100"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, description = "a page", body = InboundPage)))]
pub async fn inbound(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams(org): PathParams<String>,
    q: QueryMap,
) -> Result<Json<InboundPage>, ApiError> {
    let l = app.inbound(&caller, &org, page(&q)?).await?;
    Ok(Json(InboundPage {
        messages: l.rows.iter().map(InboundJson::from).collect(),
        next_cursor: l.next_cursor,
    }))
}

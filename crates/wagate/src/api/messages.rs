//! `/v1/orgs/{org}/messages` and `/inbound`: accept a send, now or at
//! `send_at` (202 after the durable write), read, cancel (`DELETE`) or move
//! (`PATCH`) one message, list them with a cursor, list received messages.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::error::{ApiError, Body, PathParams, QueryMap};
use super::wire::{InboundJson, MessageJson};
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

pub async fn get_one(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams((org, id)): PathParams<(String, String)>,
) -> Result<Json<MessageJson>, ApiError> {
    let row = app.message(&caller, &org, &id).await?;
    let mut one = with_etas(&app, &caller, &org, std::slice::from_ref(&row)).await?;
    Ok(Json(one.remove(0)))
}

/// `DELETE …/messages/{id}`: cancel a message not yet handed to WhatsApp.
pub async fn cancel(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams((org, id)): PathParams<(String, String)>,
) -> Result<Json<MessageJson>, ApiError> {
    Ok(Json(MessageJson::from(
        &app.cancel_message(&caller, &org, &id).await?,
    )))
}

/// `PATCH …/messages/{id}` `{"send_at", "send_before"}`: move a scheduled message.
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

pub async fn list(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams(org): PathParams<String>,
    q: QueryMap,
) -> Result<Json<Value>, ApiError> {
    let l = app
        .messages(&caller, &org, q.get("status"), page(&q)?)
        .await?;
    let rows = with_etas(&app, &caller, &org, &l.rows).await?;
    Ok(Json(
        json!({"messages": rows, "next_cursor": l.next_cursor}),
    ))
}

/// `GET /v1/orgs/{org}/inbound`: messages received from patients, oldest first.
pub async fn inbound(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams(org): PathParams<String>,
    q: QueryMap,
) -> Result<Json<Value>, ApiError> {
    let l = app.inbound(&caller, &org, page(&q)?).await?;
    let rows: Vec<InboundJson> = l.rows.iter().map(InboundJson::from).collect();
    Ok(Json(
        json!({"messages": rows, "next_cursor": l.next_cursor}),
    ))
}

//! The old Node server's endpoints, for the existing Python caller:
//! `GET /api/status?org_id=…` and `POST /api/send-message`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};

use super::error::{ApiError, Body, QueryMap};
use super::messages::idem_from;
use super::wire::StatusJson;
use crate::app::messages::SendRequest;
use crate::app::{App, ErrorCode};
use crate::auth::Caller;

pub async fn status(
    State(app): State<Arc<App>>,
    caller: Caller,
    q: QueryMap,
) -> Result<Json<Value>, ApiError> {
    let org = q.get("org_id").filter(|s| !s.is_empty()).ok_or_else(|| {
        ApiError::new(
            ErrorCode::MissingOrgId,
            "query parameter org_id is required",
        )
    })?;
    let v = StatusJson::from(&app.status(&caller, org).await?);
    Ok(Json(json!({
        "status": v.state,
        "connected": v.connected,
        "phone_number": v.phone_number,
        "phone": v.phone_number,
        "detail": v.detail,
        "since": v.since,
        "last_seen": v.last_seen,
        "reconnect_attempt": v.reconnect_attempt,
        "next_retry_in_ms": v.next_retry_in_ms,
        "queued_messages": v.queued_messages,
    })))
}

pub async fn send_message(
    State(app): State<Arc<App>>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let org = body
        .opt_id("org_id")?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::new(ErrorCode::MissingOrgId, "field org_id is required"))?;
    let req = SendRequest {
        to: body.opt_phone("phone")?,
        text: body.opt_str("message")?,
        idempotency_key: idem_from(&headers, &body)?,
        ..Default::default()
    };
    let accepted = app.send(&caller, &org, req).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(
            json!({"success": true, "message_id": accepted.message.id, "status": accepted.message.status.as_str()}),
        ),
    ))
}

//! The old Node server's endpoints, for the existing Python caller:
//! `GET /api/status?org_id=…` and `POST /api/send-message`.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};

use super::error::{ApiError, Body};
use super::{messages, org_for, session, AppState};
use crate::auth::Caller;

pub async fn status(
    State(st): State<AppState>,
    caller: Caller,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let org = q.get("org_id").filter(|s| !s.is_empty()).ok_or_else(|| {
        ApiError::unprocessable("missing_org_id", "query parameter org_id is required")
    })?;
    let (_, h) = org_for(&st, &caller, org).await?;
    let v = session::view_with_queue(&st, org, &h).await;
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
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let org = body
        .opt_id("org_id")?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::unprocessable("missing_org_id", "field org_id is required"))?;
    let (row, _) = org_for(&st, &caller, &org).await?;
    let idem = messages::idem_from(&headers, &body)?;
    let (msg, _) = messages::accept(
        &st,
        &row,
        body.opt_id("phone")?,
        body.opt_str("message")?,
        idem,
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"success": true, "message_id": msg.id, "status": msg.status})),
    ))
}

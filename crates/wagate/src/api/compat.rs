//! The old Node server's endpoints, for the existing Python caller:
//! `GET /api/status?org_id=…` and `POST /api/send-message`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;

use super::error::{ApiError, Body, QueryMap};
use super::messages::idem_from;
use super::schema::CompatSendBody;
use super::wire::{CompatSent, CompatStatus, StatusJson};
use crate::app::messages::SendRequest;
use crate::app::{App, ErrorCode};
use crate::auth::Caller;

/// The old Node server's status call.
#[utoipa::path(get, path = "/api/status", tag = "compatibility",
    params(("org_id" = String, Query, pattern = "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$", description = "the org's id")),
    responses((status = 200, description = "the status", body = CompatStatus)))]
pub async fn status(
    State(app): State<Arc<App>>,
    caller: Caller,
    q: QueryMap,
) -> Result<Json<CompatStatus>, ApiError> {
    let org = q.get("org_id").filter(|s| !s.is_empty()).ok_or_else(|| {
        ApiError::new(
            ErrorCode::MissingOrgId,
            "query parameter org_id is required",
        )
    })?;
    let v = StatusJson::from(&app.status(&caller, org).await?);
    Ok(Json(CompatStatus::from(v)))
}

/// The old Node server's send call.
#[utoipa::path(post, path = "/api/send-message", tag = "compatibility",
    params(("Idempotency-Key" = Option<String>, Header, description = "1–200 characters")),
    request_body = CompatSendBody,
    responses((status = 202, description = "accepted", body = CompatSent)))]
pub async fn send_message(
    State(app): State<Arc<App>>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<CompatSent>), ApiError> {
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
        Json(CompatSent {
            success: true,
            message_id: accepted.message.id,
            status: accepted.message.status.as_str(),
        }),
    ))
}

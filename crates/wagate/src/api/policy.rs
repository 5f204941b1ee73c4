//! `GET/PUT /v1/orgs/{org}/sending-policy`: how the org's number paces its
//! sends (org or admin token). A PUT names only the fields it changes.
//! `GET /v1/orgs/{org}/contacts/{phone}`: whether a phone is on WhatsApp
//! (cached a week, rate-limited per org).

use std::sync::Arc;

use axum::extract::State;
use axum::Json;

use super::error::{ApiError, Body, PathParams};
use crate::app::App;
use crate::auth::Caller;
use crate::outbox::pacing::Policy;

pub async fn get(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams(org): PathParams<String>,
) -> Result<Json<Policy>, ApiError> {
    Ok(Json(app.sending_policy(&caller, &org).await?))
}

pub async fn put(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams(org): PathParams<String>,
    body: Body,
) -> Result<Json<Policy>, ApiError> {
    Ok(Json(app.set_sending_policy(&caller, &org, &body.0).await?))
}

/// `GET /v1/orgs/{org}/contacts/{phone}`.
pub async fn contact(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams((org, phone)): PathParams<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let c = app.check_contact(&caller, &org, &phone).await?;
    Ok(Json(serde_json::json!({
        "phone": c.phone,
        "on_whatsapp": c.on_whatsapp,
        "jid": c.jid,
        "checked_at": crate::session::status::rfc3339(c.checked_ms),
        "cached": c.cached,
    })))
}

//! `GET/PUT /v1/orgs/{org}/sending-policy`: how the org's number paces its
//! sends (org or admin token). A PUT names only the fields it changes.
//! `GET /v1/orgs/{org}/contacts/{phone}`: whether a phone is on WhatsApp
//! (cached a week, rate-limited per org).

use std::sync::Arc;

use axum::extract::State;
use axum::Json;

use super::error::{ApiError, Body, PathParams};
use super::schema::PolicyChange;
use super::wire::ContactJson;
use crate::app::App;
use crate::auth::Caller;
use crate::outbox::pacing::Policy;

/// How the org's number paces its sends.
#[utoipa::path(get, path = "/v1/orgs/{org}/sending-policy", tag = "sending policy",
    responses((status = 200, description = "the policy", body = Policy)))]
pub async fn get(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams(org): PathParams<String>,
) -> Result<Json<Policy>, ApiError> {
    Ok(Json(app.sending_policy(&caller, &org).await?))
}

/// Change some fields of the policy; the rest keep their values.
#[utoipa::path(put, path = "/v1/orgs/{org}/sending-policy", tag = "sending policy",
    request_body(content = Option<PolicyChange>, description = "the fields to change; none: no change"),
    responses((status = 200, description = "the policy now", body = Policy)))]
pub async fn put(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams(org): PathParams<String>,
    body: Body,
) -> Result<Json<Policy>, ApiError> {
    Ok(Json(app.set_sending_policy(&caller, &org, &body.0).await?))
}

/// Whether a number is on WhatsApp.
///
/// From the org's cache when it asked in the last 7 days; otherwise the
/// org's connected number asks WhatsApp, at most 5 at once and then one
/// every 6 s per org.
#[utoipa::path(get, path = "/v1/orgs/{org}/contacts/{phone}", tag = "sending policy",
    responses((status = 200, description = "the answer", body = ContactJson),
              (status = 429, description = "`rate_limited`: ask again after `Retry-After` seconds",
                  headers(("Retry-After" = u64, description = "seconds")))))]
pub async fn contact(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams((org, phone)): PathParams<(String, String)>,
) -> Result<Json<ContactJson>, ApiError> {
    let c = app.check_contact(&caller, &org, &phone).await?;
    Ok(Json(ContactJson {
        phone: c.phone,
        on_whatsapp: c.on_whatsapp,
        jid: c.jid,
        checked_at: crate::times::rfc3339(c.checked_ms),
        cached: c.cached,
    }))
}

//! The HTTP API: routes, the shared application state and bearer-token
//! authorization. Handlers live in one file per resource; this file decides
//! who may reach which organization (admin: all; an org token: its own).

pub mod compat;
pub mod error;
pub mod events;
pub mod messages;
pub mod orgs;
pub mod session;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

pub use error::ApiError;

use crate::auth::{Caller, TokenBook};
use crate::hub::Hub;
use crate::outbox::Outbox;
use crate::session::{Handle, Sessions};
use crate::store::{OrgRow, Store};

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 64 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub hub: Hub,
    pub sessions: Arc<Sessions>,
    pub outbox: Arc<Outbox>,
    pub tokens: Arc<TokenBook>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health))
        .route("/readyz", get(ready))
        .route("/v1/orgs", post(orgs::create).get(orgs::list))
        .route(
            "/v1/orgs/{org}",
            axum::routing::delete(orgs::delete).get(orgs::get_one),
        )
        .route("/v1/orgs/{org}/session", get(session::status))
        .route("/v1/orgs/{org}/session/connect", post(session::connect))
        .route("/v1/orgs/{org}/session/qr", get(session::qr))
        .route("/v1/orgs/{org}/session/logout", post(session::logout))
        .route("/v1/orgs/{org}/session/reset", post(session::reset))
        .route("/v1/orgs/{org}/session/history", get(session::history))
        .route(
            "/v1/orgs/{org}/messages",
            post(messages::send).get(messages::list),
        )
        .route("/v1/orgs/{org}/messages/{id}", get(messages::get_one))
        .route("/v1/orgs/{org}/inbound", get(messages::inbound))
        .route("/v1/orgs/{org}/events", get(events::stream))
        .route("/api/status", get(compat::status))
        .route("/api/send-message", post(compat::send_message))
        .merge(crate::web::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn ready(
    axum::extract::State(st): axum::extract::State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let n = st
        .store
        .read(|c| c.query_row("SELECT COUNT(*) FROM orgs", [], |r| r.get::<_, i64>(0)))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                format!("database unavailable: {e}"),
            )
        })?;
    Ok(Json(json!({"status": "ready", "orgs": n})))
}

async fn not_found() -> ApiError {
    ApiError::not_found("not_found", "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not accept that method",
    )
}

impl<S: Send + Sync> FromRequestParts<S> for Caller
where
    AppState: axum::extract::FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let app = <AppState as axum::extract::FromRef<S>>::from_ref(state);
        let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
        let raw = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("missing Authorization: Bearer <token> header"))?;
        let raw = raw
            .to_str()
            .map_err(|_| unauthorized("malformed Authorization header"))?;
        let token = raw
            .strip_prefix("Bearer ")
            .or_else(|| raw.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauthorized("Authorization header must be 'Bearer <token>'"))?;
        app.tokens
            .identify(token)
            .ok_or_else(|| unauthorized("invalid token"))
    }
}

pub fn forbidden() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        "this token may not act on that organization",
    )
}

pub fn admin_only(c: &Caller) -> Result<(), ApiError> {
    match c {
        Caller::Admin => Ok(()),
        Caller::Org(_) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this action needs the admin token",
        )),
    }
}

/// Authorize `caller` for `org`, then find it: 403 before 404, so an org
/// token learns nothing about other organizations.
pub async fn org_for(
    st: &AppState,
    caller: &Caller,
    org: &str,
) -> Result<(OrgRow, Handle), ApiError> {
    if !caller.may_access(org) {
        return Err(forbidden());
    }
    let id = org.to_string();
    let row = st
        .store
        .read(move |c| crate::store::orgs::get(c, &id))
        .await?
        .ok_or_else(|| ApiError::not_found("org_not_found", format!("no organization '{org}'")))?;
    let handle = st
        .sessions
        .get(org)
        .ok_or_else(|| ApiError::not_found("org_not_found", format!("no organization '{org}'")))?;
    Ok((row, handle))
}

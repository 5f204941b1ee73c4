//! The HTTP API: JSON renderings of the service layer (`app`). Routes, the
//! bearer-token extractor and the body limit live here; handlers, one file
//! per resource, parse the request, call `app` and shape the answer
//! (`wire.rs`). What a caller may touch is decided in `app`, not here.

pub mod compat;
pub mod error;
pub mod events;
pub mod messages;
pub mod orgs;
pub mod policy;
pub mod session;
pub mod webhooks;
pub mod wire;
pub mod words;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequestParts, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

pub use error::{ApiError, BODY_LIMIT};

use crate::app::{App, ErrorCode};
use crate::auth::Caller;

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(health))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
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
        .route(
            "/v1/orgs/{org}/messages/{id}",
            get(messages::get_one)
                .delete(messages::cancel)
                .patch(messages::reschedule),
        )
        .route("/v1/orgs/{org}/inbound", get(messages::inbound))
        .route(
            "/v1/orgs/{org}/sending-policy",
            get(policy::get).put(policy::put),
        )
        .route("/v1/orgs/{org}/contacts/{phone}", get(policy::contact))
        .route(
            "/v1/orgs/{org}/webhooks",
            post(webhooks::create).get(webhooks::list),
        )
        .route(
            "/v1/orgs/{org}/webhooks/{id}",
            get(webhooks::get_one).delete(webhooks::delete),
        )
        .route(
            "/v1/orgs/{org}/webhooks/{id}/rotate-secret",
            post(webhooks::rotate),
        )
        .route(
            "/v1/orgs/{org}/webhooks/{id}/deliveries",
            get(webhooks::deliveries),
        )
        .route(
            "/v1/orgs/{org}/webhooks/{id}/deliveries/{delivery}/retry",
            post(webhooks::retry),
        )
        .route(
            "/v1/orgs/{org}/webhooks/{id}/replay",
            post(webhooks::replay),
        )
        .route("/v1/orgs/{org}/credentials", get(session::credentials))
        .route("/v1/orgs/{org}/debug/memory", get(session::memory))
        .route(
            "/v1/orgs/{org}/credentials/restore",
            post(session::restore_credentials),
        )
        .route("/v1/orgs/{org}/events", get(events::stream))
        .route("/api/status", get(compat::status))
        .route("/api/send-message", post(compat::send_message))
        .layer(axum::middleware::from_fn(declared_size))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(app)
}

/// A body declared larger than the limit is refused before it is read.
async fn declared_size(req: Request, next: Next) -> Response {
    if crate::listener::declared_length(req.headers()).is_some_and(|n| n > BODY_LIMIT as u64) {
        let mut r = error::too_large().into_response();
        // The unread body cannot be drained; the connection must close.
        r.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
        return r;
    }
    next.run(req).await
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Prometheus text format; the admin token (or the `--metrics-listen`
/// address, which needs none).
async fn metrics(State(app): State<Arc<App>>, caller: Caller) -> Result<Response, ApiError> {
    let text = app.metrics(Some(&caller)).await?;
    Ok(metrics_text(text))
}

pub fn metrics_text(text: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Counts every answer by route pattern (never the raw path, which holds org
/// ids), method and status, with its latency.
pub async fn record_http(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        // `/v1/orgs/:org/messages`: the pattern, in the form most tools
        // show (and that simple parsers of the text format accept).
        .map(|p| p.as_str().replace('{', ":").replace('}', ""))
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().as_str().to_string();
    let t0 = std::time::Instant::now();
    let res = next.run(req).await;
    crate::metrics::http(&route, &method, res.status().as_u16(), t0.elapsed());
    res
}

async fn ready(State(app): State<Arc<App>>) -> Result<Json<serde_json::Value>, ApiError> {
    let n = app.ready().await?;
    Ok(Json(json!({"status": "ready", "orgs": n})))
}

/// Any address no route serves.
pub async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such endpoint")
}

/// A route that exists, with a method it does not take.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "this endpoint does not accept that method",
    )
}

/// The bearer token of `Authorization: Bearer <token>` (the scheme in any case).
fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let unauthorized = |m: &str| ApiError::new(ErrorCode::Unauthorized, m);
    let raw = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("missing Authorization: Bearer <token> header"))?
        .to_str()
        .map_err(|_| unauthorized("malformed Authorization header"))?
        .trim();
    let (scheme, token) = raw.split_once(' ').unwrap_or((raw, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(unauthorized(
            "Authorization header must be 'Bearer <token>'",
        ));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(unauthorized(
            "Authorization header must be 'Bearer <token>'",
        ));
    }
    Ok(token)
}

impl FromRequestParts<Arc<App>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &Arc<App>,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?;
        Ok(app.identify(token)?)
    }
}

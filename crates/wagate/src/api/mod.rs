//! The HTTP API: JSON renderings of the service layer (`app`). Routes, the
//! bearer-token extractor and the body limit live here; handlers, one file
//! per resource, parse the request, call `app` and shape the answer
//! (`wire.rs`). What a caller may touch is decided in `app`, not here.

pub mod compat;
pub mod error;
pub mod events;
pub mod messages;
pub mod openapi;
pub mod orgs;
pub mod policy;
pub mod schema;
pub mod session;
pub mod webhooks;
pub mod wire;

use std::sync::{Arc, OnceLock};

use axum::extract::{DefaultBodyLimit, FromRequestParts, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::{ApiError, BODY_LIMIT};

use crate::app::{App, Bound, ErrorCode};
use crate::auth::Caller;

/// Every route of the API, each with its description: `routes!` takes the
/// method and path from the handler's `#[utoipa::path]`, so what is served
/// and what `/openapi.json` says are one list. In three groups: the routes
/// any node serves from the database, those that act on the org's link
/// (`Bound::Action`: carried out by its owner) and the status read
/// (`Bound::Status`).
fn groups() -> [(Option<Bound>, OpenApiRouter<Arc<App>>); 3] {
    [
        (None, free()),
        (
            Some(Bound::Action),
            OpenApiRouter::new()
                .routes(routes!(orgs::delete))
                .routes(routes!(session::connect))
                .routes(routes!(session::qr))
                .routes(routes!(session::logout))
                .routes(routes!(session::reset))
                .routes(routes!(session::history))
                .routes(routes!(policy::contact))
                .routes(routes!(session::credentials))
                .routes(routes!(session::memory))
                .routes(routes!(session::restore_credentials)),
        ),
        (
            Some(Bound::Status),
            OpenApiRouter::new().routes(routes!(session::status)),
        ),
    ]
}

/// Every route, for the document.
fn routes() -> OpenApiRouter<Arc<App>> {
    groups().into_iter().fold(
        OpenApiRouter::with_openapi(openapi::base()),
        |all, (_, g)| all.merge(g),
    )
}

/// What the composition wraps the link-bound routes in (several nodes:
/// forwarding to the org's owner); applied with `route_layer`, so only a
/// matched route of the group passes through it.
pub type Around<'a> = &'a dyn Fn(Router<Arc<App>>, Bound) -> Router<Arc<App>>;

/// The routes any node serves itself.
fn free() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ready))
        .routes(routes!(metrics))
        .routes(routes!(openapi_json))
        .routes(routes!(orgs::create, orgs::list))
        .routes(routes!(orgs::get_one))
        .routes(routes!(messages::send, messages::list))
        .routes(routes!(
            messages::get_one,
            messages::cancel,
            messages::reschedule
        ))
        .routes(routes!(messages::inbound))
        .routes(routes!(policy::get, policy::put))
        .routes(routes!(webhooks::create, webhooks::list))
        .routes(routes!(webhooks::get_one, webhooks::delete))
        .routes(routes!(webhooks::rotate))
        .routes(routes!(webhooks::deliveries))
        .routes(routes!(webhooks::retry))
        .routes(routes!(webhooks::replay))
        .routes(routes!(events::stream))
        .routes(routes!(compat::status))
        .routes(routes!(compat::send_message))
}

/// The API as served, before it is given the app, with the link-bound
/// groups wrapped by `around`.
fn served(around: Around) -> Router<Arc<App>> {
    groups()
        .into_iter()
        .fold(Router::new(), |all, (bound, g)| {
            let (router, _) = g.split_for_parts();
            all.merge(match bound {
                Some(b) => around(router, b),
                None => router,
            })
        })
        .layer(axum::middleware::from_fn(declared_size))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
}

pub fn router(app: Arc<App>, around: Around) -> Router {
    served(around).with_state(app)
}

/// The OpenAPI document, built once.
pub fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        let doc = openapi::finish(routes().into_openapi());
        doc.to_pretty_json().unwrap_or_else(|e| {
            tracing::error!(error = %e, "the OpenAPI document did not serialize");
            "{}".into()
        })
    })
}

/// This API's OpenAPI 3.1 description.
#[utoipa::path(get, path = "/openapi.json", tag = "gateway",
    responses((status = 200, description = "the document", content_type = "application/json", body = Object)))]
async fn openapi_json() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], document()).into_response()
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

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "gateway",
    responses((status = 200, description = "alive", body = wire::Health)))]
async fn health() -> Json<wire::Health> {
    Json(wire::Health { status: "ok" })
}

/// Prometheus metrics, text format (admin token).
///
/// On the `--metrics-listen` address, if one is set, no token is needed.
#[utoipa::path(get, path = "/metrics", tag = "gateway",
    responses((status = 200, description = "the metrics", content_type = "text/plain", body = String)))]
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
    let method = metric_method(req.method()).to_string();
    let t0 = std::time::Instant::now();
    let res = next.run(req).await;
    crate::metrics::http(&route, &method, res.status().as_u16(), t0.elapsed());
    res
}

/// A request's method as a metric label: the standard ones as they are,
/// any other `other` (a client making up methods cannot make up series).
fn metric_method(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Readiness: the database can be read.
#[utoipa::path(get, path = "/readyz", tag = "gateway",
    responses((status = 200, description = "ready", body = wire::Ready)))]
async fn ready(State(app): State<Arc<App>>) -> Result<Json<wire::Ready>, ApiError> {
    let orgs = app.ready().await?;
    Ok(Json(wire::Ready {
        status: "ready",
        orgs,
    }))
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

/// The bearer token of `Authorization: Bearer <token>` (the scheme in any
/// case), or why there is none (also for `forward.rs`, which looks before
/// routing).
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Result<&str, ApiError> {
    let unauthorized = |m: &str| ApiError::new(ErrorCode::Unauthorized, m);
    let raw = headers
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
        let token = bearer_token(&parts.headers)?;
        Ok(app.identify(token)?)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// Every path the router serves is in `/openapi.json`, and the other way
    /// round. The served paths are read from the router's `Debug` output
    /// (axum keeps no public list), so a route added beside `routes()`
    /// shows up here.
    #[test]
    fn the_document_describes_every_path_the_router_serves() {
        let dump = format!("{:?}", super::served(&|r, _| r));
        let served: BTreeSet<&str> = dump
            .split('"')
            .filter(|s| s.starts_with('/') && s.len() > 1 && !s.contains("__private__"))
            .collect();
        assert!(
            served.len() >= 25,
            "no route list in axum's Debug output: {dump}"
        );
        let doc: serde_json::Value = serde_json::from_str(super::document()).expect("JSON");
        let described: BTreeSet<&str> = doc["paths"]
            .as_object()
            .expect("paths")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(served, described);
    }

    /// `/openapi.json` carries each event kind's data as a component, with
    /// the fields the kind's struct has.
    #[test]
    fn the_document_describes_every_event_kind() {
        let doc: serde_json::Value = serde_json::from_str(super::document()).expect("JSON");
        for kind in crate::events::Kind::ALL {
            let (name, _) = kind.schema();
            let schema = &doc["components"]["schemas"][&name];
            assert!(
                schema.is_object(),
                "{} ({name}) is not described",
                kind.as_str()
            );
            let about = schema["description"].as_str().unwrap_or("");
            assert!(
                about.contains(&format!("`{}`", kind.as_str())),
                "{name}: {about}"
            );
            assert!(
                schema["properties"]
                    .as_object()
                    .is_some_and(|p| !p.is_empty()),
                "{schema}"
            );
        }
        let state = &doc["components"]["schemas"]["StateChanged"]["properties"];
        for field in [
            "state",
            "reason",
            "detail",
            "reconnect_attempt",
            "next_retry_in_ms",
            "phone_number",
        ] {
            assert!(
                state.get(field).is_some(),
                "StateChanged lacks {field}: {state}"
            );
        }
    }
}

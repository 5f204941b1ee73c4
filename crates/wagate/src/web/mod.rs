//! The dashboard: HTML pages served by the gateway itself under `/ui`, every
//! asset embedded in the binary; a rendering of the service layer (`app`),
//! as `api/` is another. This file owns the page routes, the sign-in cookie
//! (a random sign-in id kept on the server, HttpOnly and SameSite=Strict),
//! CSRF checks on every form, the security headers (a strict
//! Content-Security-Policy: no inline script or style, nothing from
//! elsewhere) on every `/ui` answer, and the org's live stream in the page's
//! language. Pages are in `pages.rs`, form actions in `actions.rs`, words in
//! `i18n.rs`.

pub mod actions;
pub mod i18n;
pub mod pages;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use futures::StreamExt;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use crate::app::events::StreamItem;
use crate::app::signin::SIGNIN_TTL;
use crate::app::{App, AppError, Bound, ErrorCode, Kind};
use crate::auth::Caller;
use crate::session::{Reason, Status};
use crate::times::rfc3339;
use i18n::Lang;

pub const SESSION_COOKIE: &str = "wagate_session";

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The dashboard; `around` wraps its link-bound pages (the org page reads
/// the status; QR, connect, pairing code, logout and reset act on the link).
pub fn router(
    app: Arc<App>,
    around: &dyn Fn(Router<Arc<App>>, Bound) -> Router<Arc<App>>,
) -> Router {
    let status = Router::new().route("/ui/orgs/{org}", get(pages::org));
    let actions = Router::new()
        .route("/ui/orgs/{org}/qr.svg", get(qr_svg))
        .route("/ui/orgs/{org}/connect", post(actions::connect))
        .route("/ui/orgs/{org}/pair-code", post(actions::pair_code))
        .route("/ui/orgs/{org}/logout", post(actions::unlink))
        .route("/ui/orgs/{org}/reset", post(actions::reset));
    Router::new()
        .merge(around(status, Bound::Status))
        .merge(around(actions, Bound::Action))
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(pages::home))
        .route("/ui/login", get(pages::login).post(actions::login))
        .route("/ui/logout", post(actions::logout))
        .route("/ui/lang/{lang}", get(actions::switch_lang))
        .route("/ui/overview.json", get(pages::overview_json))
        .route("/ui/orgs/{org}/events", get(org_events))
        .route("/ui/orgs/{org}/send", post(actions::send))
        .route("/ui/orgs/{org}/cancel", post(actions::cancel))
        .route("/ui/orgs/{org}/policy", post(actions::policy))
        .route(
            "/ui/orgs/{org}/webhooks/{id}/retry",
            post(actions::retry_delivery),
        )
        .route("/ui/assets/app.js", get(app_js))
        .route("/ui/assets/app.css", get(app_css))
        .route("/ui/assets/icon.svg", get(icon))
        .route("/ui/{*rest}", get(no_such_page))
        .layer(axum::middleware::from_fn(declared_size))
        .layer(axum::extract::DefaultBodyLimit::max(FORM_LIMIT))
        .with_state(app)
}

/// Largest form accepted (the test message's text is the largest field).
pub const FORM_LIMIT: usize = 256 * 1024;

/// Is this address the dashboard's?
pub fn is_dashboard_path(path: &str) -> bool {
    path == "/" || path == "/ui" || path.starts_with("/ui/")
}

/// The security headers, on every dashboard answer (also those no dashboard
/// route made, such as a 405). Applied by the server around every route.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let dashboard = is_dashboard_path(req.uri().path());
    let mut r = next.run(req).await;
    if dashboard {
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
        if !h.contains_key(header::CACHE_CONTROL) {
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
    }
    r
}

/// A form declared larger than the limit is refused before it is read.
async fn declared_size(req: Request, next: Next) -> Response {
    if crate::listener::declared_length(req.headers()).is_some_and(|n| n > FORM_LIMIT as u64) {
        let lang = Lang::of(req.headers());
        let mut r = (
            StatusCode::PAYLOAD_TOO_LARGE,
            pages::message_page(lang, lang.t("err.too_large")),
        )
            .into_response();
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return r;
    }
    next.run(req).await
}

/// A dashboard address with a method it does not take.
pub async fn method_not_allowed(headers: HeaderMap) -> Response {
    let lang = Lang::of(&headers);
    (
        StatusCode::METHOD_NOT_ALLOWED,
        pages::message_page(lang, lang.t("err.no_page")),
    )
        .into_response()
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// Any other `/ui/…` address: a page saying so, not the API's JSON.
async fn no_such_page(headers: HeaderMap) -> Response {
    let lang = Lang::of(&headers);
    (
        StatusCode::NOT_FOUND,
        pages::message_page(lang, lang.t("err.no_page")),
    )
        .into_response()
}

async fn app_js() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    )
}

async fn app_css() -> Response {
    asset("text/css; charset=utf-8", include_str!("assets/app.css"))
}

async fn icon() -> Response {
    asset("image/svg+xml", include_str!("assets/icon.svg"))
}

/// A redirect that never fails: `to` is ours, but any byte a header cannot
/// carry is percent-encoded rather than trusted.
pub fn redirect(to: &str) -> Response {
    let safe: String = to
        .bytes()
        .map(|b| {
            if b.is_ascii_graphic() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(&safe) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// An org id from the address; one that does not decode gets the
/// dashboard's "no such page".
pub struct OrgPath(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for OrgPath {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(org)) => Ok(OrgPath(org)),
            Err(_) => Err(no_such_page(parts.headers.clone()).await),
        }
    }
}

/// The query string as a map; one that does not decode reads as empty.
pub fn query(
    q: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> HashMap<String, String> {
    q.map(|Query(m)| m).unwrap_or_default()
}

/// The value of cookie `name` in a request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
}

/// A signed-in request: who it is, its sign-in id, and the CSRF token its
/// forms carry.
pub struct Session {
    pub caller: Caller,
    pub id: String,
    pub csrf: String,
    pub lang: Lang,
}

/// Why a request has no session.
pub enum NoSession {
    /// No cookie: plain sign-in page.
    Absent,
    /// A cookie whose sign-in is unknown, expired, signed out or revoked.
    Expired,
}

pub async fn session(app: &App, headers: &HeaderMap) -> Result<Session, NoSession> {
    let id = cookie(headers, SESSION_COOKIE).ok_or(NoSession::Absent)?;
    let s = app.signed_in(&id).await.ok_or(NoSession::Expired)?;
    Ok(Session {
        caller: s.caller,
        id,
        csrf: s.csrf,
        lang: Lang::of(headers),
    })
}

/// The cookie that holds a sign-in id.
pub fn session_cookie(id: &str, secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}={id}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{}",
        SIGNIN_TTL.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

pub const CLEAR_SESSION: &str = "wagate_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict";

/// Where a request without a session goes: the sign-in page, saying why.
pub fn to_login(why: NoSession) -> Response {
    match why {
        NoSession::Absent => redirect("/ui/login"),
        NoSession::Expired => {
            let mut r = redirect("/ui/login?m=expired");
            r.headers_mut()
                .insert(header::SET_COOKIE, HeaderValue::from_static(CLEAR_SESSION));
            r
        }
    }
}

/// Is this form post from our own page? The CSRF field must match the
/// session's, and a browser's `Origin`, when sent, must be this host.
pub fn form_allowed(s: &Session, headers: &HeaderMap, field: Option<&String>) -> bool {
    let token_ok: bool = match field {
        Some(f) => f.as_bytes().ct_eq(s.csrf.as_bytes()).into(),
        None => false,
    };
    token_ok && same_origin(headers)
}

/// `Origin` absent (older browsers, curl) or naming the `Host` we serve.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    match origin.to_str() {
        Ok(o) => {
            let o = o
                .strip_prefix("http://")
                .or_else(|| o.strip_prefix("https://"));
            o == Some(host)
        }
        Err(_) => false,
    }
}

/// The dashboard's status for a refusal.
fn page_status(kind: Kind) -> StatusCode {
    match kind {
        Kind::Forbidden | Kind::Unauthorized => StatusCode::FORBIDDEN,
        Kind::NotFound | Kind::MethodNotAllowed => StatusCode::NOT_FOUND,
        Kind::Conflict => StatusCode::CONFLICT,
        Kind::BadRequest | Kind::Invalid | Kind::TooLarge => StatusCode::UNPROCESSABLE_ENTITY,
        Kind::Timeout | Kind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Kind::TooMany => StatusCode::TOO_MANY_REQUESTS,
        Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The dashboard's sentence for a refusal: a code of its own when it has
/// one, else one per kind; never the raw text of an internal error.
pub fn error_text(lang: Lang, e: &AppError) -> &'static str {
    if let Some(t) = lang.get(&format!("err.{}", e.code.as_str())) {
        return t;
    }
    lang.t(match e.kind() {
        Kind::Forbidden | Kind::Unauthorized => "err.forbidden",
        Kind::NotFound => "err.not_found",
        _ => "err.server",
    })
}

/// The page for a refusal (403, 404, …), in the user's words.
pub fn error_page(lang: Lang, e: &AppError) -> Response {
    (
        page_status(e.kind()),
        pages::message_page(lang, error_text(lang, e)),
    )
        .into_response()
}

/// A status as the page's script reads it, with the detail in `lang`.
pub fn status_json(lang: Lang, s: &Status) -> Value {
    json!({
        "state": s.state.as_str(),
        "connected": s.connected(),
        "since": rfc3339(s.since_ms),
        "next_retry_in_ms": s.next_retry_in_ms,
        "phone_number": s.phone_number,
        "detail": i18n::describe(lang, &s.reason, s.decrypt_failures),
        "qr_available": s.qr_available,
        "pair_code": s.pair_code,
        "queued_messages": s.queued_messages,
    })
}

/// The org's event stream for the page, its words in the page's language.
/// The page says (`?after=`) which event it was rendered after, so nothing
/// between the render and the stream's start is missed; on reconnects the
/// browser's `Last-Event-ID` takes over.
async fn org_events(
    State(app): State<Arc<App>>,
    OrgPath(org): OrgPath,
    headers: HeaderMap,
    q: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = query(q);
    let s = match session(&app, &headers).await {
        Ok(s) => s,
        Err(_) => return StatusCode::UNAUTHORIZED.into_response(),
    };
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .or_else(|| q.get("after").and_then(|a| a.parse::<i64>().ok()))
        .filter(|n| *n >= 0);
    let lang = s.lang;
    match app.events(&s.caller, &org, after).await {
        Ok(items) => {
            let events = items.map(move |i| Ok::<_, Infallible>(page_event(lang, i)));
            Sse::new(events)
                .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
                .into_response()
        }
        Err(e) => page_status(e.kind()).into_response(),
    }
}

fn page_event(lang: Lang, item: StreamItem) -> Event {
    match item {
        StreamItem::Status(s) => Event::default()
            .event("status")
            .data(status_json(lang, &s).to_string()),
        StreamItem::Event(e) => {
            let mut data = crate::events::wire(&e.kind, &e.data);
            if e.kind == crate::events::Kind::State.as_str() {
                let reason = serde_json::from_value::<Reason>(data["reason"].clone()).ok();
                data["detail"] = Value::String(match reason {
                    Some(r) => i18n::describe(lang, &r, 0),
                    None => String::new(),
                });
            }
            Event::default()
                .id(e.seq.to_string())
                .event(&e.kind)
                .data(data.to_string())
        }
        StreamItem::Lagged { missed } => Event::default()
            .event("lagged")
            .data(json!({ "missed": missed }).to_string()),
    }
}

async fn qr_svg(
    State(app): State<Arc<App>>,
    OrgPath(org): OrgPath,
    headers: HeaderMap,
) -> Response {
    let s = match session(&app, &headers).await {
        Ok(s) => s,
        Err(_) => return StatusCode::UNAUTHORIZED.into_response(),
    };
    let svg = app.qr(&s.caller, &org).and_then(|(code, _)| {
        crate::qr::svg(&code).map_err(|e| AppError::internal("QR rendering failed", e))
    });
    match svg {
        Ok(svg) => ([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response(),
        Err(e) if e.code == ErrorCode::NoQr => StatusCode::CONFLICT.into_response(),
        Err(e) => page_status(e.kind()).into_response(),
    }
}

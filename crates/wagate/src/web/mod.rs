//! The dashboard: HTML pages served by the gateway itself under `/ui`, every
//! asset embedded in the binary. This file owns the page routes, the sign-in
//! cookie (the token, HttpOnly and SameSite=Strict, with a server-checked
//! age), CSRF checks on every form, and the security headers (a strict
//! Content-Security-Policy: no inline script or style, nothing from
//! elsewhere). Pages are in `pages.rs`, form actions in `actions.rs`.

pub mod actions;
pub mod i18n;
pub mod pages;

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::api::{ApiError, AppState};
use crate::auth::Caller;
use i18n::Lang;

pub const SESSION_COOKIE: &str = "wagate_session";
/// A sign-in lasts this long; then the token must be pasted again.
pub const SESSION_MAX_AGE_S: i64 = 12 * 3600;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(pages::home))
        .route("/ui/login", get(pages::login).post(actions::login))
        .route("/ui/logout", post(actions::logout))
        .route("/ui/lang/{lang}", get(actions::switch_lang))
        .route("/ui/overview.json", get(pages::overview_json))
        .route("/ui/orgs/{org}", get(pages::org))
        .route("/ui/orgs/{org}/events", get(org_events))
        .route("/ui/orgs/{org}/qr.svg", get(qr_svg))
        .route("/ui/orgs/{org}/connect", post(actions::connect))
        .route("/ui/orgs/{org}/pair-code", post(actions::pair_code))
        .route("/ui/orgs/{org}/send", post(actions::send))
        .route("/ui/orgs/{org}/logout", post(actions::unlink))
        .route("/ui/orgs/{org}/reset", post(actions::reset))
        .route("/ui/assets/app.js", get(app_js))
        .route("/ui/assets/app.css", get(app_css))
        .route("/ui/assets/icon.svg", get(icon))
        .route("/ui/{*rest}", get(no_such_page))
        .layer(axum::middleware::map_response(security_headers))
}

async fn security_headers(mut r: Response) -> Response {
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
    r
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

/// A signed-in request: who it is, and the CSRF token its forms carry.
pub struct Session {
    pub caller: Caller,
    pub csrf: String,
    pub lang: Lang,
}

/// Why a request has no session.
pub enum NoSession {
    /// No cookie: plain sign-in page.
    Absent,
    /// A cookie whose token is unknown or whose age is past the limit.
    Expired,
}

/// The cookie's value: `<issued unix seconds>.<token>`.
pub fn session_value(token: &str, issued_s: i64) -> String {
    format!("{issued_s}.{token}")
}

fn csrf_for(cookie_value: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"wagate-dashboard-csrf\0");
    h.update(cookie_value.as_bytes());
    hex::encode(&h.finalize()[..16])
}

pub fn session(st: &AppState, headers: &HeaderMap) -> Result<Session, NoSession> {
    let raw = cookie(headers, SESSION_COOKIE).ok_or(NoSession::Absent)?;
    let (issued, token) = raw.split_once('.').ok_or(NoSession::Expired)?;
    let issued: i64 = issued.parse().map_err(|_| NoSession::Expired)?;
    let age = chrono::Utc::now().timestamp() - issued;
    if !(-300..=SESSION_MAX_AGE_S).contains(&age) {
        return Err(NoSession::Expired);
    }
    let caller = st.tokens.identify(token).ok_or(NoSession::Expired)?;
    Ok(Session {
        caller,
        csrf: csrf_for(&raw),
        lang: Lang::of(headers),
    })
}

/// Where a request without a session goes: the sign-in page, saying why.
pub fn to_login(why: NoSession) -> Response {
    let mut r = match why {
        NoSession::Absent => Redirect::to("/ui/login"),
        NoSession::Expired => Redirect::to("/ui/login?m=expired"),
    }
    .into_response();
    if matches!(why, NoSession::Expired) {
        r.headers_mut().insert(
            header::SET_COOKIE,
            HeaderValue::from_static(
                "wagate_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict",
            ),
        );
    }
    r
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

/// The page for an API-level refusal (403, 404, …), in the user's words;
/// never the raw error text for a 5xx.
pub fn error_page(lang: Lang, e: &ApiError) -> Response {
    let key = match (e.status, e.code) {
        (StatusCode::FORBIDDEN, _) => "err.forbidden",
        (StatusCode::NOT_FOUND, _) => "err.not_found",
        (s, _) if s.is_server_error() => "err.server",
        (_, "invalid_phone") => "err.invalid_phone",
        (_, "empty_text") => "err.empty_text",
        (_, "text_too_long") => "err.text_too_long",
        _ => "err.server",
    };
    (e.status, pages::message_page(lang, lang.t(key))).into_response()
}

/// The org's event stream for the page. The page says (`?after=`) which
/// event it was rendered after, so nothing between the render and the
/// stream's start is missed; on reconnects the browser's `Last-Event-ID`
/// takes over.
async fn org_events(
    State(st): State<AppState>,
    Path(org): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let s = match session(&st, &headers) {
        Ok(s) => s,
        Err(_) => return StatusCode::UNAUTHORIZED.into_response(),
    };
    let after = crate::api::events::last_event_id(&headers)
        .or_else(|| q.get("after").and_then(|a| a.parse::<i64>().ok()));
    match crate::api::events::open(st, &s.caller, org, after).await {
        Ok(sse) => sse.into_response(),
        Err(e) => e.status.into_response(),
    }
}

async fn qr_svg(
    State(st): State<AppState>,
    Path(org): Path<String>,
    headers: HeaderMap,
) -> Response {
    let s = match session(&st, &headers) {
        Ok(s) => s,
        Err(_) => return StatusCode::UNAUTHORIZED.into_response(),
    };
    let result = async {
        let (_, h) = crate::api::org_for(&st, &s.caller, &org).await?;
        let (code, _) = crate::api::session::current_qr(&h)?;
        crate::qr::svg(&code).map_err(|e| ApiError::internal("QR rendering failed", e))
    }
    .await;
    match result {
        Ok(svg) => ([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response(),
        Err(e) => e.status.into_response(),
    }
}

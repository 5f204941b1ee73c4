//! What the dashboard's forms do: sign in and out, switch language, and on an
//! org page connect, ask for a pairing code, send a test message, log out
//! and reset. Each org action checks the session, the CSRF field and the
//! org (403 before 404, as the API does), then calls the same code as the
//! API and redirects back to the page (post/redirect/get).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;

use super::i18n::{Lang, LANG_COOKIE};
use super::pages::{login_page, message_page};
use super::{
    error_page, form_allowed, query, redirect, same_origin, session, session_cookie, to_login,
    OrgPath, Session, CLEAR_SESSION,
};
use crate::app::link::Linking;
use crate::app::messages::SendRequest;
use crate::app::{App, AppError, ErrorCode, Kind};

type Fields = Result<Form<HashMap<String, String>>, FormRejection>;

/// An org action's answer: the redirect back to the page, or (`Err`) the
/// sign-in / refusal page that stopped it early.
type Reply = Result<Response, Response>;

fn fields(f: Fields) -> HashMap<String, String> {
    f.map(|Form(m)| m).unwrap_or_default()
}

fn with_cookie(mut r: Response, cookie: String) -> Response {
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

/// Did the browser reach us over HTTPS (through a proxy that says so)? Then
/// the cookie is `Secure`; plain-HTTP set-ups on a LAN still work.
fn is_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// A place to go back to: a dashboard path of plain characters only (no
/// open redirect, nothing a header cannot carry).
fn dashboard_path(p: &str) -> Option<String> {
    let plain = p
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/-_.~?=&#%+".contains(&b));
    (plain && p.starts_with("/ui/") && !p.starts_with("//")).then(|| p.to_string())
}

pub async fn login(State(app): State<Arc<App>>, headers: HeaderMap, form: Fields) -> Response {
    let lang = Lang::of(&headers);
    if !same_origin(&headers) {
        return (
            StatusCode::FORBIDDEN,
            message_page(lang, lang.t("err.csrf")),
        )
            .into_response();
    }
    let f = fields(form);
    let token = f.get("token").map(|t| t.trim()).unwrap_or("");
    if token.is_empty() {
        let page = login_page(lang, Some(lang.t("login.empty")), true);
        return (StatusCode::UNPROCESSABLE_ENTITY, page).into_response();
    }
    match app.sign_in(token).await {
        Ok((id, _)) => with_cookie(redirect("/ui/"), session_cookie(&id, is_https(&headers))),
        Err(e) if e.code == ErrorCode::Unauthorized => {
            tracing::info!("dashboard sign-in refused: unknown token");
            let page = login_page(lang, Some(lang.t("login.bad")), true);
            (StatusCode::UNAUTHORIZED, page).into_response()
        }
        Err(e) => error_page(lang, &e),
    }
}

/// Sign out: the sign-in ends on the server, and the cookie is cleared.
pub async fn logout(State(app): State<Arc<App>>, headers: HeaderMap, form: Fields) -> Response {
    let f = fields(form);
    let s = match session(&app, &headers).await {
        Ok(s) => s,
        Err(why) => return to_login(why),
    };
    if !form_allowed(&s, &headers, f.get("csrf")) {
        return csrf_refused(s.lang);
    }
    app.sign_out(&s.id).await;
    with_cookie(redirect("/ui/login?m=out"), CLEAR_SESSION.to_string())
}

/// Remember the chosen language for a year and go back where the user was
/// (only to a dashboard path: never an open redirect).
pub async fn switch_lang(
    lang: Result<Path<String>, axum::extract::rejection::PathRejection>,
    headers: HeaderMap,
    q: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = query(q);
    let Some(l) = lang.ok().and_then(|Path(l)| Lang::parse(&l)) else {
        let lang = Lang::of(&headers);
        return (
            StatusCode::NOT_FOUND,
            message_page(lang, lang.t("err.no_page")),
        )
            .into_response();
    };
    let back = q
        .get("back")
        .and_then(|b| dashboard_path(b))
        .or_else(|| {
            headers
                .get(header::REFERER)
                .and_then(|r| r.to_str().ok())
                .and_then(|r| r.find("/ui/").and_then(|i| dashboard_path(&r[i..])))
        })
        .unwrap_or_else(|| "/ui/".into());
    let cookie = format!(
        "{LANG_COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Strict",
        l.code()
    );
    with_cookie(redirect(&back), cookie)
}

fn csrf_refused(lang: Lang) -> Response {
    (
        StatusCode::FORBIDDEN,
        message_page(lang, lang.t("err.csrf")),
    )
        .into_response()
}

/// Session, CSRF and org checks shared by every org action (403 before 404,
/// as everywhere).
async fn org_action(
    app: &App,
    headers: &HeaderMap,
    org: &str,
    f: &HashMap<String, String>,
) -> Result<Session, Response> {
    let s = session(app, headers).await.map_err(to_login)?;
    if !form_allowed(&s, headers, f.get("csrf")) {
        return Err(csrf_refused(s.lang));
    }
    match app.authorize(&s.caller, org) {
        Ok(_) => Ok(s),
        Err(e) => Err(error_page(s.lang, &e)),
    }
}

fn back(org: &str, query: &str) -> Response {
    redirect(&format!("/ui/orgs/{org}?{query}"))
}

/// A refusal the user can fix (bad number, empty text, no code in time …):
/// back to the page with the reason; anything else is an error page.
fn refused(lang: Lang, org: &str, e: AppError) -> Response {
    match e.kind() {
        Kind::Invalid | Kind::Conflict | Kind::Timeout => back(org, &format!("e={}", e.code)),
        _ => error_page(lang, &e),
    }
}

pub async fn connect(
    State(app): State<Arc<App>>,
    OrgPath(org): OrgPath,
    headers: HeaderMap,
    form: Fields,
) -> Reply {
    let f = fields(form);
    let s = org_action(&app, &headers, &org, &f).await?;
    Ok(match app.connect(&s.caller, &org, None).await {
        Ok(_) => back(&org, "ok=connect"),
        Err(e) => refused(s.lang, &org, e),
    })
}

pub async fn pair_code(
    State(app): State<Arc<App>>,
    OrgPath(org): OrgPath,
    headers: HeaderMap,
    form: Fields,
) -> Reply {
    let f = fields(form);
    let s = org_action(&app, &headers, &org, &f).await?;
    let phone = f.get("phone").cloned().unwrap_or_default();
    if phone.trim().is_empty() {
        return Ok(back(&org, "e=invalid_phone"));
    }
    Ok(match app.connect(&s.caller, &org, Some(phone)).await {
        Ok(Linking::PairCode { .. }) | Ok(Linking::Started(_)) => back(&org, "ok=connect#code-box"),
        Err(e) => refused(s.lang, &org, e),
    })
}

pub async fn send(
    State(app): State<Arc<App>>,
    OrgPath(org): OrgPath,
    headers: HeaderMap,
    form: Fields,
) -> Reply {
    let f = fields(form);
    let s = org_action(&app, &headers, &org, &f).await?;
    let req = SendRequest {
        to: f.get("to").cloned(),
        text: f.get("text").cloned(),
        idempotency_key: None,
        ..Default::default()
    };
    Ok(match app.send(&s.caller, &org, req).await {
        Ok(a) => back(
            &org,
            &format!("ok=sent&sent={}#m-{}", a.message.id, a.message.id),
        ),
        Err(e) => refused(s.lang, &org, e),
    })
}

/// Cancel a scheduled message (or a queued one not yet handed to WhatsApp).
pub async fn cancel(
    State(app): State<Arc<App>>,
    OrgPath(org): OrgPath,
    headers: HeaderMap,
    form: Fields,
) -> Reply {
    let f = fields(form);
    let s = org_action(&app, &headers, &org, &f).await?;
    let id = f.get("id").cloned().unwrap_or_default();
    Ok(match app.cancel_message(&s.caller, &org, &id).await {
        Ok(m) => back(&org, &format!("ok=cancel#m-{}", m.id)),
        Err(e) => refused(s.lang, &org, e),
    })
}

/// Log out or reset, after the page asked for confirmation.
async fn confirmed(
    app: Arc<App>,
    org: String,
    headers: HeaderMap,
    form: Fields,
    what: &str,
) -> Reply {
    let f = fields(form);
    let s = org_action(&app, &headers, &org, &f).await?;
    if f.get("confirm").map(String::as_str) != Some("yes") {
        return Ok(back(&org, &format!("confirm={what}#danger-card")));
    }
    let done = match what {
        "logout" => app.logout(&s.caller, &org).await,
        _ => app.reset(&s.caller, &org).await,
    };
    Ok(match done {
        Ok(_) => back(&org, &format!("ok={what}")),
        Err(e) => error_page(s.lang, &e),
    })
}

pub async fn unlink(
    State(app): State<Arc<App>>,
    OrgPath(org): OrgPath,
    headers: HeaderMap,
    form: Fields,
) -> Reply {
    confirmed(app, org, headers, form, "logout").await
}

pub async fn reset(
    State(app): State<Arc<App>>,
    OrgPath(org): OrgPath,
    headers: HeaderMap,
    form: Fields,
) -> Reply {
    confirmed(app, org, headers, form, "reset").await
}

/// A number of seconds from the policy form as milliseconds.
fn form_ms(v: &str) -> Option<serde_json::Value> {
    let secs: f64 = v.trim().parse().ok()?;
    (secs.is_finite() && (0.0..=1e9).contains(&secs))
        .then(|| serde_json::Value::from((secs * 1000.0).round() as i64))
}

/// A cap from the policy form: empty is no cap.
fn form_cap(v: Option<&String>) -> Option<serde_json::Value> {
    match v.map(|s| s.trim()).unwrap_or("") {
        "" => Some(serde_json::Value::Null),
        s => s.parse::<i64>().ok().map(serde_json::Value::from),
    }
}

/// Save the sending policy from the org page's form (the same checks as the API).
pub async fn policy(
    State(app): State<Arc<App>>,
    OrgPath(org): OrgPath,
    headers: HeaderMap,
    form: Fields,
) -> Reply {
    let f = fields(form);
    let s = org_action(&app, &headers, &org, &f).await?;
    let get = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
    let bad = |field: &str| back(&org, &format!("e=invalid_policy&f={field}#policy-card"));
    let mut change = serde_json::Map::new();
    for (field, key) in [("min_gap_s", "min_gap_ms"), ("max_gap_s", "max_gap_ms")] {
        match form_ms(get(field)) {
            Some(v) => change.insert(key.into(), v),
            None => return Ok(bad(key)),
        };
    }
    for key in ["hourly_cap", "daily_cap", "new_contacts_per_day"] {
        match form_cap(f.get(key)) {
            Some(v) => change.insert(key.into(), v),
            None => return Ok(bad(key)),
        };
    }
    let (qs, qe) = (get("quiet_start").trim(), get("quiet_end").trim());
    let quiet = match (qs.is_empty(), qe.is_empty()) {
        (true, true) => serde_json::Value::Null,
        _ => serde_json::json!({"start": qs, "end": qe}),
    };
    change.insert("quiet_hours".into(), quiet);
    change.insert("timezone".into(), get("timezone").trim().into());
    change.insert("typing".into(), (get("typing") == "on").into());
    Ok(
        match app.set_sending_policy(&s.caller, &org, &change).await {
            Ok(_) => back(&org, "ok=policy#policy-card"),
            Err(e) if e.code == ErrorCode::InvalidPolicy => {
                let field = e.message.split(':').next().unwrap_or("").to_string();
                bad(&field)
            }
            Err(e) => refused(s.lang, &org, e),
        },
    )
}

/// Send one webhook delivery again, from the org page.
pub async fn retry_delivery(
    State(app): State<Arc<App>>,
    Path((org, id)): Path<(String, String)>,
    headers: HeaderMap,
    form: Fields,
) -> Reply {
    let f = fields(form);
    let s = org_action(&app, &headers, &org, &f).await?;
    let Some(seq) = f.get("delivery").and_then(|d| d.parse::<i64>().ok()) else {
        return Ok(back(&org, "e=delivery_not_found"));
    };
    Ok(
        match app.redeliver(&s.caller, &org, &id, Some(seq), None).await {
            Ok(_) => back(&org, "ok=retry#webhooks-card"),
            Err(e) if e.code == ErrorCode::DeliveryNotFound => back(&org, "e=delivery_not_found"),
            Err(e) => refused(s.lang, &org, e),
        },
    )
}

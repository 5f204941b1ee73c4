//! What the dashboard's forms do: sign in and out, switch language, and on an
//! org page connect, ask for a pairing code, send a test message, log out
//! and reset. Each org action checks the session, the CSRF field and the
//! org (403 before 404, as the API does), then calls the same code as the
//! API and redirects back to the page (post/redirect/get).

use std::collections::HashMap;

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;

use super::i18n::{Lang, LANG_COOKIE};
use super::pages::{login_page, message_page};
use super::{error_page, form_allowed, same_origin, session, session_value, to_login, Session};
use crate::api::session::{command, start_connect, Connected};
use crate::api::{org_for, ApiError, AppState};
use crate::session::Command;

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

/// `Secure` when the browser reached us over HTTPS (directly or through a
/// proxy that says so); plain-HTTP set-ups on a LAN still work.
fn secure_attr(headers: &HeaderMap) -> &'static str {
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    if https {
        "; Secure"
    } else {
        ""
    }
}

pub async fn login(State(st): State<AppState>, headers: HeaderMap, form: Fields) -> Response {
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
    if st.tokens.identify(token).is_none() {
        tracing::info!("dashboard sign-in refused: unknown token");
        let page = login_page(lang, Some(lang.t("login.bad")), true);
        return (StatusCode::UNAUTHORIZED, page).into_response();
    }
    let value = session_value(token, chrono::Utc::now().timestamp());
    let cookie = format!(
        "{}={value}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{}",
        super::SESSION_COOKIE,
        super::SESSION_MAX_AGE_S,
        secure_attr(&headers)
    );
    with_cookie(Redirect::to("/ui/").into_response(), cookie)
}

pub async fn logout(State(st): State<AppState>, headers: HeaderMap, form: Fields) -> Response {
    let f = fields(form);
    let s = match session(&st, &headers) {
        Ok(s) => s,
        Err(why) => return to_login(why),
    };
    if !form_allowed(&s, &headers, f.get("csrf")) {
        return csrf_refused(s.lang);
    }
    let cookie = format!(
        "{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict",
        super::SESSION_COOKIE
    );
    with_cookie(Redirect::to("/ui/login?m=out").into_response(), cookie)
}

/// Remember the chosen language for a year and go back where the user was
/// (only to a dashboard path: never an open redirect).
pub async fn switch_lang(
    Path(lang): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(l) = Lang::parse(&lang) else {
        return (StatusCode::NOT_FOUND, message_page(Lang::of(&headers), "?")).into_response();
    };
    let back = q
        .get("back")
        .filter(|b| b.starts_with("/ui/") && !b.starts_with("//") && !b.contains('\\'))
        .cloned()
        .or_else(|| {
            headers
                .get(header::REFERER)
                .and_then(|r| r.to_str().ok())
                .and_then(|r| r.find("/ui/").map(|i| r[i..].to_string()))
        })
        .unwrap_or_else(|| "/ui/".into());
    let cookie = format!(
        "{LANG_COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Strict",
        l.code()
    );
    with_cookie(Redirect::to(&back).into_response(), cookie)
}

fn csrf_refused(lang: Lang) -> Response {
    (
        StatusCode::FORBIDDEN,
        message_page(lang, lang.t("err.csrf")),
    )
        .into_response()
}

/// Session, CSRF and org checks shared by every org action.
async fn org_action(
    st: &AppState,
    headers: &HeaderMap,
    org: &str,
    f: &HashMap<String, String>,
) -> Result<(Session, crate::store::OrgRow, crate::session::Handle), Response> {
    let s = session(st, headers).map_err(to_login)?;
    if !form_allowed(&s, headers, f.get("csrf")) {
        return Err(csrf_refused(s.lang));
    }
    match org_for(st, &s.caller, org).await {
        Ok((row, h)) => Ok((s, row, h)),
        Err(e) => Err(error_page(s.lang, &e)),
    }
}

fn back(org: &str, query: &str) -> Response {
    Redirect::to(&format!("/ui/orgs/{org}?{query}")).into_response()
}

/// A refusal the user can fix (bad number, empty text …): back to the
/// page with the reason; anything else is an error page.
fn refused(lang: Lang, org: &str, e: ApiError) -> Response {
    if e.status.is_client_error()
        && e.status != StatusCode::FORBIDDEN
        && e.status != StatusCode::NOT_FOUND
    {
        back(org, &format!("e={}", e.code))
    } else if e.code == "pair_code_timeout" {
        back(org, "e=pair_code_timeout")
    } else {
        error_page(lang, &e)
    }
}

pub async fn connect(
    State(st): State<AppState>,
    Path(org): Path<String>,
    headers: HeaderMap,
    form: Fields,
) -> Reply {
    let f = fields(form);
    let (s, row, h) = org_action(&st, &headers, &org, &f).await?;
    Ok(match start_connect(&st, &row, &h, None).await {
        Ok(_) => back(&org, "ok=connect"),
        Err(e) => refused(s.lang, &org, e),
    })
}

pub async fn pair_code(
    State(st): State<AppState>,
    Path(org): Path<String>,
    headers: HeaderMap,
    form: Fields,
) -> Reply {
    let f = fields(form);
    let (s, row, h) = org_action(&st, &headers, &org, &f).await?;
    let phone = f.get("phone").cloned().unwrap_or_default();
    if phone.trim().is_empty() {
        return Ok(back(&org, "e=invalid_phone"));
    }
    Ok(match start_connect(&st, &row, &h, Some(phone)).await {
        Ok(Connected::PairCode { .. }) | Ok(Connected::Started(_)) => {
            back(&org, "ok=connect#code-box")
        }
        Err(e) => refused(s.lang, &org, e),
    })
}

pub async fn send(
    State(st): State<AppState>,
    Path(org): Path<String>,
    headers: HeaderMap,
    form: Fields,
) -> Reply {
    let f = fields(form);
    let (s, row, _) = org_action(&st, &headers, &org, &f).await?;
    let to = f.get("to").cloned();
    let text = f.get("text").cloned();
    Ok(
        match crate::api::messages::accept(&st, &row, to, text, None).await {
            Ok((m, _)) => back(&org, &format!("ok=sent&sent={}#m-{}", m.id, m.id)),
            Err(e) => refused(s.lang, &org, e),
        },
    )
}

async fn confirmed(
    st: AppState,
    org: String,
    headers: HeaderMap,
    form: Fields,
    what: &str,
    cmd: Command,
) -> Reply {
    let f = fields(form);
    let (s, _, h) = org_action(&st, &headers, &org, &f).await?;
    if f.get("confirm").map(String::as_str) != Some("yes") {
        return Ok(back(&org, &format!("confirm={what}#danger-card")));
    }
    Ok(match command(&h, cmd).await {
        Ok(()) => back(&org, &format!("ok={what}")),
        Err(e) => error_page(s.lang, &e),
    })
}

pub async fn unlink(
    State(st): State<AppState>,
    Path(org): Path<String>,
    headers: HeaderMap,
    form: Fields,
) -> Reply {
    confirmed(st, org, headers, form, "logout", Command::Logout).await
}

pub async fn reset(
    State(st): State<AppState>,
    Path(org): Path<String>,
    headers: HeaderMap,
    form: Fields,
) -> Reply {
    confirmed(st, org, headers, form, "reset", Command::Reset).await
}

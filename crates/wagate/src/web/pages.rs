//! The dashboard's pages as HTML (maud escapes every value): sign-in, the
//! admin overview, one organization's page, and the message page used for
//! refusals. What changes live (badge, QR, messages) is redrawn by
//! `assets/app.js` from the org's event stream; the HTML is complete without it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use maud::{html, Markup, PreEscaped, DOCTYPE};
use serde_json::{json, Value};

use super::i18n::Lang;
use super::{error_page, query, redirect, session, status_json, to_login, OrgPath, Session};
use crate::app::link::StateChange;
use crate::app::orgs::OrgSummary;
use crate::app::{App, AppError};
use crate::auth::Caller;
use crate::session::{State as LinkState, Status};
use crate::store::{MessageRow, MessageStatus};
use crate::times::rfc3339;

type Q = Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>;

/// Messages listed on an org page.
const LAST_MESSAGES: i64 = 20;
/// Scheduled and held messages listed on an org page (each).
const WAITING: i64 = 50;
/// Deliveries listed per webhook on an org page.
const RECENT_DELIVERIES: i64 = 5;

fn layout(lang: Lang, title: &str, s: Option<&Session>, page: &str, body: Markup) -> Markup {
    // The script reads its words from a JSON block (not executed, so the
    // CSP allows it); "</" is escaped so no text can close the element.
    let words = lang.all().to_string().replace("</", "<\\/");
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="same-origin";
                title { (title) " · wagate" }
                link rel="icon" href="/ui/assets/icon.svg" type="image/svg+xml";
                link rel="stylesheet" href="/ui/assets/app.css";
                script src="/ui/assets/app.js" defer {}
            }
            body data-page=(page) data-lang=(lang.code()) {
                header.top {
                    a.brand href="/ui/" { "wagate" }
                    span.sub { (lang.t("app.title")) }
                    nav {
                        a #lang-switch href={ "/ui/lang/" (lang.other().code()) } { (lang.t("lang.switch")) }
                        @if let Some(s) = s {
                            @if s.caller == Caller::Admin {
                                a href="/ui/" { (lang.t("nav.orgs")) }
                            }
                            form.inline method="post" action="/ui/logout" {
                                input type="hidden" name="csrf" value=(s.csrf);
                                button.link #signout type="submit" { (lang.t("nav.signout")) }
                            }
                        }
                    }
                }
                main { (body) }
                script #words type="application/json" { (PreEscaped(words)) }
            }
        }
    }
}

fn page(m: Markup) -> Response {
    Html(m.into_string()).into_response()
}

/// A page with one sentence and a way back.
pub fn message_page(lang: Lang, text: &str) -> Html<String> {
    let body = html! {
        section.card {
            p #message { (text) }
            p { a href="/ui/" { (lang.t("err.back")) } }
        }
    };
    Html(layout(lang, lang.t("app.title"), None, "message", body).into_string())
}

pub fn login_page(lang: Lang, note: Option<&str>, error: bool) -> Html<String> {
    let body = html! {
        section.card.narrow {
            h1 { (lang.t("login.title")) }
            @if let Some(n) = note {
                p #login-note class=(if error { "note error" } else { "note" }) role="alert" { (n) }
            }
            form method="post" action="/ui/login" autocomplete="off" {
                label for="token" { (lang.t("login.token")) }
                input #token type="password" name="token" required autofocus spellcheck="false";
                p.muted { (lang.t("login.hint")) }
                button #signin type="submit" { (lang.t("login.submit")) }
            }
        }
    };
    Html(layout(lang, lang.t("login.title"), None, "login", body).into_string())
}

pub async fn login(State(app): State<Arc<App>>, headers: HeaderMap, q: Q) -> Response {
    let q = query(q);
    if session(&app, &headers).await.is_ok() {
        return redirect("/ui/");
    }
    let lang = Lang::of(&headers);
    let note = match q.get("m").map(String::as_str) {
        Some("expired") => Some(("login.expired", true)),
        Some("out") => Some(("login.out", false)),
        _ => None,
    };
    login_page(
        lang,
        note.map(|(k, _)| lang.t(k)),
        note.is_some_and(|(_, e)| e),
    )
    .into_response()
}

pub async fn home(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let s = match session(&app, &headers).await {
        Ok(s) => s,
        Err(why) => return to_login(why),
    };
    match &s.caller {
        Caller::Org(o) => redirect(&format!("/ui/orgs/{}", o.id)),
        Caller::Admin => match app.list_orgs(&s.caller).await {
            Ok(rows) => page(overview(&s, &rows)),
            Err(e) => error_page(s.lang, &e),
        },
    }
}

fn overview(s: &Session, rows: &[OrgSummary]) -> Markup {
    let lang = s.lang;
    let body = html! {
        section.card {
            h1 { (lang.t("ov.title")) }
            @if rows.is_empty() {
                p.muted { (lang.t("ov.none")) }
            } @else {
                div.table-wrap { table #orgs {
                    thead { tr {
                        th { (lang.t("ov.org")) } th { (lang.t("ov.state")) } th { (lang.t("ov.phone")) }
                        th { (lang.t("ov.in_state")) } th.num { (lang.t("ov.queued")) }
                    } }
                    tbody {
                        @for o in rows {
                            @let v = &o.status;
                            @let since = rfc3339(v.since_ms);
                            tr data-org=(o.row.id) {
                                td { a href={ "/ui/orgs/" (o.row.id) } { (o.row.name) } br; small.muted { (o.row.id) } }
                                td { (badge(lang, v)) }
                                td.phone { (phone_text(v.phone_number.as_deref())) }
                                td { time.since datetime=(since) { (since) } }
                                td.num.queued { (v.queued_messages.unwrap_or(0)) }
                            }
                        }
                    }
                } }
            }
        }
    };
    layout(lang, lang.t("ov.title"), Some(s), "overview", body)
}

/// The overview's rows as JSON, for the page's periodic refresh.
pub async fn overview_json(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let Ok(s) = session(&app, &headers).await else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    if s.caller != Caller::Admin {
        return StatusCode::FORBIDDEN.into_response();
    }
    match app.list_orgs(&s.caller).await {
        Ok(rows) => {
            let list: Vec<Value> = rows
                .iter()
                .map(|o| json!({"id": o.row.id, "name": o.row.name, "status": status_json(s.lang, &o.status)}))
                .collect();
            Json(json!({ "orgs": list })).into_response()
        }
        Err(e) => error_page(s.lang, &e),
    }
}

fn phone_text(p: Option<&str>) -> String {
    match p {
        Some(p) if !p.is_empty() => format!("+{p}"),
        _ => "—".into(),
    }
}

fn badge(lang: Lang, v: &Status) -> Markup {
    let st = v.state.as_str();
    html! {
        span class={ "badge s-" (st) } data-state=(st) { (lang.t(&format!("state.{st}"))) }
    }
}

/// The sentence for people: what the state means and what to do.
pub fn sentence(lang: Lang, v: &Status) -> String {
    lang.t(&format!("say.{}", v.state.as_str()))
        .replace("{phone}", &phone_text(v.phone_number.as_deref()))
}

/// What an org page shows.
struct OrgPage {
    name: String,
    status: Status,
    changes: Vec<StateChange>,
    messages: Vec<MessageRow>,
    scheduled: Vec<MessageRow>,
    held: Vec<MessageRow>,
    policy: crate::outbox::pacing::Policy,
    /// The newest received messages, with what each answers.
    replies: Vec<crate::app::messages::Reply>,
    /// Each webhook with its newest deliveries.
    webhooks: Vec<(
        crate::app::webhooks::WebhookView,
        Vec<crate::store::webhooks::Delivery>,
    )>,
    qr: Option<(String, u64)>,
    seen: i64,
}

async fn org_page(app: &App, caller: &Caller, org: &str) -> Result<OrgPage, AppError> {
    // Read first: the page then asks its event stream for everything after
    // this, so a change landing while the page renders is replayed, not lost.
    let seen = app.last_event(caller, org).await?;
    let summary = app.get_org(caller, org).await?;
    let waiting = app.waiting_messages(caller, org, WAITING).await?;
    Ok(OrgPage {
        name: summary.row.name.clone(),
        status: summary.status,
        changes: app.history(caller, org).await?,
        messages: app.latest_messages(caller, org, LAST_MESSAGES).await?,
        scheduled: waiting.0,
        held: waiting.1,
        policy: app.sending_policy(caller, org).await?,
        replies: app.latest_replies(caller, org, LAST_MESSAGES).await?,
        webhooks: {
            let mut out = Vec::new();
            for w in app.webhooks(caller, org).await? {
                let recent = app
                    .deliveries(caller, org, &w.hook.id, None, None, RECENT_DELIVERIES)
                    .await?;
                out.push((w, recent));
            }
            out
        },
        qr: app.qr(caller, org).ok(),
        seen,
    })
}

pub async fn org(
    State(app): State<Arc<App>>,
    OrgPath(org): OrgPath,
    headers: HeaderMap,
    q: Q,
) -> Response {
    let q = query(q);
    let s = match session(&app, &headers).await {
        Ok(s) => s,
        Err(why) => return to_login(why),
    };
    let lang = s.lang;
    let p = match org_page(&app, &s.caller, &org).await {
        Ok(p) => p,
        Err(e) => return error_page(lang, &e),
    };
    let notice = q
        .get("ok")
        .and_then(|k| match k.as_str() {
            "sent" => Some("org.sent"),
            "logout" => Some("org.done_logout"),
            "reset" => Some("org.done_reset"),
            "connect" => Some("org.done_connect"),
            "cancel" => Some("org.done_cancel"),
            "policy" => Some("org.done_policy"),
            "retry" => Some("org.done_retry"),
            _ => None,
        })
        .map(|k| lang.t(k).to_string());
    // Only our own codes name a sentence; anything else gets the generic one.
    let error = q.get("e").map(|code| {
        let text = lang
            .get(&format!("err.{code}"))
            .unwrap_or(lang.t("err.server"))
            .to_string();
        // A refused policy names its field (one of ours: letters and `_`).
        match q
            .get("f")
            .filter(|f| f.len() <= 32 && f.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        {
            Some(f) if code == "invalid_policy" => format!("{text} ({f})"),
            _ => text,
        }
    });
    let confirm = q.get("confirm").map(String::as_str);
    let body = org_body(&s, &org, &p, notice, error, confirm, q.get("sent"));
    let body = html! { div #page data-after=(p.seen) { (body) } };
    page(layout(lang, &p.name, Some(&s), "org", body))
}

fn org_body(
    s: &Session,
    org: &str,
    p: &OrgPage,
    notice: Option<String>,
    error: Option<String>,
    confirm: Option<&str>,
    highlight: Option<&String>,
) -> Markup {
    let lang = s.lang;
    let (name, v, qr, msgs) = (&p.name, &p.status, &p.qr, &p.messages);
    let st = v.state.as_str();
    let linked = v.state == LinkState::Connected;
    let since = rfc3339(v.since_ms);
    // States in which someone must link the number (QR or code) rather than
    // just reconnect.
    let needs_link = v.state.needs_link();
    html! {
        div #org data-org=(org) data-state=(st) {
            p #live-note role="status" hidden { (lang.t("org.live_lost")) }
            @if let Some(n) = notice { p #notice.note role="status" { (n) } }
            @if let Some(e) = error { p #error.note.error role="alert" { (e) } }
            section.card #status-card {
                h1 { (name) }
                p { (badge(lang, v)) }
                p #sentence.sentence { (sentence(lang, v)) }
                p #detail.muted { (super::i18n::describe(lang, &v.reason, v.decrypt_failures)) }
                dl.facts {
                    dt { (lang.t("org.phone")) } dd #phone { (phone_text(v.phone_number.as_deref())) }
                    dt { (lang.t("org.since")) } dd { time #since.since datetime=(since) { (since) } }
                    dt { (lang.t("org.queued")) } dd #queued { (v.queued_messages.unwrap_or(0)) }
                    dt #retry-label hidden[v.next_retry_in_ms.is_none()] { (lang.t("org.retry_in")) }
                    dd #retry hidden[v.next_retry_in_ms.is_none()] data-ms=[v.next_retry_in_ms] {
                        @if let Some(ms) = v.next_retry_in_ms { (ms / 1000) " s" }
                    }
                    @if v.decrypt_failures > 0 {
                        dt { (lang.t("org.decrypt_failures")) } dd { (v.decrypt_failures) }
                    }
                    @if let Some(until) = v.limits.as_ref().and_then(|l| l.reachout_active(crate::store::now_ms())) {
                        dt #reachout-label { (lang.t("org.reachout_until")) }
                        dd #reachout { time.at datetime=(rfc3339(until)) { (rfc3339(until)) } }
                    }
                    @if let Some(l) = v.limits.as_ref().filter(|l| l.cap_total.is_some()) {
                        dt { (lang.t("org.capping")) }
                        dd #capping { (l.cap_used.unwrap_or(0)) " / " (l.cap_total.unwrap_or(-1)) }
                    }
                }
            }
            section.card #link-card hidden[linked] {
                div #qr-box hidden[qr.is_none()] {
                    img #qr alt=(lang.t("org.qr_alt")) width="264" height="264"
                        src=[qr.as_ref().map(|_| format!("/ui/orgs/{org}/qr.svg"))];
                    p #qr-countdown.muted data-ms=[qr.as_ref().map(|q| q.1)] {
                        @if let Some((_, ms)) = &qr { (lang.t("org.qr_expires").replace("{n}", &(ms / 1000).to_string())) }
                    }
                }
                p #qr-waiting.muted hidden { (lang.t("org.qr_waiting")) }
                div #code-box hidden[v.pair_code.is_none()] {
                    p { (lang.t("org.code_howto")) }
                    p #pair-code.code { (v.pair_code.clone().unwrap_or_default()) }
                }
                form #connect-form method="post" action={ "/ui/orgs/" (org) "/connect" } hidden[v.state == LinkState::Pairing] {
                    input type="hidden" name="csrf" value=(s.csrf);
                    button #connect type="submit" {
                        @if needs_link { (lang.t("org.link_qr")) } @else { (lang.t("org.reconnect")) }
                    }
                }
                details #use-code hidden[!needs_link] {
                    summary { (lang.t("org.use_code")) }
                    form method="post" action={ "/ui/orgs/" (org) "/pair-code" } {
                        input type="hidden" name="csrf" value=(s.csrf);
                        label for="code-phone" { (lang.t("org.code_phone")) }
                        input #code-phone name="phone" type="tel" inputmode="tel" required placeholder="+57 300 111 2233";
                        button #get-code type="submit" { (lang.t("org.get_code")) }
                    }
                }
            }
            section.card #test-card {
                h2 { (lang.t("org.test")) }
                form.grid method="post" action={ "/ui/orgs/" (org) "/send" } {
                    input type="hidden" name="csrf" value=(s.csrf);
                    label for="to" { (lang.t("org.to")) }
                    input #to name="to" type="tel" inputmode="tel" required placeholder="+57 300 111 2233";
                    label for="text" { (lang.t("org.text")) }
                    textarea #text name="text" rows="2" required { (lang.t("org.text_default")) }
                    button #send type="submit" { (lang.t("org.send")) }
                }
            }
            section.card #messages-card {
                h2 { (lang.t("org.messages")) }
                div.table-wrap { table #messages {
                    thead { tr { th { (lang.t("org.when")) } th { (lang.t("org.to")) } th { (lang.t("org.text")) } th { (lang.t("org.status")) } } }
                    tbody {
                        @for m in msgs {
                            tr id={ "m-" (m.id) } class=[highlight.filter(|h| **h == m.id).map(|_| "highlight")] {
                                td { time.at datetime=(rfc3339(m.created_ms)) { (rfc3339(m.created_ms)) } }
                                td { "+" (m.to) }
                                td.text { (m.text) }
                                td {
                                    span class={ "msg m-" (m.status.as_str()) } data-status=(m.status.as_str()) title=[m.error.as_deref()] {
                                        (lang.t(&format!("msg.{}", m.status.as_str())))
                                    }
                                    @if let (MessageStatus::Scheduled, Some(at)) = (m.status, m.send_at_ms) {
                                        " " span.due { (lang.t("org.due")) " " time.at datetime=(rfc3339(at)) { (rfc3339(at)) } }
                                    }
                                    @if let (MessageStatus::Queued, Some(r), Some(at)) = (m.status, m.held_reason.as_deref(), m.retry_at_ms) {
                                        " " span.held title=(lang.t(&format!("held.{r}"))) { (lang.t("org.held")) " · " (lang.t("org.retry_at")) " " time.at datetime=(rfc3339(at)) { (rfc3339(at)) } }
                                    }
                                    @if m.status == MessageStatus::Scheduled || (m.status == MessageStatus::Queued && (m.attempts == 0 || m.retry_at_ms.is_some())) {
                                        form.inline.cancel method="post" action={ "/ui/orgs/" (org) "/cancel" } {
                                            input type="hidden" name="csrf" value=(s.csrf);
                                            input type="hidden" name="id" value=(m.id);
                                            button.link type="submit" { (lang.t("org.cancel_message")) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                } }
                p #no-messages.muted hidden[!msgs.is_empty()] { (lang.t("org.no_messages")) }
            }
            (replies_card(s.lang, p))
            (waiting_card(s, org, p))
            (policy_card(s, org, &p.policy))
            (webhooks_card(s, org, p))
            section.card #history-card {
                h2 { (lang.t("org.history")) }
                div.table-wrap { table #history {
                    thead { tr { th { (lang.t("org.when")) } th { (lang.t("ov.state")) } th { (lang.t("org.reason")) } } }
                    tbody {
                        @for c in &p.changes {
                            @let cst = LinkState::parse(&c.state).map(|s| s.as_str()).unwrap_or("stopped");
                            @let at = rfc3339(c.at_ms);
                            tr {
                                td { time.at datetime=(at) { (at) } }
                                td { span class={ "badge s-" (cst) } { (lang.t(&format!("state.{cst}"))) } }
                                td { (c.reason.as_ref().map(|r| super::i18n::describe(lang, r, 0)).unwrap_or_default()) }
                            }
                        }
                    }
                } }
            }
            section.card.danger #danger-card {
                h2 { (lang.t("org.danger")) }
                @match confirm {
                    Some(what @ ("logout" | "reset")) => {
                        p #confirm-question { (lang.t(&format!("org.{what}_q"))) }
                        form.inline method="post" action={ "/ui/orgs/" (org) "/" (what) } {
                            input type="hidden" name="csrf" value=(s.csrf);
                            input type="hidden" name="confirm" value="yes";
                            button.danger #confirm-yes type="submit" { (lang.t(&format!("org.confirm_{what}"))) }
                        }
                        a.button #confirm-cancel href={ "/ui/orgs/" (org) } { (lang.t("org.cancel")) }
                    }
                    _ => {
                        a.button.danger #logout href={ "/ui/orgs/" (org) "?confirm=logout#danger-card" } { (lang.t("org.logout")) }
                        " "
                        a.button.danger #reset href={ "/ui/orgs/" (org) "?confirm=reset#danger-card" } { (lang.t("org.reset")) }
                    }
                }
            }
        }
    }
}

/// What waits to be sent: scheduled messages (by due time) and messages held
/// by a WhatsApp limit (with the reason and when they are tried again), each
/// cancelable.
fn waiting_card(s: &Session, org: &str, p: &OrgPage) -> Markup {
    let lang = s.lang;
    let cancel = |m: &MessageRow| {
        html! {
            form.inline.cancel method="post" action={ "/ui/orgs/" (org) "/cancel" } {
                input type="hidden" name="csrf" value=(s.csrf);
                input type="hidden" name="id" value=(m.id);
                button.link type="submit" { (lang.t("org.cancel_message")) }
            }
        }
    };
    html! {
        section.card #waiting-card {
            h2 { (lang.t("org.waiting")) }
            @if p.scheduled.is_empty() && p.held.is_empty() {
                p #no-waiting.muted { (lang.t("org.no_waiting")) }
            }
            @if !p.held.is_empty() {
                h3 { (lang.t("org.held_title")) }
                div.table-wrap { table #held {
                    thead { tr { th { (lang.t("org.to")) } th { (lang.t("org.text")) } th { (lang.t("org.reason")) } th { (lang.t("org.retry_at")) } th {} } }
                    tbody {
                        @for m in &p.held {
                            @let reason = m.held_reason.as_deref().unwrap_or("");
                            tr id={ "h-" (m.id) } data-reason=(reason) {
                                td { "+" (m.to) }
                                td.text { (m.text) }
                                td { (lang.t(&format!("held.{reason}"))) }
                                td { @if let Some(at) = m.retry_at_ms { time.at datetime=(rfc3339(at)) { (rfc3339(at)) } } }
                                td { (cancel(m)) }
                            }
                        }
                    }
                } }
            }
            @if !p.scheduled.is_empty() {
                h3 { (lang.t("org.scheduled_title")) }
                div.table-wrap { table #scheduled {
                    thead { tr { th { (lang.t("org.due")) } th { (lang.t("org.to")) } th { (lang.t("org.text")) } th {} } }
                    tbody {
                        @for m in &p.scheduled {
                            tr id={ "s-" (m.id) } {
                                td { @if let Some(at) = m.send_at_ms { time.at datetime=(rfc3339(at)) { (rfc3339(at)) } } }
                                td { "+" (m.to) }
                                td.text { (m.text) }
                                td { (cancel(m)) }
                            }
                        }
                    }
                } }
            }
        }
    }
}

/// The sending policy, editable: gaps in seconds, caps (empty: none), quiet
/// hours (empty: none), time zone, "typing…".
fn policy_card(s: &Session, org: &str, p: &crate::outbox::pacing::Policy) -> Markup {
    let lang = s.lang;
    let cap = |c: Option<i64>| c.map(|n| n.to_string()).unwrap_or_default();
    let secs = |ms: i64| {
        if ms % 1000 == 0 {
            (ms / 1000).to_string()
        } else {
            format!("{:.3}", ms as f64 / 1000.0)
        }
    };
    let (qs, qe) = p
        .quiet_hours
        .as_ref()
        .map(|q| (q.start.clone(), q.end.clone()))
        .unwrap_or_default();
    html! {
        section.card #policy-card {
            h2 { (lang.t("org.policy")) }
            form.grid #policy method="post" action={ "/ui/orgs/" (org) "/policy" } {
                input type="hidden" name="csrf" value=(s.csrf);
                label for="min_gap_s" { (lang.t("pol.min_gap")) }
                input #min_gap_s name="min_gap_s" type="number" min="0" max="3600" step="any" required value=(secs(p.min_gap_ms));
                label for="max_gap_s" { (lang.t("pol.max_gap")) }
                input #max_gap_s name="max_gap_s" type="number" min="0" max="3600" step="any" required value=(secs(p.max_gap_ms));
                label for="hourly_cap" { (lang.t("pol.hourly")) }
                input #hourly_cap name="hourly_cap" type="number" min="1" value=(cap(p.hourly_cap));
                label for="daily_cap" { (lang.t("pol.daily")) }
                input #daily_cap name="daily_cap" type="number" min="1" value=(cap(p.daily_cap));
                label for="new_contacts_per_day" { (lang.t("pol.new_contacts")) }
                input #new_contacts_per_day name="new_contacts_per_day" type="number" min="1" value=(cap(p.new_contacts_per_day));
                label for="quiet_start" { (lang.t("pol.quiet_start")) }
                input #quiet_start name="quiet_start" type="time" value=(qs);
                label for="quiet_end" { (lang.t("pol.quiet_end")) }
                input #quiet_end name="quiet_end" type="time" value=(qe);
                label for="timezone" { (lang.t("pol.timezone")) }
                input #timezone name="timezone" type="text" required value=(p.timezone) placeholder="America/Bogota";
                label for="typing" { (lang.t("pol.typing")) }
                input #typing name="typing" type="checkbox" value="on" checked[p.typing];
                button #save-policy type="submit" { (lang.t("pol.save")) }
            }
        }
    }
}

/// The org's webhook endpoints, each with its delivery counts and newest
/// deliveries (status, tries, last error), a failed or pending one with a
/// button that sends it again.
fn webhooks_card(s: &Session, org: &str, p: &OrgPage) -> Markup {
    let lang = s.lang;
    html! {
        section.card #webhooks-card {
            h2 { (lang.t("org.webhooks")) }
            @if p.webhooks.is_empty() {
                p #no-webhooks.muted { (lang.t("wh.none")) }
            }
            @for (w, recent) in &p.webhooks {
                div.webhook id={ "w-" (w.hook.id) } data-disabled=[w.hook.disabled.as_ref().map(|_| "yes")] {
                    p {
                        code { (w.hook.url) } " "
                        @if w.hook.disabled.is_some() {
                            span.badge.s-logged_out { (lang.t("wh.disabled")) }
                        } @else {
                            span.badge.s-connected { (lang.t("wh.active")) }
                        }
                    }
                    p.muted {
                        (lang.t("wh.delivered")) " " (w.delivered) " · "
                        (lang.t("wh.pending")) " " (w.pending) " · "
                        (lang.t("wh.failed")) " " (w.failed)
                    }
                    @if !recent.is_empty() {
                        div.table-wrap { table.deliveries {
                            thead { tr { th { (lang.t("org.when")) } th { (lang.t("wh.event")) } th { (lang.t("org.status")) } th { (lang.t("wh.attempts")) } th { (lang.t("wh.last_error")) } th {} } }
                            tbody {
                                @for d in recent {
                                    tr id={ "d-" (d.seq) } data-status=(d.status.as_str()) {
                                        td { time.at datetime=(rfc3339(d.created_ms)) { (rfc3339(d.created_ms)) } }
                                        td { (d.kind) }
                                        td { (lang.t(&format!("wh.{}", d.status.as_str()))) }
                                        td { (d.attempts) }
                                        td.text { (d.last_error.clone().unwrap_or_default()) }
                                        td {
                                            @if d.status != crate::store::webhooks::DeliveryStatus::Delivered && w.hook.disabled.is_none() {
                                                form.inline method="post" action={ "/ui/orgs/" (org) "/webhooks/" (w.hook.id) "/retry" } {
                                                    input type="hidden" name="csrf" value=(s.csrf);
                                                    input type="hidden" name="delivery" value=(d.seq);
                                                    button.link type="submit" { (lang.t("wh.retry")) }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        } }
                    }
                }
            }
        }
    }
}

/// What patients sent, newest first: a reply with the message of ours it
/// answers (the one it quotes, else our last one to that contact), a
/// reaction with the message it marks.
fn replies_card(lang: Lang, p: &OrgPage) -> Markup {
    html! {
        section.card #replies-card {
            h2 { (lang.t("org.replies")) }
            @if p.replies.is_empty() {
                p #no-replies.muted { (lang.t("org.no_replies")) }
            } @else {
                div.table-wrap { table #replies {
                    thead { tr { th { (lang.t("org.when")) } th { (lang.t("org.from")) } th { (lang.t("org.text")) } th { (lang.t("org.answers")) } } }
                    tbody {
                        @for r in &p.replies {
                            tr id={ "r-" (r.row.wa_id) } {
                                td { time.at datetime=(rfc3339(r.row.received_ms)) { (rfc3339(r.row.received_ms)) } }
                                td { "+" (r.row.from) }
                                td.text {
                                    @if r.row.reaction_to.is_some() { (lang.t("org.reacted")) " " }
                                    (r.row.text)
                                }
                                td.text {
                                    @if let Some(m) = &r.answers {
                                        span.answers data-message=(m.id) data-quoted=[r.row.in_reply_to.as_ref().map(|_| "yes")] { "“" (m.text) "”" }
                                    }
                                }
                            }
                        }
                    }
                } }
            }
        }
    }
}

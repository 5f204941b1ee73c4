//! `/v1/orgs/{org}/session…`: status, connect (QR or pairing code), the QR
//! itself (JSON, SVG, PNG), logout, reset and the recent state changes.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::error::{ApiError, Body};
use super::{org_for, AppState};
use crate::auth::Caller;
use crate::session::{Command, Handle, State as LinkState, StatusView};
use crate::store;

/// How long `connect` with a phone number waits for the pairing code.
const PAIR_CODE_WAIT: Duration = Duration::from_secs(30);

pub async fn view_with_queue(st: &AppState, org: &str, h: &Handle) -> StatusView {
    let mut v = h.view(org);
    let o = org.to_string();
    v.queued_messages = st
        .store
        .read(move |c| store::messages::count_queued(c, &o))
        .await
        .ok();
    v
}

pub async fn status(
    State(st): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Json<StatusView>, ApiError> {
    let (_, h) = org_for(&st, &caller, &org).await?;
    Ok(Json(view_with_queue(&st, &org, &h).await))
}

pub async fn command(h: &Handle, cmd: Command) -> Result<(), ApiError> {
    if h.send(cmd).await {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "session_stopped",
            "the session supervisor is not running",
        ))
    }
}

/// What `connect` started: pairing by QR / a reconnect (the status as it
/// stands), or a pairing code.
pub enum Connected {
    Started(StatusView),
    PairCode { code: String, expires_in_ms: u64 },
}

pub async fn connect(
    State(st): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let (row, h) = org_for(&st, &caller, &org).await?;
    let phone = body.opt_id("phone_number")?;
    Ok(match start_connect(&st, &row, &h, phone).await? {
        Connected::Started(v) => (StatusCode::ACCEPTED, Json(v)).into_response(),
        Connected::PairCode {
            code,
            expires_in_ms,
        } => Json(json!({"pair_code": code, "expires_in_ms": expires_in_ms})).into_response(),
    })
}

/// Start pairing or reconnect now; with `phone`, wait for the pairing code.
/// Shared by the API and the dashboard.
pub async fn start_connect(
    st: &AppState,
    row: &store::OrgRow,
    h: &Handle,
    phone: Option<String>,
) -> Result<Connected, ApiError> {
    let org = &row.id;
    let phone = match phone {
        None => None,
        Some(p) => Some(
            crate::phone::normalize(&p, row.default_country_code.as_deref())
                .map_err(|e| ApiError::unprocessable("invalid_phone", e.to_string()))?,
        ),
    };
    let Some(phone) = phone else {
        command(h, Command::Connect { pair_phone: None }).await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
        return Ok(Connected::Started(view_with_queue(st, org, h).await));
    };
    if h.snapshot().state == LinkState::Connected {
        return Err(ApiError::conflict(
            "already_linked",
            "this organization is already linked and connected",
        ));
    }
    let mut rx = h.status.clone();
    rx.borrow_and_update();
    command(
        h,
        Command::Connect {
            pair_phone: Some(phone),
        },
    )
    .await?;
    let deadline = tokio::time::Instant::now() + PAIR_CODE_WAIT;
    loop {
        let v = h.view(org);
        if let (Some(code), Some(ms)) = (v.pair_code.clone(), v.pair_code_expires_in_ms) {
            return Ok(Connected::PairCode {
                code,
                expires_in_ms: ms,
            });
        }
        if matches!(
            v.state,
            LinkState::NeedsQr | LinkState::Connected | LinkState::Banned | LinkState::Outdated
        ) {
            return Err(ApiError::conflict(
                "no_pair_code",
                format!("no pairing code could be obtained: {}", v.detail),
            ));
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => {}
            _ => {
                return Err(ApiError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "pair_code_timeout",
                    format!(
                        "WhatsApp did not hand out a pairing code within {} s; state: {}",
                        PAIR_CODE_WAIT.as_secs(),
                        v.detail
                    ),
                ))
            }
        }
    }
}

/// The QR code on offer now and its remaining life in ms; 409 `no_qr`
/// when none is.
pub fn current_qr(h: &Handle) -> Result<(String, u64), ApiError> {
    let snap = h.snapshot();
    let now = tokio::time::Instant::now();
    let Some(offer) = snap
        .qr
        .filter(|o| o.expires_at > now && snap.state == LinkState::Pairing)
    else {
        return Err(ApiError::conflict(
            "no_qr",
            format!(
                "no QR code is on offer now (state: {}). POST …/session/connect to start pairing.",
                snap.state.as_str()
            ),
        ));
    };
    let expires_in_ms = offer.expires_at.saturating_duration_since(now).as_millis() as u64;
    Ok((offer.code, expires_in_ms))
}

pub async fn qr(
    State(st): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (_, h) = org_for(&st, &caller, &org).await?;
    let (code, expires_in_ms) = current_qr(&h)?;
    match q.get("format").map(String::as_str) {
        None | Some("json") => {
            Ok(Json(json!({"qr": code, "expires_in_ms": expires_in_ms})).into_response())
        }
        Some("svg") => {
            let svg =
                crate::qr::svg(&code).map_err(|e| ApiError::internal("QR rendering failed", e))?;
            Ok((
                [
                    (header::CONTENT_TYPE, "image/svg+xml"),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                svg,
            )
                .into_response())
        }
        Some("png") => {
            let png =
                crate::qr::png(&code).map_err(|e| ApiError::internal("QR rendering failed", e))?;
            Ok((
                [
                    (header::CONTENT_TYPE, "image/png"),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                png,
            )
                .into_response())
        }
        Some(other) => Err(ApiError::unprocessable(
            "invalid_format",
            format!("unknown format '{other}'; use json, svg or png"),
        )),
    }
}

/// Order the supervisor to do `cmd`; 202 with the status as it stands.
async fn act(
    st: &AppState,
    caller: &Caller,
    org: &str,
    cmd: Command,
) -> Result<(StatusCode, Json<StatusView>), ApiError> {
    let (_, h) = org_for(st, caller, org).await?;
    command(&h, cmd).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(view_with_queue(st, org, &h).await),
    ))
}

pub async fn logout(
    State(st): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<(StatusCode, Json<StatusView>), ApiError> {
    act(&st, &caller, &org, Command::Logout).await
}

pub async fn reset(
    State(st): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<(StatusCode, Json<StatusView>), ApiError> {
    act(&st, &caller, &org, Command::Reset).await
}

/// The last 50 state changes with their reasons, newest first.
pub async fn history(
    State(st): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Json<Value>, ApiError> {
    org_for(&st, &caller, &org).await?;
    Ok(Json(json!({"changes": recent_changes(&st, &org).await?})))
}

/// The last 50 state changes (`at`, `state`, `detail`), newest first.
pub async fn recent_changes(st: &AppState, org: &str) -> Result<Vec<Value>, ApiError> {
    let o = org.to_string();
    let rows = st
        .store
        .read(move |c| store::events::latest(c, &o, "state", 50))
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| json!({"at": crate::session::status::rfc3339(r.ts_ms), "state": r.data["state"], "detail": r.data["detail"]}))
        .collect())
}

//! `/v1/orgs/{org}/session…`: status, connect (QR or pairing code), the QR
//! itself (JSON, SVG, PNG), logout, reset and the recent state changes.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::error::{ApiError, Body, PathParams, QueryMap};
use super::schema::{ConnectBody, QrFormat, RestoreBody};
use super::wire::{
    AsideJson, AsideList, HistoryJson, MemoryJson, PairCodeJson, QrJson, RestoredJson,
    StateChangeJson, StatusJson,
};
use crate::app::link::Linking;
use crate::app::{App, AppError, ErrorCode};
use crate::auth::Caller;

/// The link's status, with the reason for it.
#[utoipa::path(get, path = "/v1/orgs/{org}/session", tag = "session",
    responses((status = 200, description = "the status", body = StatusJson)))]
pub async fn status(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams(org): PathParams<String>,
) -> Result<Json<StatusJson>, ApiError> {
    Ok(Json(StatusJson::from(&app.status(&caller, &org).await?)))
}

/// Start pairing (QR), ask for a pairing code, or reconnect now.
///
/// Without a body (or with `{}`): 202 with the status once the org's
/// supervisor has acted. With `{"phone_number"}`: 200 with an 8-character
/// code to type on that phone.
#[utoipa::path(post, path = "/v1/orgs/{org}/session/connect", tag = "session",
    request_body(content = Option<ConnectBody>, description = "empty for a QR"),
    responses((status = 200, description = "a pairing code", body = PairCodeJson),
              (status = 202, description = "pairing or reconnecting", body = StatusJson),
              (status = 409, description = "`already_linked`, `no_pair_code`"),
              (status = 504, description = "`pair_code_timeout`")))]
pub async fn connect(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams(org): PathParams<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let phone = body.opt_phone("phone_number")?;
    Ok(match app.connect(&caller, &org, phone).await? {
        Linking::Started(s) => {
            (StatusCode::ACCEPTED, Json(StatusJson::from(s.as_ref()))).into_response()
        }
        Linking::PairCode {
            code,
            expires_in_ms,
        } => Json(PairCodeJson {
            pair_code: code,
            expires_in_ms,
        })
        .into_response(),
    })
}

/// The QR code on offer: its text as JSON, or an SVG or PNG image.
#[utoipa::path(get, path = "/v1/orgs/{org}/session/qr", tag = "session",
    params(("format" = inline(Option<QrFormat>), Query, description = "json (default), svg or png")),
    responses((status = 200, description = "the QR", content(
                  (QrJson = "application/json"),
                  (String = "image/svg+xml"),
                  (Vec<u8> = "image/png"))),
              (status = 409, description = "`no_qr`: none on offer")))]
pub async fn qr(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams(org): PathParams<String>,
    q: QueryMap,
) -> Result<Response, ApiError> {
    let (code, expires_in_ms) = app.qr(&caller, &org)?;
    let image = |kind: &'static str, bytes: Vec<u8>| {
        (
            [
                (header::CONTENT_TYPE, kind),
                (header::CACHE_CONTROL, "no-store"),
            ],
            bytes,
        )
            .into_response()
    };
    let failed = |e: String| ApiError(AppError::internal("QR rendering failed", e));
    match q.get("format") {
        None | Some("json") => Ok(Json(QrJson {
            qr: code,
            expires_in_ms,
        })
        .into_response()),
        Some("svg") => Ok(image(
            "image/svg+xml",
            crate::qr::svg(&code).map_err(failed)?.into_bytes(),
        )),
        Some("png") => Ok(image("image/png", crate::qr::png(&code).map_err(failed)?)),
        Some(other) => Err(ApiError::new(
            ErrorCode::InvalidFormat,
            format!("unknown format '{other}'; use json, svg or png"),
        )),
    }
}

/// Unlink from the phone; the credentials are moved aside.
#[utoipa::path(post, path = "/v1/orgs/{org}/session/logout", tag = "session",
    responses((status = 202, description = "logging out", body = StatusJson)))]
pub async fn logout(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams(org): PathParams<String>,
) -> Result<(StatusCode, Json<StatusJson>), ApiError> {
    let s = app.logout(&caller, &org).await?;
    Ok((StatusCode::ACCEPTED, Json(StatusJson::from(&s))))
}

/// Move the credentials aside and start a fresh pairing.
#[utoipa::path(post, path = "/v1/orgs/{org}/session/reset", tag = "session",
    responses((status = 202, description = "reset", body = StatusJson)))]
pub async fn reset(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams(org): PathParams<String>,
) -> Result<(StatusCode, Json<StatusJson>), ApiError> {
    let s = app.reset(&caller, &org).await?;
    Ok((StatusCode::ACCEPTED, Json(StatusJson::from(&s))))
}

/// The last 50 state changes with their reasons, newest first.
#[utoipa::path(get, path = "/v1/orgs/{org}/session/history", tag = "session",
    responses((status = 200, description = "the changes", body = HistoryJson)))]
pub async fn history(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams(org): PathParams<String>,
) -> Result<Json<HistoryJson>, ApiError> {
    let changes: Vec<StateChangeJson> = app
        .history(&caller, &org)
        .await?
        .iter()
        .map(StateChangeJson::from)
        .collect();
    Ok(Json(HistoryJson { changes }))
}

/// Copies of the org's credentials kept aside (admin token), newest first.
#[utoipa::path(get, path = "/v1/orgs/{org}/credentials", tag = "credentials",
    responses((status = 200, description = "the copies", body = AsideList)))]
pub async fn credentials(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams(org): PathParams<String>,
) -> Result<Json<AsideList>, ApiError> {
    let aside = app
        .aside_copies(&caller, &org)?
        .into_iter()
        .map(|k| AsideJson {
            name: k.name,
            reason: k.reason,
            at: k.at,
            bytes: k.bytes,
        })
        .collect();
    Ok(Json(AsideList { aside }))
}

/// Put a copy kept aside back as the org's credentials (admin token); the
/// current ones are set aside as `replaced`.
#[utoipa::path(post, path = "/v1/orgs/{org}/credentials/restore", tag = "credentials",
    request_body = RestoreBody,
    responses((status = 200, description = "restored; the org reconnects", body = RestoredJson)))]
pub async fn restore_credentials(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams(org): PathParams<String>,
    body: Body,
) -> Result<Json<RestoredJson>, ApiError> {
    let Some(name) = body.opt_str("name")? else {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            "'name' is required: the copy to restore (GET /v1/orgs/{org}/credentials lists them)",
        ));
    };
    let (replaced, status) = app.restore_credentials(&caller, &org, &name).await?;
    Ok(Json(RestoredJson {
        restored: name,
        replaced_aside: replaced,
        status: StatusJson::from(&status),
    }))
}

/// What the org's WhatsApp client holds in memory (admin token): the
/// library's own report, as text; `null` when no client is open.
#[utoipa::path(get, path = "/v1/orgs/{org}/debug/memory", tag = "credentials",
    responses((status = 200, description = "the report", body = MemoryJson)))]
pub async fn memory(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams(org): PathParams<String>,
) -> Result<Json<MemoryJson>, ApiError> {
    let report = app.memory_report(&caller, &org).await?;
    Ok(Json(MemoryJson { org, report }))
}

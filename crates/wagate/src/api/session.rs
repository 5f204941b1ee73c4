//! `/v1/orgs/{org}/session…`: status, connect (QR or pairing code), the QR
//! itself (JSON, SVG, PNG), logout, reset and the recent state changes.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::error::{ApiError, Body, PathParams, QueryMap};
use super::wire::{StateChangeJson, StatusJson};
use crate::app::link::Linking;
use crate::app::{App, AppError, ErrorCode};
use crate::auth::Caller;

pub async fn status(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams(org): PathParams<String>,
) -> Result<Json<StatusJson>, ApiError> {
    Ok(Json(StatusJson::from(&app.status(&caller, &org).await?)))
}

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
        } => Json(json!({"pair_code": code, "expires_in_ms": expires_in_ms})).into_response(),
    })
}

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
        None | Some("json") => {
            Ok(Json(json!({"qr": code, "expires_in_ms": expires_in_ms})).into_response())
        }
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

pub async fn logout(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams(org): PathParams<String>,
) -> Result<(StatusCode, Json<StatusJson>), ApiError> {
    let s = app.logout(&caller, &org).await?;
    Ok((StatusCode::ACCEPTED, Json(StatusJson::from(&s))))
}

pub async fn reset(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams(org): PathParams<String>,
) -> Result<(StatusCode, Json<StatusJson>), ApiError> {
    let s = app.reset(&caller, &org).await?;
    Ok((StatusCode::ACCEPTED, Json(StatusJson::from(&s))))
}

/// The last 50 state changes with their reasons, newest first.
pub async fn history(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams(org): PathParams<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let changes: Vec<StateChangeJson> = app
        .history(&caller, &org)
        .await?
        .iter()
        .map(StateChangeJson::from)
        .collect();
    Ok(Json(json!({ "changes": changes })))
}

/// Copies of the org's credentials kept aside (admin token).
pub async fn credentials(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams(org): PathParams<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let kept: Vec<serde_json::Value> = app
        .aside_copies(&caller, &org)?
        .into_iter()
        .map(|k| json!({"name": k.name, "reason": k.reason, "at": k.at, "bytes": k.bytes}))
        .collect();
    Ok(Json(json!({ "aside": kept })))
}

/// Put a copy kept aside back as the org's credentials (admin token); the
/// current ones are set aside as `replaced`.
pub async fn restore_credentials(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams(org): PathParams<String>,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Some(name) = body.opt_str("name")? else {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            "'name' is required: the copy to restore (GET /v1/orgs/{org}/credentials lists them)",
        ));
    };
    let (replaced, status) = app.restore_credentials(&caller, &org, &name).await?;
    Ok(Json(json!({
        "restored": name,
        "replaced_aside": replaced,
        "status": StatusJson::from(&status),
    })))
}

/// What the org's WhatsApp client holds in memory (admin token): the
/// library's own report, as text; `null` when no client is open.
pub async fn memory(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams(org): PathParams<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let report = app.memory_report(&caller, &org).await?;
    Ok(Json(json!({ "org": org, "report": report })))
}

//! `/v1/orgs/{org}/webhooks`: add (`POST {url, events?, secret?}`; 201 with
//! the secret, shown once), list, show, delete an endpoint; rotate its
//! secret; list its deliveries (`?status=&limit=&before=`); send one again
//! (`POST …/deliveries/{id}/retry`) or every one since a moment
//! (`POST …/replay {"since"}`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::error::{ApiError, Body, PathParams, QueryMap};
use crate::app::messages::Page;
use crate::app::timing;
use crate::app::webhooks::{NewWebhook, WebhookView};
use crate::app::{App, ErrorCode};
use crate::auth::Caller;
use crate::session::status::rfc3339;
use crate::store::webhooks::{Delivery, Webhook};

fn hook_json(w: &Webhook) -> Value {
    json!({
        "id": w.id,
        "url": w.url,
        "events": w.events,
        "disabled": w.disabled,
        "created_at": rfc3339(w.created_ms),
        "secret_rotated_until": w.prev_until_ms.map(rfc3339),
    })
}

fn view_json(v: &WebhookView) -> Value {
    let mut j = hook_json(&v.hook);
    j["deliveries"] = json!({"pending": v.pending, "delivered": v.delivered, "failed": v.failed});
    j
}

fn delivery_json(d: &Delivery) -> Value {
    json!({
        "id": format!("dlv_{}", d.seq),
        "event_id": format!("evt_{}", d.event),
        "type": d.kind,
        "status": d.status.as_str(),
        "attempts": d.attempts,
        "next_attempt_at": d.due_ms.map(rfc3339),
        "last_status_code": d.last_code,
        "last_error": d.last_error,
        "created_at": rfc3339(d.created_ms),
        "updated_at": rfc3339(d.updated_ms),
    })
}

/// `dlv_<n>` (or `<n>`) as the delivery's number.
fn delivery_seq(id: &str) -> Result<i64, ApiError> {
    id.strip_prefix("dlv_")
        .unwrap_or(id)
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::DeliveryNotFound,
                format!("'{id}' is not a delivery id (dlv_<number>)"),
            )
        })
}

pub async fn create(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams(org): PathParams<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let req = NewWebhook {
        url: body.opt_str("url")?,
        events: body.0.get("events").cloned(),
        secret: body.opt_str("secret")?,
    };
    let w = app.create_webhook(&caller, &org, req).await?;
    let mut j = hook_json(&w);
    j["secret"] = Value::String(w.secret.clone());
    Ok((StatusCode::CREATED, Json(j)).into_response())
}

pub async fn list(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams(org): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    let hooks = app.webhooks(&caller, &org).await?;
    Ok(Json(
        json!({"webhooks": hooks.iter().map(view_json).collect::<Vec<_>>()}),
    ))
}

pub async fn get_one(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams((org, id)): PathParams<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(view_json(&app.webhook(&caller, &org, &id).await?)))
}

pub async fn delete(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams((org, id)): PathParams<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    app.delete_webhook(&caller, &org, &id).await?;
    Ok(Json(json!({"deleted": id})))
}

pub async fn rotate(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams((org, id)): PathParams<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let w = app.rotate_webhook_secret(&caller, &org, &id).await?;
    let mut j = hook_json(&w);
    j["secret"] = Value::String(w.secret.clone());
    Ok(Json(j))
}

pub async fn deliveries(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams((org, id)): PathParams<(String, String)>,
    q: QueryMap,
) -> Result<Json<Value>, ApiError> {
    let limit = Page::parse(q.get("limit"), None)?.limit;
    let before = match q.get("before") {
        None => None,
        Some(b) => Some(delivery_seq(b).map_err(|_| {
            ApiError::new(
                ErrorCode::InvalidCursor,
                "before must be a delivery id (dlv_<number>)",
            )
        })?),
    };
    let rows = app
        .deliveries(&caller, &org, &id, q.get("status"), before, limit)
        .await?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|d| format!("dlv_{}", d.seq)))
        .flatten();
    Ok(Json(json!({
        "deliveries": rows.iter().map(delivery_json).collect::<Vec<_>>(),
        "next_before": next,
    })))
}

pub async fn retry(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams((org, id, delivery)): PathParams<(String, String, String)>,
) -> Result<Response, ApiError> {
    let seq = delivery_seq(&delivery)?;
    app.redeliver(&caller, &org, &id, Some(seq), None).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"queued": 1}))).into_response())
}

pub async fn replay(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams((org, id)): PathParams<(String, String)>,
    body: Body,
) -> Result<Response, ApiError> {
    let since = body.opt_when("since").ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidField,
            "since is required: an RFC 3339 time with its offset, or Unix milliseconds",
        )
    })?;
    let since = timing::read(&since, "since", ErrorCode::InvalidField)?;
    let n = app.redeliver(&caller, &org, &id, None, Some(since)).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"queued": n}))).into_response())
}

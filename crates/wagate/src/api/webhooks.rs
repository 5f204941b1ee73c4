//! `/v1/orgs/{org}/webhooks`: add (`POST {url, events?, secret?}`; 201 with
//! the secret, shown once), list, show, delete an endpoint; rotate its
//! secret; list its deliveries (`?status=&limit=&before=`); send one again
//! (`POST …/deliveries/{id}/retry`) or every one since a moment
//! (`POST …/replay {"since"}`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use super::error::{ApiError, Body, PathParams, QueryMap};
use super::schema::{DeliveryStatusName, NewWebhookBody, ReplayBody};
use super::wire::{
    Deleted, DeliveryJson, DeliveryPage, Queued, WebhookList, WebhookSecretJson, WebhookViewJson,
};
use crate::app::messages::Page;
use crate::app::timing;
use crate::app::webhooks::NewWebhook;
use crate::app::{App, ErrorCode};
use crate::auth::Caller;

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

/// Add a webhook endpoint; its secret is in this answer only.
#[utoipa::path(post, path = "/v1/orgs/{org}/webhooks", tag = "webhooks",
    request_body = NewWebhookBody,
    responses((status = 201, description = "added", body = WebhookSecretJson),
              (status = 409, description = "`too_many_webhooks`")))]
pub async fn create(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams(org): PathParams<String>,
    body: Body,
) -> Result<(StatusCode, Json<WebhookSecretJson>), ApiError> {
    let req = NewWebhook {
        url: body.opt_str("url")?,
        events: body.0.get("events").cloned(),
        secret: body.opt_str("secret")?,
    };
    let w = app.create_webhook(&caller, &org, req).await?;
    Ok((StatusCode::CREATED, Json(WebhookSecretJson::from(&w))))
}

/// The org's webhook endpoints, with their delivery counts.
#[utoipa::path(get, path = "/v1/orgs/{org}/webhooks", tag = "webhooks",
    responses((status = 200, description = "the endpoints", body = WebhookList)))]
pub async fn list(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams(org): PathParams<String>,
) -> Result<Json<WebhookList>, ApiError> {
    let hooks = app.webhooks(&caller, &org).await?;
    Ok(Json(WebhookList {
        webhooks: hooks.iter().map(WebhookViewJson::from).collect(),
    }))
}

/// One webhook endpoint.
#[utoipa::path(get, path = "/v1/orgs/{org}/webhooks/{id}", tag = "webhooks",
    responses((status = 200, description = "the endpoint", body = WebhookViewJson)))]
pub async fn get_one(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams((org, id)): PathParams<(String, String)>,
) -> Result<Json<WebhookViewJson>, ApiError> {
    Ok(Json(WebhookViewJson::from(
        &app.webhook(&caller, &org, &id).await?,
    )))
}

/// Delete a webhook endpoint with its deliveries.
#[utoipa::path(delete, path = "/v1/orgs/{org}/webhooks/{id}", tag = "webhooks",
    responses((status = 200, description = "deleted", body = Deleted)))]
pub async fn delete(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams((org, id)): PathParams<(String, String)>,
) -> Result<Json<Deleted>, ApiError> {
    app.delete_webhook(&caller, &org, &id).await?;
    Ok(Json(Deleted { deleted: id }))
}

/// A new secret, shown once; the old one keeps signing beside it for 24 h.
#[utoipa::path(post, path = "/v1/orgs/{org}/webhooks/{id}/rotate-secret", tag = "webhooks",
    responses((status = 200, description = "the endpoint with its new secret", body = WebhookSecretJson)))]
pub async fn rotate(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams((org, id)): PathParams<(String, String)>,
) -> Result<Json<WebhookSecretJson>, ApiError> {
    let w = app.rotate_webhook_secret(&caller, &org, &id).await?;
    Ok(Json(WebhookSecretJson::from(&w)))
}

/// The endpoint's deliveries, newest first.
#[utoipa::path(get, path = "/v1/orgs/{org}/webhooks/{id}/deliveries", tag = "webhooks",
    params(("status" = inline(Option<DeliveryStatusName>), Query, description = "only deliveries in this status"),
           ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "1–1000, default 100"),
           ("before" = Option<String>, Query, pattern = "^(dlv_)?[1-9][0-9]{0,17}$", description = "`next_before` of the previous page")),
    responses((status = 200, description = "a page", body = DeliveryPage)))]
pub async fn deliveries(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams((org, id)): PathParams<(String, String)>,
    q: QueryMap,
) -> Result<Json<DeliveryPage>, ApiError> {
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
    Ok(Json(DeliveryPage {
        deliveries: rows.iter().map(DeliveryJson::from).collect(),
        next_before: next,
    }))
}

/// Send one delivery again.
#[utoipa::path(post, path = "/v1/orgs/{org}/webhooks/{id}/deliveries/{delivery}/retry", tag = "webhooks",
    responses((status = 202, description = "queued", body = Queued),
              (status = 409, description = "`webhook_disabled`")))]
pub async fn retry(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams((org, id, delivery)): PathParams<(String, String, String)>,
) -> Result<(StatusCode, Json<Queued>), ApiError> {
    let seq = delivery_seq(&delivery)?;
    app.redeliver(&caller, &org, &id, Some(seq), None).await?;
    Ok((StatusCode::ACCEPTED, Json(Queued { queued: 1 })))
}

/// Send again every delivery made since a moment.
#[utoipa::path(post, path = "/v1/orgs/{org}/webhooks/{id}/replay", tag = "webhooks",
    request_body = ReplayBody,
    responses((status = 202, description = "queued", body = Queued),
              (status = 409, description = "`webhook_disabled`")))]
pub async fn replay(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams((org, id)): PathParams<(String, String)>,
    body: Body,
) -> Result<(StatusCode, Json<Queued>), ApiError> {
    let since = body.opt_when("since").ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidField,
            "since is required: an RFC 3339 time with its offset, or Unix milliseconds",
        )
    })?;
    let since = timing::read(&since, "since", ErrorCode::InvalidField)?;
    let n = app.redeliver(&caller, &org, &id, None, Some(since)).await?;
    Ok((StatusCode::ACCEPTED, Json(Queued { queued: n as u64 })))
}

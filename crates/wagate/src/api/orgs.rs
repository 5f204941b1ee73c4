//! `/v1/orgs`: create (admin; answers the org token once), list, show, delete.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::error::{ApiError, Body, PathParams};
use super::wire::OrgJson;
use crate::app::orgs::NewOrgRequest;
use crate::app::App;
use crate::auth::Caller;

pub async fn create(
    State(app): State<Arc<App>>,
    caller: Caller,
    body: Body,
) -> Result<(StatusCode, Json<OrgJson>), ApiError> {
    let req = NewOrgRequest {
        id: body.opt_id("id")?,
        name: body.opt_str("name")?,
        default_country_code: body.opt_id("default_country_code")?,
    };
    let (org, token) = app.create_org(&caller, req).await?;
    let mut out = OrgJson::from(&org);
    out.token = Some(token);
    Ok((StatusCode::CREATED, Json(out)))
}

pub async fn list(State(app): State<Arc<App>>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let orgs: Vec<OrgJson> = app
        .list_orgs(&caller)
        .await?
        .iter()
        .map(OrgJson::from)
        .collect();
    Ok(Json(json!({ "orgs": orgs })))
}

pub async fn get_one(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams(org): PathParams<String>,
) -> Result<Json<OrgJson>, ApiError> {
    Ok(Json(OrgJson::from(&app.get_org(&caller, &org).await?)))
}

pub async fn delete(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams(org): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    let row = app.delete_org(&caller, &org).await?;
    Ok(Json(json!({"deleted": row.id})))
}

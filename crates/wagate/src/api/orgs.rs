//! `/v1/orgs`: create (admin; answers the org token once), list, show, delete.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use super::error::{ApiError, Body, PathParams};
use super::schema::NewOrgBody;
use super::wire::{Deleted, OrgJson, OrgList};
use crate::app::orgs::NewOrgRequest;
use crate::app::App;
use crate::auth::Caller;

/// Create an organization (admin token).
///
/// The answer holds the org's token, shown only this once.
#[utoipa::path(post, path = "/v1/orgs", tag = "orgs", request_body = NewOrgBody,
    responses((status = 201, description = "created, with its `token`", body = OrgJson),
              (status = 409, description = "`org_exists`")))]
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

/// List organizations: every one for the admin token, itself for an org token.
#[utoipa::path(get, path = "/v1/orgs", tag = "orgs",
    responses((status = 200, description = "the organizations", body = OrgList)))]
pub async fn list(State(app): State<Arc<App>>, caller: Caller) -> Result<Json<OrgList>, ApiError> {
    let orgs: Vec<OrgJson> = app
        .list_orgs(&caller)
        .await?
        .iter()
        .map(OrgJson::from)
        .collect();
    Ok(Json(OrgList { orgs }))
}

/// One organization.
#[utoipa::path(get, path = "/v1/orgs/{org}", tag = "orgs",
    responses((status = 200, description = "the organization", body = OrgJson)))]
pub async fn get_one(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams(org): PathParams<String>,
) -> Result<Json<OrgJson>, ApiError> {
    Ok(Json(OrgJson::from(&app.get_org(&caller, &org).await?)))
}

/// Delete an organization (admin token).
///
/// Its event streams and dashboard sign-ins end at once and its credentials
/// are moved aside; an org created later with the same id starts empty.
#[utoipa::path(delete, path = "/v1/orgs/{org}", tag = "orgs",
    responses((status = 200, description = "deleted", body = Deleted)))]
pub async fn delete(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams(org): PathParams<String>,
) -> Result<Json<Deleted>, ApiError> {
    let row = app.delete_org(&caller, &org).await?;
    Ok(Json(Deleted {
        deleted: row.id.clone(),
    }))
}

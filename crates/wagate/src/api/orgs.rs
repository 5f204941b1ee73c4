//! `/v1/orgs`: create (admin; answers the org token once), list, show, delete.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::error::{ApiError, Body};
use super::{admin_only, org_for, AppState};
use crate::auth::{self, Caller};
use crate::session::status::rfc3339;
use crate::store::{self, OrgRow};

pub fn valid_org_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn org_json(row: &OrgRow, st: &AppState) -> Value {
    let snap = st.sessions.get(&row.id).map(|h| h.snapshot());
    json!({
        "id": row.id,
        "name": row.name,
        "default_country_code": row.default_country_code,
        "created_at": rfc3339(row.created_ms),
        "state": snap.as_ref().map(|s| s.state),
        "phone_number": snap.and_then(|s| s.phone_number),
    })
}

pub async fn create(
    State(st): State<AppState>,
    caller: Caller,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    admin_only(&caller)?;
    let id = body
        .opt_id("id")?
        .ok_or_else(|| ApiError::unprocessable("missing_id", "field 'id' is required"))?;
    if !valid_org_id(&id) {
        return Err(ApiError::unprocessable(
            "invalid_org_id",
            "org id must be 1-64 letters, digits, '-' or '_'",
        ));
    }
    let name = body.opt_str("name")?.unwrap_or_else(|| id.clone());
    let name = name.trim().to_string();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::unprocessable(
            "invalid_name",
            "name must be 1-200 characters",
        ));
    }
    let cc = body
        .opt_id("default_country_code")?
        .map(|c| c.trim_start_matches('+').to_string());
    if let Some(c) = &cc {
        if !crate::phone::valid_country_code(c) {
            return Err(ApiError::unprocessable(
                "invalid_country_code",
                "default_country_code must be 1-3 digits, e.g. \"57\"",
            ));
        }
    }
    let token = auth::generate("wgo_");
    let row = OrgRow {
        id: id.clone(),
        name,
        default_country_code: cc,
        token_hash: auth::hash_hex(&token),
        created_ms: store::now_ms(),
    };
    let r2 = row.clone();
    if !st.store.write(move |c| store::orgs::insert(c, &r2)).await? {
        return Err(ApiError::conflict(
            "org_exists",
            format!("organization '{id}' already exists"),
        ));
    }
    st.tokens.add_org(&row.id, &row.token_hash);
    st.sessions.add(&row.id);
    tracing::info!(org = %row.id, "organization created");
    let mut out = org_json(&row, &st);
    out["token"] = Value::String(token);
    Ok((StatusCode::CREATED, Json(out)))
}

pub async fn list(State(st): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let rows = st.store.read(store::orgs::list).await?;
    let orgs: Vec<Value> = rows
        .iter()
        .filter(|r| caller.may_access(&r.id))
        .map(|r| org_json(r, &st))
        .collect();
    Ok(Json(json!({ "orgs": orgs })))
}

pub async fn get_one(
    State(st): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (row, _) = org_for(&st, &caller, &org).await?;
    Ok(Json(org_json(&row, &st)))
}

pub async fn delete(
    State(st): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Json<Value>, ApiError> {
    admin_only(&caller)?;
    let (row, _) = org_for(&st, &caller, &org).await?;
    st.sessions.remove(&row.id, true).await;
    st.tokens.remove_org(&row.id);
    let id = row.id.clone();
    st.store.write(move |c| store::orgs::delete(c, &id)).await?;
    tracing::info!(org = %row.id, "organization deleted; credentials moved aside");
    Ok(Json(json!({"deleted": row.id})))
}

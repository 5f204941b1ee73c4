//! Several nodes: a request that acts on an org's link (connect, QR,
//! pairing code, logout, reset, credentials, contact look-ups, status,
//! deleting the org) is carried out by the node that owns the org. Which
//! routes those are is said where the routes are declared (`api::groups`,
//! `web::router`: `Bound`); this layer wraps them. Any node takes the request and, when the org is owned elsewhere, forwards
//! it unchanged to the owner's advertised address and hands its answer
//! back; a status read for an org whose owner stopped heartbeating is
//! answered here instead (`owner_silent`). A forwarded request carries
//! `Wagate-Forwarded-By` and is never forwarded again (the receiver
//! refuses a link action for an org it does not own:
//! `app::link::owned_here`).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{RawPathParams, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::{App, AppError, Bound, ErrorCode};
use crate::cluster::view::Route;

/// Marks a request one node forwarded to another.
pub const FORWARDED_BY: &str = "wagate-forwarded-by";
/// How long the owner may take to answer (a pairing code waits up to 30 s).
const ANSWER_WAIT: Duration = Duration::from_secs(40);
const CONNECT_WAIT: Duration = Duration::from_secs(2);

/// The middleware on every link-bound route (`route_layer`, so the route
/// matched and names its `{org}`): forward the request to the org's owner.
pub async fn to_owner(
    State((app, bound)): State<(Arc<App>, Bound)>,
    params: Result<RawPathParams, RawPathParamsRejection>,
    req: Request,
    next: Next,
) -> Response {
    let Some(cluster) = app.cluster().cloned() else {
        return next.run(req).await;
    };
    if req.headers().contains_key(FORWARDED_BY) {
        return next.run(req).await;
    }
    // A path that does not decode is the handler's to refuse (400 in the
    // error envelope), wherever the org is.
    let Some(org) = params.ok().and_then(|p| {
        p.iter()
            .find(|(name, _)| *name == "org")
            .map(|(_, v)| v.to_string())
    }) else {
        return next.run(req).await;
    };
    // An API request whose token this gateway does not know is answered
    // here (401): nobody makes a node dial another without a valid token.
    if req.uri().path().starts_with("/v1/") && !known_token(&app, &req) {
        return next.run(req).await;
    }
    match cluster.route(&org, app.org_row(&org).map(|r| r.inc)).await {
        Route::Here => next.run(req).await,
        // Its owner stopped heartbeating: this node's view says so
        // (`reconnecting`, `owner_silent`) rather than a 503 until another
        // node takes the org.
        Route::There { node, .. } | Route::Unreachable { node }
            if cluster.is_silent(&node) && bound == Bound::Status =>
        {
            next.run(req).await
        }
        Route::Unreachable { node } => unreachable(&org, &node, "its address is not known"),
        Route::There { node, url } => match send(&url, cluster.node(), req).await {
            Ok(r) => r,
            Err(why) => {
                tracing::warn!(org, owner = %node, error = %why, "cluster: the owning node does not answer");
                unreachable(&org, &node, &why)
            }
        },
    }
}

/// Whether the request's bearer token is one this gateway knows (any org's
/// or the admin's; whether it may act on the org is the owner's to say).
fn known_token(app: &App, req: &Request) -> bool {
    crate::api::bearer_token(req.headers()).is_ok_and(|t| app.identify(t).is_ok())
}

fn unreachable(org: &str, node: &str, why: &str) -> Response {
    crate::api::ApiError::from(AppError::new(
        ErrorCode::OwnerUnreachable,
        format!(
            "node '{node}' owns organization '{org}' and cannot be reached ({why}); if it is down, another node takes the org over when its lease lapses: ask again in a few seconds"
        ),
    ))
    .into_response()
}

/// One request to `base` (`http://host:port`), its answer streamed back.
async fn send(base: &str, me: &str, req: Request) -> Result<Response, String> {
    let to = crate::http_client::Base::parse(base)
        .map_err(|e| format!("the advertised address: {e}"))?;
    let authority = to.host_header();
    let mut sender = crate::http_client::dial(&to.host, to.port, to.https, CONNECT_WAIT).await?;
    let (mut parts, body) = req.into_parts();
    if let Ok(v) = HeaderValue::from_str(me) {
        parts.headers.insert(FORWARDED_BY, v);
    }
    let out = Request::from_parts(parts, body);
    let answer = tokio::time::timeout(ANSWER_WAIT, sender.send_request(out))
        .await
        .map_err(|_| format!("{authority} did not answer within 40 s"))?
        .map_err(|e| format!("{authority}: {e}"))?;
    Ok(answer.map(Body::new))
}

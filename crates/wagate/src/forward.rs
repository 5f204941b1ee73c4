//! Several nodes: a request that acts on an org's link (connect, QR,
//! pairing code, logout, reset, credentials, contact look-ups, status,
//! deleting the org) is carried out by the node that owns the org. Any
//! node takes the request and, when the org is owned elsewhere, forwards
//! it unchanged to the owner's advertised address and hands its answer
//! back; a status read for an org whose owner stopped heartbeating is
//! answered here instead (`owner_silent`). A forwarded request carries
//! `Wagate-Forwarded-By` and is never forwarded again (the receiver
//! refuses a link action for an org it does not own:
//! `app::link::owned_here`).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;

use crate::app::{App, AppError, ErrorCode};
use crate::cluster::view::Route;

/// Marks a request one node forwarded to another.
pub const FORWARDED_BY: &str = "wagate-forwarded-by";
/// How long the owner may take to answer (a pairing code waits up to 30 s).
const ANSWER_WAIT: Duration = Duration::from_secs(40);
const CONNECT_WAIT: Duration = Duration::from_secs(2);

/// The org a request acts on through its link, if it does.
pub fn owner_bound<'p>(method: &Method, path: &'p str) -> Option<&'p str> {
    if let Some(rest) = path.strip_prefix("/v1/orgs/") {
        let (org, tail) = rest.split_once('/').unwrap_or((rest, ""));
        let first = tail.split('/').next().unwrap_or("");
        let bound = match first {
            "" => method == Method::DELETE,
            "session" | "contacts" | "credentials" | "debug" => true,
            _ => false,
        };
        return (bound && !org.is_empty()).then_some(org);
    }
    if let Some(rest) = path.strip_prefix("/ui/orgs/") {
        let (org, tail) = rest.split_once('/').unwrap_or((rest, ""));
        let bound = matches!(
            tail,
            "" | "qr.svg" | "connect" | "pair-code" | "logout" | "reset"
        );
        return (bound && !org.is_empty()).then_some(org);
    }
    None
}

/// Whether the request only reads the org's link status (the API's
/// `GET …/session`, the dashboard's org page), which any node can answer
/// from the owners' recorded events.
fn reads_status(method: &Method, path: &str) -> bool {
    if method != Method::GET {
        return false;
    }
    let org_only = |rest: &str| !rest.is_empty() && !rest.contains('/');
    path.strip_prefix("/v1/orgs/")
        .and_then(|r| r.strip_suffix("/session"))
        .is_some_and(org_only)
        || path.strip_prefix("/ui/orgs/").is_some_and(org_only)
}

/// The middleware: forward an org-bound request to the org's owner.
pub async fn to_owner(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let Some(cluster) = app.cluster().cloned() else {
        return next.run(req).await;
    };
    if req.headers().contains_key(FORWARDED_BY) {
        return next.run(req).await;
    }
    let Some(org) = owner_bound(req.method(), req.uri().path()).map(str::to_string) else {
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
            if cluster.is_silent(&node) && reads_status(req.method(), req.uri().path()) =>
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
    let authority = base
        .strip_prefix("http://")
        .map(|r| r.trim_end_matches('/'))
        .ok_or_else(|| format!("the advertised address {base} is not http://host:port"))?;
    let stream = tokio::time::timeout(CONNECT_WAIT, tokio::net::TcpStream::connect(authority))
        .await
        .map_err(|_| format!("no connection to {authority} within 2 s"))?
        .map_err(|e| format!("cannot connect to {authority}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP with {authority}: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_requests_go_to_the_owner() {
        let get = Method::GET;
        let post = Method::POST;
        let del = Method::DELETE;
        assert_eq!(owner_bound(&get, "/v1/orgs/a/session"), Some("a"));
        assert_eq!(owner_bound(&post, "/v1/orgs/a/session/connect"), Some("a"));
        assert_eq!(owner_bound(&get, "/v1/orgs/a/session/qr"), Some("a"));
        assert_eq!(owner_bound(&get, "/v1/orgs/a/contacts/573001"), Some("a"));
        assert_eq!(owner_bound(&del, "/v1/orgs/a"), Some("a"));
        assert_eq!(owner_bound(&get, "/ui/orgs/a/qr.svg"), Some("a"));
        assert_eq!(owner_bound(&post, "/ui/orgs/a/connect"), Some("a"));
        // Served from the database by any node.
        assert_eq!(owner_bound(&get, "/v1/orgs/a"), None);
        assert_eq!(owner_bound(&post, "/v1/orgs/a/messages"), None);
        assert_eq!(owner_bound(&get, "/v1/orgs/a/events"), None);
        assert_eq!(owner_bound(&get, "/v1/orgs/a/webhooks"), None);
        assert_eq!(owner_bound(&post, "/ui/orgs/a/send"), None);
        assert_eq!(owner_bound(&get, "/ui/orgs/a/events"), None);
        assert_eq!(owner_bound(&get, "/v1/orgs"), None);
        assert_eq!(owner_bound(&get, "/v1/orgs/"), None);
    }

    #[test]
    fn which_requests_only_read_the_status() {
        let get = Method::GET;
        assert!(reads_status(&get, "/v1/orgs/a/session"));
        assert!(reads_status(&get, "/ui/orgs/a"));
        assert!(!reads_status(&Method::POST, "/v1/orgs/a/session"));
        assert!(!reads_status(&Method::DELETE, "/v1/orgs/a/session"));
        assert!(!reads_status(&get, "/v1/orgs/a/session/qr"));
        assert!(!reads_status(&get, "/v1/orgs/a/b/session"));
        assert!(!reads_status(&get, "/v1/orgs//session"));
        assert!(!reads_status(&get, "/ui/orgs/a/qr.svg"));
        assert!(!reads_status(&get, "/ui/orgs/"));
    }
}

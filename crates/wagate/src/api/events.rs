//! `GET /v1/orgs/{org}/events`: Server-Sent Events of state changes, QR codes
//! and message status. Each event's `id` is its sequence number in the event
//! log; a client reconnecting with `Last-Event-ID` first gets what it missed.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::error::ApiError;
use super::{org_for, AppState};
use crate::auth::Caller;
use crate::store;

/// Most events replayed after a reconnect.
const REPLAY: i64 = 1000;

fn sse(seq: i64, kind: &str, data: &serde_json::Value) -> Event {
    Event::default()
        .id(seq.to_string())
        .event(kind)
        .data(data.to_string())
}

pub async fn stream(
    State(st): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    open(st, &caller, org, last_event_id(&headers)).await
}

/// The request's `Last-Event-ID`, if it is a sequence number.
pub fn last_event_id(headers: &HeaderMap) -> Option<i64> {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
}

/// The event stream of `org` for `caller` (authorized here), resuming after
/// event `after` (a fresh stream starts with a `status` snapshot instead).
/// Shared by the API and the dashboard.
pub async fn open(
    st: AppState,
    caller: &Caller,
    org: String,
    after: Option<i64>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>> + use<>>, ApiError> {
    org_for(&st, caller, &org).await?;
    // Subscribe before replaying so nothing falls between the two.
    let mut live = st.hub.subscribe();
    let backlog = match after {
        Some(a) => {
            let o = org.clone();
            st.store
                .read(move |c| store::events::after(c, &o, a, REPLAY))
                .await?
        }
        None => vec![],
    };
    let h = st.sessions.get(&org);
    let s = async_stream::stream! {
        let mut last = after.unwrap_or(0);
        // A fresh subscriber first sees where the link stands now.
        if after.is_none() {
            if let Some(h) = &h {
                let v = h.view(&org);
                yield Ok(Event::default().event("status").data(serde_json::to_string(&v).unwrap_or_default()));
            }
        }
        for e in backlog {
            last = e.seq;
            yield Ok(sse(e.seq, &e.kind, &e.data));
        }
        loop {
            match live.recv().await {
                Ok(e) if e.org == org && e.seq > last => {
                    last = e.seq;
                    yield Ok(sse(e.seq, &e.kind, &e.data));
                }
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => {
                    yield Ok(Event::default().event("lagged").data(format!("{{\"missed\":{n}}}")));
                }
                Err(RecvError::Closed) => break,
            }
        }
    };
    Ok(Sse::new(s).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

//! `GET /v1/orgs/{org}/events`: the org's event stream as Server-Sent Events.
//! Each event's `id` is its sequence number in the event log; a client
//! reconnecting with `Last-Event-ID` first gets what it missed. The stream
//! ends when the org is deleted or the gateway stops.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use serde_json::json;

use super::error::{ApiError, PathParams};
use super::schema::StreamEvent;
use super::wire::{event_data, StatusJson};
use crate::app::events::StreamItem;
use crate::app::App;
use crate::auth::Caller;

/// The request's `Last-Event-ID`, if it is a sequence number.
pub fn last_event_id(headers: &HeaderMap) -> Option<i64> {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|n| *n >= 0)
}

fn render(item: StreamItem) -> Event {
    match item {
        StreamItem::Status(s) => Event::default()
            .event("status")
            .data(serde_json::to_string(&StatusJson::from(&*s)).unwrap_or_default()),
        StreamItem::Event(e) => Event::default()
            .id(e.seq.to_string())
            .event(&e.kind)
            .data(event_data(&e).to_string()),
        StreamItem::Lagged { missed } => Event::default()
            .event("lagged")
            .data(json!({ "missed": missed }).to_string()),
    }
}

/// The org's events as Server-Sent Events.
///
/// First a `status` event with the current status, then each event as it
/// happens (`id` = its sequence number). Reconnect with `Last-Event-ID` to
/// get what was missed first. A comment every 15 s keeps proxies open.
#[utoipa::path(get, path = "/v1/orgs/{org}/events", tag = "events",
    params(("Last-Event-ID" = Option<String>, Header, description = "the last event's `id` the client saw (a sequence number; anything else is ignored)")),
    responses((status = 200, description = "a stream that ends when the org is deleted or the gateway stops",
        content_type = "text/event-stream", body = StreamEvent)))]
pub async fn stream(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParams(org): PathParams<String>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let items = app.events(&caller, &org, last_event_id(&headers)).await?;
    Ok(Sse::new(items.map(|i| Ok(render(i))))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

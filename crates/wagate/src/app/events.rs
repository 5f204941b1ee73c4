//! An org's event stream, as data for the surfaces to render: the status
//! first (a fresh stream) or the events after a sequence number (a resumed
//! one), then committed events as they are committed. A subscriber that falls
//! behind is told it lagged and catches up from the event log, so it misses
//! nothing. The stream ends when the org is deleted or the gateway stops.

use futures::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::{App, AppError};
use crate::auth::Caller;
use crate::session::Status;
use crate::store::{self, EventRow, Store};

/// Events read from the log per query when replaying.
const REPLAY_PAGE: i64 = 1000;

pub enum StreamItem {
    /// Where the link stands now (a fresh stream's first item).
    Status(Box<Status>),
    /// One committed event.
    Event(EventRow),
    /// The live feed outran this subscriber by `missed` events (of all orgs);
    /// what this org missed follows from the log.
    Lagged { missed: u64 },
}

async fn replay(store: &Store, inc: i64, org: &str, after: i64) -> Vec<EventRow> {
    let org = org.to_string();
    store
        .read(move |c| store::events::after(c, inc, &org, after, REPLAY_PAGE))
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "event replay failed");
            Vec::new()
        })
}

impl App {
    /// The sequence number of the org's newest event (0 if none).
    pub async fn last_event(&self, caller: &Caller, org: &str) -> Result<i64, AppError> {
        let a = self.authorize(caller, org)?;
        let inc = a.row.inc;
        Ok(self
            .store
            .read(move |c| store::events::last_seq(c, inc))
            .await?)
    }

    /// The event stream of `org`, resuming after event `after` (a fresh
    /// stream starts with the status instead).
    pub async fn events(
        &self,
        caller: &Caller,
        org: &str,
        after: Option<i64>,
    ) -> Result<impl Stream<Item = StreamItem> + Send + 'static, AppError> {
        let a = self.authorize(caller, org)?;
        // Subscribe before reading anything, so nothing falls in between.
        let mut live = self.store.subscribe();
        let status = match after {
            None => Some(self.status_of(&a).await),
            Some(_) => None,
        };
        let scope = self.scope(a.row.inc);
        let store = self.store.clone();
        let (inc, id) = (a.row.inc, a.row.id.clone());
        Ok(async_stream::stream! {
            let mut last = after.unwrap_or(0);
            if let Some(s) = status {
                yield StreamItem::Status(Box::new(s));
            }
            let mut catch_up = after.is_some();
            loop {
                while catch_up {
                    let page = replay(&store, inc, &id, last).await;
                    catch_up = page.len() as i64 == REPLAY_PAGE;
                    for e in page {
                        last = e.seq;
                        yield StreamItem::Event(e);
                    }
                }
                let next = tokio::select! {
                    _ = scope.cancelled() => break,
                    r = live.recv() => r,
                };
                match next {
                    Ok(e) if e.inc == inc && e.seq > last => {
                        last = e.seq;
                        yield StreamItem::Event(e);
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(missed)) => {
                        yield StreamItem::Lagged { missed };
                        catch_up = true;
                    }
                    Err(RecvError::Closed) => break,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use serde_json::json;

    use super::StreamItem;
    use crate::app::orgs::NewOrgRequest;
    use crate::auth::Caller;

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_told_and_misses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let app = crate::app::test_app(dir.path());
        let store = app.store().clone();
        let (org, _) = app
            .create_org(
                &Caller::Admin,
                NewOrgRequest {
                    id: Some("4".into()),
                    name: None,
                    default_country_code: None,
                },
            )
            .await
            .unwrap();
        let inc = org.row.inc;
        let start = app.last_event(&Caller::Admin, "4").await.unwrap();
        let stream = app.events(&Caller::Admin, "4", Some(start)).await.unwrap();
        tokio::pin!(stream);
        let write = |from: usize, n: usize| {
            let store = store.clone();
            async move {
                for chunk in (from..from + n).step_by(500) {
                    let end = (chunk + 500).min(from + n);
                    store
                        .write(move |tx| {
                            for i in chunk..end {
                                tx.record_event(inc, "4", "test", json!({ "n": i }))?;
                            }
                            Ok(())
                        })
                        .await
                        .unwrap();
                }
            }
        };
        async fn read(
            mut stream: std::pin::Pin<&mut impl futures::Stream<Item = StreamItem>>,
            want: usize,
            got: &mut Vec<usize>,
            lagged: &mut bool,
        ) {
            while got.len() < want {
                match tokio::time::timeout(std::time::Duration::from_secs(10), stream.next())
                    .await
                    .expect("the stream stalled")
                    .expect("the stream ended")
                {
                    StreamItem::Event(e) if e.kind == "test" => {
                        got.push(e.data["n"].as_u64().unwrap() as usize)
                    }
                    StreamItem::Event(_) => {}
                    StreamItem::Lagged { .. } => *lagged = true,
                    StreamItem::Status(_) => panic!("a resumed stream starts with no status"),
                }
            }
        }
        let (mut got, mut lagged) = (Vec::new(), false);
        // A reader keeping up.
        write(0, 100).await;
        read(stream.as_mut(), 100, &mut got, &mut lagged).await;
        assert!(!lagged);
        // Then far more than the live feed holds, while nobody reads.
        let total = 100 + crate::store::LIVE_EVENTS * 3;
        write(100, total - 100).await;
        read(stream.as_mut(), total, &mut got, &mut lagged).await;
        assert!(lagged, "the subscriber was told it lagged");
        assert_eq!(
            got,
            (0..total).collect::<Vec<_>>(),
            "every event, once, in order"
        );
    }
}

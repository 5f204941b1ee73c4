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

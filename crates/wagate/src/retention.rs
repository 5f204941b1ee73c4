//! Retention: events older than `--retention-days` are deleted, with the
//! webhook deliveries made for them (delivered or failed), an hour apart and
//! in small batches so that the one writer keeps serving sends. An event
//! whose delivery is still pending stays until it is delivered or fails.
//! Messages and inbound messages are kept: they are the org's record.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::{self, events, Store, StoreError};

/// Events deleted per transaction.
const BATCH: i64 = 2_000;
/// The first pass, after start-up has settled; then one an hour.
const FIRST: Duration = Duration::from_secs(60);
const EVERY: Duration = Duration::from_secs(3_600);

/// Delete what is older than `keep_ms`; how many events went.
pub async fn prune(store: &Store, keep_ms: i64) -> Result<usize, StoreError> {
    let before = store::now_ms() - keep_ms;
    let mut total = 0;
    loop {
        let n = store
            .write(move |tx| events::prune(tx, before, BATCH))
            .await?;
        total += n;
        if (n as i64) < BATCH {
            return Ok(total);
        }
        // Let sends and acks through between batches.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The hourly pass, until `stop` (a pass in progress ends between batches).
pub async fn run(store: Store, keep_days: u64, stop: CancellationToken) {
    let keep_ms = (keep_days as i64).saturating_mul(86_400_000);
    let mut wait = FIRST;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = EVERY;
        tokio::select! {
            _ = stop.cancelled() => return,
            r = prune(&store, keep_ms) => match r {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    events = n,
                    keep_days,
                    "deleted events (and their webhook deliveries) past the retention time"
                ),
                Err(StoreError::Closed) => return,
                Err(e) => {
                    tracing::error!(error = %e, "cannot delete old events; trying again in an hour")
                }
            },
        }
    }
}

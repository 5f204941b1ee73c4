//! The one timer for scheduled sends, for every org: it sleeps until the next
//! `send_at` or `send_before` in the table (or until told that one moved
//! earlier), then in one transaction moves every due message to `queued`
//! and every message whose deadline passed to `expired`, each with its
//! event, and wakes the dispatchers of the orgs that got work. No task and
//! no poll per message; a gateway that was down at `send_at` does the
//! overdue work on its first pass.

use std::collections::{BTreeSet, HashMap};
use std::sync::Weak;
use std::time::Duration;

use tokio::sync::Notify;

use super::Outbox;
use crate::store::{self, MessageRow, MessageStatus, Store, Tx};

/// Most messages moved per transaction (the next batch follows at once).
const BATCH: i64 = 500;
/// Longest sleep: the wall clock can be set back or forward under us, so the
/// timer re-reads the next deadline at least this often.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// What one pass did.
struct Pass {
    /// Incarnations that got newly queued messages.
    woken: BTreeSet<i64>,
    /// A batch was full: run again at once.
    more: bool,
}

pub(super) async fn run(store: Store, outbox: Weak<Outbox>, kick: std::sync::Arc<Notify>) {
    loop {
        let now = store::now_ms();
        match store.write(move |tx| pass(tx, now)).await {
            Ok(p) => {
                if let Some(o) = outbox.upgrade() {
                    p.woken.iter().for_each(|inc| o.wake_inc(*inc));
                }
                if p.more {
                    continue;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "scheduler pass failed; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        }
        let next = store.read(store::messages::next_deadline).await;
        let wait = match next {
            Ok(Some(at)) => Duration::from_millis((at - store::now_ms()).max(0) as u64),
            Ok(None) => MAX_SLEEP,
            Err(e) => {
                tracing::error!(error = %e, "scheduler cannot read the next due time");
                Duration::from_secs(1)
            }
        }
        .min(MAX_SLEEP);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = kick.notified() => {}
        }
    }
}

fn pass(tx: &mut Tx, now: i64) -> crate::store::DbResult<Pass> {
    let mut woken = BTreeSet::new();
    // Org ids by incarnation, looked up once per pass.
    let mut ids: HashMap<i64, Option<String>> = HashMap::new();
    let mut moved = |tx: &mut Tx, row: &MessageRow| -> crate::store::DbResult<()> {
        let id = match ids.get(&row.inc) {
            Some(id) => id.clone(),
            None => {
                let id = store::orgs::id_of(tx, row.inc)?;
                ids.insert(row.inc, id.clone());
                id
            }
        };
        match id {
            Some(org) => announce(tx, &org, row),
            None => Ok(()),
        }
    };
    // Deadlines first: a message due and already past its deadline is never sent.
    let overdue = store::messages::overdue(tx, now, BATCH)?;
    let mut more = overdue.len() as i64 == BATCH;
    for m in overdue {
        let note = (m.attempts > 0).then_some(
            "send_before passed while its send waited for WhatsApp's ack; that earlier attempt may still arrive",
        );
        if let Some(row) =
            store::messages::end(tx, m.seq, MessageStatus::Expired, note, store::now_ms())?
        {
            moved(tx, &row)?;
        }
    }
    let due = store::messages::due(tx, now, BATCH)?;
    more |= due.len() as i64 == BATCH;
    for m in due {
        if let Some(row) = store::messages::enqueue(tx, m.seq, store::now_ms())? {
            woken.insert(row.inc);
            moved(tx, &row)?;
        }
    }
    Ok(Pass { woken, more })
}

/// The `message.status` event of a scheduled message that moved, in org `org`.
pub(super) fn announce(tx: &mut Tx, org: &str, row: &MessageRow) -> crate::store::DbResult<()> {
    tracing::debug!(org = %org, id = %row.id, status = row.status.as_str(), "scheduled message moved");
    crate::events::emit_status(tx, org, row)?;
    Ok(())
}

//! The durable send path. `accept` writes a message to SQLite (group commit),
//! with its `message.status` event in the same transaction, before anything
//! touches the network; a dispatcher per linked org sends queued messages in
//! acceptance order while the link is up; acks and receipts, applied in
//! batches by one update task, move messages forward (`queued → sent →
//! delivered → read`, or `failed`), each move with its event.
//!
//! Scheduled sends wait as `scheduled` until the one timer (`schedule.rs`)
//! queues them; a cancel or a new `send_at` is written here, with its event.
//!
//! Invariants: a message's WhatsApp id is fixed when it is accepted, so a
//! message whose send started but was never acked (crash, dropped link) is
//! re-sent with the same id and the recipient sees it once; a message leaves
//! `queued` only on the server's ack, a permanent refusal, or — before any
//! send was started — a cancel or its `send_before` passing; a send starts
//! only after a write that checks the message is still `queued` and in time.

pub mod pacing;
mod schedule;

use pacing::{Pacing, Policy};
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

use crate::engine::{self, Engine, EngineEvent, ReceiptKind, SendFailure};
use crate::session::{LinkHooks, OrgRef};
use crate::store::messages::Inserted;
use crate::store::{self, MessageRow, MessageStatus, NewMessage, Store, StoreError, Tx};

/// Messages read per dispatcher query.
const PAGE: i64 = 200;
/// Most acks and receipts applied in one transaction.
const UPDATE_BATCH: usize = 512;
/// Queued messages an estimate of leaving looks through (later ones get none).
const ETA_HORIZON: i64 = 10_000;

struct Link {
    wake: Arc<Notify>,
    task: Option<JoinHandle<()>>,
}

type Update = (OrgRef, EngineEvent);

pub struct Outbox {
    store: Store,
    links: Mutex<HashMap<i64, Link>>,
    updates: Mutex<Option<mpsc::UnboundedSender<Update>>>,
    updater: Mutex<Option<JoinHandle<()>>>,
    /// Tells the scheduler that a due time may have moved earlier.
    kick: Arc<Notify>,
    scheduler: Mutex<Option<JoinHandle<()>>>,
    pacer: Arc<Pacer>,
}

/// Each org's pacing, read from its stored policy (or the server's default)
/// once and kept until the policy changes.
pub struct Pacer {
    store: Store,
    default: Policy,
    cache: Mutex<HashMap<i64, Arc<Pacing>>>,
}

impl Pacer {
    /// The org's policy: the one it set, else the server's default.
    pub async fn policy(&self, inc: i64) -> Result<Policy, StoreError> {
        let body = self
            .store
            .read(move |c| store::policies::get(c, inc))
            .await?;
        Ok(body
            .and_then(|b| serde_json::from_str::<Policy>(&b).ok())
            .unwrap_or_else(|| self.default.clone()))
    }

    async fn pacing(&self, inc: i64) -> Arc<Pacing> {
        if let Some(p) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&inc)
        {
            return p.clone();
        }
        let policy = match self.policy(inc).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(inc, error = %e, "sending policy unreadable; using the default");
                self.default.clone()
            }
        };
        let pacing = Arc::new(policy.pacing().unwrap_or_else(|(field, why)| {
            tracing::warn!(inc, field, %why, "stored sending policy unusable; sending unpaced");
            Pacing::none()
        }));
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(inc, pacing.clone());
        pacing
    }
}

/// When a message is to leave, and until when it may.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timing {
    pub send_at_ms: Option<i64>,
    pub send_before_ms: Option<i64>,
}

/// What `cancel` or `reschedule` found.
#[derive(Debug)]
pub enum Change {
    Done(MessageRow),
    /// Not in a state that allows it (the row as it is).
    Refused(MessageRow),
    NotFound,
}

impl Outbox {
    /// The outbox, with `default` as the sending policy of orgs that set none.
    pub fn start(store: Store, default: Policy) -> Arc<Outbox> {
        let (updates, rx) = mpsc::unbounded_channel();
        let updater = tokio::spawn(update_loop(store.clone(), rx));
        let kick = Arc::new(Notify::new());
        let outbox = Arc::new(Outbox {
            store: store.clone(),
            links: Mutex::new(HashMap::new()),
            updates: Mutex::new(Some(updates)),
            updater: Mutex::new(Some(updater)),
            kick: kick.clone(),
            scheduler: Mutex::new(None),
            pacer: Arc::new(Pacer {
                store: store.clone(),
                default,
                cache: Mutex::new(HashMap::new()),
            }),
        });
        let task = tokio::spawn(schedule::run(store, Arc::downgrade(&outbox), kick));
        *outbox.scheduler.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
        outbox
    }

    /// Accept a message durably, with its `queued` (or `scheduled`) event.
    /// With an idempotency key this org used before, nothing is written and
    /// the first message comes back as `Inserted::Existing`.
    pub async fn accept(
        &self,
        org: &OrgRef,
        phone: String,
        text: String,
        idem_key: Option<String>,
        timing: Timing,
    ) -> Result<Inserted, StoreError> {
        let m = NewMessage {
            id: format!("msg_{}", uuid::Uuid::new_v4().simple()),
            inc: org.inc,
            phone,
            text,
            wa_id: engine::new_wa_id(),
            idem_key,
            now_ms: store::now_ms(),
            send_at_ms: timing.send_at_ms,
            send_before_ms: timing.send_before_ms,
        };
        let id = org.id.clone();
        let inserted = self
            .store
            .write(move |tx| {
                let out = store::messages::insert(tx, &m)?;
                if let Inserted::New(row) = &out {
                    tx.emit(
                        row.inc,
                        &id,
                        "message.status",
                        json!({"id": row.id, "status": row.status.as_str(), "to": row.to}),
                    )?;
                }
                Ok(out)
            })
            .await?;
        if let Inserted::New(row) = &inserted {
            if row.status == MessageStatus::Scheduled || row.send_before_ms.is_some() {
                self.kick.notify_one();
            }
            if row.status == MessageStatus::Queued {
                self.wake_inc(org.inc);
            }
        }
        Ok(inserted)
    }

    /// Cancel a message not yet handed to WhatsApp (`scheduled`, or `queued`
    /// with no send started).
    pub async fn cancel(&self, org: &OrgRef, id: &str) -> Result<Change, StoreError> {
        let (o, id) = (org.clone(), id.to_string());
        self.store
            .write(move |tx| {
                let Some(row) = store::messages::get(tx, o.inc, &id)? else {
                    return Ok(Change::NotFound);
                };
                let cancelable = row.status == MessageStatus::Scheduled
                    || (row.status == MessageStatus::Queued && row.attempts == 0);
                if !cancelable {
                    return Ok(Change::Refused(row));
                }
                match store::messages::end(
                    tx,
                    row.seq,
                    MessageStatus::Canceled,
                    None,
                    store::now_ms(),
                )? {
                    Some(done) => {
                        schedule::announce(tx, &o.id, &done)?;
                        Ok(Change::Done(done))
                    }
                    None => Ok(Change::Refused(row)),
                }
            })
            .await
    }

    /// Give a scheduled message a new `send_at` (and `send_before`).
    pub async fn reschedule(
        &self,
        org: &OrgRef,
        id: &str,
        timing: Timing,
    ) -> Result<Change, StoreError> {
        let (o, id) = (org.clone(), id.to_string());
        let now = store::now_ms();
        let changed = self
            .store
            .write(move |tx| {
                let Some(row) = store::messages::get(tx, o.inc, &id)? else {
                    return Ok(Change::NotFound);
                };
                if row.status != MessageStatus::Scheduled {
                    return Ok(Change::Refused(row));
                }
                let at = timing.send_at_ms.or(row.send_at_ms).unwrap_or(now);
                let before = timing.send_before_ms.or(row.send_before_ms);
                match store::messages::reschedule(tx, row.seq, at, before, now)? {
                    Some(done) => Ok(Change::Done(done)),
                    None => Ok(Change::Refused(row)),
                }
            })
            .await?;
        if matches!(changed, Change::Done(_)) {
            self.kick.notify_one();
        }
        Ok(changed)
    }

    /// The org's sending policy (its own, or the server's default).
    pub async fn policy(&self, org: &OrgRef) -> Result<Policy, StoreError> {
        self.pacer.policy(org.inc).await
    }

    /// Store an org's sending policy (already checked) and apply it from the
    /// next send on.
    pub async fn set_policy(&self, org: &OrgRef, policy: Policy) -> Result<(), StoreError> {
        let inc = org.inc;
        let body = serde_json::to_string(&policy)
            .map_err(|e| StoreError::Sql(rusqlite::Error::ToSqlConversionFailure(Box::new(e))))?;
        self.store
            .write(move |tx| store::policies::put(tx, inc, &body, store::now_ms()))
            .await?;
        self.pacer
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&inc);
        self.wake_inc(inc);
        Ok(())
    }

    /// When each of `rows` is expected to leave, by id: a queued message from
    /// its place in the queue and the org's pacing (average gap, caps, quiet
    /// hours); a scheduled one at its `send_at` (or the end of the quiet hours
    /// it falls in). An estimate: sends that fail or wait on the link move it.
    pub async fn etas(
        &self,
        org: &OrgRef,
        rows: &[MessageRow],
    ) -> Result<HashMap<String, i64>, StoreError> {
        let mut out = HashMap::new();
        if !rows
            .iter()
            .any(|r| matches!(r.status, MessageStatus::Queued | MessageStatus::Scheduled))
        {
            return Ok(out);
        }
        let inc = org.inc;
        let pacing = self.pacer.pacing(inc).await;
        let now = store::now_ms();
        for r in rows.iter().filter(|r| r.status == MessageStatus::Scheduled) {
            if let Some(at) = r.send_at_ms {
                out.insert(r.id.clone(), pacing.after_quiet(at.max(now)));
            }
        }
        let queued: Vec<&MessageRow> = rows
            .iter()
            .filter(|r| r.status == MessageStatus::Queued)
            .collect();
        if queued.is_empty() {
            return Ok(out);
        }
        if pacing.is_unpaced() {
            // Nothing holds them back: each leaves as soon as the link takes it.
            out.extend(queued.iter().map(|r| (r.id.clone(), now)));
            return Ok(out);
        }
        // The queue up to the last of these rows, not the whole of it.
        let Some(upto) = queued.iter().filter_map(|r| r.qpos).max() else {
            return Ok(out);
        };
        let order = self
            .store
            .read(move |c| store::messages::queue_positions(c, inc, upto, ETA_HORIZON))
            .await?;
        let mut wanted: Vec<(usize, &str)> = queued
            .iter()
            .filter_map(|r| {
                let k = order.binary_search(&r.qpos?).ok()?;
                Some((k, r.id.as_str()))
            })
            .collect();
        wanted.sort();
        let Some(&(last_k, _)) = wanted.last() else {
            return Ok(out);
        };
        let (since, keep) = (now - pacing::DAY_MS, pacing.history_needed());
        let mut hist: std::collections::VecDeque<i64> = self
            .store
            .read(move |c| store::messages::handed_recent(c, inc, since, keep))
            .await?
            .into();
        let gap = (pacing.min_gap_ms + pacing.max_gap_ms.max(pacing.min_gap_ms)) / 2;
        let mut t = now;
        let mut next = wanted.iter().peekable();
        for k in 0..=last_k {
            let slots = hist.make_contiguous();
            let slot = pacing.next_slot(t, slots.last().copied(), slots, gap);
            while let Some((_, id)) = next.next_if(|(want, _)| *want == k) {
                out.insert(id.to_string(), slot);
            }
            hist.push_back(slot);
            if hist.len() as i64 > keep {
                hist.pop_front();
            }
            t = slot;
        }
        Ok(out)
    }

    fn wake_inc(&self, inc: i64) {
        if let Some(l) = self
            .links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&inc)
        {
            l.wake.notify_one();
        }
    }

    /// Stop every dispatcher, then apply the acks and receipts already
    /// received and stop the update task (waiting at most `within`).
    pub async fn close(&self, within: Duration) -> bool {
        if let Some(t) = self
            .scheduler
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            t.abort();
        }
        for (_, l) in self.links.lock().unwrap_or_else(|p| p.into_inner()).drain() {
            if let Some(t) = l.task {
                t.abort();
            }
        }
        drop(
            self.updates
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        let task = self
            .updater
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        match task {
            Some(t) => matches!(tokio::time::timeout(within, t).await, Ok(Ok(()))),
            None => true,
        }
    }
}

impl LinkHooks for Outbox {
    fn link_up(&self, org: &OrgRef, engine: Arc<dyn Engine>) {
        let mut links = self.links.lock().unwrap_or_else(|p| p.into_inner());
        let link = links.entry(org.inc).or_insert_with(|| Link {
            wake: Arc::new(Notify::new()),
            task: None,
        });
        if let Some(t) = link.task.take() {
            t.abort();
        }
        link.task = Some(tokio::spawn(dispatch(
            org.clone(),
            engine,
            self.store.clone(),
            link.wake.clone(),
            self.pacer.clone(),
        )));
    }

    fn link_down(&self, org: &OrgRef) {
        if let Some(l) = self
            .links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(&org.inc)
        {
            if let Some(t) = l.task.take() {
                t.abort();
            }
        }
    }

    fn engine_event(&self, org: &OrgRef, event: EngineEvent) {
        let sent = self
            .updates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|u| u.send((org.clone(), event)).is_ok());
        if sent != Some(true) {
            // Only after shutdown began; the message is re-sent with the same
            // id after the restart, and receipts are re-sent by the server.
            tracing::debug!(org = %org.id, "outbox closed; an ack or receipt was not applied");
        }
    }
}

/// Send an org's queued messages in queue order while its link is up. Aborted
/// by `link_down`; a new one starts from the oldest unacked message on `link_up`.
async fn dispatch(
    org: OrgRef,
    engine: Arc<dyn Engine>,
    store: Store,
    wake: Arc<Notify>,
    pacer: Arc<Pacer>,
) {
    let mut cursor = 0i64;
    // The gap before the next send, drawn once per send.
    let mut gap: Option<i64> = None;
    loop {
        let inc = org.inc;
        let page = match store
            .read(move |c| store::messages::unacked(c, inc, cursor, PAGE))
            .await
        {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(org = %org.id, error = %e, "outbox read failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if page.is_empty() {
            wake.notified().await;
            continue;
        }
        'page: for m in page {
            // Pacing: wait for this number's next slot, then "typing…".
            let pacing = pacer.pacing(inc).await;
            let now = store::now_ms();
            // What the caps need: the newest hand-overs of the last 24 h, as
            // many as the larger finite cap (just the last one without caps);
            // nothing at all when the org sends unpaced.
            let recent = if pacing.is_unpaced() {
                vec![]
            } else {
                let (since, keep) = (now - pacing::DAY_MS, pacing.history_needed());
                store
                    .read(move |c| store::messages::handed_recent(c, inc, since, keep))
                    .await
                    .unwrap_or_default()
            };
            let g = *gap.get_or_insert_with(|| {
                let (lo, hi) = (pacing.min_gap_ms, pacing.max_gap_ms.max(pacing.min_gap_ms));
                if hi > lo {
                    rand::Rng::gen_range(&mut rand::thread_rng(), lo..=hi)
                } else {
                    lo
                }
            });
            let slot = pacing.next_slot(now, recent.last().copied(), &recent, g);
            if slot > now {
                tracing::debug!(org = %org.id, id = %m.id, wait_ms = slot - now, "paced");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis((slot - now) as u64)) => {}
                    _ = wake.notified() => {}
                }
                // Read again: it may have been canceled, the policy changed.
                break 'page;
            }
            let typing = pacing.typing_ms(m.text.chars().count());
            if typing > 0 {
                engine.typing(&m.to).await;
                tokio::time::sleep(Duration::from_millis(typing as u64)).await;
            }
            let (seq, now) = (m.seq, store::now_ms());
            match store
                .write(move |tx| store::messages::mark_attempt(tx, seq, now))
                .await
            {
                Ok(true) => gap = None,
                Ok(false) => {
                    // Canceled or past its deadline meanwhile: never sent.
                    cursor = m.qpos.unwrap_or(cursor);
                    continue;
                }
                Err(e) => {
                    tracing::error!(org = %org.id, error = %e, "cannot record send attempt");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    break;
                }
            }
            match engine.send_text(&m.to, &m.text, &m.wa_id).await {
                Ok(()) => {
                    tracing::debug!(org = %org.id, id = %m.id, wa_id = %m.wa_id, "message handed to WhatsApp");
                    cursor = m.qpos.unwrap_or(cursor);
                }
                Err(SendFailure::NotConnected(why)) => {
                    tracing::info!(org = %org.id, id = %m.id, reason = %why, "send deferred; link not ready");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    break;
                }
                Err(SendFailure::Rejected(why)) => {
                    tracing::warn!(org = %org.id, id = %m.id, reason = %why, "message failed");
                    let (o, w) = (org.clone(), m.wa_id.clone());
                    let moved = store
                        .write(move |tx| advance(tx, &o, &w, MessageStatus::Failed, Some(&why)))
                        .await;
                    if let Err(e) = moved {
                        tracing::error!(org = %org.id, error = %e, "cannot record a failed message");
                    }
                    cursor = m.qpos.unwrap_or(cursor);
                }
            }
        }
    }
}

/// Move a message forward and record its event, in the caller's transaction.
fn advance(
    tx: &mut Tx,
    org: &OrgRef,
    wa_id: &str,
    to: MessageStatus,
    error: Option<&str>,
) -> rusqlite::Result<bool> {
    let Some(row) = store::messages::advance(tx, org.inc, wa_id, to, error, store::now_ms())?
    else {
        return Ok(false);
    };
    tracing::debug!(org = %org.id, id = %row.id, status = row.status.as_str(), "message status");
    tx.emit(
        org.inc,
        &org.id,
        "message.status",
        json!({"id": row.id, "status": row.status.as_str(), "error": row.error}),
    )?;
    Ok(true)
}

/// Apply one ack, receipt or received message, with its event.
fn apply(tx: &mut Tx, org: &OrgRef, ev: EngineEvent) -> rusqlite::Result<()> {
    match ev {
        EngineEvent::ServerAck { wa_id, error: None } => {
            advance(tx, org, &wa_id, MessageStatus::Sent, None)?;
        }
        EngineEvent::ServerAck {
            wa_id,
            error: Some(e),
        } => {
            advance(tx, org, &wa_id, MessageStatus::Failed, Some(&e))?;
        }
        EngineEvent::Receipt { wa_ids, kind, .. } => {
            let to = match kind {
                ReceiptKind::Delivered => MessageStatus::Delivered,
                ReceiptKind::Read => MessageStatus::Read,
            };
            for w in wa_ids {
                advance(tx, org, &w, to, None)?;
            }
        }
        EngineEvent::Message {
            wa_id, from, text, ..
        } => {
            if let Some(row) =
                store::inbound::insert(tx, org.inc, &wa_id, &from, &text, store::now_ms())?
            {
                tracing::info!(org = %org.id, from = %row.from, "message received");
                tx.emit(
                    org.inc,
                    &org.id,
                    "message.received",
                    json!({"wa_id": row.wa_id, "from": row.from, "text": row.text, "received_ms": row.received_ms}),
                )?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Apply acks, receipts and received messages (for every org) in batches:
/// one transaction for whatever arrived meanwhile, each update in its own
/// savepoint (an update for a deleted org fails alone).
async fn update_loop(store: Store, mut rx: mpsc::UnboundedReceiver<Update>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < UPDATE_BATCH {
            match rx.try_recv() {
                Ok(u) => batch.push(u),
                Err(_) => break,
            }
        }
        let n = batch.len();
        // Told once the batch is committed (receipts and received messages:
        // the engine holds the library's acknowledgement until then).
        let notices: Vec<crate::engine::Commit> = batch
            .iter()
            .filter_map(|(_, ev)| match ev {
                EngineEvent::Receipt { committed, .. } | EngineEvent::Message { committed, .. } => {
                    Some(committed.clone())
                }
                _ => None,
            })
            .collect();
        let result = store
            .write(move |tx| {
                for (org, ev) in batch {
                    if let Err(e) = tx.attempt(|tx| apply(tx, &org, ev)) {
                        let gone = StoreError::Sql(e);
                        if gone.is_org_gone() {
                            tracing::debug!(org = %org.id, "update for a deleted organization dropped");
                        } else {
                            tracing::error!(org = %org.id, error = %gone, "cannot apply a message update");
                        }
                    }
                }
                Ok(())
            })
            .await;
        match result {
            Ok(()) => notices.iter().for_each(crate::engine::Commit::done),
            Err(e) => tracing::error!(updates = n, error = %e, "message updates not committed"),
        }
    }
}

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

pub mod clock;
pub mod gate;
pub mod pacing;
mod schedule;

use pacing::{Pacing, Policy};
#[cfg(test)]
mod tests;

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::engine::{self, Engine, EngineEvent, ReceiptKind, SendFailure};
use crate::events::{self, Event, SendLimited};
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
    task: Option<Stoppable>,
    /// The org's engine while its link is up (for look-ups).
    engine: Option<Arc<dyn Engine>>,
}

type Update = (OrgRef, EngineEvent);

type Links = Arc<Mutex<HashMap<i64, Link>>>;

pub struct Outbox {
    store: Store,
    links: Links,
    updates: Mutex<Option<mpsc::UnboundedSender<Update>>>,
    updater: Mutex<Option<JoinHandle<()>>>,
    /// Tells the scheduler that a due time may have moved earlier.
    kick: Arc<Notify>,
    scheduler: Mutex<Option<Stoppable>>,
    pacer: Arc<Pacer>,
    clock: clock::Clock,
    remote_wake: Mutex<Option<RemoteWake>>,
}

type RemoteWake = Arc<dyn Fn(i64) + Send + Sync>;

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
        if let Some(p) = self.cache.lock().get(&inc) {
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
        self.cache.lock().insert(inc, pacing.clone());
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
        Outbox::start_with_clock(store, default, clock::Clock::System)
    }

    /// The outbox, its dispatchers reading `clock` (tests run it on tokio's).
    pub fn start_with_clock(store: Store, default: Policy, clock: clock::Clock) -> Arc<Outbox> {
        let (updates, rx) = mpsc::unbounded_channel();
        let links: Links = Arc::new(Mutex::new(HashMap::new()));
        let updater = tokio::spawn(update_loop(store.clone(), rx, links.clone(), clock.clone()));
        let kick = Arc::new(Notify::new());
        let outbox = Arc::new(Outbox {
            store: store.clone(),
            links,
            updates: Mutex::new(Some(updates)),
            updater: Mutex::new(Some(updater)),
            kick: kick.clone(),
            scheduler: Mutex::new(None),
            pacer: Arc::new(Pacer {
                store: store.clone(),
                default,
                cache: Mutex::new(HashMap::new()),
            }),
            clock,
            remote_wake: Mutex::new(None),
        });
        let task = Stoppable::spawn(schedule::run(store, Arc::downgrade(&outbox), kick));
        *outbox.scheduler.lock() = Some(task);
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
                    events::emit_status(tx, &id, row)?;
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

    /// Cancel a message not yet handed to WhatsApp (`scheduled`, `queued`
    /// with no send started, or held after WhatsApp refused it).
    pub async fn cancel(&self, org: &OrgRef, id: &str) -> Result<Change, StoreError> {
        let (o, id) = (org.clone(), id.to_string());
        self.store
            .write(move |tx| {
                let Some(row) = store::messages::get(tx, o.inc, &id)? else {
                    return Ok(Change::NotFound);
                };
                // A held message may have been tried and refused (463): the
                // server did not take it, so it can still be called back.
                let cancelable = row.status == MessageStatus::Scheduled
                    || (row.status == MessageStatus::Queued
                        && (row.attempts == 0 || row.retry_at_ms.is_some()));
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
        let body = serde_json::to_string(&policy).map_err(|e| {
            StoreError::Sql(store::DbError::Invalid(format!(
                "cannot encode the policy: {e}"
            )))
        })?;
        self.store
            .write(move |tx| store::policies::put(tx, inc, &body, store::now_ms()))
            .await?;
        self.pacer.cache.lock().remove(&inc);
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
        // A held message leaves when its hold ends, if the limit lifts then.
        for r in rows.iter().filter(|r| r.status == MessageStatus::Queued) {
            if let Some(at) = r.retry_at_ms {
                out.insert(r.id.clone(), pacing.after_quiet(at.max(now)));
            }
        }
        let queued: Vec<&MessageRow> = rows
            .iter()
            .filter(|r| r.status == MessageStatus::Queued && r.retry_at_ms.is_none())
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

    /// The org's engine while its link is up.
    pub fn engine(&self, inc: i64) -> Option<Arc<dyn Engine>> {
        self.links.lock().get(&inc).and_then(|l| l.engine.clone())
    }

    /// Tell the org's dispatcher to look at its queue: here if its link is
    /// up on this node, else (several nodes) through the database to
    /// whichever node owns it.
    pub(crate) fn wake_inc(&self, inc: i64) {
        if !self.wake_local(inc) {
            let remote = self.remote_wake.lock().clone();
            if let Some(r) = remote {
                r(inc);
            }
        }
    }

    /// Wake the org's dispatcher if it runs on this node; whether it does.
    pub fn wake_local(&self, inc: i64) -> bool {
        match self.links.lock().get(&inc) {
            Some(l) if l.task.is_some() => {
                l.wake.notify_one();
                true
            }
            _ => false,
        }
    }

    /// Wake every dispatcher on this node (after a wake-up channel was down).
    pub fn wake_all_local(&self) {
        for l in self.links.lock().values() {
            l.wake.notify_one();
        }
    }

    /// Several nodes: how to wake an org whose link is not on this node.
    pub fn set_remote_wake(&self, wake: Arc<dyn Fn(i64) + Send + Sync>) {
        *self.remote_wake.lock() = Some(wake);
    }

    /// Stop every dispatcher, then apply the acks and receipts already
    /// received and stop the update task (waiting at most `within`).
    pub async fn close(&self, within: Duration) -> bool {
        let mut stopping: Vec<Stoppable> = self.scheduler.lock().take().into_iter().collect();
        stopping.extend(self.links.lock().drain().filter_map(|(_, l)| l.task));
        for t in &stopping {
            t.stop();
        }
        for t in stopping {
            t.ended().await;
        }
        drop(self.updates.lock().take());
        let task = self.updater.lock().take();
        match task {
            Some(t) => matches!(tokio::time::timeout(within, t).await, Ok(Ok(()))),
            None => true,
        }
    }
}

/// A task of the outbox that ends when told to (its link went down, the
/// outbox closes): at `stop` its work is dropped at its next await point —
/// a dispatcher between two steps of a send re-sends that message, with its
/// WhatsApp id, on the next link — and the owner may wait for it to end.
struct Stoppable {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Stoppable {
    fn spawn(work: impl std::future::Future<Output = ()> + Send + 'static) -> Stoppable {
        let stop = CancellationToken::new();
        let until = stop.clone();
        let task = tokio::spawn(async move {
            tokio::select! {
                _ = until.cancelled() => {}
                _ = work => {}
            }
        });
        Stoppable { stop, task }
    }

    fn stop(&self) {
        self.stop.cancel();
    }

    async fn ended(self) {
        let _ = self.task.await;
    }
}

impl LinkHooks for Outbox {
    fn link_up(&self, org: &OrgRef, engine: Arc<dyn Engine>) {
        let mut links = self.links.lock();
        let link = links.entry(org.inc).or_insert_with(|| Link {
            wake: Arc::new(Notify::new()),
            task: None,
            engine: None,
        });
        link.engine = Some(engine.clone());
        if let Some(t) = link.task.take() {
            t.stop();
        }
        link.task = Some(Stoppable::spawn(dispatch(
            org.clone(),
            engine,
            self.store.clone(),
            link.wake.clone(),
            self.pacer.clone(),
            self.clock.clone(),
        )));
    }

    fn link_down(&self, org: &OrgRef) {
        if let Some(l) = self.links.lock().get_mut(&org.inc) {
            l.engine = None;
            if let Some(t) = l.task.take() {
                t.stop();
            }
        }
    }

    fn engine_event(&self, org: &OrgRef, event: EngineEvent) {
        let sent = self
            .updates
            .lock()
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
/// by `link_down`; a new one starts from the oldest unacked message on
/// `link_up`. Held messages whose `retry_at` came go before the queue; with
/// nothing to send it sleeps until the next `retry_at` or a wake-up.
async fn dispatch(
    org: OrgRef,
    engine: Arc<dyn Engine>,
    store: Store,
    wake: Arc<Notify>,
    pacer: Arc<Pacer>,
    clock: clock::Clock,
) {
    let inc = org.inc;
    let mut cursor = 0i64;
    // The gap before the next send, drawn once per send.
    let mut gap: Option<i64> = None;
    loop {
        let now = clock.now_ms();
        let read = store
            .read(move |c| {
                let held = store::messages::held_due(c, inc, now, PAGE)?;
                if !held.is_empty() {
                    return Ok((held, true));
                }
                Ok((store::messages::unacked(c, inc, cursor, PAGE)?, false))
            })
            .await;
        let (page, released) = match read {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(org = %org.id, error = %e, "outbox read failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if page.is_empty() {
            let next = store
                .read(move |c| store::messages::next_retry(c, inc))
                .await
                .ok()
                .flatten();
            match next {
                Some(at) => {
                    let wait =
                        Duration::from_millis((at - clock.now_ms()).clamp(0, 3_600_000) as u64);
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = wake.notified() => {}
                    }
                }
                None => wake.notified().await,
            }
            continue;
        }
        'page: for m in page {
            // A released message keeps its old place; the cursor is the queue's.
            let done = |cursor: &mut i64| {
                if !released {
                    *cursor = m.qpos.unwrap_or(*cursor);
                }
            };
            // Pacing: wait for this number's next slot, then "typing…".
            let pacing = pacer.pacing(inc).await;
            let now = clock.now_ms();
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
            // "typing…" runs up to the slot: it starts that long before it,
            // so the hand-over lands on the slot and the gap between two
            // messages is the drawn one, typing included.
            let typing = pacing.typing_ms(m.text.chars().count());
            let start = slot - typing;
            if start > now {
                tracing::debug!(org = %org.id, id = %m.id, wait_ms = start - now, "paced");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis((start - now) as u64)) => {}
                    _ = wake.notified() => {}
                }
                // Read again: it may have been canceled, the policy changed.
                break 'page;
            }
            // WhatsApp's limits: a new contact is looked up, and may be held.
            match gate::admit(&org, &*engine, &store, &pacing, &m, now).await {
                Ok(gate::Verdict::Send) => {}
                Ok(gate::Verdict::Done) => {
                    done(&mut cursor);
                    continue;
                }
                Ok(gate::Verdict::Later) => {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    break 'page;
                }
                Err(e) => {
                    tracing::error!(org = %org.id, error = %e, "cannot check sending limits");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    break 'page;
                }
            }
            if typing > 0 {
                engine.typing(&m.to).await;
                tokio::time::sleep(Duration::from_millis(typing as u64)).await;
            }
            let (seq, now, to) = (m.seq, clock.now_ms(), m.to.clone());
            let marked = store
                .write(move |tx| {
                    tx.fence(inc)?;
                    let ok = store::messages::mark_attempt(tx, seq, now)?;
                    if ok {
                        store::contacts::note(tx, inc, &to, store::contacts::First::Try, now)?;
                    }
                    Ok(ok)
                })
                .await;
            match marked {
                Ok(true) => gap = None,
                Ok(false) => {
                    // Canceled or past its deadline meanwhile: never sent.
                    done(&mut cursor);
                    continue;
                }
                Err(StoreError::Sql(crate::store::DbError::Fenced(_))) => {
                    // The org's lease is gone: another node sends for it now.
                    tracing::warn!(org = %org.id, id = %m.id, "lease lost; this node stops sending for the org");
                    return;
                }
                Err(e) => {
                    tracing::error!(org = %org.id, error = %e, "cannot record send attempt");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    break;
                }
            }
            if !store.may_act(inc) {
                // The lease ran out since the attempt was recorded: the next
                // owner re-sends it under the same id.
                tracing::warn!(org = %org.id, id = %m.id, "lease lost before the hand-over; not sent");
                return;
            }
            match engine.send_text(&m.to, &m.text, &m.wa_id).await {
                Ok(()) => {
                    tracing::debug!(org = %org.id, id = %m.id, wa_id = %m.wa_id, "message handed to WhatsApp");
                    done(&mut cursor);
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
                    done(&mut cursor);
                }
            }
            if released {
                // The queue may hold more released ones; read again.
                break 'page;
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
) -> crate::store::DbResult<Option<MessageRow>> {
    let Some(row) = store::messages::advance(tx, org.inc, wa_id, to, error, store::now_ms())?
    else {
        return Ok(None);
    };
    tracing::debug!(org = %org.id, id = %row.id, status = row.status.as_str(), "message status");
    events::emit_status(tx, &org.id, &row)?;
    Ok(Some(row))
}

/// The nack code of a send refused for the reach-out timelock (and, as
/// peers report, for capped new chats).
const NACK_REACHOUT: &str = "463";
/// The enforcement type recorded for a timelock inferred from a bare 463.
const INFERRED: &str = "NACK_463";
/// How long a message refused with 463 waits when the server named no end:
/// a minute, doubling with each refusal, at most an hour.
fn reachout_backoff(attempts: i64) -> i64 {
    60_000i64
        .saturating_mul(1 << attempts.clamp(1, 7).saturating_sub(1))
        .min(3_600_000)
}

/// Apply one ack, receipt, received message or limit notice, with its
/// events; whether the org's dispatcher should look at its queue again.
fn apply(tx: &mut Tx, org: &OrgRef, ev: EngineEvent, now: i64) -> crate::store::DbResult<bool> {
    match ev {
        EngineEvent::ServerAck { wa_id, error: None } => {
            // Timed whatever the status: a receipt may have come first.
            if let Some(handed) = store::messages::handed_at(tx, org.inc, &wa_id)? {
                crate::metrics::get()
                    .send_ack_seconds
                    .observe((now - handed).max(0) as f64 / 1000.0);
            }
            if let Some(row) = advance(tx, org, &wa_id, MessageStatus::Sent, None)? {
                store::contacts::note(tx, org.inc, &row.to, store::contacts::First::Ok, now)?;
            }
        }
        EngineEvent::ServerAck {
            wa_id,
            error: Some(e),
        } if e == NACK_REACHOUT => {
            let Some(row) = store::messages::by_wa_id(tx, org.inc, &wa_id)? else {
                return Ok(false);
            };
            if row.status != MessageStatus::Queued {
                return Ok(false);
            }
            let limits = store::limits::get(tx, org.inc)?;
            let (reason, until) = match (limits.capped(now), limits.reachout_active(now)) {
                (Some(end), None) => (gate::CAPPED, end),
                (_, Some(until)) => (gate::REACHOUT, until),
                (None, None) => {
                    // The server refused without saying until when: hold every
                    // first message for a while, as if it had.
                    let until = now + reachout_backoff(row.attempts);
                    store::limits::set_reachout(tx, org.inc, Some(until), Some(INFERRED), now)?;
                    (gate::REACHOUT, until)
                }
            };
            tracing::warn!(org = %org.id, id = %row.id, reason, "send refused by WhatsApp (463); message held");
            gate::hold_in(tx, org, row.seq, reason, until, now)?;
            let limited = SendLimited {
                reason: reason.to_string(),
                active: true,
                until: Some(crate::times::rfc3339(until)),
                code: Some(463),
                message_id: Some(row.id.clone()),
                ..Default::default()
            };
            events::emit(tx, org.inc, &org.id, &Event::SendLimited(limited))?;
            return Ok(true);
        }
        EngineEvent::ServerAck {
            wa_id,
            error: Some(e),
        } => {
            advance(
                tx,
                org,
                &wa_id,
                MessageStatus::Failed,
                Some(&format!("refused by WhatsApp (error {e})")),
            )?;
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
            wa_id,
            from,
            from_lid,
            text,
            quoted,
            reaction_to,
            ..
        } => {
            let m = store::inbound::NewInbound {
                wa_id: &wa_id,
                from: &from,
                from_lid: from_lid.as_deref(),
                text: &text,
                quoted: quoted.as_deref(),
                reaction_to: reaction_to.as_deref(),
            };
            if let Some(row) = store::inbound::insert(tx, org.inc, &m, now)? {
                tracing::info!(org = %org.id, from = %row.from, "message received");
                store::contacts::note(tx, org.inc, &row.from, store::contacts::First::In, now)?;
                let received_at = Some(crate::times::rfc3339(row.received_ms));
                let event = match &row.reaction_to {
                    Some(target) => Event::MessageReaction(events::MessageReaction {
                        wa_id: row.wa_id.clone(),
                        from: row.from.clone(),
                        from_lid: row.from_lid.clone(),
                        emoji: row.text.clone(),
                        message_id: target.clone(),
                        received_at,
                        received_ms: row.received_ms,
                    }),
                    None => Event::MessageReceived(events::MessageReceived {
                        wa_id: row.wa_id.clone(),
                        from: row.from.clone(),
                        from_lid: row.from_lid.clone(),
                        text: row.text.clone(),
                        received_at,
                        received_ms: row.received_ms,
                        in_reply_to: row.in_reply_to.clone(),
                        last_outbound_id: row.last_outbound_id.clone(),
                        quoted_wa_id: row.quoted_wa_id.clone(),
                    }),
                };
                events::emit(tx, org.inc, &org.id, &event)?;
                // Held first messages to this contact may go now.
                return Ok(true);
            }
        }
        EngineEvent::Limit(notice) => return apply_limit(tx, org, notice, now),
        _ => {}
    }
    Ok(false)
}

/// Record a limit the server announced, move the messages it holds, and
/// publish `send.limited`.
fn apply_limit(
    tx: &mut Tx,
    org: &OrgRef,
    notice: engine::LimitNotice,
    now: i64,
) -> crate::store::DbResult<bool> {
    use engine::LimitNotice;
    let (reason, until, data) = match notice {
        LimitNotice::Reachout {
            active,
            until_ms,
            kind,
        } => {
            let until = until_ms.filter(|_| active);
            store::limits::set_reachout(tx, org.inc, until, kind.as_deref(), now)?;
            let extra = SendLimited {
                enforcement_type: kind,
                ..Default::default()
            };
            (gate::REACHOUT, until, extra)
        }
        LimitNotice::Capping {
            used,
            total,
            cycle_end_ms,
            status,
        } => {
            let l = store::limits::Limits {
                cap_used: used,
                cap_total: total,
                cap_cycle_end_ms: cycle_end_ms,
                cap_status: status.clone(),
                ..Default::default()
            };
            store::limits::set_capping(tx, org.inc, &l, now)?;
            // A 463 read as a timelock (the server had not said why) was
            // the cap: the notice can come after the refusal.
            let before = store::limits::get(tx, org.inc)?;
            if l.capped(now).is_some() && before.reachout_type.as_deref() == Some(INFERRED) {
                store::limits::set_reachout(tx, org.inc, None, None, now)?;
                store::messages::reclassify_held(tx, org.inc, gate::REACHOUT, gate::CAPPED)?;
            }
            let extra = SendLimited {
                used,
                total,
                cycle_end: cycle_end_ms.map(crate::times::rfc3339),
                capping_status: status,
                ..Default::default()
            };
            (gate::CAPPED, l.capped(now), extra)
        }
    };
    // Held messages follow the limit: to its end, or out now it lifted.
    let moved = store::messages::retime_held(tx, org.inc, reason, until.unwrap_or(now), now)?;
    tracing::info!(org = %org.id, reason, until, moved = moved.len(), "sending limit recorded");
    let limited = SendLimited {
        reason: reason.to_string(),
        active: until.is_some(),
        until: until.map(crate::times::rfc3339),
        held: Some(moved.len() as u64),
        ..data
    };
    events::emit(tx, org.inc, &org.id, &Event::SendLimited(limited))?;
    Ok(true)
}

/// Apply acks, receipts and received messages (for every org) in batches:
/// one transaction for whatever arrived meanwhile, each update in its own
/// savepoint (an update for a deleted org fails alone).
async fn update_loop(
    store: Store,
    mut rx: mpsc::UnboundedReceiver<Update>,
    links: Links,
    clock: clock::Clock,
) {
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
        let notices: Vec<(i64, crate::engine::Commit)> = batch
            .iter()
            .filter_map(|(org, ev)| match ev {
                EngineEvent::Receipt { committed, .. } | EngineEvent::Message { committed, .. } => {
                    Some((org.inc, committed.clone()))
                }
                _ => None,
            })
            .collect();
        let now = clock.now_ms();
        let result = store
            .write(move |tx| {
                let mut wake = std::collections::BTreeSet::new();
                let mut fenced = std::collections::BTreeSet::new();
                for (org, ev) in batch {
                    match tx.attempt(|tx| {
                        tx.fence(org.inc)?;
                        apply(tx, &org, ev, now)
                    }) {
                        Ok(true) => {
                            wake.insert(org.inc);
                        }
                        Ok(false) => {}
                        Err(crate::store::DbError::Fenced(inc)) => {
                            // Another node owns the org now: the server
                            // gives the update to its link instead.
                            tracing::info!(org = %org.id, "update for an org this node lost not applied");
                            fenced.insert(inc);
                        }
                        Err(e) => {
                            let gone = StoreError::Sql(e);
                            if gone.is_org_gone() {
                                tracing::debug!(org = %org.id, "update for a deleted organization dropped");
                            } else {
                                tracing::error!(org = %org.id, error = %gone, "cannot apply a message update");
                            }
                        }
                    }
                }
                Ok((wake, fenced))
            })
            .await;
        match result {
            Ok((wake, fenced)) => {
                // What was not recorded is not acknowledged to the server.
                notices
                    .iter()
                    .filter(|(inc, _)| !fenced.contains(inc))
                    .for_each(|(_, c)| c.done());
                let links = links.lock();
                for inc in wake {
                    if let Some(l) = links.get(&inc) {
                        l.wake.notify_one();
                    }
                }
            }
            Err(e) => {
                tracing::error!(updates = n, error = %e, "message updates not committed")
            }
        }
    }
}

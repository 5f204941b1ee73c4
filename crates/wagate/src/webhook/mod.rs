//! Webhook deliveries: one task for the whole gateway sends every pending
//! delivery (written with its event, so nothing is lost to a crash), signs
//! it, and records what the receiver said. A 2xx delivers it; anything else
//! is tried again after 10 s, doubling to an hour, with jitter, until the
//! delivery is `max_age` old (24 h by default), then it fails (the dead
//! letter, listed and replayable by the API). When a retry gets through,
//! the endpoint's other deliveries waiting out a backoff are due at once.
//! A `410 Gone` disables the endpoint. At most `concurrency` requests are in flight, at most
//! `PER_ENDPOINT` to one endpoint, so a slow receiver holds back only its own
//! deliveries — and never a WhatsApp send, which does not wait on any of this.

pub mod sign;
pub mod target;

use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::store::webhooks::{self as rows, Delivery, Outcome, Webhook};
use crate::store::{self, Store};
use target::Guard;

/// Most requests in flight to one endpoint.
pub const PER_ENDPOINT: usize = 8;
/// The first retry's delay by default; it doubles up to `MAX_BACKOFF_MS`.
pub const FIRST_BACKOFF_MS: i64 = 10_000;
const MAX_BACKOFF_MS: i64 = 3_600_000;
/// Pending deliveries read per pass.
const BATCH: i64 = 256;
/// The shortest time between two passes: a burst of events (thousands a
/// second while messages go out) wakes one pass, not one each.
const PASS_GAP: Duration = Duration::from_millis(25);

/// How deliveries are made.
#[derive(Debug, Clone)]
pub struct Settings {
    pub guard: Guard,
    /// A delivery not made within this long fails.
    pub max_age_ms: i64,
    /// One request's time limit.
    pub timeout: Duration,
    /// Most requests in flight in all.
    pub concurrency: usize,
    /// The first retry's delay (doubling from there).
    pub first_backoff_ms: i64,
    /// Kept connections to receivers.
    pub pool: target::Pool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            guard: Guard::default(),
            max_age_ms: 24 * 3_600_000,
            timeout: Duration::from_secs(10),
            concurrency: 32,
            first_backoff_ms: FIRST_BACKOFF_MS,
            pool: target::Pool::default(),
        }
    }
}

/// The wait before try number `tries + 1`, with jitter (50–100 %).
pub fn backoff_ms(first: i64, tries: i64) -> i64 {
    let full = first
        .saturating_mul(1i64 << tries.clamp(1, 20).saturating_sub(1))
        .min(MAX_BACKOFF_MS);
    let jitter: f64 = rand::Rng::gen_range(&mut rand::thread_rng(), 0.5..=1.0);
    (full as f64 * jitter) as i64
}

/// What is in flight.
#[derive(Default)]
struct Flight {
    deliveries: HashSet<i64>,
    per_endpoint: HashMap<String, usize>,
    /// Tries recorded since the current batch was read: that batch may
    /// still list them as pending, so they are skipped.
    ended: HashSet<i64>,
    /// Endpoints whose last answer was a failure (deliveries in backoff).
    failing: HashSet<String>,
}

/// Start the delivery task; `wake` tells it that deliveries were queued
/// again (a retry, a replay) without a new event.
/// Deliver until `stop`: then no try is started, and those in flight get
/// `STOP_WAIT` to end (one cut short stays pending and is tried again).
pub async fn run(store: Store, settings: Settings, wake: Arc<Notify>, stop: CancellationToken) {
    let tries = TaskTracker::new();
    deliver(store, Arc::new(settings), wake, &tries, stop).await;
    tries.close();
    let _ = tokio::time::timeout(STOP_WAIT, tries.wait()).await;
}

/// How long deliveries in flight may take to end at a stop.
const STOP_WAIT: Duration = Duration::from_secs(2);

async fn deliver(
    store: Store,
    settings: Arc<Settings>,
    wake: Arc<Notify>,
    tries: &TaskTracker,
    stop: CancellationToken,
) {
    let mut live = store.subscribe();
    let flight = Arc::new(Mutex::new(Flight::default()));
    let permits = Arc::new(Semaphore::new(settings.concurrency.max(1)));
    let finished = Arc::new(Notify::new());
    // Due deliveries read but not started yet (their endpoint was at its
    // cap, or every permit was taken), in due order: started as tries end,
    // without reading them again.
    let mut queue: std::collections::VecDeque<Delivery> = Default::default();
    let mut read = true;
    loop {
        if read {
            let now = store::now_ms();
            // Tries recorded before this read are in it; later ones go in `ended`.
            flight.lock().ended.clear();
            match store.read(move |c| rows::due(c, now, BATCH)).await {
                Ok(d) => queue = d.into(),
                Err(e) => {
                    tracing::error!(error = %e, "cannot read webhook deliveries; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
        }
        // Start what the caps allow; keep the rest, in order.
        let mut kept = std::collections::VecDeque::new();
        while let Some(d) = queue.pop_front() {
            {
                let f = flight.lock();
                if f.deliveries.contains(&d.seq) || f.ended.contains(&d.seq) {
                    continue;
                }
                if f.per_endpoint.get(&d.webhook).copied().unwrap_or(0) >= PER_ENDPOINT {
                    kept.push_back(d);
                    continue;
                }
            }
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                kept.push_back(d);
                kept.extend(queue.drain(..));
                break;
            };
            {
                let mut f = flight.lock();
                f.deliveries.insert(d.seq);
                *f.per_endpoint.entry(d.webhook.clone()).or_default() += 1;
            }
            let (store, settings, flight, finished, wake) = (
                store.clone(),
                settings.clone(),
                flight.clone(),
                finished.clone(),
                wake.clone(),
            );
            tries.spawn(async move {
                let (seq, hook) = (d.seq, d.webhook.clone());
                attempt(&store, &settings, &wake, &flight, d).await;
                {
                    let mut f = flight.lock();
                    f.deliveries.remove(&seq);
                    f.ended.insert(seq);
                    if let Some(n) = f.per_endpoint.get_mut(&hook) {
                        *n = n.saturating_sub(1);
                        if *n == 0 {
                            f.per_endpoint.remove(&hook);
                        }
                    }
                }
                drop(permit);
                finished.notify_one();
            });
        }
        queue = kept;
        // With work in hand, or everything due already in flight, a try's
        // end wakes us; otherwise the next due time, a new event or a retry.
        let in_flight = !flight.lock().deliveries.is_empty();
        let next = if queue.is_empty() {
            store.read(rows::next_due).await.ok().flatten()
        } else {
            None
        };
        let wait = match next {
            Some(t) if t > store::now_ms() || !in_flight => {
                Duration::from_millis((t - store::now_ms()).clamp(0, 60_000) as u64)
            }
            _ => Duration::from_secs(60),
        };
        read = tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => true,
            // A try ended: start the next in hand; read again once none is left.
            _ = finished.notified() => queue.is_empty(),
            _ = wake.notified() => true,
            r = live.recv() => {
                if matches!(r, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                    return;
                }
                // A new event may have made deliveries: gather what else comes
                // in the next moment, then read once for all of them (later,
                // when the ones in hand are started first).
                tokio::time::sleep(PASS_GAP).await;
                while live.try_recv().is_ok() {}
                queue.is_empty()
            }
        };
    }
}

/// The body a receiver gets for a delivery.
pub fn body(d: &Delivery) -> Vec<u8> {
    let data: serde_json::Value = serde_json::from_str(&d.data).unwrap_or(serde_json::Value::Null);
    json!({
        "id": format!("evt_{}", d.event),
        "type": d.kind,
        "org": d.org,
        "created_at": crate::times::rfc3339(d.event_ms),
        "data": crate::events::wire(&d.kind, &data),
    })
    .to_string()
    .into_bytes()
}

/// The secrets that sign now: the current one, and the previous one while
/// its grace period lasts.
pub fn signing_secrets(w: &Webhook, now_ms: i64) -> Vec<&str> {
    let mut s = vec![w.secret.as_str()];
    if let (Some(p), Some(until)) = (&w.prev_secret, w.prev_until_ms) {
        if until > now_ms {
            s.push(p.as_str());
        }
    }
    s
}

/// Try one delivery and record the outcome (the caller makes sure it is
/// not in flight and was not tried since its batch was read).
async fn attempt(
    store: &Store,
    settings: &Settings,
    wake: &Notify,
    flight: &Mutex<Flight>,
    d: Delivery,
) {
    let hook_id = d.webhook.clone();
    let hook = match store.read(move |c| rows::by_id(c, &hook_id)).await {
        Ok(Some(w)) => w,
        Ok(None) => return, // deleted meanwhile: its deliveries went with it
        Err(e) => {
            tracing::error!(error = %e, "cannot read a webhook");
            return;
        }
    };
    let now = store::now_ms();
    let outcome = if let Some(why) = &hook.disabled {
        Outcome::Failed {
            code: None,
            error: format!("the endpoint is disabled: {why}"),
        }
    } else {
        send(settings, &hook, &d, now).await
    };
    crate::metrics::webhook_attempt(match &outcome {
        Outcome::Delivered { .. } => "delivered",
        Outcome::Retry { .. } => "retry",
        Outcome::Failed {
            code: Some(410), ..
        } => "gone",
        Outcome::Failed { .. } => "failed",
    });
    match &outcome {
        Outcome::Delivered { code } => {
            tracing::debug!(webhook = %hook.id, delivery = d.seq, code, "webhook delivered")
        }
        Outcome::Retry { error, .. } => {
            tracing::info!(webhook = %hook.id, delivery = d.seq, %error, "webhook not delivered; will retry")
        }
        Outcome::Failed { error, .. } => {
            tracing::warn!(webhook = %hook.id, delivery = d.seq, %error, "webhook delivery failed for good")
        }
    }
    let gone = matches!(
        outcome,
        Outcome::Failed {
            code: Some(410),
            ..
        }
    );
    // A retry that got through, or any delivery to an endpoint that was
    // failing: the receiver is back, so the rest of its deliveries in
    // backoff need not wait out their timers.
    let back = {
        let mut f = flight.lock();
        match outcome {
            Outcome::Delivered { .. } => f.failing.remove(&hook.id) || d.attempts > 0,
            Outcome::Retry { .. } => {
                f.failing.insert(hook.id.clone());
                false
            }
            Outcome::Failed { .. } => false,
        }
    };
    let (seq, id) = (d.seq, hook.id.clone());
    let written = store
        .write(move |tx| {
            rows::record(tx, seq, &outcome, store::now_ms())?;
            if gone {
                rows::disable(tx, &id, "the receiver answered 410 Gone", store::now_ms())?;
            }
            if back {
                return rows::release_backoffs(tx, &id, store::now_ms());
            }
            Ok(0)
        })
        .await;
    match written {
        Ok(released) if released > 0 => {
            tracing::info!(webhook = %hook.id, released, "webhook receiver answers again; its waiting deliveries are due now");
            wake.notify_one();
        }
        Ok(_) => {}
        Err(e) => {
            tracing::error!(error = %e, "cannot record a webhook delivery (it will be tried again)")
        }
    }
}

async fn send(settings: &Settings, hook: &Webhook, d: &Delivery, now: i64) -> Outcome {
    let body = body(d);
    let t = now / 1000;
    let headers = [
        ("wagate-event-id", format!("evt_{}", d.event)),
        ("wagate-event-type", d.kind.clone()),
        ("wagate-delivery-id", format!("dlv_{}", d.seq)),
        (
            "wagate-signature",
            sign::header(&signing_secrets(hook, now), t, &body),
        ),
    ];
    let tries = d.attempts + 1;
    let result = match target::parse_url(&hook.url) {
        Ok(target) => {
            target::post(
                &settings.guard,
                &settings.pool,
                &target,
                &headers,
                body,
                settings.timeout,
            )
            .await
        }
        Err(e) => Err(e),
    };
    let (code, error) = match result {
        Ok(a) if (200..300).contains(&a.status) => return Outcome::Delivered { code: a.status },
        Ok(a) if a.status == 410 => {
            return Outcome::Failed {
                code: Some(410),
                error: "the receiver answered 410 Gone; the endpoint is disabled".into(),
            }
        }
        Ok(a) => (
            Some(a.status),
            format!(
                "HTTP {}{}",
                a.status,
                if a.body.is_empty() {
                    String::new()
                } else {
                    format!(": {}", a.body)
                }
            ),
        ),
        Err(e) => (None, e),
    };
    let retry_at = store::now_ms() + backoff_ms(settings.first_backoff_ms, tries);
    if retry_at - d.created_ms > settings.max_age_ms {
        Outcome::Failed {
            code,
            error: format!(
                "{error} (try {tries}; no more tries past {} h)",
                settings.max_age_ms / 3_600_000
            ),
        }
    } else {
        Outcome::Retry {
            code,
            error,
            retry_at_ms: retry_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_ten_seconds_to_an_hour_with_jitter() {
        for _ in 0..100 {
            let b1 = backoff_ms(FIRST_BACKOFF_MS, 1);
            assert!((5_000..=10_000).contains(&b1), "{b1}");
            let b3 = backoff_ms(FIRST_BACKOFF_MS, 3);
            assert!((20_000..=40_000).contains(&b3), "{b3}");
            let b20 = backoff_ms(FIRST_BACKOFF_MS, 20);
            assert!((1_800_000..=3_600_000).contains(&b20), "{b20}");
        }
    }

    #[test]
    fn the_previous_secret_signs_only_during_its_grace() {
        let w = Webhook {
            id: "w".into(),
            inc: 1,
            url: "https://x/".into(),
            events: None,
            secret: "new".into(),
            prev_secret: Some("old".into()),
            prev_until_ms: Some(1_000),
            disabled: None,
            created_ms: 0,
        };
        assert_eq!(signing_secrets(&w, 999), vec!["new", "old"]);
        assert_eq!(signing_secrets(&w, 1_000), vec!["new"]);
    }
}

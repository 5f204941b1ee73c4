//! The outbox against a real SQLite store and the scripted engine:
//! acceptance order, re-sends with the same WhatsApp id, forward-only status,
//! and an event for every move.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::engine::scripted::{Script, ScriptFactory};
use crate::engine::EngineFactory;
use crate::store::orgs::NewOrg;

struct Rig {
    _dir: tempfile::TempDir,
    store: Store,
    outbox: Arc<Outbox>,
    org: OrgRef,
    script: Arc<Script>,
    engine: Arc<dyn Engine>,
}

async fn rig() -> Rig {
    rig_on(clock::Clock::System).await
}

/// A rig whose dispatcher reads `clock`.
async fn rig_on(clock: clock::Clock) -> Rig {
    let (dir, store) = store::test_store().await;
    let row = store
        .write(|tx| {
            store::orgs::insert(
                tx,
                &NewOrg {
                    id: "4".into(),
                    name: "4".into(),
                    default_country_code: None,
                    token_hash: "00".into(),
                    created_ms: 0,
                },
            )
        })
        .await
        .unwrap()
        .unwrap();
    let org = OrgRef {
        id: row.id,
        inc: row.inc,
    };
    let script = Script::new(true);
    script.accept_sends.store(true, Ordering::SeqCst);
    let (tx, _rx) = mpsc::unbounded_channel();
    let engine = ScriptFactory::new(script.clone(), dir.path())
        .open("4", org.inc, tx)
        .await
        .unwrap();
    let outbox = Outbox::start_with_clock(
        store.clone(),
        crate::outbox::pacing::Policy::unpaced("UTC"),
        clock,
    );
    Rig {
        _dir: dir,
        store,
        outbox,
        org,
        script,
        engine,
    }
}

impl Rig {
    async fn accept(&self, i: usize) -> store::MessageRow {
        match self
            .outbox
            .accept(
                &self.org,
                format!("57300111{i:04}"),
                format!("m{i}"),
                None,
                Timing::default(),
            )
            .await
            .unwrap()
        {
            Inserted::New(r) => r,
            Inserted::Existing(_) => panic!("not new"),
        }
    }

    /// WhatsApp ids sent so far, in order.
    fn sent(&self) -> Vec<String> {
        self.script
            .sent
            .lock()
            .iter()
            .map(|s| s.2.clone())
            .collect()
    }

    async fn wait_sent(&self, n: usize) {
        for _ in 0..500 {
            if self.sent().len() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("only {} of {n} sends", self.sent().len());
    }

    async fn status(&self, id: &str) -> MessageStatus {
        let (inc, id) = (self.org.inc, id.to_string());
        self.store
            .read(move |c| store::messages::get(c, inc, &id))
            .await
            .unwrap()
            .unwrap()
            .status
    }

    /// Apply engine events through the update loop and wait for them.
    async fn apply(&self, evs: Vec<EngineEvent>) {
        for ev in evs {
            self.outbox.engine_event(&self.org, ev);
        }
        // The update loop commits in batches; a read after a round trip
        // through the writer sees them.
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.store.write(|_| Ok(())).await.unwrap();
    }

    async fn status_events(&self) -> Vec<(String, String)> {
        let inc = self.org.inc;
        self.store
            .read(move |c| store::events::after(c, inc, "4", 0, 10_000))
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == "message.status")
            .map(|e| {
                (
                    e.data["id"].as_str().unwrap().to_string(),
                    e.data["status"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

#[tokio::test]
async fn messages_go_out_in_acceptance_order() {
    let r = rig().await;
    let mut accepted = Vec::new();
    for i in 0..250 {
        accepted.push(r.accept(i).await.wa_id);
    }
    r.outbox.link_up(&r.org, r.engine.clone());
    r.wait_sent(250).await;
    assert_eq!(r.sent(), accepted, "sent in the order they were accepted");
    // Each accept recorded its `queued` event in the same transaction.
    let queued = r
        .status_events()
        .await
        .iter()
        .filter(|(_, s)| s == "queued")
        .count();
    assert_eq!(queued, 250);
}

#[tokio::test]
async fn an_unacked_message_is_resent_with_the_same_whatsapp_id() {
    let r = rig().await;
    let m: Vec<_> = [r.accept(0).await, r.accept(1).await, r.accept(2).await].to_vec();
    r.outbox.link_up(&r.org, r.engine.clone());
    r.wait_sent(3).await;
    // The server acked only the first two before the link dropped.
    r.apply(vec![
        EngineEvent::ServerAck {
            wa_id: m[0].wa_id.clone(),
            error: None,
        },
        EngineEvent::ServerAck {
            wa_id: m[1].wa_id.clone(),
            error: None,
        },
    ])
    .await;
    r.outbox.link_down(&r.org);
    r.outbox.link_up(&r.org, r.engine.clone());
    r.wait_sent(4).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let sent = r.sent();
    assert_eq!(sent.len(), 4, "only the unacked one again: {sent:?}");
    assert_eq!(
        sent[3], m[2].wa_id,
        "the same id, so the recipient sees it once"
    );
    assert_eq!(r.status(&m[0].id).await, MessageStatus::Sent);
    assert_eq!(r.status(&m[2].id).await, MessageStatus::Queued);
}

#[tokio::test]
async fn status_only_moves_forward_and_every_move_has_its_event() {
    let r = rig().await;
    let m = r.accept(0).await;
    let w = m.wa_id.clone();
    let receipt = |kind| EngineEvent::Receipt {
        wa_ids: vec![w.clone()],
        kind,
        committed: Default::default(),
    };
    r.apply(vec![
        receipt(ReceiptKind::Delivered),
        // A late ack after the delivery receipt: no step back.
        EngineEvent::ServerAck {
            wa_id: w.clone(),
            error: None,
        },
        receipt(ReceiptKind::Read),
        receipt(ReceiptKind::Delivered),
        // Failing is only possible from `queued`.
        EngineEvent::ServerAck {
            wa_id: w.clone(),
            error: Some("479".into()),
        },
    ])
    .await;
    assert_eq!(r.status(&m.id).await, MessageStatus::Read);
    let moves: Vec<String> = r
        .status_events()
        .await
        .into_iter()
        .filter(|(id, _)| *id == m.id)
        .map(|(_, s)| s)
        .collect();
    assert_eq!(moves, vec!["queued", "delivered", "read"]);

    let f = r.accept(1).await;
    r.apply(vec![EngineEvent::ServerAck {
        wa_id: f.wa_id.clone(),
        error: Some("not on WhatsApp".into()),
    }])
    .await;
    assert_eq!(r.status(&f.id).await, MessageStatus::Failed);
    r.apply(vec![EngineEvent::Receipt {
        wa_ids: vec![f.wa_id.clone()],
        kind: ReceiptKind::Read,
        committed: Default::default(),
    }])
    .await;
    assert_eq!(
        r.status(&f.id).await,
        MessageStatus::Failed,
        "failed is final"
    );
}

#[tokio::test]
async fn a_reused_idempotency_key_returns_the_first_message() {
    let r = rig().await;
    let first = r
        .outbox
        .accept(
            &r.org,
            "573001112233".into(),
            "hola".into(),
            Some("k".into()),
            Timing::default(),
        )
        .await
        .unwrap();
    let again = r
        .outbox
        .accept(
            &r.org,
            "573001112233".into(),
            "otro".into(),
            Some("k".into()),
            Timing::default(),
        )
        .await
        .unwrap();
    let (Inserted::New(a), Inserted::Existing(b)) = (first, again) else {
        panic!("expected a new then an existing message");
    };
    assert_eq!(a.id, b.id);
    assert_eq!(b.text, "hola", "nothing was written the second time");
}

#[tokio::test]
async fn close_applies_what_arrived_then_stops() {
    let r = rig().await;
    let m = r.accept(0).await;
    r.outbox.engine_event(
        &r.org,
        EngineEvent::ServerAck {
            wa_id: m.wa_id.clone(),
            error: None,
        },
    );
    assert!(r.outbox.close(Duration::from_secs(5)).await);
    assert_eq!(r.status(&m.id).await, MessageStatus::Sent);
}

#[tokio::test]
async fn a_receipt_is_reported_committed_only_after_its_commit() {
    let r = rig().await;
    let m = r.accept(0).await;
    let (committed, done) = crate::engine::Commit::new();
    r.outbox.engine_event(
        &r.org,
        EngineEvent::Receipt {
            wa_ids: vec![m.wa_id.clone()],
            kind: ReceiptKind::Delivered,
            committed,
        },
    );
    // The notice comes from the update task once the write is durable…
    let got = tokio::task::spawn_blocking(move || done.recv_timeout(Duration::from_secs(5)))
        .await
        .unwrap();
    assert!(got.is_ok(), "no commit notice");
    // …so by then the status is in the database.
    assert_eq!(r.status(&m.id).await, MessageStatus::Delivered);
}

impl Rig {
    async fn schedule(&self, i: usize, in_ms: i64, before_ms: Option<i64>) -> store::MessageRow {
        let now = store::now_ms();
        let timing = Timing {
            send_at_ms: Some(now + in_ms),
            send_before_ms: before_ms.map(|b| now + b),
        };
        match self
            .outbox
            .accept(
                &self.org,
                format!("57300222{i:04}"),
                format!("s{i}"),
                None,
                timing,
            )
            .await
            .unwrap()
        {
            Inserted::New(r) => r,
            Inserted::Existing(_) => panic!("not new"),
        }
    }
}

#[tokio::test]
async fn a_scheduled_message_waits_then_goes_out_once_after_the_queue() {
    let r = rig().await;
    r.outbox.link_up(&r.org, r.engine.clone());
    let s = r.schedule(0, 400, None).await;
    assert_eq!(s.status, MessageStatus::Scheduled);
    let now = r.accept(1).await;
    r.wait_sent(1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(r.sent(), vec![now.wa_id.clone()], "not before its time");
    r.wait_sent(2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(r.sent(), vec![now.wa_id, s.wa_id.clone()], "once");
    let moves: Vec<String> = r
        .status_events()
        .await
        .into_iter()
        .filter(|(id, _)| *id == s.id)
        .map(|(_, st)| st)
        .collect();
    assert_eq!(moves, ["scheduled", "queued"]);
}

#[tokio::test]
async fn a_message_due_while_the_link_is_down_waits_in_queue_order() {
    let r = rig().await;
    // Scheduled before two immediate sends, due while the link is down.
    let s = r.schedule(0, 100, None).await;
    let a = r.accept(1).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(r.status(&s.id).await, MessageStatus::Queued);
    let b = r.accept(2).await;
    r.outbox.link_up(&r.org, r.engine.clone());
    r.wait_sent(3).await;
    assert_eq!(
        r.sent(),
        vec![a.wa_id, s.wa_id, b.wa_id],
        "in the order they entered the queue, not the order they were accepted"
    );
}

#[tokio::test]
async fn a_passed_deadline_expires_a_message_never_sent() {
    let r = rig().await;
    // Due at once, but the link is down until after its deadline.
    let m = r.schedule(0, 0, Some(300)).await;
    let later = r.schedule(1, 50, Some(60_000)).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(r.status(&m.id).await, MessageStatus::Expired);
    r.outbox.link_up(&r.org, r.engine.clone());
    r.wait_sent(1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(r.sent(), vec![later.wa_id], "the expired one never left");
}

#[tokio::test]
async fn cancel_wins_only_before_the_send_starts() {
    let r = rig().await;
    let s = r.schedule(0, 60_000, None).await;
    let q = r.accept(1).await;
    let Change::Done(c) = r.outbox.cancel(&r.org, &s.id).await.unwrap() else {
        panic!("a scheduled message can be canceled");
    };
    assert_eq!(c.status, MessageStatus::Canceled);
    let Change::Done(_) = r.outbox.cancel(&r.org, &q.id).await.unwrap() else {
        panic!("a queued message not yet handed over can be canceled");
    };
    let sent = r.accept(2).await;
    r.outbox.link_up(&r.org, r.engine.clone());
    r.wait_sent(1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        r.sent(),
        vec![sent.wa_id.clone()],
        "canceled ones never left"
    );
    // Handed to WhatsApp (queued until the ack, but with a send started): refused.
    assert!(matches!(
        r.outbox.cancel(&r.org, &sent.id).await.unwrap(),
        Change::Refused(_)
    ));
    assert!(matches!(
        r.outbox.cancel(&r.org, "msg_nope").await.unwrap(),
        Change::NotFound
    ));
}

#[tokio::test]
async fn a_rescheduled_message_leaves_at_its_new_time() {
    let r = rig().await;
    r.outbox.link_up(&r.org, r.engine.clone());
    let s = r.schedule(0, 60_000, None).await;
    let at = store::now_ms() + 200;
    let Change::Done(m) = r
        .outbox
        .reschedule(
            &r.org,
            &s.id,
            Timing {
                send_at_ms: Some(at),
                send_before_ms: None,
            },
        )
        .await
        .unwrap()
    else {
        panic!("a scheduled message can be moved");
    };
    assert_eq!(m.send_at_ms, Some(at));
    r.wait_sent(1).await;
    assert!(store::now_ms() >= at, "not before its new time");
    assert!(matches!(
        r.outbox
            .reschedule(&r.org, &s.id, Timing::default())
            .await
            .unwrap(),
        Change::Refused(_)
    ));
}

#[tokio::test]
async fn sends_are_paced_by_the_orgs_policy_with_typing_first() {
    let r = rig().await;
    let mut policy = pacing::Policy::unpaced("UTC");
    policy.min_gap_ms = 200;
    policy.max_gap_ms = 300;
    policy.typing = true;
    policy.typing_ms_per_char = 1;
    policy.typing_max_ms = 20;
    r.outbox.set_policy(&r.org, policy).await.unwrap();
    for i in 0..5 {
        r.accept(i).await;
    }
    r.outbox.link_up(&r.org, r.engine.clone());
    for _ in 0..300 {
        if r.sent().len() == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(r.sent().len(), 5);
    let inc = r.org.inc;
    let handed = r
        .store
        .read(move |c| store::messages::handed_recent(c, inc, 0, 100))
        .await
        .unwrap();
    assert_eq!(handed.len(), 5);
    for w in handed.windows(2) {
        assert!(
            w[1] - w[0] >= 200,
            "a gap under the policy's minimum: {handed:?}"
        );
    }
    let typing = r
        .script
        .calls_of(|c| matches!(c, crate::engine::scripted::Call::Typing(_)));
    assert_eq!(typing.len(), 5, "typing… before each send");
    // A new policy applies from the next send on.
    r.outbox
        .set_policy(&r.org, pacing::Policy::unpaced("UTC"))
        .await
        .unwrap();
    for i in 5..10 {
        r.accept(i).await;
    }
    r.wait_sent(10).await;
    assert_eq!(
        r.script
            .calls_of(|c| matches!(c, crate::engine::scripted::Call::Typing(_)))
            .len(),
        5,
        "no typing… under the unpaced policy"
    );
}

/// Let the other tasks and the database threads work for a while of *real*
/// time without moving paused tokio time (the test task stays runnable, so
/// the runtime never idles and never jumps the clock to the next timer).
async fn settle() {
    for _ in 0..300 {
        std::thread::sleep(Duration::from_millis(1));
        tokio::task::yield_now().await;
    }
}

/// Await `f` (a database round trip) without moving paused tokio time: an
/// await on another thread idles the runtime, which would jump the clock
/// to the next timer (a dispatcher's hold, say).
async fn busy<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    loop {
        let step = std::future::poll_fn(|cx| std::task::Poll::Ready(f.as_mut().poll(cx))).await;
        if let std::task::Poll::Ready(v) = step {
            return v;
        }
        std::thread::sleep(Duration::from_millis(1));
        tokio::task::yield_now().await;
    }
}

impl Rig {
    /// Under paused time: wait for `n` sends without moving the clock.
    async fn settle_until_sent(&self, n: usize) {
        for _ in 0..20 {
            if self.sent().len() >= n {
                return;
            }
            settle().await;
        }
        panic!("only {} of {n} sends", self.sent().len());
    }

    /// Under paused time: apply engine events and let them land.
    async fn apply_settled(&self, evs: Vec<EngineEvent>) {
        for ev in evs {
            self.outbox.engine_event(&self.org, ev);
        }
        settle().await;
        busy(self.store.write(|_| Ok(()))).await.unwrap();
        settle().await;
    }
}

fn at(rfc3339: &str) -> i64 {
    rfc3339
        .parse::<jiff::Timestamp>()
        .expect("a time")
        .as_millisecond()
}

/// When the rig's first message was handed to WhatsApp (by the rig's clock).
async fn first_handed(r: &Rig) -> Option<i64> {
    let inc = r.org.inc;
    busy(
        r.store
            .read(move |c| store::messages::handed_recent(c, inc, 0, 1)),
    )
    .await
    .unwrap()
    .first()
    .copied()
}

/// Run a message queued at `queued_at` (local wall time in `tz`, quiet hours
/// 21:00–08:00) under paused tokio time; when it was handed over.
async fn quiet_hours_run(tz: &str, queued_at: &str, expect: &str) {
    let start = at(queued_at);
    let r = rig_on(clock::Clock::tokio_at(start)).await;
    let mut policy = pacing::Policy::unpaced(tz);
    policy.quiet_hours = Some(pacing::QuietHours {
        start: "21:00".into(),
        end: "08:00".into(),
    });
    busy(r.outbox.set_policy(&r.org, policy)).await.unwrap();
    busy(r.accept(1)).await;
    r.outbox.link_up(&r.org, r.engine.clone());
    let want = at(expect);
    // The dispatcher reads its queue and goes to sleep until the window's end.
    settle().await;
    let now = r.outbox.clock.now_ms();
    tokio::time::sleep(Duration::from_millis((want - now - 2_000) as u64)).await;
    settle().await;
    assert!(r.sent().is_empty(), "sent during quiet hours");
    assert_eq!(first_handed(&r).await, None);
    tokio::time::sleep(Duration::from_millis(2_001)).await;
    r.settle_until_sent(1).await;
    let handed = first_handed(&r).await.expect("sent after the quiet hours");
    assert!(
        (want..want + 100).contains(&handed),
        "{tz}: queued {queued_at}, left {} instead of {expect}",
        jiff::Timestamp::from_millisecond(handed).unwrap()
    );
}

#[tokio::test(start_paused = true)]
async fn a_message_due_at_night_in_bogota_leaves_at_eight_the_next_morning() {
    quiet_hours_run(
        "America/Bogota",
        "2026-12-01T22:00:00-05:00",
        "2026-12-02T08:00:00-05:00",
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn quiet_hours_follow_the_clocks_across_daylight_saving_changes() {
    // New York springs forward at 02:00 on 8 March 2026: the night is an
    // hour shorter, and 08:00 is 12:00 UTC, not 13:00.
    quiet_hours_run(
        "America/New_York",
        "2026-03-07T22:00:00-05:00",
        "2026-03-08T08:00:00-04:00",
    )
    .await;
    // …and falls back on 1 November 2026: an hour longer.
    quiet_hours_run(
        "America/New_York",
        "2026-10-31T22:00:00-04:00",
        "2026-11-01T08:00:00-05:00",
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_send_refused_with_463_is_held_then_sent_again_with_the_same_id() {
    let start = at("2026-12-01T10:00:00-05:00");
    let r = rig_on(clock::Clock::tokio_at(start)).await;
    let m = busy(r.accept(1)).await;
    r.outbox.link_up(&r.org, r.engine.clone());
    r.settle_until_sent(1).await;
    r.apply_settled(vec![EngineEvent::ServerAck {
        wa_id: m.wa_id.clone(),
        error: Some("463".into()),
    }])
    .await;
    let (inc, id) = (r.org.inc, m.id.clone());
    let row = busy(r.store.read(move |c| store::messages::get(c, inc, &id)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, MessageStatus::Queued, "held, not failed");
    assert_eq!(row.held_reason.as_deref(), Some(gate::REACHOUT));
    let retry_at = row.retry_at_ms.unwrap();
    let lock = busy(r.store.read(move |c| store::limits::get(c, inc)))
        .await
        .unwrap();
    assert_eq!(
        lock.reachout_until_ms,
        Some(retry_at),
        "the org is held back as a whole"
    );
    // No end named by the server: a minute's backoff.
    assert!(
        (start + 60_000..start + 60_100).contains(&retry_at),
        "{}",
        retry_at - start
    );
    // Another new contact waits unsent; a known one goes.
    r.apply_settled(vec![EngineEvent::Message {
        wa_id: "in1".into(),
        from: "573009998888".into(),
        from_lid: None,
        text: "hola".into(),
        quoted: None,
        reaction_to: None,
        committed: Default::default(),
    }])
    .await;
    let other = busy(r.accept(2)).await;
    let (inc2, known) = (r.org.inc, "573009998888".to_string());
    let to_known = match busy(r.outbox.accept(
        &r.org,
        known.clone(),
        "cita".into(),
        None,
        Timing::default(),
    ))
    .await
    .unwrap()
    {
        Inserted::New(row) => row,
        Inserted::Existing(_) => unreachable!(),
    };
    r.settle_until_sent(2).await;
    settle().await;
    assert_eq!(r.sent(), vec![m.wa_id.clone(), to_known.wa_id.clone()]);
    let other_id = other.id.clone();
    let held = busy(
        r.store
            .read(move |c| store::messages::get(c, inc2, &other_id)),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(held.held_reason.as_deref(), Some(gate::REACHOUT));
    assert_eq!(held.attempts, 0);
    // After the backoff both go out; the refused one with its first id.
    assert_eq!(r.sent().len(), 2, "nothing before the backoff ends");
    let now = r.outbox.clock.now_ms();
    tokio::time::sleep(Duration::from_millis((retry_at - now + 1) as u64)).await;
    r.settle_until_sent(4).await;
    let sent = r.sent();
    assert_eq!(sent[2..], [m.wa_id.clone(), other.wa_id.clone()]);
    assert!(busy(r.status_events())
        .await
        .iter()
        .all(|(_, s)| s != "failed"));
}

#[tokio::test(start_paused = true)]
async fn a_timelock_notice_moves_held_messages_to_its_end_and_its_lifting_frees_them() {
    let start = at("2026-12-01T10:00:00-05:00");
    let r = rig_on(clock::Clock::tokio_at(start)).await;
    r.outbox.link_up(&r.org, r.engine.clone());
    let end = start + 3_600_000;
    r.apply_settled(vec![EngineEvent::Limit(
        crate::engine::LimitNotice::Reachout {
            active: true,
            until_ms: Some(end),
            kind: Some("DEFAULT".into()),
        },
    )])
    .await;
    let m = busy(r.accept(1)).await;
    settle().await;
    assert!(
        r.sent().is_empty(),
        "a first message waits out the timelock"
    );
    let (inc, id) = (r.org.inc, m.id.clone());
    let row = busy(r.store.read(move |c| store::messages::get(c, inc, &id)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.retry_at_ms, Some(end));
    // The server lifts it early: the message goes at once.
    tokio::time::sleep(Duration::from_secs(600)).await;
    r.apply_settled(vec![EngineEvent::Limit(
        crate::engine::LimitNotice::Reachout {
            active: false,
            until_ms: None,
            kind: None,
        },
    )])
    .await;
    r.settle_until_sent(1).await;
    let handed = first_handed(&r).await.unwrap();
    assert!(
        handed - start < 601_000,
        "left {} s after the start",
        (handed - start) / 1000
    );
    let limited = busy(
        r.store
            .read(move |c| store::events::after(c, inc, "4", 0, 100)),
    )
    .await
    .unwrap()
    .into_iter()
    .filter(|e| e.kind == "send.limited")
    .count();
    assert_eq!(limited, 2, "one event when it began, one when it lifted");
}

#[tokio::test]
async fn a_number_not_on_whatsapp_fails_without_being_sent() {
    let r = rig().await;
    r.script.not_on_whatsapp.lock().push("573001110001".into());
    let m = r.accept(1).await;
    let ok = r.accept(2).await;
    r.outbox.link_up(&r.org, r.engine.clone());
    r.wait_sent(1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(r.sent(), vec![ok.wa_id.clone()]);
    let (inc, id) = (r.org.inc, m.id.clone());
    let row = busy(r.store.read(move |c| store::messages::get(c, inc, &id)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, MessageStatus::Failed);
    assert_eq!(row.error.as_deref(), Some(gate::NOT_ON_WHATSAPP));
}

#[tokio::test]
async fn a_message_refused_with_463_can_still_be_canceled() {
    let r = rig().await;
    let m = r.accept(1).await;
    r.outbox.link_up(&r.org, r.engine.clone());
    r.wait_sent(1).await;
    // Tried, not yet answered: WhatsApp may take it, so no cancel.
    assert!(matches!(
        r.outbox.cancel(&r.org, &m.id).await.unwrap(),
        Change::Refused(_)
    ));
    r.apply(vec![EngineEvent::ServerAck {
        wa_id: m.wa_id.clone(),
        error: Some("463".into()),
    }])
    .await;
    match r.outbox.cancel(&r.org, &m.id).await.unwrap() {
        Change::Done(row) => {
            assert_eq!(row.status, MessageStatus::Canceled);
            assert_eq!(row.attempts, 1, "it was tried once and refused");
        }
        other => panic!("a held message stays cancelable: {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn typing_runs_inside_the_gap_so_hand_overs_keep_the_policys_spacing() {
    let start = at("2026-12-01T10:00:00-05:00");
    let r = rig_on(clock::Clock::tokio_at(start)).await;
    let mut policy = pacing::Policy::unpaced("UTC");
    policy.min_gap_ms = 2_000;
    policy.max_gap_ms = 2_000;
    policy.typing = true;
    policy.typing_ms_per_char = 1_000;
    policy.typing_max_ms = 1_500;
    busy(r.outbox.set_policy(&r.org, policy)).await.unwrap();
    for i in 0..4 {
        busy(r.accept(i)).await;
    }
    r.outbox.link_up(&r.org, r.engine.clone());
    // Time moves in 10 ms steps, each followed by real time for the
    // database threads (a long sleep would let the runtime jump the clock
    // while the dispatcher waits on a read; a small step keeps what a slow
    // read on a busy machine adds to a gap well inside the tolerance).
    for _ in 0..1_500 {
        if r.sent().len() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        for _ in 0..5 {
            std::thread::sleep(Duration::from_millis(1));
            tokio::task::yield_now().await;
        }
    }
    let inc = r.org.inc;
    let handed = busy(
        r.store
            .read(move |c| store::messages::handed_recent(c, inc, 0, 10)),
    )
    .await
    .unwrap();
    assert_eq!(handed.len(), 4);
    let gaps: Vec<i64> = handed.windows(2).map(|w| w[1] - w[0]).collect();
    // 2 s apart with 1.5 s of "typing…" in each gap (3.5 s if it were added).
    for g in &gaps {
        assert!((2_000..2_200).contains(g), "{gaps:?}");
    }
    let typing = r
        .script
        .calls_of(|c| matches!(c, crate::engine::scripted::Call::Typing(_)));
    assert_eq!(typing.len(), 4);
}

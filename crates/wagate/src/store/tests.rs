//! The store's writer and schema: group commit with per-job rollback, events
//! announced only once committed and in order, the v0 → v1 migration, and
//! writes for a deleted org refused.

use std::time::Duration;

use serde_json::json;

use super::messages::Inserted;
use super::orgs::NewOrg;
use super::*;
use crate::args;

/// A webhook of org `inc` to a public URL, made at `created_ms`.
fn hook(id: &str, inc: i64, created_ms: i64) -> super::webhooks::Webhook {
    super::webhooks::Webhook {
        id: id.into(),
        inc,
        url: "https://app.example/hook".into(),
        events: None,
        secret: "s".into(),
        prev_secret: None,
        prev_until_ms: None,
        disabled: None,
        created_ms,
    }
}

/// The `job` field of org `inc`'s logged events, in order.
async fn logged_jobs(store: &Store, inc: i64) -> Vec<String> {
    store
        .read(move |c| events::after(c, inc, "4", 0, 10))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.data["job"].as_str().unwrap().to_string())
        .collect()
}

fn new_org(id: &str) -> NewOrg {
    NewOrg {
        id: id.into(),
        name: id.into(),
        default_country_code: None,
        token_hash: "00".repeat(32),
        created_ms: 1,
    }
}

async fn add_org(store: &Store, id: &str) -> OrgRow {
    let new = new_org(id);
    store
        .write(move |tx| orgs::insert(tx, &new))
        .await
        .unwrap()
        .expect("a new id")
}

async fn open() -> (tempfile::TempDir, Store) {
    super::test_store().await
}

#[tokio::test]
async fn one_failed_job_rolls_back_alone_in_a_shared_transaction() {
    let (_d, store) = open().await;
    let org = add_org(&store, "4").await;
    let inc = org.inc;
    let mut live = store.subscribe();
    // Hold the writer so the next three jobs land in one transaction.
    store.submit("hold", |_| {
        std::thread::sleep(Duration::from_millis(300));
        Ok(())
    });
    let a = store.write(move |tx| {
        tx.record_event(inc, "4", "test", json!({"job": "a"}))?;
        Ok(())
    });
    let b = store.write(move |tx| {
        tx.record_event(inc, "4", "test", json!({"job": "b"}))?;
        tx.execute("INSERT INTO no_such_table VALUES (1)", args![])?;
        Ok(())
    });
    let c = store.write(move |tx| {
        tx.record_event(inc, "4", "test", json!({"job": "c"}))?;
        Ok(())
    });
    let (a, b, c) = tokio::join!(a, b, c);
    assert!(a.is_ok() && c.is_ok());
    assert!(b.is_err(), "the failing job reports its failure");
    let jobs = logged_jobs(&store, inc).await;
    assert_eq!(jobs, vec!["a", "c"], "b's event rolled back with it");
    // Live subscribers heard exactly the committed events, in order.
    let heard: Vec<String> = [live.recv().await.unwrap(), live.recv().await.unwrap()]
        .iter()
        .map(|e| e.data["job"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(heard, vec!["a", "c"]);
    assert!(live.try_recv().is_err(), "nothing else was announced");
}

#[tokio::test]
async fn a_job_alone_in_its_transaction_that_fails_leaves_nothing() {
    let (_d, store) = open().await;
    let inc = add_org(&store, "4").await.inc;
    let mut live = store.subscribe();
    // Awaited one by one, each job has a transaction of its own.
    let bad = store
        .write(move |tx| {
            tx.record_event(inc, "4", "test", json!({"job": "bad"}))?;
            tx.execute("INSERT INTO no_such_table VALUES (1)", args![])?;
            Ok(())
        })
        .await;
    assert!(bad.is_err(), "the failing job reports its failure");
    store
        .write(move |tx| tx.record_event(inc, "4", "test", json!({"job": "good"})))
        .await
        .unwrap();
    let jobs = logged_jobs(&store, inc).await;
    assert_eq!(jobs, vec!["good"]);
    assert_eq!(live.recv().await.unwrap().data["job"], "good");
    assert!(
        live.try_recv().is_err(),
        "the failed job's event was not announced"
    );
}

#[tokio::test]
async fn an_attempt_inside_a_job_undoes_only_itself() {
    let (_d, store) = open().await;
    let inc = add_org(&store, "4").await.inc;
    let kept = store
        .write(move |tx| {
            let bad = tx.attempt(|tx| {
                tx.record_event(inc, "4", "test", json!({"n": 1}))?;
                tx.execute("INSERT INTO no_such_table VALUES (1)", args![])
            });
            assert!(bad.is_err());
            tx.attempt(|tx| tx.record_event(inc, "4", "test", json!({"n": 2})))?;
            Ok(tx.events.len())
        })
        .await
        .unwrap();
    assert_eq!(kept, 1);
    let n = store
        .read(move |c| events::count(c, inc, "test"))
        .await
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn events_are_announced_in_sequence_order_after_commit() {
    let (_d, store) = open().await;
    let inc = add_org(&store, "4").await.inc;
    let mut live = store.subscribe();
    let mut writes = Vec::new();
    for i in 0..200 {
        let s = store.clone();
        writes.push(tokio::spawn(async move {
            s.write(move |tx| tx.record_event(inc, "4", "test", json!({"i": i})))
                .await
                .unwrap()
        }));
    }
    for w in writes {
        w.await.unwrap();
    }
    let mut last = 0;
    for _ in 0..200 {
        let e = live.recv().await.unwrap();
        assert!(e.seq > last, "{} after {last}", e.seq);
        last = e.seq;
    }
}

#[tokio::test]
async fn a_write_for_a_deleted_org_is_refused_not_reassigned() {
    let (_d, store) = open().await;
    let old = add_org(&store, "4").await;
    store
        .write(move |tx| orgs::delete(tx, old.inc))
        .await
        .unwrap();
    let new = add_org(&store, "4").await;
    assert_ne!(old.inc, new.inc, "an incarnation is never reused");
    let inc = old.inc;
    let late = store
        .write(move |tx| tx.record_event(inc, "4", "message.status", json!({"id": "x"})))
        .await
        .unwrap_err();
    assert!(late.is_org_gone(), "{late}");
    let new_inc = new.inc;
    assert_eq!(
        store
            .read(move |c| events::last_seq(c, new_inc))
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn close_commits_what_was_submitted() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("wagate.db");
    let store = Store::open(&path).unwrap();
    let inc = add_org(&store, "4").await.inc;
    for i in 0..100 {
        store.submit("test", move |tx| {
            tx.record_event(inc, "4", "test", json!({ "i": i }))
                .map(|_| ())
        });
    }
    assert!(store.close(Duration::from_secs(5)).await);
    assert!(matches!(
        store.write(|_| Ok(())).await,
        Err(StoreError::Closed)
    ));
    let again = Store::open(&path).unwrap();
    assert_eq!(
        again
            .read(move |c| events::count(c, inc, "test"))
            .await
            .unwrap(),
        100
    );
}

/// The schema before versions (rows keyed by org id), as the previous
/// release created it.
const V0: &str = r#"
CREATE TABLE orgs (id TEXT PRIMARY KEY, name TEXT NOT NULL, default_cc TEXT, token_hash TEXT NOT NULL, created_ms INTEGER NOT NULL);
CREATE TABLE messages (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, org TEXT NOT NULL, phone TEXT NOT NULL, text TEXT NOT NULL, status TEXT NOT NULL, error TEXT, wa_id TEXT NOT NULL, idem_key TEXT, attempts INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL);
CREATE UNIQUE INDEX messages_idem ON messages(org, idem_key) WHERE idem_key IS NOT NULL;
CREATE INDEX messages_org_status ON messages(org, status, seq);
CREATE INDEX messages_wa_id ON messages(org, wa_id);
CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, org TEXT NOT NULL, kind TEXT NOT NULL, data TEXT NOT NULL, ts_ms INTEGER NOT NULL);
CREATE INDEX events_org ON events(org, seq);
CREATE TABLE inbound (seq INTEGER PRIMARY KEY AUTOINCREMENT, org TEXT NOT NULL, wa_id TEXT NOT NULL, sender TEXT NOT NULL, text TEXT NOT NULL, received_ms INTEGER NOT NULL, UNIQUE(org, wa_id));
INSERT INTO orgs VALUES ('4', 'Oceano', '57', 'aa', 10), ('2', 'Otro', NULL, 'bb', 20);
INSERT INTO messages (seq, id, org, phone, text, status, wa_id, idem_key, created_ms, updated_ms)
    VALUES (5, 'msg_a', '4', '573001112233', 'hola', 'delivered', '3EB0A', 'k1', 1, 2),
           (9, 'msg_b', '2', '573001112234', 'chao', 'queued', '3EB0B', NULL, 3, 3),
           (11, 'msg_orphan', 'gone', '573001112235', 'x', 'queued', '3EB0C', NULL, 4, 4);
INSERT INTO events (seq, org, kind, data, ts_ms)
    VALUES (40, '4', 'state', '{"state":"connected","detail":"WhatsApp connected as +573001112233"}', 5),
           (41, 'gone', 'state', '{"state":"new"}', 6);
INSERT INTO inbound (seq, org, wa_id, sender, text, received_ms) VALUES (3, '4', 'W1', '573001112233', 'SI', 7);
"#;

#[tokio::test]
async fn a_version_0_database_is_migrated_keeping_ids_and_sequences() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("wagate.db");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(V0).unwrap();
    }
    let store = Store::open(&path).unwrap();
    let rows = store.read(orgs::list).await.unwrap();
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, vec!["2", "4"]);
    let o4 = rows.iter().find(|r| r.id == "4").unwrap().clone();
    assert_eq!(o4.default_country_code.as_deref(), Some("57"));
    assert_eq!(o4.token_hash, "aa");
    let inc = o4.inc;
    let m = store
        .read(move |c| messages::get(c, inc, "msg_a"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (m.seq, m.status, m.idempotency_key.as_deref()),
        (5, MessageStatus::Delivered, Some("k1"))
    );
    let ev = store
        .read(move |c| events::after(c, inc, "4", 0, 10))
        .await
        .unwrap();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].seq, 40, "Last-Event-IDs stay valid");
    let inb = store
        .read(move |c| inbound::list(c, inc, 0, 10))
        .await
        .unwrap();
    assert_eq!(inb.len(), 1);
    let orphans: i64 = store
        .read(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM messages WHERE id = 'msg_orphan'",
                args![],
                |r| r.get(0),
            )
        })
        .await
        .unwrap();
    assert_eq!(orphans, 0);
    // New rows continue after the old sequences.
    let seq = store
        .write(move |tx| tx.record_event(inc, "4", "state", json!({})))
        .await
        .unwrap();
    assert!(seq > 41, "{seq}");
    let version: i64 = store
        .read(|c| c.query_row("PRAGMA user_version", args![], |r| r.get(0)))
        .await
        .unwrap();
    assert_eq!(version, schema::VERSION);
    // Opening again is a no-op.
    drop(store);
    Store::open(&path).unwrap();
}

#[tokio::test]
async fn a_version_1_database_gains_scheduling_and_keeps_its_queue_order() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("wagate.db");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(schema::SQLITE.steps[0]).unwrap();
        c.execute_batch(
            "INSERT INTO orgs (inc, id, name, token_hash, created_ms) VALUES (3, '4', 'Oceano', 'aa', 1);
             INSERT INTO messages (seq, id, inc, phone, text, status, wa_id, created_ms, updated_ms)
                 VALUES (7, 'msg_q', 3, '573001112233', 'hola', 'queued', '3EB0A', 1, 1),
                        (8, 'msg_s', 3, '573001112233', 'chao', 'sent', '3EB0B', 2, 2);
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let store = Store::open(&path).unwrap();
    let q = store
        .read(|c| messages::unacked(c, 3, 0, 10))
        .await
        .unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!((q[0].id.as_str(), q[0].qpos), ("msg_q", Some(7)));
    assert_eq!(q[0].send_at_ms, None);
    // A message accepted now queues after everything already there.
    let m = NewMessage {
        id: "msg_new".into(),
        inc: 3,
        phone: "573001112233".into(),
        text: "x".into(),
        wa_id: "3EB0C".into(),
        idem_key: None,
        now_ms: 10,
        send_at_ms: None,
        send_before_ms: None,
    };
    let Inserted::New(row) = store
        .write(move |tx| messages::insert(tx, &m))
        .await
        .unwrap()
    else {
        panic!("new");
    };
    assert!(row.qpos > Some(8), "{:?}", row.qpos);
    let version: i64 = store
        .read(|c| c.query_row("PRAGMA user_version", args![], |r| r.get(0)))
        .await
        .unwrap();
    assert_eq!(version, schema::VERSION);
}

#[test]
fn status_moves_forward_and_ends_stay_ended() {
    use MessageStatus::*;
    // (from, to, allowed)
    let rows = [
        (Scheduled, Queued, true),
        (Scheduled, Sent, false),
        (Scheduled, Canceled, true),
        (Scheduled, Expired, true),
        (Scheduled, Failed, false),
        (Queued, Scheduled, false),
        (Queued, Sent, true),
        (Queued, Canceled, true),
        (Queued, Expired, true),
        (Queued, Failed, true),
        (Sent, Queued, false),
        (Sent, Canceled, false),
        (Sent, Expired, false),
        (Sent, Read, true),
        (Read, Delivered, false),
        (Failed, Sent, false),
        (Canceled, Queued, false),
        (Canceled, Sent, false),
        // The server's word wins over a deadline that passed during the ack.
        (Expired, Sent, true),
        (Expired, Delivered, true),
        (Expired, Queued, false),
        (Expired, Canceled, false),
    ];
    for (from, to, ok) in rows {
        assert_eq!(from.may_become(to), ok, "{from:?} → {to:?}");
    }
}

#[tokio::test]
async fn retention_deletes_old_events_and_their_finished_deliveries_only() {
    use super::webhooks::{self as hooks, Outcome};
    let (_d, store) = open().await;
    let org = add_org(&store, "4").await;
    let inc = org.inc;
    let day = 86_400_000;
    let now = now_ms();
    // Old events: one delivered, one failed, one still pending, one with no
    // webhook; and a recent one.
    let seqs = store
        .write(move |tx| {
            hooks::insert(tx, &hook("wh_1", inc, now - 40 * day))?;
            let mut seqs = vec![];
            for (i, age) in [40, 39, 38, 37, 1].iter().enumerate() {
                let ts = now - age * day;
                let seq = events::insert(tx, inc, "message.status", &json!({"i": i}), ts)?;
                if i < 3 {
                    hooks::fan_out(tx, inc, "message.status", seq, ts)?;
                }
                seqs.push(seq);
            }
            Ok(seqs)
        })
        .await
        .unwrap();
    let delivery = |event: i64| {
        let s = store.clone();
        async move {
            s.read(move |c| {
                c.query_row(
                    "SELECT seq FROM deliveries WHERE event = ?1",
                    args![event],
                    |r| r.get::<i64>(0),
                )
            })
            .await
            .unwrap()
        }
    };
    let (d0, d1) = (delivery(seqs[0]).await, delivery(seqs[1]).await);
    store
        .write(move |tx| {
            hooks::record(tx, d0, &Outcome::Delivered { code: 200 }, now)?;
            hooks::record(
                tx,
                d1,
                &Outcome::Failed {
                    code: Some(500),
                    error: "HTTP 500".into(),
                },
                now,
            )
        })
        .await
        .unwrap();

    let deleted = store
        .write(move |tx| events::prune(tx, now_ms() - 30 * day, 2_000))
        .await
        .unwrap();
    assert_eq!(
        deleted, 3,
        "the delivered, the failed and the hookless old events"
    );
    let (left, deliveries): (Vec<i64>, Vec<String>) = store
        .read(move |c| {
            let left = c
                .query_map(
                    "SELECT seq FROM events WHERE inc = ?1 ORDER BY seq",
                    args![inc],
                    |r| r.get(0),
                )?
                .collect::<DbResult<_>>()?;
            let d = c
                .query_map("SELECT status FROM deliveries ORDER BY seq", args![], |r| {
                    r.get(0)
                })?
                .collect::<DbResult<_>>()?;
            Ok((left, d))
        })
        .await
        .unwrap();
    assert_eq!(
        left,
        vec![seqs[2], seqs[4]],
        "the pending one and the recent one stay"
    );
    assert_eq!(deliveries, vec!["pending".to_string()]);
    // Nothing more to delete: a second pass deletes nothing.
    assert_eq!(
        store
            .write(move |tx| events::prune(tx, now_ms() - 30 * day, 2_000))
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn a_receiver_back_releases_only_its_own_deliveries_in_backoff() {
    use super::webhooks::{self as hooks, Outcome};
    let (_d, store) = open().await;
    let inc = add_org(&store, "4").await.inc;
    let now = now_ms();
    let later = now + 600_000;
    store
        .write(move |tx| {
            for id in ["wh_a", "wh_b"] {
                hooks::insert(tx, &hook(id, inc, now))?;
            }
            for i in 0..3 {
                let seq = events::insert(tx, inc, "message.status", &json!({"i": i}), now)?;
                hooks::fan_out(tx, inc, "message.status", seq, now)?;
            }
            // Every delivery failed once and waits ten minutes.
            let retry = Outcome::Retry {
                code: Some(503),
                error: "HTTP 503".into(),
                retry_at_ms: later,
            };
            let seqs: Vec<i64> = tx
                .query_map("SELECT seq FROM deliveries", args![], |r| r.get(0))?
                .collect::<DbResult<_>>()?;
            for d in seqs {
                hooks::record(tx, d, &retry, now)?;
            }
            Ok(())
        })
        .await
        .unwrap();
    let released = store
        .write(move |tx| hooks::release_backoffs(tx, "wh_a", now))
        .await
        .unwrap();
    assert_eq!(released, 3);
    let due: Vec<(String, i64)> = store
        .read(|c| {
            c.query_map(
                "SELECT webhook, due_ms FROM deliveries ORDER BY webhook, seq",
                args![],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?
            .collect()
        })
        .await
        .unwrap();
    for (hook, at) in due {
        let want = if hook == "wh_a" { now } else { later };
        assert_eq!(at, want, "{hook}");
    }
}

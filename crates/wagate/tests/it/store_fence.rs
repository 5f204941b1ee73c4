//! The store's one fence (`Tx::fence`, its statement `cluster::lease::FENCE`)
//! on a real PostgreSQL, with the gateway's store fenced by a node's
//! ownership as a node runs it: the owner's write commits; a write after the
//! lease lapsed, or after another node took the org over (a new epoch), is
//! refused with "lease lost" and leaves nothing behind. SQLite has no leases
//! (one gateway), so these cases are PostgreSQL's only; the rest of the
//! store suite runs on both databases (`store::tests`, again with
//! `WAGATE_STORE_TEST_PG` in scripts/test).

use std::sync::Arc;
use std::time::{Duration, Instant};

use wagate::cluster::ownership::Ownership;
use wagate::cluster::{self, Held, Leases, Timing};
use wagate::db::DbError;
use wagate::store::orgs::{self, NewOrg};
use wagate::store::{Store, StoreError, GATEWAY};

use crate::common::pg::fresh_db;

/// A migrated database with org "4" (incarnation returned) and its lease row.
async fn setup() -> (String, tokio_postgres::Client, i64) {
    let url = fresh_db().await;
    let mut c = cluster::connect(&url).await.unwrap();
    cluster::migrate(&mut c).await.unwrap();
    let store = Store::open_pg(&url, &GATEWAY).await.unwrap();
    let row = store
        .write(|tx| {
            orgs::insert(
                tx,
                &NewOrg {
                    id: "4".into(),
                    name: "Óptica Cuatro".into(),
                    default_country_code: None,
                    token_hash: "x".into(),
                    created_ms: 0,
                },
            )
        })
        .await
        .unwrap()
        .unwrap();
    Leases::new("a", Timing::DEFAULT)
        .unwrap()
        .ensure(&c, &["4".to_string()])
        .await
        .unwrap();
    (url, c, row.inc)
}

/// The gateway's store as node `node` runs it: fenced by its ownership.
async fn node_store(url: &str, node: &str) -> (Store, Arc<Ownership>) {
    let store = Store::open_pg(url, &GATEWAY).await.unwrap();
    let ownership = Arc::new(Ownership::new(node));
    store.set_fences(ownership.clone());
    (store, ownership)
}

/// Record one event for the org, fenced (what a supervisor's journal does).
async fn record(store: &Store, inc: i64, what: &str) -> Result<i64, StoreError> {
    let what = what.to_string();
    store
        .write(move |tx| {
            tx.fence(inc)?;
            tx.record_event(inc, "4", "state", serde_json::json!({ "what": what }))
        })
        .await
}

async fn recorded(c: &tokio_postgres::Client) -> Vec<String> {
    c.query("SELECT data FROM events ORDER BY seq", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let data: String = r.get(0);
            let v: serde_json::Value = serde_json::from_str(&data).unwrap();
            v["what"].as_str().unwrap_or_default().to_string()
        })
        .collect()
}

fn lease_lost(r: &Result<i64, StoreError>, inc: i64) -> bool {
    matches!(r, Err(StoreError::Sql(DbError::Fenced(i))) if *i == inc)
}

#[tokio::test]
async fn a_write_fenced_by_a_lost_lease_is_refused() {
    let (url, admin, inc) = setup().await;
    let (store, ownership) = node_store(&url, "a").await;
    let a = Leases::new("a", Timing::DEFAULT).unwrap();
    // Not held at all: refused.
    let r = record(&store, inc, "before the lease").await;
    assert!(lease_lost(&r, inc), "{r:?}");
    let held = a.try_acquire(&admin, "4").await.unwrap().unwrap();
    ownership.insert(inc, held.clone());
    record(&store, inc, "while owner")
        .await
        .expect("the owner writes");
    // The lease lapses in the database while this node still thinks it
    // holds it (its own deadline has not passed): the database refuses.
    admin
        .execute(
            "UPDATE org_leases SET expires_at = clock_timestamp() - interval '1 second' WHERE org = '4'",
            &[],
        )
        .await
        .unwrap();
    assert!(ownership.owns_inc(inc));
    let r = record(&store, inc, "after the lapse").await;
    assert!(lease_lost(&r, inc), "{r:?}");
    // The database renews it, but this node's own deadline has passed: it
    // refuses before asking the database.
    admin
        .execute(
            "UPDATE org_leases SET expires_at = clock_timestamp() + interval '1 minute' WHERE org = '4'",
            &[],
        )
        .await
        .unwrap();
    ownership.insert(
        inc,
        Held {
            valid_until: Instant::now() - Duration::from_millis(1),
            ..held
        },
    );
    let r = record(&store, inc, "past its own deadline").await;
    assert!(lease_lost(&r, inc), "{r:?}");
    assert_eq!(recorded(&admin).await, ["while owner"]);
}

#[tokio::test]
async fn a_takeover_bumps_the_epoch_and_the_old_owners_write_fails() {
    let (url, admin, inc) = setup().await;
    let (store_a, own_a) = node_store(&url, "a").await;
    let (store_b, own_b) = node_store(&url, "b").await;
    let (a, b) = (
        Leases::new("a", Timing::DEFAULT).unwrap(),
        Leases::new("b", Timing::DEFAULT).unwrap(),
    );
    let held_a = a.try_acquire(&admin, "4").await.unwrap().unwrap();
    own_a.insert(inc, held_a.clone());
    record(&store_a, inc, "a as owner").await.expect("a writes");
    // a is paused past its lease (by the database's clock); b takes over.
    admin
        .execute(
            "UPDATE org_leases SET expires_at = clock_timestamp() - interval '1 second' WHERE org = '4'",
            &[],
        )
        .await
        .unwrap();
    let held_b = b.try_acquire(&admin, "4").await.unwrap().unwrap();
    assert!(held_b.epoch > held_a.epoch, "{held_b:?} after {held_a:?}");
    own_b.insert(inc, held_b);
    // a wakes up still trusting its own deadline: its write is refused.
    assert!(own_a.owns_inc(inc));
    let r = record(&store_a, inc, "a after the takeover").await;
    assert!(lease_lost(&r, inc), "{r:?}");
    record(&store_b, inc, "b as owner").await.expect("b writes");
    assert_eq!(recorded(&admin).await, ["a as owner", "b as owner"]);
}

#[tokio::test]
async fn a_takeover_waits_for_a_write_in_flight() {
    // The fence holds the lease row shared until the commit: a takeover's
    // update of that row waits for it, so the write cannot land after the
    // new owner started.
    let (url, admin, _) = setup().await;
    let a = Leases::new("a", Timing::DEFAULT).unwrap();
    let held = a.try_acquire(&admin, "4").await.unwrap().unwrap();
    let mut writer = cluster::connect(&url).await.unwrap();
    let tx = writer.transaction().await.unwrap();
    let fenced = tx
        .query(
            &wagate::db::to_pg(wagate::cluster::lease::FENCE),
            &[&held.org, &"a", &held.epoch],
        )
        .await
        .unwrap();
    assert_eq!(fenced.len(), 1, "the owner passes the fence");
    let taker = cluster::connect(&url).await.unwrap();
    let takeover = tokio::spawn(async move {
        taker
            .execute(
                "UPDATE org_leases SET owner = 'b', epoch = epoch + 1 WHERE org = '4'",
                &[],
            )
            .await
            .unwrap()
    });
    // Seen by PostgreSQL itself: the takeover's backend waits on a lock.
    let mut waiting = false;
    for _ in 0..200 {
        let n: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE org_leases SET owner = ''b''%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if n == 1 {
            waiting = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(waiting, "the takeover waits for the fenced write's lock");
    assert!(!takeover.is_finished());
    tx.commit().await.unwrap();
    assert_eq!(takeover.await.unwrap(), 1);
}

//! Org ownership by lease on a real PostgreSQL (a throwaway cluster, see
//! `common/pg.rs`): one owner at a time, takeovers bump the epoch (the
//! fence itself is tested through the store, `store_fence.rs`), orgs spread evenly, a drain, and
//! a wake (LISTEN/NOTIFY) reaching another node after the commit.

use std::time::Duration;

use tokio_postgres::Client;
use wagate::cluster::{self, Leases, Membership, Timing};

use crate::common::pg::fresh_db;

async fn db(url: &str) -> Client {
    let mut c = cluster::connect(url).await.expect("connect");
    cluster::migrate(&mut c).await.expect("migrate");
    c
}

fn orgs(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("org{i:02}")).collect()
}

/// The lease of `org` runs out now (what waiting `ttl` would do).
async fn lapse(c: &Client, org: &str) {
    c.execute(
        "UPDATE org_leases SET expires_at = now() - interval '1 second' WHERE org = $1",
        &[&org],
    )
    .await
    .unwrap();
}

fn node(id: &str) -> Leases {
    Leases::new(id, Timing::DEFAULT).unwrap()
}

#[tokio::test]
async fn one_owner_at_a_time_and_a_takeover_bumps_the_epoch() {
    let url = fresh_db().await;
    let c = db(&url).await;
    let (a, b) = (node("a"), node("b"));
    a.ensure(&c, &orgs(1)).await.unwrap();
    let held = a
        .try_acquire(&c, "org00")
        .await
        .unwrap()
        .expect("free org taken");
    assert_eq!(held.epoch, 1);
    assert!(held.valid());
    assert_eq!(b.try_acquire(&c, "org00").await.unwrap(), None, "held by a");
    assert_eq!(
        a.renew_all(&c).await.unwrap().len(),
        1,
        "a renews its lease"
    );
    lapse(&c, "org00").await;
    let taken = b
        .try_acquire(&c, "org00")
        .await
        .unwrap()
        .expect("lapsed org taken");
    assert_eq!(taken.epoch, 2);
    assert!(
        a.renew_all(&c).await.unwrap().is_empty(),
        "a's lease is gone"
    );
    assert!(
        !a.release(&c, &held).await.unwrap(),
        "a cannot release b's lease"
    );
    assert!(b.release(&c, &taken).await.unwrap());
    let back = a
        .try_acquire(&c, "org00")
        .await
        .unwrap()
        .expect("released org taken");
    assert_eq!(
        back.epoch, 3,
        "even the old owner takes it with a new epoch"
    );
}

#[tokio::test]
async fn ten_nodes_racing_for_one_org_leave_one_owner() {
    let url = fresh_db().await;
    let c = db(&url).await;
    node("n0").ensure(&c, &orgs(1)).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..10 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let c = cluster::connect(&url).await.unwrap();
            node(&format!("n{i}"))
                .try_acquire(&c, "org00")
                .await
                .unwrap()
        }));
    }
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap().is_some());
    }
    assert_eq!(won, 1);
    let owners: i64 = c
        .query_one("SELECT count(DISTINCT owner) FROM org_leases", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(owners, 1);
}

/// The owner's own deadline (monotonic clock, from before the renewal was
/// sent, less the margin) falls before the database's expiry.
#[tokio::test]
async fn the_owner_stops_before_the_database_lets_the_lease_go() {
    let url = fresh_db().await;
    let c = db(&url).await;
    let a = node("a");
    a.ensure(&c, &orgs(1)).await.unwrap();
    let held = a.try_acquire(&c, "org00").await.unwrap().unwrap();
    let db_left_ms: f64 = c
        .query_one(
            "SELECT extract(epoch FROM expires_at - now())::float8 * 1000 FROM org_leases",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let local_left = held
        .valid_until
        .saturating_duration_since(std::time::Instant::now());
    let margin = Timing::DEFAULT.margin.as_millis() as f64;
    assert!(
        (local_left.as_millis() as f64) + margin <= db_left_ms,
        "local {local_left:?} + margin {margin} ms vs database {db_left_ms} ms"
    );
    let bad = Timing {
        ttl: Duration::from_secs(5),
        renew_every: Duration::from_secs(3),
        margin: Duration::from_secs(3),
    };
    assert!(Leases::new("x", bad).is_err(), "no time left to renew");
}

/// One pass of a node's balancing loop: heartbeat, renew, then take its
/// share of free orgs or hand its extras back.
async fn pass(c: &Client, m: &Membership, l: &Leases, total: i64, draining: bool) {
    m.heartbeat(c, draining).await.unwrap();
    let mut held = l.renew_all(c).await.unwrap();
    let plan = cluster::balance(c, m, total).await.unwrap();
    for h in held.drain(..).take(plan.to_give() as usize) {
        assert!(l.release(c, &h).await.unwrap());
    }
    l.acquire_free(c, plan.to_take()).await.unwrap();
}

async fn owned(c: &Client) -> Vec<(String, i64)> {
    c.query(
        "SELECT owner, count(*) FROM org_leases WHERE owner IS NOT NULL AND expires_at > now()
         GROUP BY owner ORDER BY owner",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

#[tokio::test]
async fn thirty_orgs_spread_over_three_nodes_and_a_drain_hands_them_over() {
    let url = fresh_db().await;
    let c = db(&url).await;
    let names = ["a", "b", "c"];
    let nodes: Vec<(Membership, Leases)> = names
        .iter()
        .map(|n| {
            (
                Membership {
                    node: n.to_string(),
                    node_ttl: Duration::from_secs(10),
                    url: None,
                },
                node(n),
            )
        })
        .collect();
    nodes[0].1.ensure(&c, &orgs(30)).await.unwrap();
    for (m, _) in &nodes {
        m.heartbeat(&c, false).await.unwrap();
    }
    for _ in 0..3 {
        for (m, l) in &nodes {
            pass(&c, m, l, 30, false).await;
        }
    }
    let want = |n: &[(&str, i64)]| -> Vec<(String, i64)> {
        n.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    };
    assert_eq!(owned(&c).await, want(&[("a", 10), ("b", 10), ("c", 10)]));
    // c drains: it hands its orgs back; a and b take them.
    for _ in 0..3 {
        for (i, (m, l)) in nodes.iter().enumerate() {
            pass(&c, m, l, 30, i == 2).await;
        }
    }
    assert_eq!(owned(&c).await, want(&[("a", 15), ("b", 15)]));
}

#[tokio::test]
async fn nodes_starting_together_migrate_once() {
    let url = fresh_db().await;
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = cluster::connect(&url).await.unwrap();
            cluster::migrate(&mut c).await
        }));
    }
    for t in tasks {
        assert_eq!(
            t.await.unwrap().expect("migrate"),
            cluster::schema_versions()
        );
    }
}

/// A wake sent from one connection reaches another node's listener once
/// the sender's transaction commits, and not before.
#[tokio::test]
async fn a_wake_reaches_the_listening_node_after_the_commit() {
    use tokio::sync::mpsc;
    use tokio_util::sync::CancellationToken;
    let url = fresh_db().await;
    let (tx, mut woken) = mpsc::channel(16);
    let stop = CancellationToken::new();
    let listener = tokio::spawn({
        let (url, stop) = (url.clone(), stop.clone());
        async move { cluster::wake::listen(&url, tx, stop).await }
    });
    let mut sender = cluster::connect(&url).await.unwrap();
    // The listener is up once a first wake gets through.
    let t = std::time::Instant::now();
    loop {
        cluster::wake::wake(&sender, "probe").await.unwrap();
        if let Ok(Some(o)) = tokio::time::timeout(Duration::from_millis(200), woken.recv()).await {
            assert_eq!(o, "probe");
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "listener never heard"
        );
    }
    let t = sender.transaction().await.unwrap();
    t.execute(
        "SELECT pg_notify($1, $2)",
        &[&cluster::wake::CHANNEL, &"org7"],
    )
    .await
    .unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), woken.recv())
            .await
            .is_err(),
        "heard before the commit"
    );
    let sent = std::time::Instant::now();
    t.commit().await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), woken.recv())
        .await
        .expect("heard after the commit");
    println!("wake delivered {:?} after the commit", sent.elapsed());
    assert_eq!(got.as_deref(), Some("org7"));
    stop.cancel();
    listener.await.unwrap().unwrap();
}

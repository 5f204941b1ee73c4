//! Each node's ownership loop on a real PostgreSQL: orgs split between
//! nodes, a dead node's orgs taken over once its leases lapse, a node cut
//! off from the database stopping its links before anyone else starts
//! them, and a drain handing every org over.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wagate::cluster::{self, Change, Lost, Membership, Owner, Timing};

use crate::common::pg::fresh_db;

/// Short leases so the tests take seconds: 4 s, renewed every 1 s, the
/// owner stopping 2 s early; a node is live while it beat in the last 3 s.
const FAST: Timing = Timing {
    ttl: Duration::from_secs(4),
    renew_every: Duration::from_secs(1),
    margin: Duration::from_secs(2),
};

#[derive(Debug, Clone, PartialEq)]
enum Ev {
    Gained(String, i64),
    Lost(String, Lost),
    Give(String),
}

/// Every node's changes, in the order the gateways received them.
type Log = Arc<Mutex<Vec<(Instant, String, Ev)>>>;

struct Node {
    stop: CancellationToken,
    draining: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

fn start(url: &str, id: &str, orgs: usize, log: &Log) -> Node {
    let (tx, mut rx) = mpsc::channel(64);
    let draining = Arc::new(AtomicBool::new(false));
    let owner = Owner {
        url: url.to_string(),
        membership: Membership {
            node: id.to_string(),
            node_ttl: Duration::from_secs(3),
            url: None,
        },
        timing: FAST,
        draining: draining.clone(),
        busy: None,
        renewed: None,
    };
    let stop = CancellationToken::new();
    let names: Vec<String> = (0..orgs).map(|i| format!("org{i}")).collect();
    let s = stop.clone();
    let run = tokio::spawn(async move {
        owner.run(move || names.clone(), tx, s).await;
    });
    // The gateway's side: record each change; close a given-up link at once.
    let (log, node) = (log.clone(), id.to_string());
    let task = tokio::spawn(async move {
        let record = |e: Ev| log.lock().unwrap().push((Instant::now(), node.clone(), e));
        let mut run = run;
        loop {
            tokio::select! {
                c = rx.recv() => match c {
                    Some(Change::Gained(h)) => record(Ev::Gained(h.org, h.epoch)),
                    Some(Change::Lost { org, why }) => record(Ev::Lost(org, why)),
                    Some(Change::Give { org, done }) => {
                        record(Ev::Give(org));
                        let _ = done.send(());
                    }
                    None => return,
                },
                _ = &mut run => return,
            }
        }
    });
    Node {
        stop,
        draining,
        task,
    }
}

/// Who owns what now, from the log: org → node.
fn owners(log: &Log) -> std::collections::BTreeMap<String, String> {
    let mut m = std::collections::BTreeMap::new();
    for (_, node, e) in log.lock().unwrap().iter() {
        match e {
            Ev::Gained(org, _) => {
                m.insert(org.clone(), node.clone());
            }
            Ev::Lost(org, _) | Ev::Give(org) => {
                if m.get(org) == Some(node) {
                    m.remove(org);
                }
            }
        }
    }
    m
}

fn count(log: &Log, node: &str) -> usize {
    owners(log).values().filter(|n| *n == node).count()
}

async fn wait(within: Duration, what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < within, "waited {within:?} for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    t.elapsed()
}

async fn migrated(url: &str) {
    let mut c = cluster::connect(url).await.unwrap();
    cluster::migrate(&mut c).await.unwrap();
}

/// The orgs `node` owns now, with the epoch it holds each at, and where
/// the log stands.
fn snapshot(log: &Log, node: &str) -> (Vec<(String, i64)>, usize) {
    let owned = owners(log);
    let log = log.lock().unwrap();
    let mine = owned
        .iter()
        .filter(|(_, n)| *n == node)
        .map(|(org, _)| {
            let epoch = log
                .iter()
                .filter_map(|(_, n, e)| match e {
                    Ev::Gained(o, ep) if n == node && o == org => Some(*ep),
                    _ => None,
                })
                .max()
                .unwrap_or(0);
            (org.clone(), epoch)
        })
        .collect();
    (mine, log.len())
}

/// Each of `orgs` (held by `from` at log position `since`) was started by
/// `to` with a newer epoch, and, when `from` was alive to say so, only
/// after `from` stopped it.
fn handed_over(
    log: &Log,
    orgs: &[(String, i64)],
    since: usize,
    from: &str,
    to: &str,
    from_alive: bool,
) {
    let log = log.lock().unwrap();
    for (org, epoch) in orgs {
        let started = log[since..]
            .iter()
            .position(|(_, n, e)| n == to && matches!(e, Ev::Gained(o, _) if o == org))
            .map(|i| i + since)
            .unwrap_or_else(|| panic!("{to} never started {org}: {log:#?}"));
        let Ev::Gained(_, new_epoch) = &log[started].2 else {
            unreachable!()
        };
        assert!(
            new_epoch > epoch,
            "{org}: {from} had epoch {epoch}, {to} took it at {new_epoch}"
        );
        if from_alive {
            let stopped = log[since..started].iter().any(|(_, n, e)| {
                n == from && matches!(e, Ev::Lost(o, _) | Ev::Give(o) if o == org)
            });
            assert!(
                stopped,
                "{to} started {org} before {from} stopped it: {log:#?}"
            );
        }
    }
}

/// Nodes a and b (a through `url_a`) on `orgs` orgs, once they hold half each.
async fn pair(url: &str, url_a: &str, orgs: usize, log: &Log) -> (Node, Node) {
    let a = start(url_a, "a", orgs, log);
    let b = start(url, "b", orgs, log);
    let half = orgs / 2;
    wait(Duration::from_secs(20), "half the orgs each", || {
        count(log, "a") == half && count(log, "b") == half
    })
    .await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_orgs_move_to_the_living_after_its_leases_lapse() {
    let url = fresh_db().await;
    migrated(&url).await;
    let log: Log = Arc::default();
    let (a, b) = pair(&url, &url, 6, &log).await;
    let (had, since) = snapshot(&log, "a");
    assert_eq!(had.len(), 3);
    // SIGKILL, as far as the database can tell: no release, no more renewals.
    a.task.abort();
    a.stop.cancel();
    let took = wait(Duration::from_secs(30), "b owning all 6", || {
        count(&log, "b") == 6
    })
    .await;
    println!("a's 3 orgs on b {took:?} after a died (lease 4 s, node liveness 3 s)");
    handed_over(&log, &had, since, "a", "b", false);
    b.stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_the_database_stops_before_another_starts() {
    let url = fresh_db().await;
    migrated(&url).await;
    let admin = cluster::connect(&url).await.unwrap();
    admin
        .batch_execute("CREATE ROLE node_a LOGIN SUPERUSER")
        .await
        .unwrap();
    let url_a = url.replace("user=wagate", "user=node_a");
    let log: Log = Arc::default();
    let (a, b) = pair(&url, &url_a, 4, &log).await;
    let (had, since) = snapshot(&log, "a");
    assert_eq!(had.len(), 2);
    // a can no longer reach the database: its connection is cut and it
    // may not log in again.
    admin
        .batch_execute(
            "ALTER ROLE node_a NOLOGIN;
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'node_a';",
        )
        .await
        .unwrap();
    wait(Duration::from_secs(30), "b owning all 4", || {
        count(&log, "b") == 4
    })
    .await;
    let lost: Vec<Ev> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, n, e)| n == "a" && matches!(e, Ev::Lost(..)))
        .map(|(_, _, e)| e.clone())
        .collect();
    assert_eq!(lost.len(), 2, "{lost:?}");
    assert!(lost
        .iter()
        .all(|e| matches!(e, Ev::Lost(_, Lost::Deadline))));
    handed_over(&log, &had, since, "a", "b", true);
    a.stop.cancel();
    b.stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_node_hands_every_org_over_after_closing_its_links() {
    let url = fresh_db().await;
    migrated(&url).await;
    let log: Log = Arc::default();
    let (a, b) = pair(&url, &url, 6, &log).await;
    let (had, since) = snapshot(&log, "a");
    a.draining.store(true, std::sync::atomic::Ordering::SeqCst);
    let took = wait(Duration::from_secs(20), "b owning all 6", || {
        count(&log, "b") == 6
    })
    .await;
    println!("drain: 3 orgs handed over in {took:?}");
    assert_eq!(count(&log, "a"), 0);
    handed_over(&log, &had, since, "a", "b", true);
    let deadline_losses = log.lock().unwrap()[since..]
        .iter()
        .filter(|(_, _, e)| matches!(e, Ev::Lost(..)))
        .count();
    assert_eq!(
        deadline_losses, 0,
        "a clean hand-over loses nothing by deadline"
    );
    a.stop.cancel();
    b.stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_node_with_no_other_node_keeps_its_orgs_until_one_joins() {
    let url = fresh_db().await;
    migrated(&url).await;
    let log: Log = Arc::default();
    let a = start(&url, "a", 4, &log);
    wait(Duration::from_secs(20), "a owning all 4", || {
        count(&log, "a") == 4
    })
    .await;
    let (had, since) = snapshot(&log, "a");
    a.draining.store(true, std::sync::atomic::Ordering::SeqCst);
    // Five renewals: a gives nothing up, since no node could take it.
    tokio::time::sleep(FAST.renew_every * 5).await;
    let stopped: Vec<Ev> = log.lock().unwrap()[since..]
        .iter()
        .map(|(_, _, e)| e.clone())
        .collect();
    assert!(stopped.is_empty(), "with nowhere to go: {stopped:?}");
    assert_eq!(count(&log, "a"), 4);
    // A node joins: the drain goes on, every org moves to it.
    let b = start(&url, "b", 4, &log);
    wait(Duration::from_secs(20), "b owning all 4", || {
        count(&log, "b") == 4
    })
    .await;
    assert_eq!(count(&log, "a"), 0);
    handed_over(&log, &had, since, "a", "b", true);
    a.stop.cancel();
    b.stop.cancel();
}

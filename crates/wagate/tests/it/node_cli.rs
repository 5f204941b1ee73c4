//! `wagate node …` as an operator types it: `--database` before or after
//! the subcommand, a clear sentence when it is missing or the database has
//! no gateway in it, an unknown node named, a drain with no other node to
//! take the orgs saying so, and a second gateway started under a running
//! node's id refused, and a node stopped cleanly starting again under its id.

use std::process::Output;
use std::time::Duration;

use wagate::cluster::{self, Membership};

use crate::common::bin;
use crate::common::pg::fresh_db;

/// Run `wagate node ARGS` off the async threads.
async fn node(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(bin())
            .arg("node")
            .args(&args)
            .env_remove("WAGATE_DATABASE")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_commands_take_the_database_anywhere_and_explain_what_is_wrong() {
    let missing = node(&["list"]).await;
    let (_, err) = text(&missing);
    assert_eq!(missing.status.code(), Some(1), "{err}");
    assert!(err.contains("needs --database"), "{err}");

    let url = fresh_db().await;
    let empty = node(&["list", "--database", &url]).await;
    let (_, err) = text(&empty);
    assert_eq!(empty.status.code(), Some(1), "{err}");
    assert!(err.contains("no wagate tables yet"), "{err}");

    let mut c = cluster::connect(&url).await.unwrap();
    cluster::migrate(&mut c).await.unwrap();
    let solo = Membership {
        node: "solo".into(),
        node_ttl: Duration::from_secs(15),
        url: Some("http://127.0.0.1:9".into()),
    };
    solo.heartbeat(&c, false).await.unwrap();

    let unknown = node(&["--database", &url, "drain", "nosuch"]).await;
    let (_, err) = text(&unknown);
    assert_eq!(unknown.status.code(), Some(1), "{err}");
    assert!(err.contains("no node 'nosuch'"), "{err}");

    // The only node: nothing can take its orgs, and the operator is told.
    let drained = node(&["drain", "solo", "--database", &url, "--wait", "1"]).await;
    let (out, err) = text(&drained);
    assert_eq!(drained.status.code(), Some(0), "{out}{err}");
    assert!(err.contains("no other live node can take them"), "{err}");
    let listed = node(&["list", "--database", &url]).await;
    let (out, err) = text(&listed);
    assert!(listed.status.success(), "{err}");
    let row = out.lines().find(|l| l.starts_with("solo")).unwrap_or("");
    assert!(row.contains("draining"), "{out}");

    // With another live node, no such note.
    let other = Membership {
        node: "other".into(),
        ..solo
    };
    other.heartbeat(&c, false).await.unwrap();
    let again = node(&["drain", "solo", "--database", &url, "--wait", "1"]).await;
    let (out, err) = text(&again);
    assert_eq!(again.status.code(), Some(0), "{out}{err}");
    assert!(!err.contains("no other live node"), "{err}");
    let resumed = node(&["resume", "solo", "--database", &url]).await;
    assert!(resumed.status.success(), "{:?}", text(&resumed));
    let listed = node(&["list", "--database", &url]).await;
    let (out, _) = text(&listed);
    let row = out.lines().find(|l| l.starts_with("solo")).unwrap_or("");
    assert!(row.contains("live"), "{out}");
}

#[test]
fn a_second_gateway_under_a_running_nodes_id_stops_with_a_clear_error() {
    let url = crate::common::fresh_db_blocking();
    let first_data = tempfile::tempdir().unwrap();
    crate::common::use_database(first_data.path(), url.clone());
    // 5 s leases: a node is live while it heartbeated in the last 5 s.
    let _first = crate::common::Server::start_args(
        first_data.path(),
        &[
            "--offline",
            "--node-id",
            "clinic-gw",
            "--lease-seconds",
            "5",
        ],
    );
    let second_data = tempfile::tempdir().unwrap();
    let t = std::time::Instant::now();
    let out = std::process::Command::new(bin())
        .args(["serve", "--offline", "--listen", "127.0.0.1:0"])
        .args(["--node-id", "clinic-gw", "--lease-seconds", "5"])
        .arg(format!("--database={url}"))
        .arg("--data")
        .arg(second_data.path())
        .env("WAGATE_ADMIN_TOKEN", crate::common::ADMIN)
        .env("WAGATE_LOG", "warn")
        .output()
        .unwrap();
    let waited = t.elapsed();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("node id 'clinic-gw' is in use")
            && stderr.contains("give each gateway its own --node-id"),
        "{stderr}"
    );
    // It waited two liveness windows for an earlier process to go first.
    assert!(waited >= Duration::from_secs(10), "{waited:?}");
    println!(
        "the second gateway gave up after {:.1} s",
        waited.as_secs_f64()
    );
}

/// A node that stopped cleanly (SIGTERM: its heartbeat set to
/// '-infinity' as it leaves) starts again under its id at once — the
/// restart a service manager does. PostgreSQL before 17 cannot subtract
/// '-infinity' from a time; the start used to fail on it.
#[test]
fn a_node_stopped_cleanly_starts_again_under_its_id() {
    let url = crate::common::fresh_db_blocking();
    let data = tempfile::tempdir().unwrap();
    crate::common::use_database(data.path(), url);
    let args = [
        "--offline",
        "--node-id",
        "clinic-gw",
        "--lease-seconds",
        "5",
    ];
    let mut first = crate::common::Server::start_args(data.path(), &args);
    let (status, _) = first
        .terminate(Duration::from_secs(15))
        .expect("it stops on SIGTERM");
    assert!(status.success(), "{status:?}");
    // Starting again: `Server::start_args` panics if it never listens.
    let mut again = crate::common::Server::start_args(data.path(), &args);
    let (st, _) = again.call("GET", "/readyz", None, None);
    assert_eq!(st, 200);
    assert!(again.terminate(Duration::from_secs(15)).is_some());
}

//! Running out of file descriptors never unlinks an organization: more
//! linked orgs than the open-file limit can hold wait in state `error`
//! (credentials untouched) and are retried, and the API keeps answering.
//! `WAGATE_FD_ORGS` / `WAGATE_FD_LIMIT` scale it (the issue's measurement:
//! 2,000 orgs under 1,024).

use std::time::{Duration, Instant};

use crate::common::{Server, ADMIN};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn more_orgs_than_descriptors_are_never_moved_aside() {
    let _heavy = crate::common::heavy();
    let orgs = env_or("WAGATE_FD_ORGS", 300) as usize;
    let limit = env_or("WAGATE_FD_LIMIT", 256);
    let tmp = tempfile::tempdir().unwrap();
    {
        // Create the orgs (each gets its device) under no special limit.
        let mut s = Server::start(tmp.path());
        let t0 = Instant::now();
        for i in 0..orgs {
            let (st, v) = s.call(
                "POST",
                "/v1/orgs",
                Some(ADMIN),
                Some(&format!(r#"{{"id":"o{i}"}}"#)),
            );
            assert_eq!(st, 201, "{v}");
            // A connect opens the org's engine, which creates its device
            // (offline, it goes no further).
            let (st, v) = s.call(
                "POST",
                &format!("/v1/orgs/o{i}/session/connect"),
                Some(ADMIN),
                None,
            );
            assert_eq!(st, 202, "{v}");
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        while devices(tmp.path()) < orgs {
            assert!(Instant::now() < deadline, "devices not created");
            std::thread::sleep(Duration::from_millis(100));
        }
        println!("{orgs} orgs created in {:.1} s", t0.elapsed().as_secs_f64());
        s.terminate(Duration::from_secs(30));
    }
    // Make every device linked (a number of its own), as if each had paired:
    // each then needs its engine open, and a socket, at start-up.
    {
        let c = rusqlite::Connection::open(tmp.path().join("devices.db")).unwrap();
        let n = c
            .execute(
                "UPDATE device SET data = json_set(data, '$.pn', json_object('user', '57300' || printf('%07d', dev),
                   'server', 's.whatsapp.net', 'agent', 0, 'device', 1, 'integrator', 0))",
                [],
            )
            .unwrap();
        assert_eq!(n, orgs);
    }
    let s = Server::start_limited(tmp.path(), &["--offline"], Some(limit));
    // Give every org time to try (and, over the budget, fail) to open.
    std::thread::sleep(Duration::from_secs(8));
    let aside: Vec<_> = std::fs::read_dir(tmp.path().join("aside"))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        aside.is_empty(),
        "{} orgs' credentials moved aside: {:?}…",
        aside.len(),
        &aside[..aside.len().min(3)]
    );
    let t0 = Instant::now();
    let (st, v) = s.call("GET", "/v1/orgs", Some(ADMIN), None);
    println!(
        "GET /v1/orgs under `ulimit -n {limit}` with {orgs} orgs: {st} in {} ms",
        t0.elapsed().as_millis()
    );
    assert_eq!(st, 200, "{v}");
    let list = v["orgs"].as_array().unwrap();
    assert_eq!(list.len(), orgs);
    let count = |state: &str| list.iter().filter(|o| o["state"] == state).count();
    let error = count("error");
    println!(
        "states: {} with their engine open, {error} error (waiting for descriptors)",
        orgs - error
    );
    assert!(error > 0, "the limit was not low enough to test anything");
    assert_eq!(
        count("new") + count("needs_qr") + count("logged_out"),
        0,
        "{v}"
    );
    // A waiting org says why, in words and as data.
    let waiting = list.iter().find(|o| o["state"] == "error").unwrap();
    let (_, status) = s.call(
        "GET",
        &format!("/v1/orgs/{}/session", waiting["id"].as_str().unwrap()),
        Some(ADMIN),
        None,
    );
    assert_eq!(status["reason"]["code"], "store_unavailable", "{status}");
    assert!(
        status["detail"]
            .as_str()
            .unwrap()
            .contains("credentials are kept"),
        "{status}"
    );
    drop(s);
    assert_eq!(devices(tmp.path()), orgs, "every org kept its device");
}

/// Devices in the device store.
fn devices(data: &std::path::Path) -> usize {
    rusqlite::Connection::open(data.join("devices.db"))
        .and_then(|c| c.query_row("SELECT COUNT(*) FROM device", [], |r| r.get::<_, i64>(0)))
        .unwrap_or(0) as usize
}

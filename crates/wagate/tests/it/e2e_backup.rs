//! Backup and restore through wa-sim and the real client: `wagate backup`
//! runs while the gateway serves a burst of sends; the archive is restored
//! into a fresh directory and a gateway started on it has every org linked
//! with no QR, every message accepted before the backup began, and Signal
//! sessions that still work.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::sim::{add_phone, inbox, linked, pairings};
use crate::common::{bin, Server};

#[test]
fn a_backup_during_a_burst_restores_linked_orgs_and_every_accepted_message() {
    let mut l = linked(2);
    let patient = "573009990801";
    add_phone(&l, patient);
    let orgs = ["o0", "o1"];
    let paired: Vec<usize> = orgs
        .iter()
        .map(|o| pairings(&l.s, o, &l.token(o)))
        .collect();
    let send = |l: &crate::common::sim::Linked, n: usize| -> (String, String) {
        let org = orgs[n % 2];
        let (st, v) = l.s.call(
            "POST",
            &format!("/v1/orgs/{org}/messages"),
            Some(&l.token(org)),
            Some(&json!({"to": patient, "text": format!("Recordatorio {n}")}).to_string()),
        );
        assert_eq!(st, 202, "{v}");
        (org.to_string(), v["id"].as_str().unwrap().to_string())
    };
    // A burst under way …
    let mut before = vec![];
    for n in 0..150 {
        before.push(send(&l, n));
    }
    // … the backup starts while it goes on.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wagate-backup.tar");
    let t0 = Instant::now();
    let mut backup = Command::new(bin())
        .args(["--data"])
        .arg(l.data_path())
        .arg("backup")
        .arg(&file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut during = 0;
    let mut n = 150;
    while backup.try_wait().unwrap().is_none() {
        send(&l, n);
        n += 1;
        during += 1;
        assert!(t0.elapsed() < Duration::from_secs(60), "backup hangs");
    }
    let out = backup.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("2 org(s), 2 linked device(s)"), "{said}");
    println!(
        "backup while serving: {:.1} s, {during} sends accepted meanwhile; {}",
        t0.elapsed().as_secs_f64(),
        said.trim()
    );
    for _ in 0..50 {
        send(&l, n);
        n += 1;
    }
    // The original stops for good (one connection per device).
    l.s.terminate(Duration::from_secs(15)).expect("stopped");

    let restored = dir.path().join("restored");
    let out = Command::new(bin())
        .arg("--data")
        .arg(&restored)
        .arg("restore")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let t1 = Instant::now();
    l.s = Server::start_sim(&restored, &l.wa.ws_url());
    for org in orgs {
        l.s.wait_status(org, &l.token(org), Duration::from_secs(30), |v| {
            v["state"] == "connected"
        });
    }
    println!(
        "restored gateway: both orgs connected {:.1} s after the start",
        t1.elapsed().as_secs_f64()
    );
    for (i, org) in orgs.iter().enumerate() {
        assert_eq!(
            pairings(&l.s, org, &l.token(org)),
            paired[i],
            "{org} paired again"
        );
    }
    // Every message accepted before the backup began is there.
    for (org, id) in &before {
        let (st, v) = l.s.call(
            "GET",
            &format!("/v1/orgs/{org}/messages/{id}"),
            Some(&l.token(org)),
            None,
        );
        assert_eq!(st, 200, "{org} {id} missing after the restore: {v}");
    }
    // The restored sessions still encrypt: a new message reaches the patient.
    let (st, v) = l.s.call(
        "POST",
        "/v1/orgs/o0/messages",
        Some(&l.token("o0")),
        Some(&json!({"to": patient, "text": "Después de restaurar"}).to_string()),
    );
    assert_eq!(st, 202, "{v}");
    let t2 = Instant::now();
    while !inbox(&l, patient)
        .iter()
        .any(|m| m["text"] == "Después de restaurar")
    {
        assert!(
            t2.elapsed() < Duration::from_secs(30),
            "never reached the patient"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

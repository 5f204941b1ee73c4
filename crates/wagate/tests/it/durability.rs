//! What the gateway keeps, kept right: every status change's event is in the
//! event log even under a flood of sends, and the data directory (device
//! keys, messages) is private to the gateway's user.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{db, Server, ADMIN};

/// Sends over keep-alive connections from `threads` clients; returns the
/// accepted message ids.
fn flood(s: &Server, token: &str, total: usize, threads: usize) -> Vec<String> {
    let next = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (base, token, next) = (s.base.clone(), token.to_string(), next.clone());
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(60)))
                    .build()
                    .into();
                let mut ids = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= total {
                        return ids;
                    }
                    let r = agent
                        .post(&format!("{base}/v1/orgs/4/messages"))
                        .header("Authorization", &format!("Bearer {token}"))
                        .header("Content-Type", "application/json")
                        .send(format!(r#"{{"to":"3001112233","text":"m{i}"}}"#).as_bytes())
                        .expect("send");
                    assert_eq!(r.status().as_u16(), 202);
                    let v: serde_json::Value =
                        serde_json::from_str(&r.into_body().read_to_string().unwrap()).unwrap();
                    ids.push(v["id"].as_str().unwrap().to_string());
                }
            })
        })
        .collect();
    handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect()
}

#[test]
fn twenty_thousand_sends_leave_every_status_event_in_the_log() {
    let _heavy = crate::common::heavy();
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Server::start(tmp.path());
    let t = s.create_org("4", Some("57"));
    let total = 20_000;
    let t0 = Instant::now();
    let ids = flood(&s, &t, total, 8);
    let secs = t0.elapsed().as_secs_f64();
    assert_eq!(ids.len(), total);
    s.terminate(Duration::from_secs(15)).expect("stopped");
    let c = db(tmp.path());
    let logged: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM events WHERE kind = 'message.status' AND json_extract(data, '$.status') = 'queued'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let distinct: i64 = c
        .query_row(
            "SELECT COUNT(DISTINCT json_extract(data, '$.id')) FROM events WHERE kind = 'message.status'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    println!(
        "{total} sends in {secs:.1} s ({:.0}/s): {logged} `queued` events in the log, for {distinct} messages",
        total as f64 / secs
    );
    assert_eq!(logged, total as i64);
    assert_eq!(distinct, total as i64);
}

#[cfg(unix)]
fn mode(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
#[test]
fn device_keys_and_messages_are_private_and_loose_ones_are_tightened() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut s = Server::start(&data);
    s.create_org("4", None);
    // Every org's WhatsApp state is in one file.
    let wa = data.join("devices.db");
    s.wait_status("4", ADMIN, Duration::from_secs(20), |v| {
        v["reason"]["code"] == "not_linked"
    });
    assert!(wa.exists());
    let check = |what: &str| {
        assert_eq!(mode(&data), 0o700, "{what}: {}", data.display());
        for f in [data.join("wagate.db"), wa.clone(), data.join("admin.token")] {
            if f.exists() {
                assert_eq!(mode(&f), 0o600, "{what}: {}", f.display());
            }
        }
        for e in std::fs::read_dir(&data).unwrap() {
            let p = e.unwrap().path();
            assert_eq!(mode(&p) & 0o077, 0, "{what}: {}", p.display());
        }
    };
    check("created");
    s.terminate(Duration::from_secs(15)).expect("stopped");
    // An older version (or a careless copy) left them readable by all.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    for f in [data.join("wagate.db"), wa.clone()] {
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let s = Server::start(&data);
    s.wait_status("4", ADMIN, Duration::from_secs(20), |v| {
        v["reason"]["code"] == "not_linked"
    });
    check("after a restart");
}

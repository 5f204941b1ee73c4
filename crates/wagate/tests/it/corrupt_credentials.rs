//! An org's credentials damaged in the one device store (`devices.db`),
//! through the real engine: start-up keeps a copy of that org's rows aside,
//! the org asks for a QR, and every other organization keeps working.

use std::time::{Duration, Instant};

use crate::common::{file_names, Server, ADMIN};

fn wait_state(s: &Server, org: &str, want: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (st, v) = s.call("GET", &format!("/v1/orgs/{org}/session"), Some(ADMIN), None);
        assert_eq!(st, 200, "{v}");
        if v["state"] == want {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "org {org} never reached {want}: {v}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The device number (incarnation) of `org`.
fn dev_of(data: &std::path::Path, org: &str) -> i64 {
    let c = rusqlite::Connection::open(data.join("wagate.db")).unwrap();
    c.query_row("SELECT inc FROM orgs WHERE id = ?1", [org], |r| r.get(0))
        .unwrap()
}

/// Overwrite `org`'s stored device with `data` (the gateway is stopped).
fn damage(data: &std::path::Path, org: &str, with: &str) {
    let dev = dev_of(data, org);
    let c = rusqlite::Connection::open(data.join("devices.db")).unwrap();
    let n = c
        .execute(
            "UPDATE device SET data = ?2 WHERE dev = ?1",
            rusqlite::params![dev, with],
        )
        .unwrap();
    assert_eq!(n, 1, "org {org} has a device row");
}

fn devices(data: &std::path::Path) -> i64 {
    rusqlite::Connection::open(data.join("devices.db"))
        .and_then(|c| c.query_row("SELECT COUNT(*) FROM device", [], |r| r.get(0)))
        .unwrap_or(0)
}

#[test]
fn a_damaged_device_is_quarantined_alone_and_others_keep_working() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Server::start(tmp.path());
    let t4 = s.create_org("4", Some("57"));
    let t2 = s.create_org("2", Some("57"));
    // A connect opens each org's engine (offline: it goes no further), which
    // creates its device.
    for (org, tok) in [("4", &t4), ("2", &t2)] {
        let (st, v) = s.call(
            "POST",
            &format!("/v1/orgs/{org}/session/connect"),
            Some(tok),
            None,
        );
        assert_eq!(st, 202, "{v}");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while devices(tmp.path()) < 2 {
        assert!(Instant::now() < deadline, "devices never created");
        std::thread::sleep(Duration::from_millis(50));
    }
    s.kill9();
    damage(
        tmp.path(),
        "4",
        "{\"pn\": 12, \"this is\": \"not a device\"",
    );

    let s = Server::start(tmp.path());
    let v = wait_state(&s, "4", "needs_qr");
    assert!(
        v["detail"].as_str().unwrap().contains("could not be read"),
        "{v}"
    );
    let kept = file_names(&tmp.path().join("aside"));
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(
        kept[0].starts_with("4-corrupt-") && kept[0].ends_with(".db"),
        "{kept:?}"
    );
    // The damaged row was copied aside, not just deleted.
    let c = rusqlite::Connection::open(tmp.path().join("aside").join(&kept[0])).unwrap();
    let data: String = c
        .query_row("SELECT data FROM device", [], |r| r.get(0))
        .unwrap();
    assert!(data.contains("not a device"), "{data}");

    // Other orgs are untouched and the API keeps serving.
    wait_state(&s, "2", "new");
    let (st, _) = s.call(
        "POST",
        "/v1/orgs/2/messages",
        Some(&t2),
        Some(r#"{"to":"3001112233","text":"hola"}"#),
    );
    assert_eq!(st, 202);

    // A device of the wrong shape is caught the same way.
    drop(s);
    damage(tmp.path(), "2", "[]");
    let s = Server::start(tmp.path());
    wait_state(&s, "2", "needs_qr");
    // Org 4 now holds the fresh (unlinked) device made after its quarantine.
    wait_state(&s, "4", "new");
    assert_eq!(file_names(&tmp.path().join("aside")).len(), 2);
}

//! A truncated credentials database on disk, through the real engine (the
//! library's own SQLite file): start-up quarantines it, the org asks for a QR,
//! and the server keeps serving every other organization.

use std::time::{Duration, Instant};

use crate::common::{Server, ADMIN};

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

#[test]
fn truncated_credentials_are_quarantined_and_others_keep_working() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Server::start(tmp.path());
    s.create_org("4", Some("57"));
    let t2 = s.create_org("2", Some("57"));
    // Wait until the engine has opened (and so created) the device database.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !wait_state(&s, "4", "new")["detail"]
        .as_str()
        .unwrap()
        .starts_with("Not linked yet")
    {
        assert!(Instant::now() < deadline, "engine never opened");
        std::thread::sleep(Duration::from_millis(50));
    }
    s.kill9();

    // The library created its device database (its pages may still sit in
    // the WAL after the kill: fold them in first); then cut it in half.
    let db = tmp.path().join("orgs").join("4").join("wa.db");
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
    }
    let len = std::fs::metadata(&db).expect("wa.db was created").len();
    assert!(len > 4096, "wa.db is {len} bytes");
    let bytes = std::fs::read(&db).unwrap();
    std::fs::write(&db, &bytes[..(len / 2) as usize]).unwrap();
    let _ = std::fs::remove_file(db.with_extension("db-wal"));
    let _ = std::fs::remove_file(db.with_extension("db-shm"));

    let s = Server::start(tmp.path());
    let v = wait_state(&s, "4", "needs_qr");
    assert!(
        v["detail"].as_str().unwrap().contains("could not be read"),
        "{v}"
    );
    let aside: Vec<String> = std::fs::read_dir(tmp.path().join("aside"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(aside[0].starts_with("4-corrupt-"));
    // The damaged file was moved, not deleted.
    let moved = tmp.path().join("aside").join(&aside[0]).join("wa.db");
    assert_eq!(std::fs::metadata(moved).unwrap().len(), len / 2);

    // Other orgs are untouched and the API keeps serving.
    wait_state(&s, "2", "new");
    let (st, _) = s.call(
        "POST",
        "/v1/orgs/2/messages",
        Some(&t2),
        Some(r#"{"to":"3001112233","text":"hola"}"#),
    );
    assert_eq!(st, 202);

    // Garbage instead of a database is caught the same way.
    drop(s);
    let db2 = tmp.path().join("orgs").join("2").join("wa.db");
    std::fs::write(&db2, b"this is not a database at all, just text").unwrap();
    let s = Server::start(tmp.path());
    wait_state(&s, "2", "needs_qr");
    // Org 4 now holds the fresh (unlinked) device made after its quarantine.
    wait_state(&s, "4", "new");
}

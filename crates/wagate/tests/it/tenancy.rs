//! One organization's data never reaches another, even one created later
//! under the same id: deleting an org ends its event streams and dashboard
//! sign-ins at once, and the org created next with that id starts empty.

use std::io::Read;
use std::time::{Duration, Instant};

use crate::common::web::{get, sign_in};
use crate::common::{open_stream, stream_ends, Server, ADMIN};

#[test]
fn deleting_an_org_ends_its_streams_and_a_new_org_with_its_id_sees_nothing_of_it() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(tmp.path());
    let old = s.create_org("clinic", Some("57"));
    let (st, _) = s.call(
        "POST",
        "/v1/orgs/clinic/messages",
        Some(&old),
        Some(r#"{"to":"3001112233","text":"cita de Ana"}"#),
    );
    assert_eq!(st, 202);
    let addr = s.addr();
    let admin = format!("Bearer {ADMIN}");
    let own = format!("Bearer {old}");
    let mut streams = vec![
        open_stream(
            &addr,
            "/v1/orgs/clinic/events",
            &[("Authorization", &admin)],
        ),
        open_stream(&addr, "/v1/orgs/clinic/events", &[("Authorization", &own)]),
    ];
    let cookie = sign_in(&s.base, &old);
    streams.push(open_stream(
        &addr,
        "/ui/orgs/clinic/events",
        &[("Cookie", &cookie)],
    ));

    let (st, _) = s.call("DELETE", "/v1/orgs/clinic", Some(ADMIN), None);
    assert_eq!(st, 200);
    // Every stream of the deleted org ends at once.
    for (i, st) in streams.iter_mut().enumerate() {
        assert!(
            stream_ends(st, Duration::from_secs(5)),
            "stream {i} still open after the org was deleted"
        );
    }
    // The dashboard sign-in ended with it.
    let p = get(&format!("{}/ui/orgs/clinic", s.base), Some(&cookie), &[]);
    assert_eq!(p.status, 303);
    assert_eq!(p.header("location"), Some("/ui/login?m=expired"));

    // A new org under the same id: nothing of the old one.
    let new = s.create_org("clinic", Some("57"));
    assert_ne!(new, old);
    assert_eq!(
        s.call("GET", "/v1/orgs/clinic/session", Some(&old), None).0,
        401,
        "the old token is dead"
    );
    let (_, v) = s.call("GET", "/v1/orgs/clinic/messages", Some(&new), None);
    assert_eq!(v["messages"].as_array().unwrap().len(), 0, "{v}");
    let (_, v) = s.call("GET", "/v1/orgs/clinic/session/history", Some(&new), None);
    for c in v["changes"].as_array().unwrap() {
        assert_ne!(c["state"], "stopped", "an old change leaked: {c}");
    }
    // A replay from the beginning holds only the new org's events.
    let mut replay = open_stream(
        &addr,
        "/v1/orgs/clinic/events",
        &[
            ("Authorization", &format!("Bearer {new}")),
            ("Last-Event-ID", "0"),
        ],
    );
    let (st, m) = s.call(
        "POST",
        "/v1/orgs/clinic/messages",
        Some(&new),
        Some(r#"{"to":"3009998877","text":"cita de Luis"}"#),
    );
    assert_eq!(st, 202, "{m}");
    let mut seen = String::new();
    let t0 = Instant::now();
    let mut buf = [0u8; 4096];
    replay
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    while !seen.contains(m["id"].as_str().unwrap()) && t0.elapsed() < Duration::from_secs(10) {
        if let Ok(n) = replay.read(&mut buf) {
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }
    assert!(seen.contains(m["id"].as_str().unwrap()), "{seen}");
    assert!(
        !seen.contains("cita de Ana") && !seen.contains("3001112233"),
        "{seen}"
    );
}

#[test]
fn a_sign_in_made_before_a_delete_never_opens_the_new_org() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(tmp.path());
    let old = s.create_org("clinic", None);
    let cookie = sign_in(&s.base, &old);
    assert_eq!(
        get(&format!("{}/ui/orgs/clinic", s.base), Some(&cookie), &[]).status,
        200
    );
    assert_eq!(
        s.call("DELETE", "/v1/orgs/clinic", Some(ADMIN), None).0,
        200
    );
    s.create_org("clinic", None);
    for path in ["/ui/orgs/clinic", "/ui/orgs/clinic/qr.svg", "/ui/"] {
        let p = get(&format!("{}{path}", s.base), Some(&cookie), &[]);
        assert!(
            p.status == 303 || p.status == 401,
            "{path}: {} {}",
            p.status,
            p.body
        );
    }
}

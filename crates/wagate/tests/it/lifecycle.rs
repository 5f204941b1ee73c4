//! The gateway's lifecycle and connection limits through the real binary:
//! SIGTERM ends it within 10 s whatever clients hold open, nothing accepted is
//! lost across it; half-sent requests and idle sockets are cut by the
//! header-read and idle timeouts; at the connection cap the API still answers.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::common::web::sign_in;
use crate::common::{open_stream, raw, read_until_close, Server, ADMIN};

#[test]
fn sigterm_with_streams_a_dashboard_and_half_sent_requests_exits_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Server::start(tmp.path());
    let t = s.create_org("4", Some("57"));
    let mut accepted = Vec::new();
    for i in 0..100 {
        let (st, v) = s.call(
            "POST",
            "/v1/orgs/4/messages",
            Some(&t),
            Some(&format!(r#"{{"to":"3001112233","text":"cita {i}"}}"#)),
        );
        assert_eq!(st, 202, "{v}");
        accepted.push(v["id"].as_str().unwrap().to_string());
    }
    let addr = s.addr();
    let auth = format!("Bearer {t}");
    // 100 event streams held open.
    let streams: Vec<_> = (0..100)
        .map(|_| open_stream(&addr, "/v1/orgs/4/events", &[("Authorization", &auth)]))
        .collect();
    // An open dashboard: its page's live stream.
    let cookie = sign_in(&s.base, &t);
    let dashboard = open_stream(&addr, "/ui/orgs/4/events", &[("Cookie", &cookie)]);
    // 50 half-sent requests: heads cut short and bodies promised but not sent.
    let half: Vec<_> = (0..50)
        .map(|i| {
            let mut c = raw(&addr);
            let part = if i % 2 == 0 {
                format!("POST /v1/orgs/4/messages HTTP/1.1\r\nHost: {addr}\r\nAuthor")
            } else {
                format!(
                    "POST /v1/orgs/4/messages HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{{\"to\":"
                )
            };
            c.write_all(part.as_bytes()).unwrap();
            c
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));

    let (status, took) = s
        .terminate(Duration::from_secs(15))
        .expect("still running 15 s after SIGTERM");
    println!("SIGTERM → exit in {} ms ({status})", took.as_millis());
    assert!(status.success(), "exit status {status}");
    assert!(took <= Duration::from_secs(10), "took {took:?}");
    drop((streams, dashboard, half));

    // Every accepted message is still there, once, in order.
    let s = Server::start(tmp.path());
    let (st, v) = s.call("GET", "/v1/orgs/4/messages?limit=1000", Some(ADMIN), None);
    assert_eq!(st, 200);
    let ids: Vec<String> = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, accepted);
}

#[test]
fn sigint_stops_it_the_same_way() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Server::start(tmp.path());
    let t = s.create_org("4", None);
    let _stream = open_stream(
        &s.addr(),
        "/v1/orgs/4/events",
        &[("Authorization", &format!("Bearer {t}"))],
    );
    let (status, took) = s
        .signal("-INT", Duration::from_secs(15))
        .expect("still running 15 s after SIGINT");
    assert!(status.success(), "{status}");
    assert!(took <= Duration::from_secs(10), "{took:?}");
}

#[test]
fn a_half_sent_head_is_cut_by_the_header_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start_args(tmp.path(), &["--offline", "--header-timeout", "2"]);
    let mut c = raw(&s.addr());
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    let t0 = Instant::now();
    let (_, closed) = read_until_close(&mut c, Duration::from_secs(10));
    assert!(closed, "the connection stayed open");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(1500),
        "closed too early: {took:?}"
    );
    // A socket that never sends a byte goes the same way.
    let mut quiet = raw(&s.addr());
    let (_, closed) = read_until_close(&mut quiet, Duration::from_secs(10));
    assert!(closed);
    // A complete request on a fresh connection is answered.
    assert_eq!(s.call("GET", "/healthz", None, None).0, 200);
}

#[test]
fn a_stalled_body_is_cut_by_the_idle_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start_args(tmp.path(), &["--offline", "--idle-timeout", "20"]);
    let t = s.create_org("4", None);
    let mut c = raw(&s.addr());
    c.write_all(
        format!(
            "POST /v1/orgs/4/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\nContent-Length: 100\r\n\r\n{{"
        )
        .as_bytes(),
    )
    .unwrap();
    let t0 = Instant::now();
    let (_, closed) = read_until_close(&mut c, Duration::from_secs(40));
    assert!(closed, "a body that stalls must not hold the connection");
    let took = t0.elapsed();
    assert!(
        (Duration::from_secs(19)..Duration::from_secs(25)).contains(&took),
        "{took:?}"
    );
}

#[test]
fn idle_connections_beyond_the_descriptor_limit_do_not_take_the_api_down() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start_limited(tmp.path(), &["--offline"], Some(256));
    let addr = s.addr();
    // 300 unauthenticated sockets that never send a byte.
    let idle: Vec<_> = (0..300).map(|_| raw(&addr)).collect();
    std::thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    let (st, _) = s.call("GET", "/healthz", None, None);
    let took = t0.elapsed();
    println!(
        "/healthz with 300 idle connections open: {st} in {} ms",
        took.as_millis()
    );
    assert_eq!(st, 200);
    assert!(took < Duration::from_secs(3), "{took:?}");
    let (st, _) = s.call("GET", "/v1/orgs", Some(ADMIN), None);
    assert_eq!(st, 200);
    drop(idle);
}

//! Webhooks over HTTP (offline gateway; the events come from accepted sends):
//! SSRF refusals, a signed body checked with an independent HMAC, retries
//! while the receiver is down, deliveries surviving a SIGKILL, the delivery
//! list, retry and replay, and `410 Gone` disabling the endpoint.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::receiver::{hmac_sha256, Receiver};
use crate::common::Server;

const FAST: [&str; 6] = [
    "--offline",
    "--webhook-allow",
    "127.0.0.1",
    "--webhook-first-retry-ms",
    "200",
    "--unpaced",
];

fn add_hook(s: &Server, tok: &str, body: Value) -> (u16, Value) {
    s.call(
        "POST",
        "/v1/orgs/4/webhooks",
        Some(tok),
        Some(&body.to_string()),
    )
}

fn send(s: &Server, tok: &str, text: &str) -> String {
    let (st, v) = s.call(
        "POST",
        "/v1/orgs/4/messages",
        Some(tok),
        Some(&json!({"to": "3001112233", "text": text}).to_string()),
    );
    assert_eq!(st, 202, "{v}");
    v["id"].as_str().unwrap().to_string()
}

fn wait_until(within: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Message ids in the `message.status` events the receiver got, with counts.
fn got_ids(r: &Receiver) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for x in r.received() {
        let v = x.json();
        *m.entry(v["data"]["id"].as_str().unwrap_or("").to_string())
            .or_insert(0) += 1;
    }
    m
}

#[test]
fn urls_that_reach_inside_are_refused_unless_allowed() {
    let d = tempfile::tempdir().unwrap();
    let s = Server::start(d.path());
    let tok = s.create_org("4", Some("57"));
    for url in [
        "http://127.0.0.1:9/h",
        "http://10.0.0.1/h",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:8000/h",
        "http://localhost:8000/h",
        "http://[::ffff:127.0.0.1]/h",
        "ftp://example.com/h",
        "https://user:pw@example.com/h",
        "not a url",
    ] {
        let (st, v) = add_hook(&s, &tok, json!({"url": url}));
        assert_eq!(st, 422, "{url}: {v}");
        assert_eq!(v["error"]["code"], "invalid_webhook_url", "{url}: {v}");
    }
    let (st, v) = add_hook(
        &s,
        &tok,
        json!({"url": "http://127.0.0.1:9/h", "events": ["nope"]}),
    );
    assert_eq!(st, 422, "{v}");
    let (st, v) = add_hook(&s, &tok, json!({}));
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (422, Some("invalid_webhook_url"))
    );
    // With the address allowed, the same URL is taken.
    let d2 = tempfile::tempdir().unwrap();
    let s2 = Server::start_args(
        d2.path(),
        &["--offline", "--webhook-allow", "127.0.0.1,::1"],
    );
    let tok2 = s2.create_org("4", Some("57"));
    for url in ["http://127.0.0.1:9/h", "http://[::1]:8000/h"] {
        let (st, v) = add_hook(&s2, &tok2, json!({"url": url}));
        assert_eq!(st, 201, "{url}: {v}");
    }
    // Another org's token reaches none of it.
    let other = s2.create_org("5", None);
    let (st, _) = s2.call("GET", "/v1/orgs/4/webhooks", Some(&other), None);
    assert_eq!(st, 403);
}

#[test]
fn events_arrive_signed_and_are_retried_until_the_receiver_answers() {
    let d = tempfile::tempdir().unwrap();
    let s = Server::start_args_raw(d.path(), &FAST);
    let tok = s.create_org("4", Some("57"));
    let r = Receiver::start();
    let (st, hook) = add_hook(
        &s,
        &tok,
        json!({"url": r.url, "events": ["message.status"]}),
    );
    assert_eq!(st, 201, "{hook}");
    let secret = hook["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    let id = hook["id"].as_str().unwrap().to_string();
    // The secret is shown once.
    let (_, list) = s.call("GET", "/v1/orgs/4/webhooks", Some(&tok), None);
    assert!(list["webhooks"][0].get("secret").is_none(), "{list}");
    assert!(!list.to_string().contains(&secret));

    let m = send(&s, &tok, "Recordatorio");
    wait_until(Duration::from_secs(10), "the first event", || {
        !r.received().is_empty()
    });
    let x = &r.received()[0];
    let v = x.json();
    assert_eq!(v["type"], "message.status");
    assert_eq!(v["org"], "4");
    assert_eq!(v["data"]["id"], m.as_str());
    assert_eq!(v["data"]["status"], "queued");
    assert!(v["id"].as_str().unwrap().starts_with("evt_"));
    assert_eq!(x.header("wagate-event-id"), v["id"].as_str());
    assert_eq!(x.header("wagate-event-type"), Some("message.status"));
    // The signature, checked by an HMAC written in this test.
    let sig = x.header("wagate-signature").expect("signed");
    let (t, v1) = sig.split_once(',').unwrap();
    let t = t.strip_prefix("t=").unwrap();
    let now = crate::common::now_ms() / 1000;
    assert!(
        (now - t.parse::<i64>().unwrap()).abs() < 30,
        "a fresh timestamp"
    );
    let mut msg = format!("{t}.").into_bytes();
    msg.extend_from_slice(&x.body);
    assert_eq!(v1, format!("v1={}", hmac_sha256(secret.as_bytes(), &msg)));

    // Down (connections dropped), then failing with 503: nothing is lost.
    r.answer(0);
    let down: Vec<String> = (0..5).map(|i| send(&s, &tok, &format!("m{i}"))).collect();
    std::thread::sleep(Duration::from_millis(1_500));
    r.answer(503);
    std::thread::sleep(Duration::from_millis(1_000));
    let (_, ds) = s.call(
        "GET",
        &format!("/v1/orgs/4/webhooks/{id}/deliveries?status=pending"),
        Some(&tok),
        None,
    );
    let pending = ds["deliveries"].as_array().unwrap();
    assert_eq!(pending.len(), 5, "{ds}");
    assert!(
        pending.iter().all(|d| d["attempts"].as_i64().unwrap() >= 1),
        "{ds}"
    );
    assert!(pending.iter().any(|d| d["last_status_code"] == 503), "{ds}");
    r.answer(200);
    wait_until(Duration::from_secs(30), "the held events", || {
        let got = got_ids(&r);
        down.iter().all(|m| got.contains_key(m))
    });
    // The receiver has it a moment before the gateway records its answer.
    wait_until(Duration::from_secs(10), "six recorded delivered", || {
        let (_, w) = s.call(
            "GET",
            &format!("/v1/orgs/4/webhooks/{id}"),
            Some(&tok),
            None,
        );
        w["deliveries"]["delivered"] == 6 && w["deliveries"]["pending"] == 0
    });

    // Retry one and replay all: they come again, same event ids.
    let (_, ds) = s.call(
        "GET",
        &format!("/v1/orgs/4/webhooks/{id}/deliveries"),
        Some(&tok),
        None,
    );
    let first = ds["deliveries"].as_array().unwrap().last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let before = r.received().len();
    let (st, _) = s.call(
        "POST",
        &format!("/v1/orgs/4/webhooks/{id}/deliveries/{first}/retry"),
        Some(&tok),
        None,
    );
    assert_eq!(st, 202);
    wait_until(Duration::from_secs(10), "the retried one", || {
        r.received().len() == before + 1
    });
    assert_eq!(
        r.received().last().unwrap().json()["data"]["id"],
        m.as_str()
    );
    let (st, v) = s.call(
        "POST",
        &format!("/v1/orgs/4/webhooks/{id}/replay"),
        Some(&tok),
        Some(&json!({"since": 0}).to_string()),
    );
    assert_eq!((st, v["queued"].as_i64()), (202, Some(6)), "{v}");
    wait_until(Duration::from_secs(10), "the replay", || {
        r.received().len() == before + 7
    });
    let (st, v) = s.call(
        "POST",
        &format!("/v1/orgs/4/webhooks/{id}/deliveries/dlv_999999/retry"),
        Some(&tok),
        None,
    );
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (404, Some("delivery_not_found")),
        "{v}"
    );

    // 410 Gone: the endpoint is disabled, and says so.
    r.answer(410);
    send(&s, &tok, "after gone");
    wait_until(Duration::from_secs(10), "the endpoint disabled", || {
        let (_, w) = s.call(
            "GET",
            &format!("/v1/orgs/4/webhooks/{id}"),
            Some(&tok),
            None,
        );
        !w["disabled"].is_null()
    });
    let (st, v) = s.call(
        "POST",
        &format!("/v1/orgs/4/webhooks/{id}/replay"),
        Some(&tok),
        Some(r#"{"since": 0}"#),
    );
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (409, Some("webhook_disabled")),
        "{v}"
    );
}

#[test]
fn deliveries_pending_at_a_sigkill_all_arrive_after_the_restart() {
    let d = tempfile::tempdir().unwrap();
    let mut s = Server::start_args_raw(d.path(), &FAST);
    let tok = s.create_org("4", Some("57"));
    let r = Receiver::start();
    r.answer(503);
    let (st, hook) = add_hook(
        &s,
        &tok,
        json!({"url": r.url, "events": ["message.status"]}),
    );
    assert_eq!(st, 201, "{hook}");
    let ids: Vec<String> = (0..200).map(|i| send(&s, &tok, &format!("m{i}"))).collect();
    s.kill9();
    r.answer(200);
    let s = Server::start_args_raw(d.path(), &FAST);
    wait_until(Duration::from_secs(60), "all 200 events", || {
        let got = got_ids(&r);
        ids.iter().all(|m| got.contains_key(m))
    });
    let got = got_ids(&r);
    let dups: usize = ids.iter().map(|m| got[m] - 1).sum();
    let (requests, events) = event_ids(&r);
    // A duplicate is the same event again: as many distinct event ids as messages.
    assert_eq!(events, ids.len());
    println!(
        "200 deliveries pending at SIGKILL: 200 arrived after the restart; {requests} requests, \
         {events} distinct event ids, {dups} duplicates"
    );
    drop(s);
}

/// Requests received, and the distinct event ids among them.
fn event_ids(r: &Receiver) -> (usize, usize) {
    let got = r.received();
    let ids: std::collections::HashSet<String> = got
        .iter()
        .map(|x| x.header("wagate-event-id").unwrap_or("").to_string())
        .collect();
    (got.len(), ids.len())
}

/// The receiver is down for two whole minutes while messages are accepted,
/// with the gateway's default retry schedule (10 s, doubling, jittered):
/// once it is up again, every event arrives.
#[test]
fn a_receiver_down_for_two_minutes_gets_every_event_once_it_is_up() {
    let d = tempfile::tempdir().unwrap();
    let s = Server::start_args_raw(
        d.path(),
        &["--offline", "--webhook-allow", "127.0.0.1", "--unpaced"],
    );
    let tok = s.create_org("4", Some("57"));
    let r = Receiver::start();
    r.answer(0); // down: every connection closes without an answer
    let (st, hook) = add_hook(
        &s,
        &tok,
        json!({"url": r.url, "events": ["message.status"]}),
    );
    assert_eq!(st, 201, "{hook}");
    let down = Instant::now();
    let mut ids: Vec<String> = (0..20).map(|i| send(&s, &tok, &format!("a{i}"))).collect();
    // More events through the two minutes, one every 10 s; none in the last
    // ten, so that what comes through first once it is up is a retry.
    while down.elapsed() < Duration::from_secs(100) {
        std::thread::sleep(Duration::from_secs(10));
        ids.push(send(&s, &tok, &format!("b{}", ids.len())));
    }
    std::thread::sleep(Duration::from_secs(120).saturating_sub(down.elapsed()));
    assert!(r.received().is_empty(), "nothing got through while down");
    let (_, pending) = s.call(
        "GET",
        &format!(
            "/v1/orgs/4/webhooks/{}/deliveries?status=pending",
            hook["id"].as_str().unwrap()
        ),
        Some(&tok),
        None,
    );
    let tried = pending["deliveries"]
        .as_array()
        .map(|d| {
            d.iter()
                .filter(|x| x["attempts"].as_i64() > Some(1))
                .count()
        })
        .unwrap_or(0);
    assert!(tried > 0, "deliveries were retried while down: {pending}");
    r.answer(200);
    let up = Instant::now();
    // The first retry that comes due gets through; the rest of the backlog
    // is then due at once rather than at its own time (up to 160 s away at
    // this point of the schedule).
    wait_until(
        Duration::from_secs(240),
        "every event after the receiver is up",
        || {
            let got = got_ids(&r);
            ids.iter().all(|m| got.contains_key(m))
        },
    );
    let (requests, events) = event_ids(&r);
    assert_eq!(events, ids.len());
    println!(
        "receiver down {:.0} s, {} events: all arrived within {:.1} s of it coming up; \
         {requests} requests, {events} distinct event ids",
        up.duration_since(down).as_secs_f64(),
        ids.len(),
        up.elapsed().as_secs_f64()
    );
}

/// One rendering per event: for each event a webhook received, the event
/// stream (replayed from the log) sends the same kind and the same data
/// under the same number — a `state` event's `detail` included.
#[test]
fn a_webhook_gets_the_data_the_event_stream_sends() {
    let d = tempfile::tempdir().unwrap();
    let s = Server::start_args_raw(d.path(), &FAST);
    let tok = s.create_org("4", Some("57"));
    let r = Receiver::start();
    let (st, hook) = add_hook(&s, &tok, json!({"url": r.url, "events": null}));
    assert_eq!(st, 201, "{hook}");
    send(&s, &tok, "Le recordamos su cita");
    // Offline, a connect fails: state events (connecting, reconnecting …).
    let (st, v) = s.call("POST", "/v1/orgs/4/session/connect", Some(&tok), None);
    assert_eq!(st, 202, "{v}");
    wait_until(
        Duration::from_secs(30),
        "a state and a message.status delivered",
        || {
            let kinds: Vec<String> = r
                .received()
                .iter()
                .map(|x| x.json()["type"].as_str().unwrap_or("").to_string())
                .collect();
            kinds.iter().any(|k| k == "state") && kinds.iter().any(|k| k == "message.status")
        },
    );
    let hooks: Vec<Value> = r.received().iter().map(|x| x.json()).collect();
    let last: i64 = hooks
        .iter()
        .filter_map(|h| h["id"].as_str()?.strip_prefix("evt_")?.parse().ok())
        .max()
        .unwrap();
    let stream = crate::sse_events::read_events(&s, &tok, Some("0"), |ev| {
        ev.iter()
            .any(|(_, id, _)| id.parse::<i64>().is_ok_and(|n| n >= last))
    });
    let mut compared = 0;
    for h in &hooks {
        let n = h["id"].as_str().unwrap().trim_start_matches("evt_");
        let Some((kind, _, data)) = stream.iter().find(|(_, id, _)| id == n) else {
            panic!("event {n} is not on the stream: {stream:?}");
        };
        assert_eq!(kind, h["type"].as_str().unwrap(), "event {n}");
        let data: Value = serde_json::from_str(data).unwrap();
        assert_eq!(data, h["data"], "event {n} ({kind})");
        if kind == "state" {
            assert!(
                data["detail"].as_str().is_some_and(|d| !d.is_empty()),
                "{data}"
            );
        }
        compared += 1;
    }
    assert!(compared >= 2, "{hooks:?}");
}

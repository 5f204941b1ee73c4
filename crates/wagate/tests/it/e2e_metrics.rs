//! `/metrics` through wa-sim and the real client, read by a Prometheus
//! text-format parser as a scraper would: link states, messages by status,
//! send → ack latency, HTTP requests by route, the age of each connected
//! org's last frame; admin only on the API address, open on
//! `--metrics-listen`; no org id in any label.

use std::time::{Duration, Instant};

use prometheus_parse::{Scrape, Value};
use serde_json::json;

use crate::common::sim::{add_phone, linked_args};
use crate::common::ADMIN;

fn scrape(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text format")
}

fn value(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    s.samples
        .iter()
        .find(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match &x.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(h) => h.last().map(|b| b.count).unwrap_or(0.0),
            Value::Summary(_) => f64::NAN,
        })
}

fn get(url: &str, token: Option<&str>) -> (u16, String) {
    let mut r = ureq::get(url).config().http_status_as_error(false).build();
    if let Some(t) = token {
        r = r.header("Authorization", &format!("Bearer {t}"));
    }
    let mut res = r.call().expect("request");
    let st = res.status().as_u16();
    (st, res.body_mut().read_to_string().unwrap_or_default())
}

#[test]
fn metrics_are_scraped_and_parsed_with_no_org_id_in_a_label() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let open = format!("127.0.0.1:{port}");
    let l = linked_args(1, &["--metrics-listen", &open]);
    let patient = "573009990901";
    add_phone(&l, patient);
    let tok = l.token("o0");
    let mut ids = vec![];
    for i in 0..3 {
        let (st, v) = l.s.call(
            "POST",
            "/v1/orgs/o0/messages",
            Some(&tok),
            Some(&json!({"to": patient, "text": format!("cita {i}")}).to_string()),
        );
        assert_eq!(st, 202, "{v}");
        ids.push(v["id"].as_str().unwrap().to_string());
    }
    let t0 = Instant::now();
    for id in &ids {
        loop {
            let (_, m) = l.s.call(
                "GET",
                &format!("/v1/orgs/o0/messages/{id}"),
                Some(&tok),
                None,
            );
            if m["status"] == "delivered" {
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(30), "{m}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let url = format!("{}/metrics", l.s.base);
    assert_eq!(get(&url, None).0, 401, "no token");
    assert_eq!(get(&url, Some(&tok)).0, 403, "an org's token");
    let (st, text) = get(&url, Some(ADMIN));
    assert_eq!(st, 200, "{text}");
    let s = scrape(&text);
    assert_eq!(
        value(&s, "wagate_orgs", &[("state", "connected")]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&s, "wagate_messages", &[("status", "delivered")]),
        Some(3.0),
        "{text}"
    );
    let acks = value(&s, "wagate_send_ack_duration_seconds", &[]).unwrap_or(0.0);
    assert!(acks >= 3.0, "3 acks timed: {text}");
    let posts = value(
        &s,
        "wagate_http_requests_total",
        &[
            ("route", "/v1/orgs/:org/messages"),
            ("method", "POST"),
            ("status", "202"),
        ],
    );
    assert_eq!(posts, Some(3.0), "{text}");
    assert_eq!(
        value(
            &s,
            "wagate_last_frame_age_seconds",
            &[("status", "connected")]
        ),
        Some(1.0),
        "one connected org in the histogram: {text}"
    );
    for x in &s.samples {
        for (k, v) in x.labels.iter() {
            assert!(!v.contains("o0"), "an org id in {}{{{k}={v}}}", x.metric);
        }
    }
    // The metrics address answers without a token, and only /metrics.
    let (st, text2) = get(&format!("http://{open}/metrics"), None);
    assert_eq!(st, 200);
    assert_eq!(
        value(&scrape(&text2), "wagate_orgs", &[("state", "connected")]),
        Some(1.0)
    );
    assert_eq!(get(&format!("http://{open}/v1/orgs"), None).0, 404);
}

//! The org's Server-Sent Events stream: the current status first, then state
//! changes as they happen, and a replay of missed events with `Last-Event-ID`.

use std::io::{BufRead, BufReader};
use std::time::Duration;

use crate::common::Server;

/// Read SSE events (kind, id, data) until `stop` says so.
pub(crate) fn read_events(
    s: &Server,
    token: &str,
    last_id: Option<&str>,
    mut stop: impl FnMut(&[(String, String, String)]) -> bool,
) -> Vec<(String, String, String)> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut req = agent
        .get(&format!("{}/v1/orgs/4/events", s.base))
        .header("Authorization", &format!("Bearer {token}"));
    if let Some(id) = last_id {
        req = req.header("Last-Event-ID", id);
    }
    let resp = req.call().expect("events");
    assert_eq!(
        resp.headers().get("content-type").unwrap(),
        "text/event-stream"
    );
    let reader = BufReader::new(resp.into_body().into_reader());
    let mut events = vec![];
    let (mut kind, mut id, mut data) = (String::new(), String::new(), String::new());
    for line in reader.lines() {
        let line = line.expect("read");
        if line.is_empty() {
            if !kind.is_empty() || !data.is_empty() {
                events.push((
                    std::mem::take(&mut kind),
                    std::mem::take(&mut id),
                    std::mem::take(&mut data),
                ));
                if stop(&events) {
                    break;
                }
            }
            continue;
        }
        if let Some(v) = line.strip_prefix("event:") {
            kind = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("id:") {
            id = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("data:") {
            data = v.trim().to_string();
        }
    }
    events
}

#[test]
fn events_stream_status_changes_and_replays_missed_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(tmp.path());
    let t = s.create_org("4", Some("57"));

    // Ask to connect (offline: every attempt fails), and watch the states go by
    // until the supervisor gives up asking for a QR.
    let base = s.base.clone();
    let t2 = t.clone();
    let kick = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        agent
            .post(&format!("{base}/v1/orgs/4/session/connect"))
            .header("Authorization", &format!("Bearer {t2}"))
            .send_empty()
            .unwrap()
            .status()
            .as_u16()
    });
    let events = read_events(&s, &t, None, |ev| {
        ev.iter()
            .any(|(k, _, d)| k == "state" && d.contains("needs_qr"))
    });
    assert_eq!(kick.join().unwrap(), 202);
    assert_eq!(
        events[0].0, "status",
        "the stream opens with the current status"
    );
    assert!(events[0].2.contains("\"state\":\"new\""));
    let states: Vec<String> = events
        .iter()
        .filter(|(k, _, _)| k == "state")
        .map(|(_, _, d)| {
            serde_json::from_str::<serde_json::Value>(d).unwrap()["state"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    // (A "new" may come first: the device finished opening after we subscribed.)
    assert_eq!(
        states.iter().find(|s| *s != "new").map(String::as_str),
        Some("connecting"),
        "{states:?}"
    );
    assert!(states.contains(&"reconnecting".to_string()), "{states:?}");
    assert_eq!(states.last().map(String::as_str), Some("needs_qr"));
    let ids: Vec<i64> = events
        .iter()
        .filter(|(k, _, _)| k == "state")
        .map(|(_, id, _)| id.parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");

    // Reconnect after the first state event: the rest is replayed, in order.
    let first = ids[0].to_string();
    let want = ids.len() - 1;
    let replay = read_events(&s, &t, Some(&first), |ev| {
        ev.iter().filter(|(k, _, _)| k == "state").count() >= want
    });
    let replay_ids: Vec<i64> = replay
        .iter()
        .filter(|(k, _, _)| k == "state")
        .map(|(_, id, _)| id.parse().unwrap())
        .collect();
    assert_eq!(replay_ids, ids[1..].to_vec());
    assert_ne!(
        replay[0].0, "status",
        "a replaying client gets no fresh status first"
    );
}

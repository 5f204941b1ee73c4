//! SIGKILL the server while sends are being accepted, start it again: every
//! accepted message is still there, in acceptance order, none duplicated, and
//! a caller retrying with its idempotency key does not create doubles.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::Server;

fn try_send(base: &str, token: &str, i: usize) -> Option<String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    let resp = agent
        .post(&format!("{base}/v1/orgs/4/messages"))
        .header("Authorization", &format!("Bearer {token}"))
        .header("Idempotency-Key", &format!("k{i}"))
        .send_json(serde_json::json!({"to": "573001112233", "text": format!("m{i}")}))
        .ok()?;
    if resp.status().as_u16() != 202 {
        return None;
    }
    let v: serde_json::Value =
        serde_json::from_str(&resp.into_body().read_to_string().ok()?).ok()?;
    v["id"].as_str().map(str::to_string)
}

#[test]
fn sigkill_loses_nothing_accepted_and_duplicates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Server::start(tmp.path());
    let token = s.create_org("4", Some("57"));

    // Four concurrent callers, each sending its own increasing sequence.
    let accepted: Arc<Mutex<Vec<(usize, String)>>> = Arc::default();
    let attempted: Arc<Mutex<Vec<usize>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = vec![];
    for w in 0..4 {
        let (base, token) = (s.base.clone(), token.clone());
        let (accepted, attempted, stop) = (accepted.clone(), attempted.clone(), stop.clone());
        workers.push(std::thread::spawn(move || {
            for n in 0.. {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let i = n * 4 + w;
                attempted.lock().unwrap().push(i);
                match try_send(&base, &token, i) {
                    Some(id) => accepted.lock().unwrap().push((i, id)),
                    None => break,
                }
            }
        }));
    }
    // Kill once a good number are in, while the callers are still sending.
    while accepted.lock().unwrap().len() < 200 {
        std::thread::sleep(Duration::from_millis(5));
    }
    s.kill9();
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().unwrap();
    }
    let accepted = accepted.lock().unwrap().clone();
    let attempted = attempted.lock().unwrap().clone();
    println!(
        "accepted before the kill: {}, attempted: {}",
        accepted.len(),
        attempted.len()
    );

    let s = Server::start(tmp.path());
    let all = list_all(&s, &token);
    let ids: Vec<&str> = all.iter().map(|m| m["id"].as_str().unwrap()).collect();
    let mut uniq = ids.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), ids.len(), "no message stored twice");
    for (i, id) in &accepted {
        let m = all
            .iter()
            .find(|m| m["id"] == id.as_str())
            .unwrap_or_else(|| panic!("accepted message {i} ({id}) lost"));
        assert_eq!(m["text"], format!("m{i}"));
        assert_eq!(
            m["status"], "queued",
            "nothing was sent (offline), so it is still queued"
        );
    }
    // Per caller, acceptance order is the order it sent in.
    for w in 0..4 {
        let seq: Vec<usize> = all
            .iter()
            .map(|m| m["text"].as_str().unwrap()[1..].parse::<usize>().unwrap())
            .filter(|i| i % 4 == w)
            .collect();
        let mut sorted = seq.clone();
        sorted.sort();
        assert_eq!(seq, sorted, "caller {w}'s messages out of order");
    }
    // Callers retry everything they attempted, with the same keys: no doubles.
    for i in &attempted {
        assert!(try_send(&s.base, &token, *i).is_some());
    }
    let after = list_all(&s, &token);
    assert_eq!(
        after.len(),
        attempted.len(),
        "each attempted message exactly once after retries"
    );
    let kept: std::collections::HashMap<&str, &str> = all
        .iter()
        .map(|m| {
            (
                m["idempotency_key"].as_str().unwrap(),
                m["id"].as_str().unwrap(),
            )
        })
        .collect();
    for m in &after {
        if let Some(old) = kept.get(m["idempotency_key"].as_str().unwrap()) {
            assert_eq!(
                m["id"].as_str().unwrap(),
                *old,
                "a retry returned a new message"
            );
        }
    }
}

fn list_all(s: &Server, token: &str) -> Vec<serde_json::Value> {
    let mut out = vec![];
    let mut cursor = String::new();
    loop {
        let q = if cursor.is_empty() {
            "?limit=1000".to_string()
        } else {
            format!("?limit=1000&cursor={cursor}")
        };
        let (st, v) = s.call("GET", &format!("/v1/orgs/4/messages{q}"), Some(token), None);
        assert_eq!(st, 200);
        out.extend(v["messages"].as_array().unwrap().iter().cloned());
        match v["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => return out,
        }
    }
}

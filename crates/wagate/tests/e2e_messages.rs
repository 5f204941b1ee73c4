//! Messages through the real client and wa-sim: Signal-encrypted by the
//! gateway, decrypted by simulated recipients, acked and receipted back.

mod common;

use std::time::{Duration, Instant};

use common::control;
use common::sim::linked;
use serde_json::json;

fn wait_message(
    l: &common::sim::Linked,
    org: &str,
    id: &str,
    want: &str,
    within: Duration,
) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let (st, m) = l.s.call(
            "GET",
            &format!("/v1/orgs/{org}/messages/{id}"),
            Some(&l.token(org)),
            None,
        );
        assert_eq!(st, 200);
        if m["status"] == want {
            return m;
        }
        assert!(
            start.elapsed() < within,
            "message {id} never reached {want}: {m}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_message_is_encrypted_delivered_and_read() {
    let l = linked(1);
    let to = "573009990001";
    let (st, _) = control(
        &l.ctl(),
        "POST",
        "/control/phones",
        Some(json!({"phone": to, "name": "Paciente"})),
    );
    assert_eq!(st, 201);
    let t0 = Instant::now();
    let (st, m) = l.s.call(
        "POST",
        "/v1/orgs/o0/messages",
        Some(&l.token("o0")),
        Some(&json!({"to": to, "text": "Recordatorio: cita mañana 10:00"}).to_string()),
    );
    assert_eq!(st, 202, "{m}");
    let id = m["id"].as_str().unwrap().to_string();
    wait_message(&l, "o0", &id, "delivered", Duration::from_secs(30));
    println!("queued → delivered in {:?}", t0.elapsed());
    let (_, inbox) = control(
        &l.ctl(),
        "GET",
        &format!("/control/phones/{to}/inbox"),
        None,
    );
    let msgs = inbox["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 1, "{inbox}");
    assert_eq!(msgs[0]["text"], "Recordatorio: cita mañana 10:00");
    assert_eq!(msgs[0]["from"], common::sim::phone(0));
    let wa_id = msgs[0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        m["wa_id"],
        wa_id.as_str(),
        "the recipient got the message under the id fixed at accept time"
    );
    let (st, _) = control(
        &l.ctl(),
        "POST",
        &format!("/control/phones/{to}/read"),
        Some(json!({"ids": [wa_id]})),
    );
    assert_eq!(st, 200);
    wait_message(&l, "o0", &id, "read", Duration::from_secs(30));
}

//! Replies that reach the app, through wa-sim and the real client: a
//! patient answers a reminder LID-addressed and quoting it, reacts to it,
//! and writes without quoting; the gateway names the patient by phone number,
//! ties each to the reminder, and posts them to a webhook, signed.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::control;
use crate::common::receiver::{hmac_sha256, Receiver};
use crate::common::sim::{add_phone, linked, Linked};

fn wait<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t0.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn patient_writes(l: &Linked, from: &str, body: Value) {
    let (st, v) = control(
        &l.ctl(),
        "POST",
        &format!("/control/phones/{from}/send"),
        Some(body),
    );
    assert_eq!(st, 200, "{v}");
}

fn event_of<'a>(got: &'a [Value], kind: &str, pred: impl Fn(&Value) -> bool) -> Option<&'a Value> {
    got.iter().find(|e| e["type"] == kind && pred(&e["data"]))
}

#[test]
fn a_quoted_lid_addressed_reply_reaches_the_webhook_tied_to_its_reminder() {
    let l = linked(1);
    let tok = l.token("o0");
    let clinic = crate::common::sim::phone(0);
    let patient = "573009990601";
    add_phone(&l, patient);
    let r = Receiver::start();
    let (st, hook) = l.s.call(
        "POST",
        "/v1/orgs/o0/webhooks",
        Some(&tok),
        Some(&json!({"url": r.url, "events": ["message.status", "message.received", "message.reaction"]}).to_string()),
    );
    assert_eq!(st, 201, "{hook}");
    let secret = hook["secret"].as_str().unwrap().to_string();

    let (st, m) = l.s.call(
        "POST",
        "/v1/orgs/o0/messages",
        Some(&tok),
        Some(&json!({"to": patient, "text": "Su cita es mañana a las 10:00. ¿Confirma? Responda SÍ"}).to_string()),
    );
    assert_eq!(st, 202, "{m}");
    let reminder = m["id"].as_str().unwrap().to_string();
    let wa_id = wait(Duration::from_secs(30), "the reminder delivered", || {
        let (_, v) = l.s.call(
            "GET",
            &format!("/v1/orgs/o0/messages/{reminder}"),
            Some(&tok),
            None,
        );
        (v["status"] == "delivered" || v["status"] == "read")
            .then(|| v["wa_id"].as_str().unwrap().to_string())
    });

    // "Confirmo" by the patient's LID alone, with no number beside it, before
    // any message that carries the number: the gateway names the patient
    // from what the client learnt when it looked the number up to send.
    patient_writes(
        &l,
        patient,
        json!({"to": clinic, "text": "Confirmo", "as_lid": true, "without_pn": true}),
    );
    // "SÍ", quoting the reminder, addressed by the patient's LID.
    patient_writes(
        &l,
        patient,
        json!({"to": clinic, "text": "SÍ", "quote": wa_id, "as_lid": true}),
    );
    // A 👍 on the reminder, and a plain "Gracias" that quotes nothing.
    patient_writes(
        &l,
        patient,
        json!({"to": clinic, "text": "👍", "react_to": wa_id, "as_lid": true}),
    );
    patient_writes(&l, patient, json!({"to": clinic, "text": "Gracias"}));

    let got: Vec<Value> = wait(
        Duration::from_secs(30),
        "the four replies by webhook",
        || {
            let got: Vec<Value> = r.received().iter().map(|x| x.json()).collect();
            let n = got
                .iter()
                .filter(|e| e["type"] == "message.received" || e["type"] == "message.reaction")
                .count();
            (n >= 4).then_some(got)
        },
    );
    let status = event_of(&got, "message.status", |d| {
        d["id"] == reminder.as_str() && d["status"] == "delivered"
    });
    assert!(
        status.is_some(),
        "the reminder's status by webhook: {got:?}"
    );
    let bare = event_of(&got, "message.received", |d| d["text"] == "Confirmo").expect("Confirmo");
    assert_eq!(bare["data"]["from"], patient, "{bare}");
    let si = event_of(&got, "message.received", |d| d["text"] == "SÍ").expect("the SÍ");
    assert_eq!(bare["data"]["from_lid"], si["data"]["from_lid"], "{bare}");
    assert_eq!(
        si["data"]["from"], patient,
        "the phone number, not the LID: {si}"
    );
    assert!(
        si["data"]["from_lid"]
            .as_str()
            .is_some_and(|l| !l.is_empty() && l != patient),
        "{si}"
    );
    assert_eq!(si["data"]["in_reply_to"], reminder.as_str(), "{si}");
    assert_eq!(si["org"], "o0");
    let thumbs = event_of(&got, "message.reaction", |d| d["emoji"] == "👍").expect("the reaction");
    assert_eq!(thumbs["data"]["message_id"], reminder.as_str(), "{thumbs}");
    assert_eq!(thumbs["data"]["from"], patient, "{thumbs}");
    let thanks =
        event_of(&got, "message.received", |d| d["text"] == "Gracias").expect("the thanks");
    assert!(thanks["data"]["in_reply_to"].is_null(), "{thanks}");
    assert_eq!(
        thanks["data"]["last_outbound_id"],
        reminder.as_str(),
        "{thanks}"
    );

    // Every body is signed; checked by an HMAC written in the test.
    for x in r.received() {
        let sig = x.header("wagate-signature").unwrap().to_string();
        let (t, v1) = sig.split_once(',').unwrap();
        let mut msg = format!("{}.", t.trim_start_matches("t=")).into_bytes();
        msg.extend_from_slice(&x.body);
        assert_eq!(v1, format!("v1={}", hmac_sha256(secret.as_bytes(), &msg)));
    }
    println!(
        "{} webhook events; SÍ from {} (lid {}) in reply to {}",
        got.len(),
        si["data"]["from"],
        si["data"]["from_lid"],
        si["data"]["in_reply_to"]
    );
    // The inbound list says the same.
    let (_, inbound) = l.s.call("GET", "/v1/orgs/o0/inbound", Some(&tok), None);
    let rows = inbound["messages"].as_array().unwrap();
    let si = rows.iter().find(|m| m["text"] == "SÍ").expect("stored");
    assert_eq!(
        (si["from"].as_str(), si["in_reply_to"].as_str()),
        (Some(patient), Some(reminder.as_str())),
        "{si}"
    );
    let thumbs = rows
        .iter()
        .find(|m| m["text"] == "👍")
        .expect("the reaction stored");
    assert_eq!(thumbs["reaction_to"], reminder.as_str());
    // The org page shows each reply with the reminder it answers.
    let cookie = crate::common::web::sign_in(&l.s.base, &tok);
    let page = crate::common::web::get(
        &format!("{}/ui/orgs/o0", l.s.base),
        Some(&cookie),
        &[("Accept-Language", "es")],
    );
    let row = page
        .body
        .split("<tr id=\"r-")
        .find(|r| r.contains(">SÍ<"))
        .expect("the SÍ on the page");
    assert!(
        row.contains(&format!("data-message=\"{reminder}\" data-quoted=\"yes\""))
            && row.contains("¿Confirma?"),
        "{row}"
    );
    assert!(page.body.contains("Responde a") && page.body.contains("reaccionó"));
}

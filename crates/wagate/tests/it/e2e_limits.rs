//! WhatsApp's sending limits through wa-sim and the real client: the
//! reach-out timelock (463 and its notification), message capping, numbers
//! that are not on WhatsApp, the contact look-up and its rate limit, and the
//! org's own cap on new contacts.

use std::time::{Duration, Instant};

use crate::common::sim::{add_phone, inbox, linked, phone, Linked};
use crate::common::{control, db, now_ms};
use serde_json::{json, Value};

fn send(l: &Linked, to: &str, text: &str) -> String {
    let (st, v) = l.s.call(
        "POST",
        "/v1/orgs/o0/messages",
        Some(&l.token("o0")),
        Some(&json!({"to": to, "text": text}).to_string()),
    );
    assert_eq!(st, 202, "{v}");
    v["id"].as_str().unwrap().to_string()
}

fn message(l: &Linked, id: &str) -> Value {
    let (st, m) = l.s.call(
        "GET",
        &format!("/v1/orgs/o0/messages/{id}"),
        Some(&l.token("o0")),
        None,
    );
    assert_eq!(st, 200, "{m}");
    m
}

/// Wait until message `id` satisfies `pred`; panics with the last state.
fn wait_for(l: &Linked, id: &str, within: Duration, pred: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let m = message(l, id);
        if pred(&m) {
            return m;
        }
        assert!(start.elapsed() < within, "message {id} stuck at {m}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn rfc_ms(v: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_default())
        .map(|t| t.timestamp_millis())
        .unwrap_or_else(|_| panic!("not an RFC 3339 time: {v}"))
}

#[test]
fn a_reachout_timelock_holds_first_messages_while_known_contacts_flow() {
    let l = linked(1);
    let (known, new) = ("573009990101", "573009990102");
    add_phone(&l, known);
    add_phone(&l, new);
    // The known patient wrote to the clinic first.
    let (st, v) = control(
        &l.ctl(),
        "POST",
        &format!("/control/phones/{known}/send"),
        Some(json!({"to": phone(0), "text": "Hola, quiero una cita"})),
    );
    assert_eq!(st, 200, "{v}");
    let start = Instant::now();
    loop {
        let (_, v) =
            l.s.call("GET", "/v1/orgs/o0/inbound", Some(&l.token("o0")), None);
        if v["messages"].as_array().is_some_and(|m| !m.is_empty()) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no inbound: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }

    let lock_ms = 8_000;
    let lock_end = now_ms() + lock_ms;
    l.fault(json!({"kind": "reachout_timelock", "phone": phone(0), "duration_ms": lock_ms}));
    let first = send(&l, new, "Bienvenido a la clínica");
    let held = wait_for(&l, &first, Duration::from_secs(15), |m| {
        m["held_reason"] == "reachout_timelock"
    });
    assert_eq!(held["status"], "queued", "held, not failed: {held}");
    let retry_at = rfc_ms(&held["retry_at"]);
    assert!(
        (retry_at - lock_end).abs() < 2_000,
        "retry_at {retry_at} is the end the server gave ({lock_end})"
    );
    let st = l.status("o0");
    assert!(
        (rfc_ms(&st["reachout_timelock_until"]) - lock_end).abs() < 2_000,
        "{st}"
    );
    assert_eq!(st["held_messages"], 1, "{st}");

    // Meanwhile: the known contact is served, another new one is held unsent.
    let to_known = send(&l, known, "Su cita es mañana a las 10:00");
    let other_new = "573009990103";
    add_phone(&l, other_new);
    let second = send(&l, other_new, "Recordatorio");
    wait_for(&l, &to_known, Duration::from_secs(15), |m| {
        m["status"] == "delivered"
    });
    let h2 = wait_for(&l, &second, Duration::from_secs(15), |m| {
        m["held_reason"] == "reachout_timelock"
    });
    assert_eq!(h2["attempts"], 0, "held before any try: {h2}");
    assert!(
        now_ms() < lock_end,
        "the known contact was served during the lock"
    );
    assert!(
        inbox(&l, new).is_empty(),
        "nothing reached the new contact yet"
    );
    // The org page lists both, with the reason, in the clinic's language.
    let cookie = crate::common::web::sign_in(&l.s.base, &l.token("o0"));
    let page = crate::common::web::get(
        &format!("{}/ui/orgs/o0", l.s.base),
        Some(&cookie),
        &[("Accept-Language", "es")],
    );
    for id in [&first, &second] {
        assert!(
            page.body
                .contains(&format!("id=\"h-{id}\" data-reason=\"reachout_timelock\"")),
            "{}",
            page.body
        );
    }
    assert!(page.body.contains("bloqueo de primer contacto"));
    assert!(
        page.body.contains("id=\"reachout\""),
        "the timelock's end is shown"
    );
    let limited: i64 = db(l.data.path())
        .query_row(
            "SELECT COUNT(*) FROM events WHERE kind = 'send.limited'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(limited >= 1, "a send.limited event was published");

    // After the end: both held messages go, each once, none before the end.
    for id in [&first, &second] {
        let m = wait_for(&l, id, Duration::from_secs(30), |m| {
            m["status"] == "delivered"
        });
        assert!(m["held_reason"].is_null(), "{m}");
    }
    for p in [new, other_new] {
        let got = inbox(&l, p);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0]["copies"], 1, "delivered once: {got:?}");
        assert!(got[0]["t"].as_i64().unwrap() >= lock_end - 1_000, "{got:?}");
    }
    let st = l.status("o0");
    assert!(st["reachout_timelock_until"].is_null(), "{st}");
    println!(
        "timelock {lock_ms} ms: held messages delivered {} ms after its end",
        inbox(&l, new)[0]["t"].as_i64().unwrap() - lock_end
    );
}

#[test]
fn new_chats_past_the_servers_cap_are_held_until_the_cycle_ends() {
    let l = linked(1);
    let phones = ["573009990201", "573009990202", "573009990203"];
    phones.iter().for_each(|p| add_phone(&l, p));
    let cycle_ms = 8_000;
    let cycle_end = now_ms() + cycle_ms;
    l.fault(
        json!({"kind": "message_capping", "phone": phone(0), "total": 2, "duration_ms": cycle_ms}),
    );
    let ids: Vec<String> = phones
        .iter()
        .map(|p| send(&l, p, "Recordatorio de cita"))
        .collect();
    for id in &ids[..2] {
        wait_for(&l, id, Duration::from_secs(20), |m| {
            m["status"] == "delivered"
        });
    }
    let held = wait_for(&l, &ids[2], Duration::from_secs(20), |m| {
        m["held_reason"] == "message_cap"
    });
    assert!(
        (rfc_ms(&held["retry_at"]) - cycle_end).abs() < 2_000,
        "{held}"
    );
    // A fourth new chat is held too; a held one can be called back.
    add_phone(&l, "573009990204");
    let fourth = send(&l, "573009990204", "Recordatorio de cita");
    wait_for(&l, &fourth, Duration::from_secs(10), |m| {
        m["held_reason"] == "message_cap"
    });
    let (st, v) = l.s.call(
        "DELETE",
        &format!("/v1/orgs/o0/messages/{}", ids[2]),
        Some(&l.token("o0")),
        None,
    );
    assert_eq!((st, v["status"].as_str()), (200, Some("canceled")), "{v}");
    let st = l.status("o0");
    let cap = &st["message_capping"];
    assert_eq!(
        (cap["used"].as_i64(), cap["total"].as_i64()),
        (Some(2), Some(2)),
        "{st}"
    );
    assert_eq!(cap["capped"], true, "{st}");
    let m = wait_for(&l, &fourth, Duration::from_secs(30), |m| {
        m["status"] == "delivered"
    });
    let got = inbox(&l, "573009990204");
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0]["t"].as_i64().unwrap() >= cycle_end - 1_000, "{m}");
    assert!(
        inbox(&l, phones[2]).is_empty(),
        "the canceled one never arrived"
    );
}

#[test]
fn numbers_not_on_whatsapp_fail_and_lookups_are_cached_and_rate_limited() {
    let l = linked(1);
    let tok = l.token("o0");
    let on = "573009990301";
    add_phone(&l, on);
    let t0 = Instant::now();
    let absent = send(&l, "573009990399", "Hola");
    let m = wait_for(&l, &absent, Duration::from_secs(10), |m| {
        m["status"] != "queued"
    });
    assert_eq!(m["status"], "failed", "{m}");
    assert_eq!(m["error"], "not_on_whatsapp", "{m}");
    println!("not on WhatsApp → failed in {:?}", t0.elapsed());
    let present = send(&l, on, "Hola");
    wait_for(&l, &present, Duration::from_secs(20), |m| {
        m["status"] == "delivered"
    });

    // The dispatcher's look-ups fill the cache the endpoint answers from.
    let (st, c) =
        l.s.call("GET", "/v1/orgs/o0/contacts/573009990399", Some(&tok), None);
    assert_eq!(st, 200, "{c}");
    assert_eq!(
        (c["on_whatsapp"].as_bool(), c["cached"].as_bool()),
        (Some(false), Some(true)),
        "{c}"
    );
    let (st, c) = l.s.call(
        "GET",
        "/v1/orgs/o0/contacts/%2B57%20300%20999%200301",
        Some(&tok),
        None,
    );
    assert_eq!(st, 200, "{c}");
    assert_eq!(c["on_whatsapp"], true, "{c}");
    assert_eq!(c["phone"], on, "{c}");

    // Fresh numbers go to WhatsApp: five at once, then 429 with Retry-After.
    let mut answers = vec![];
    for i in 0..6 {
        let (st, h, v) =
            l.s.get_with_headers(&format!("/v1/orgs/o0/contacts/57300888{i:04}"), &tok);
        answers.push((st, h, v));
    }
    for (st, _, v) in &answers[..5] {
        assert_eq!(*st, 200, "{v}");
        assert_eq!(v["on_whatsapp"], false, "{v}");
        assert_eq!(v["cached"], false, "{v}");
    }
    let (st, h, v) = &answers[5];
    assert_eq!(*st, 429, "{v}");
    assert_eq!(v["error"]["code"], "rate_limited", "{v}");
    let retry: u64 = h
        .iter()
        .find(|(k, _)| k == "retry-after")
        .and_then(|(_, v)| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=6).contains(&retry), "Retry-After {retry}");
    // A cached answer is never limited.
    let (st, _) =
        l.s.call("GET", "/v1/orgs/o0/contacts/573009990399", Some(&tok), None);
    assert_eq!(st, 200);
    // The CLI asks the same question.
    let cli = |phone: &str| {
        let out = std::process::Command::new(crate::common::bin())
            .args(["--url", &l.s.base, "--token", &tok, "contact", "o0", phone])
            .output()
            .expect("run wagate");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = cli("+57 300 999 0301");
    assert!(ok, "{out}{err}");
    assert!(
        out.starts_with("+573009990301 is on WhatsApp (573009990301@s.whatsapp.net; cached"),
        "{out}"
    );
    let (ok, out, _) = cli("573009990399");
    assert!(ok);
    assert!(
        out.starts_with("+573009990399 is not on WhatsApp (cached"),
        "{out}"
    );
    let (ok, out, err) = cli("57300888999");
    assert!(!ok, "a sixth fresh look-up is refused: {out}");
    assert!(err.contains("rate_limited"), "{err}");
    // A bad number is the caller's mistake, not a look-up.
    let (st, v) =
        l.s.call("GET", "/v1/orgs/o0/contacts/hola", Some(&tok), None);
    assert_eq!(st, 422, "{v}");
}

#[test]
fn the_orgs_cap_on_new_contacts_holds_the_next_first_message_for_a_day() {
    let l = linked(1);
    let tok = l.token("o0");
    let (a, b) = ("573009990401", "573009990402");
    add_phone(&l, a);
    add_phone(&l, b);
    let (st, p) = l.s.call(
        "PUT",
        "/v1/orgs/o0/sending-policy",
        Some(&tok),
        Some(&json!({"new_contacts_per_day": 1}).to_string()),
    );
    assert_eq!(st, 200, "{p}");
    assert_eq!(p["new_contacts_per_day"], 1, "{p}");
    let first = send(&l, a, "Hola");
    let m = wait_for(&l, &first, Duration::from_secs(20), |m| {
        m["status"] == "delivered"
    });
    let second = send(&l, b, "Hola");
    let held = wait_for(&l, &second, Duration::from_secs(20), |m| {
        m["held_reason"] == "new_contact_cap"
    });
    let day = 24 * 3_600_000;
    let due = rfc_ms(&held["retry_at"]);
    assert!(
        (due - (m["updated_ms"].as_i64().unwrap() + day)).abs() < 60_000,
        "held a day after the first: {held}"
    );
    // A second message to the contact already reached is not a new contact.
    let again = send(&l, a, "¿Confirma su cita?");
    wait_for(&l, &again, Duration::from_secs(20), |m| {
        m["status"] == "delivered"
    });
    // The held one can be canceled.
    let (st, v) = l.s.call(
        "DELETE",
        &format!("/v1/orgs/o0/messages/{second}"),
        Some(&tok),
        None,
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "canceled");
    assert!(inbox(&l, b).is_empty());
}

//! Messages through the real client and wa-sim: Signal-encrypted by the
//! gateway, decrypted by simulated recipients, acked and receipted back.

use std::time::{Duration, Instant};

use crate::common::sim::{add_phone, inbox, linked};
use crate::common::{control, now_ms};
use serde_json::json;

fn wait_message(
    l: &crate::common::sim::Linked,
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
    add_phone(&l, to);
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
    assert_eq!(msgs[0]["from"], crate::common::sim::phone(0));
    // The account is LID-migrated (as every account is now): the client
    // addresses the patient by LID, and the receipts come back that way.
    assert!(
        msgs[0]["via"].as_str().unwrap().ends_with("@lid"),
        "addressed as {}",
        msgs[0]["via"]
    );
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

fn send(l: &crate::common::sim::Linked, to: &str, text: &str) -> Option<String> {
    let (st, m) = l.s.call(
        "POST",
        "/v1/orgs/o0/messages",
        Some(&l.token("o0")),
        Some(&json!({"to": to, "text": text}).to_string()),
    );
    (st == 202).then(|| m["id"].as_str().unwrap().to_string())
}

fn inbox_texts(l: &crate::common::sim::Linked, phone: &str) -> Vec<String> {
    let (_, v) = control(
        &l.ctl(),
        "GET",
        &format!("/control/phones/{phone}/inbox"),
        None,
    );
    v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap_or("").to_string())
        .collect()
}

fn statuses(l: &crate::common::sim::Linked) -> Vec<serde_json::Value> {
    let (_, v) = l.s.call(
        "GET",
        "/v1/orgs/o0/messages?limit=1000",
        Some(&l.token("o0")),
        None,
    );
    v["messages"].as_array().unwrap().clone()
}

fn wait_all(l: &crate::common::sim::Linked, n: usize, status: &str, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let all = statuses(l);
        let done = all
            .iter()
            .filter(|m| m["status"] == status || (status == "delivered" && m["status"] == "read"))
            .count();
        if done >= n {
            return start.elapsed();
        }
        if start.elapsed() >= within {
            let behind: Vec<String> = all
                .iter()
                .filter(|m| m["status"] != status && m["status"] != "read")
                .take(5)
                .map(|m| format!("{} {} attempts={}", m["id"], m["status"], m["attempts"]))
                .collect();
            panic!("{done}/{n} {status} after {within:?}; behind: {behind:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn recipient(i: usize) -> String {
    format!("57301{:07}", i)
}

#[test]
fn a_receipt_made_while_the_gateway_is_down_arrives_after_its_restart() {
    let mut l = linked(1);
    let to = "573009990078";
    add_phone(&l, to);
    let id = send(&l, to, "leído mientras la pasarela estaba caída").expect("accepted");
    wait_all(&l, 1, "delivered", Duration::from_secs(30));
    let wa_id = statuses(&l)[0]["wa_id"].as_str().unwrap().to_string();
    assert_eq!(statuses(&l)[0]["id"], id);
    let ctl = l.ctl();
    // The patient reads it while the gateway is dead: WhatsApp keeps the read
    // receipt for the device and hands it over at its next login.
    l.restart_gateway_after(|| {
        let (st, v) = control(
            &ctl,
            "POST",
            &format!("/control/phones/{to}/read"),
            Some(json!({"ids": [wa_id]})),
        );
        assert_eq!(st, 200, "{v}");
    });
    let took = wait_all(&l, 1, "read", Duration::from_secs(30));
    println!("read receipt made while down applied {took:?} after the restart");
    // The device acked it, so wa-sim stops keeping it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, v) = control(&l.ctl(), "GET", "/control/devices", None);
        let unacked: u64 = v["devices"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|d| d["unacked_receipts"].as_u64())
            .sum();
        if unacked == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "receipts never acked: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_recipient_that_reads_after_a_delay_sends_a_read_receipt_by_itself() {
    let l = linked(1);
    let to = "573009990077";
    let (st, _) = control(
        &l.ctl(),
        "POST",
        "/control/phones",
        Some(json!({"phone": to, "read_after_ms": 300})),
    );
    assert_eq!(st, 201);
    let id = send(&l, to, "hola").unwrap();
    let m = wait_message(&l, "o0", &id, "read", Duration::from_secs(30));
    assert_eq!(m["text"], "hola");
}

#[test]
fn two_hundred_messages_to_twenty_recipients() {
    let l = linked(1);
    for r in 0..20 {
        let (st, _) = control(
            &l.ctl(),
            "POST",
            "/control/phones",
            Some(json!({"phone": recipient(r)})),
        );
        assert_eq!(st, 201);
    }
    let t0 = Instant::now();
    for k in 0..10 {
        for r in 0..20 {
            assert!(send(&l, &recipient(r), &format!("r{r} m{k}")).is_some());
        }
    }
    println!("200 accepted in {:?}", t0.elapsed());
    let took = wait_all(&l, 200, "delivered", Duration::from_secs(120));
    println!("200 delivered {took:?} after the last accept");
    for r in 0..20 {
        let want: Vec<String> = (0..10).map(|k| format!("r{r} m{k}")).collect();
        assert_eq!(inbox_texts(&l, &recipient(r)), want, "recipient {r}");
    }
    // Recipients 0-4 read everything they got.
    for r in 0..5 {
        let (_, v) = control(
            &l.ctl(),
            "GET",
            &format!("/control/phones/{}/inbox", recipient(r)),
            None,
        );
        let ids: Vec<String> = v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect();
        control(
            &l.ctl(),
            "POST",
            &format!("/control/phones/{}/read", recipient(r)),
            Some(json!({"ids": ids})),
        );
    }
    wait_all(&l, 50, "read", Duration::from_secs(60));
    let all = statuses(&l);
    for m in &all {
        let r: usize = m["text"].as_str().unwrap()[1..]
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let want = if r < 5 { "read" } else { "delivered" };
        assert_eq!(m["status"], want, "{m}");
    }
}

#[test]
fn messages_sent_while_the_server_is_down_arrive_in_order_once() {
    let l = linked(1);
    for r in 0..3 {
        control(
            &l.ctl(),
            "POST",
            "/control/phones",
            Some(json!({"phone": recipient(r)})),
        );
    }
    l.fault(json!({"kind": "down"}));
    l.wait("o0", Duration::from_secs(30), |v| v["state"] != "connected");
    for k in 0..10 {
        for r in 0..3 {
            assert!(send(&l, &recipient(r), &format!("r{r} m{k}")).is_some());
        }
    }
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        statuses(&l).iter().all(|m| m["status"] == "queued"),
        "nothing leaves while the server is down"
    );
    l.fault(json!({"kind": "up"}));
    let took = wait_all(&l, 30, "delivered", Duration::from_secs(90));
    println!("30 queued messages delivered {took:?} after the server came back");
    for r in 0..3 {
        let want: Vec<String> = (0..10).map(|k| format!("r{r} m{k}")).collect();
        assert_eq!(inbox_texts(&l, &recipient(r)), want, "recipient {r}");
    }
}

#[test]
fn sigkill_mid_burst_delivers_each_accepted_message_once() {
    let mut l = linked(1);
    for r in 0..10 {
        control(
            &l.ctl(),
            "POST",
            "/control/phones",
            Some(json!({"phone": recipient(r)})),
        );
    }
    let mut accepted: Vec<(usize, String)> = vec![];
    for i in 0..500 {
        let r = i % 10;
        if let Some(id) = send(&l, &recipient(r), &format!("r{r} m{i}")) {
            accepted.push((i, id));
        }
        if i == 250 {
            // Mid-burst: some delivered, some handed to the socket, most queued.
            let st = statuses(&l);
            let queued = st.iter().filter(|m| m["status"] == "queued").count();
            println!("at the kill: {queued} of {} still queued", st.len());
            assert!(queued > 0, "the burst was already over");
            l.restart_gateway();
        }
    }
    println!("accepted {} of 500", accepted.len());
    let took = wait_all(&l, accepted.len(), "delivered", Duration::from_secs(180));
    println!("all accepted delivered {took:?} after the burst");
    for r in 0..10 {
        let got = inbox_texts(&l, &recipient(r));
        let want: Vec<String> = accepted
            .iter()
            .filter(|(i, _)| i % 10 == r)
            .map(|(i, _)| format!("r{r} m{i}"))
            .collect();
        let mut sorted = got.clone();
        sorted.dedup();
        assert_eq!(sorted.len(), got.len(), "recipient {r} got a message twice");
        for w in &want {
            assert_eq!(
                got.iter().filter(|g| *g == w).count(),
                1,
                "recipient {r}: {w} not exactly once"
            );
        }
        assert_eq!(
            got.len(),
            want.len(),
            "recipient {r} got messages nobody accepted"
        );
    }
    let (mut resent, mut total) = (0, 0);
    for r in 0..10 {
        let (_, v) = control(
            &l.ctl(),
            "GET",
            &format!("/control/phones/{}/inbox", recipient(r)),
            None,
        );
        for m in v["messages"].as_array().unwrap() {
            total += 1;
            if m["copies"].as_u64().unwrap_or(1) > 1 {
                resent += 1;
            }
        }
    }
    println!("{resent} of {total} messages reached a phone twice under the same id (re-sent after the kill; shown once)");
}

#[test]
fn a_patient_reply_reaches_the_gateway_and_is_stored_once() {
    let l = linked(1);
    let patient = "573009990001";
    control(
        &l.ctl(),
        "POST",
        "/control/phones",
        Some(json!({"phone": patient, "name": "Paciente"})),
    );
    let me = crate::common::sim::phone(0);
    let mut ids = vec![];
    for text in ["Confirmo la cita", "Gracias, hasta mañana"] {
        let (st, v) = control(
            &l.ctl(),
            "POST",
            &format!("/control/phones/{patient}/send"),
            Some(json!({"to": me, "text": text})),
        );
        assert_eq!(st, 200, "{v}");
        ids.push(v["id"].as_str().unwrap().to_string());
    }
    let start = Instant::now();
    let got = loop {
        let (st, v) =
            l.s.call("GET", "/v1/orgs/o0/inbound", Some(&l.token("o0")), None);
        assert_eq!(st, 200);
        let msgs = v["messages"].as_array().unwrap().clone();
        if msgs.len() >= 2 {
            break msgs;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "inbound: {v}");
        std::thread::sleep(Duration::from_millis(100));
    };
    println!("2 replies stored {:?} after sending", start.elapsed());
    let texts: Vec<&str> = got.iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(texts, vec!["Confirmo la cita", "Gracias, hasta mañana"]);
    assert!(got.iter().all(|m| m["from"] == patient));
    assert_eq!(got[0]["wa_id"], ids[0].as_str());
    // Another org's token sees none of them.
    let other = l.s.create_org("x", None);
    assert_eq!(
        l.s.call("GET", "/v1/orgs/o0/inbound", Some(&other), None).0,
        403
    );
}

#[test]
fn a_bad_mac_from_one_contact_disturbs_no_one_else() {
    let l = linked(1);
    let (a, b) = ("573009990001", "573009990002");
    for p in [a, b] {
        control(
            &l.ctl(),
            "POST",
            "/control/phones",
            Some(json!({"phone": p})),
        );
    }
    let me = crate::common::sim::phone(0);
    let say = |from: &str, text: &str| {
        let (st, v) = control(
            &l.ctl(),
            "POST",
            &format!("/control/phones/{from}/send"),
            Some(json!({"to": me, "text": text})),
        );
        assert_eq!(st, 200, "{v}");
    };
    say(a, "a1");
    say(b, "b1");
    l.fault(json!({"kind": "bad_mac", "phone": a}));
    say(a, "a2 (corrupted on the wire)");
    say(b, "b2");
    // Outbound to the same contact keeps working too.
    let (st, m) = l.s.call(
        "POST",
        "/v1/orgs/o0/messages",
        Some(&l.token("o0")),
        Some(&json!({"to": a, "text": "out"}).to_string()),
    );
    assert_eq!(st, 202);
    wait_message(
        &l,
        "o0",
        m["id"].as_str().unwrap(),
        "delivered",
        Duration::from_secs(30),
    );
    let start = Instant::now();
    let texts = loop {
        let (_, v) =
            l.s.call("GET", "/v1/orgs/o0/inbound", Some(&l.token("o0")), None);
        let texts: Vec<String> = v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["text"].as_str().unwrap().to_string())
            .collect();
        if texts.len() >= 4 || start.elapsed() > Duration::from_secs(30) {
            break texts;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    println!("inbound after a bad MAC: {texts:?}");
    for t in ["a1", "b1", "b2"] {
        assert!(texts.iter().any(|x| x == t), "{t} missing: {texts:?}");
    }
    let v = l.status("o0");
    assert_eq!(v["state"], "connected", "the device stayed linked: {v}");
    assert_eq!(v["decrypt_failures"], 1, "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("could not be decrypted"),
        "{v}"
    );
    let recovered = texts.iter().any(|x| x.starts_with("a2"));
    println!("the corrupted message was recovered by the retry receipt: {recovered}");
    assert!(
        recovered,
        "the library's retry receipt should bring a2 back: {texts:?}"
    );
}

#[test]
fn scheduled_reminders_arrive_once_on_time_across_a_sigkill_and_never_when_canceled_or_expired() {
    let mut l = linked(1);
    let to = "573009990002";
    add_phone(&l, to);
    let tok = l.token("o0");
    let post = |l: &crate::common::sim::Linked, body: serde_json::Value| {
        let (st, v) = l.s.call(
            "POST",
            "/v1/orgs/o0/messages",
            Some(&tok),
            Some(&body.to_string()),
        );
        assert_eq!(st, 202, "{v}");
        v
    };
    // 51 reminders due in 4 s, one of them canceled (50 stay scheduled), one
    // more with a deadline that passes while the gateway is down; then
    // SIGKILL, down across send_at.
    let t0 = now_ms();
    let at = t0 + 4_000;
    let mut ids = vec![];
    for i in 0..51 {
        let v = post(
            &l,
            json!({"to": to, "text": format!("cita {i}"), "send_at": at}),
        );
        assert_eq!(v["status"], "scheduled");
        ids.push(v["id"].as_str().unwrap().to_string());
    }
    let canceled = ids.remove(3);
    let (st, v) = l.s.call(
        "DELETE",
        &format!("/v1/orgs/o0/messages/{canceled}"),
        Some(&tok),
        None,
    );
    assert_eq!((st, v["status"].as_str()), (200, Some("canceled")), "{v}");
    let v = post(
        &l,
        json!({"to": to, "text": "tarde", "send_at": at, "send_before": t0 + 5_000}),
    );
    let expired = v["id"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(1_000));
    assert!(inbox(&l, to).is_empty(), "nothing before send_at");
    l.restart_gateway_after(|| std::thread::sleep(Duration::from_millis(5_000)));
    for id in &ids {
        wait_message(&l, "o0", id, "delivered", Duration::from_secs(60));
    }
    let got = inbox(&l, to);
    let texts: Vec<&str> = got.iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(got.len(), 50, "fifty reminders, each once: {texts:?}");
    for m in &got {
        assert_eq!(m["copies"], 1, "sent once: {m}");
        assert!(
            m["t"].as_i64().unwrap() >= at,
            "arrived {} ms before send_at",
            at - m["t"].as_i64().unwrap()
        );
    }
    assert!(!texts.contains(&"cita 3"), "the canceled one never left");
    assert!(!texts.contains(&"tarde"), "the expired one never left");
    let (_, v) = l.s.call(
        "GET",
        &format!("/v1/orgs/o0/messages/{expired}"),
        Some(&tok),
        None,
    );
    assert_eq!(v["status"], "expired", "{v}");
    println!(
        "50 scheduled reminders delivered once after a SIGKILL across send_at; last arrival {} ms after send_at",
        got.iter().map(|m| m["t"].as_i64().unwrap()).max().unwrap() - at
    );
}

#[test]
fn a_hundred_reminders_leave_on_time_paced_with_typing_before_each() {
    let l = linked(1);
    let patients: Vec<String> = (0..10).map(|i| format!("5730099905{i:02}")).collect();
    patients.iter().for_each(|p| add_phone(&l, p));
    let tok = l.token("o0");
    let (min_gap, max_gap, typing_max) = (200_i64, 400_i64, 100_i64);
    let (st, p) = l.s.call(
        "PUT",
        "/v1/orgs/o0/sending-policy",
        Some(&tok),
        Some(
            &json!({
                "min_gap_ms": min_gap, "max_gap_ms": max_gap, "hourly_cap": null,
                "daily_cap": null, "quiet_hours": null, "typing": true,
                "typing_ms_per_char": 5, "typing_max_ms": typing_max
            })
            .to_string(),
        ),
    );
    assert_eq!(st, 200, "{p}");
    let at = now_ms() + 20_000;
    let n = 100;
    let mut ids = vec![];
    for i in 0..n {
        let to = &patients[i % patients.len()];
        let (st, v) = l.s.call(
            "POST",
            "/v1/orgs/o0/messages",
            Some(&tok),
            Some(
                &json!({"to": to, "text": format!("Recordatorio {i}: cita mañana"), "send_at": at})
                    .to_string(),
            ),
        );
        assert_eq!(st, 202, "{v}");
        assert_eq!(v["status"], "scheduled");
        ids.push(v["id"].as_str().unwrap().to_string());
    }
    assert!(now_ms() < at, "all scheduled before they were due");
    for id in &ids {
        wait_message(&l, "o0", id, "delivered", Duration::from_secs(120));
    }
    // Every arrival at wa-sim, from every patient's inbox, in order.
    let mut got: Vec<(i64, String)> = vec![];
    for p in &patients {
        let msgs = inbox(&l, p);
        assert_eq!(msgs.len(), n / patients.len(), "{p}: {msgs:?}");
        for m in msgs {
            assert_eq!(m["copies"], 1, "each once: {m}");
            got.push((m["t"].as_i64().unwrap(), p.clone()));
        }
    }
    got.sort();
    let times: Vec<i64> = got.iter().map(|g| g.0).collect();
    assert!(times[0] >= at, "the first left {} ms early", at - times[0]);
    assert!(
        times[0] - at < 3_000,
        "the first left {} ms late",
        times[0] - at
    );
    let gaps: Vec<i64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    let (lo, hi) = (gaps.iter().min().unwrap(), gaps.iter().max().unwrap());
    println!(
        "100 reminders: first {} ms after send_at, last {} ms after; gaps at wa-sim {lo}–{hi} ms (policy {min_gap}–{max_gap} ms, typing ≤ {typing_max} ms inside it)",
        times[0] - at,
        times[n - 1] - at
    );
    // "typing…" runs inside the gap, so the hand-overs are the policy's gaps
    // apart (exactly: outbox unit test). What wa-sim sees adds each message's
    // own delivery time, up to `d` on a loaded 2-core machine, so one late
    // arrival followed by a prompt one shows a short gap. Any span of k gaps
    // between arrivals is therefore k·min − d … k·max + d; a burst, or a
    // schedule off the policy, fails that over the 99 gaps.
    let d = 400;
    for i in 0..n {
        for j in i + 1..n {
            let (k, span) = ((j - i) as i64, times[j] - times[i]);
            assert!(
                (k * min_gap - d..=k * max_gap + d).contains(&span),
                "arrivals {i}..{j}: {span} ms for {k} gaps, outside the policy's {min_gap}–{max_gap} ms each (± {d} ms of delivery): {gaps:?}"
            );
        }
    }
    // "typing…" reached each patient before each message to them, after the
    // number's previous message.
    let mut typing: std::collections::HashMap<String, Vec<i64>> = Default::default();
    for p in &patients {
        let (_, cs) = control(
            &l.ctl(),
            "GET",
            &format!("/control/phones/{p}/chatstates"),
            None,
        );
        let t: Vec<i64> = cs["chatstates"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["state"] == "composing")
            .map(|c| c["t"].as_i64().unwrap())
            .collect();
        assert_eq!(t.len(), n / patients.len(), "{p}: {cs}");
        typing.insert(p.clone(), t);
    }
    for (k, (t, p)) in got.iter().enumerate() {
        let after = if k == 0 { at } else { got[k - 1].0 };
        assert!(
            typing[p].iter().any(|c| *c <= *t && *c >= after),
            "no typing… to {p} between the previous message ({after}) and this one ({t})"
        );
    }
}

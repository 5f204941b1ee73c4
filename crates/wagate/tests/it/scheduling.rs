//! Scheduled sends over HTTP, offline (the scheduler runs whether or not the
//! org is linked): `send_at`/`send_before` accepted and refused, the listing
//! by due time, cancel and reschedule, due and expired moves, and schedules
//! that survive a SIGKILL.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{now_ms, Server};

fn send(s: &Server, tok: &str, body: Value) -> (u16, Value) {
    s.call(
        "POST",
        "/v1/orgs/4/messages",
        Some(tok),
        Some(&body.to_string()),
    )
}

fn get(s: &Server, tok: &str, id: &str) -> Value {
    let (st, v) = s.call("GET", &format!("/v1/orgs/4/messages/{id}"), Some(tok), None);
    assert_eq!(st, 200, "{v}");
    v
}

fn wait_status(s: &Server, tok: &str, id: &str, want: &str, within: Duration) -> Value {
    let t = Instant::now();
    loop {
        let v = get(s, tok, id);
        if v["status"] == want {
            return v;
        }
        assert!(t.elapsed() < within, "{id} never became {want}: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn org() -> (tempfile::TempDir, Server, String) {
    let d = tempfile::tempdir().unwrap();
    let s = Server::start(d.path());
    let tok = s.create_org("4", Some("57"));
    (d, s, tok)
}

#[test]
fn bad_times_are_refused_with_the_field_and_the_fix() {
    let (_d, s, tok) = org();
    let base = json!({"to": "3001112233", "text": "Recordatorio"});
    let with = |extra: Value| {
        let mut b = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let year = 366 * 24 * 3600 * 1000_i64;
    for (extra, code, says) in [
        (
            json!({"send_at": "2027-01-15T09:00:00"}),
            "invalid_send_at",
            "no offset",
        ),
        (
            json!({"send_at": "mañana a las 9"}),
            "invalid_send_at",
            "RFC 3339",
        ),
        (
            json!({"send_at": 1.5}),
            "invalid_send_at",
            "Unix milliseconds",
        ),
        (json!({"send_at": true}), "invalid_send_at", "RFC 3339"),
        (json!({"send_at": -5}), "invalid_send_at", "out of range"),
        (
            json!({"send_at": now_ms() + year}),
            "invalid_send_at",
            "more than a year",
        ),
        (
            json!({"send_at": now_ms() + 60_000, "send_before": now_ms() + 30_000}),
            "invalid_send_before",
            "later than send_at",
        ),
        (
            json!({"send_before": now_ms() - 1}),
            "invalid_send_before",
            "already passed",
        ),
        (
            json!({"send_before": "ayer"}),
            "invalid_send_before",
            "send_before must be",
        ),
    ] {
        let (st, v) = send(&s, &tok, with(extra.clone()));
        assert_eq!(st, 422, "{extra}: {v}");
        assert_eq!(v["error"]["code"], code, "{extra}: {v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(says), "{extra}: {msg}");
    }
    // Nothing was stored by a refusal.
    let (_, l) = s.call("GET", "/v1/orgs/4/messages", Some(&tok), None);
    assert_eq!(l["messages"].as_array().unwrap().len(), 0, "{l}");
    // A time in the past means now.
    let (st, v) = send(&s, &tok, with(json!({"send_at": "2020-01-01T00:00:00Z"})));
    assert_eq!(st, 202, "{v}");
    assert_eq!(v["status"], "queued");
}

#[test]
fn scheduled_messages_are_listed_by_due_time_and_can_be_moved_or_canceled() {
    let (_d, s, tok) = org();
    let t = now_ms();
    let mut ids = vec![];
    // Accepted in the reverse of their due order, one as RFC 3339 text.
    for (i, at) in [
        json!(t + 3_600_000 * 3),
        json!(t + 3_600_000 * 2),
        json!(chrono_like(t + 3_600_000)),
    ]
    .into_iter()
    .enumerate()
    {
        let (st, v) = send(
            &s,
            &tok,
            json!({"to": "3001112233", "text": format!("cita {i}"), "send_at": at}),
        );
        assert_eq!(st, 202, "{v}");
        assert_eq!(v["status"], "scheduled", "{v}");
        assert!(v["send_at_ms"].as_i64().unwrap() > t, "{v}");
        ids.push(v["id"].as_str().unwrap().to_string());
    }
    let (st, page1) = s.call(
        "GET",
        "/v1/orgs/4/messages?status=scheduled&limit=2",
        Some(&tok),
        None,
    );
    assert_eq!(st, 200, "{page1}");
    let got: Vec<&str> = page1["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, vec![ids[2].as_str(), ids[1].as_str()], "soonest first");
    let cursor = page1["next_cursor"].as_str().unwrap().to_string();
    let (_, page2) = s.call(
        "GET",
        &format!("/v1/orgs/4/messages?status=scheduled&limit=2&cursor={cursor}"),
        Some(&tok),
        None,
    );
    let got: Vec<&str> = page2["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, vec![ids[0].as_str()]);
    assert!(page2["next_cursor"].is_null());
    // That cursor belongs to this listing only.
    let (st, v) = s.call(
        "GET",
        &format!("/v1/orgs/4/messages?cursor={cursor}"),
        Some(&tok),
        None,
    );
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (422, Some("invalid_cursor"))
    );

    // Move the last one first.
    let (st, v) = s.call(
        "PATCH",
        &format!("/v1/orgs/4/messages/{}", ids[0]),
        Some(&tok),
        Some(&json!({"send_at": t + 60_000, "send_before": t + 120_000}).to_string()),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["send_at_ms"], t + 60_000);
    assert_eq!(v["send_before_ms"], t + 120_000);
    let (_, l) = s.call(
        "GET",
        "/v1/orgs/4/messages?status=scheduled",
        Some(&tok),
        None,
    );
    assert_eq!(l["messages"][0]["id"], ids[0].as_str());
    // A PATCH with nothing in it, or a deadline before the time: refused.
    let (st, v) = s.call(
        "PATCH",
        &format!("/v1/orgs/4/messages/{}", ids[0]),
        Some(&tok),
        Some("{}"),
    );
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (422, Some("invalid_send_at"))
    );
    let (st, v) = s.call(
        "PATCH",
        &format!("/v1/orgs/4/messages/{}", ids[0]),
        Some(&tok),
        Some(&json!({"send_at": t + 200_000}).to_string()),
    );
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (422, Some("invalid_send_before")),
        "past the kept deadline"
    );

    // Cancel: once, then 409; a canceled message cannot be moved.
    let path = format!("/v1/orgs/4/messages/{}", ids[1]);
    let (st, v) = s.call("DELETE", &path, Some(&tok), None);
    assert_eq!((st, v["status"].as_str()), (200, Some("canceled")), "{v}");
    let (st, v) = s.call("DELETE", &path, Some(&tok), None);
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (409, Some("not_cancelable"))
    );
    let (st, v) = s.call(
        "PATCH",
        &path,
        Some(&tok),
        Some(&json!({"send_at": t + 60_000}).to_string()),
    );
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (409, Some("not_reschedulable"))
    );
    let (st, v) = s.call("DELETE", "/v1/orgs/4/messages/msg_nope", Some(&tok), None);
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (404, Some("message_not_found"))
    );
    // A queued message not yet handed to WhatsApp (offline: never) can be canceled.
    let (_, q) = send(&s, &tok, json!({"to": "3001112233", "text": "ya"}));
    let (st, v) = s.call(
        "DELETE",
        &format!("/v1/orgs/4/messages/{}", q["id"].as_str().unwrap()),
        Some(&tok),
        None,
    );
    assert_eq!((st, v["status"].as_str()), (200, Some("canceled")), "{v}");
    // Another org's token reaches none of it.
    let other = s.create_org("5", None);
    let (st, _) = s.call(
        "DELETE",
        &format!("/v1/orgs/4/messages/{}", ids[2]),
        Some(&other),
        None,
    );
    assert_eq!(st, 403);
}

/// RFC 3339 text for a Unix-ms moment, with a -05:00 offset.
fn chrono_like(ms: i64) -> String {
    let secs = ms / 1000 - 5 * 3600;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}-05:00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

#[test]
fn due_messages_queue_and_passed_deadlines_expire_even_offline() {
    let (d, s, tok) = org();
    let t = now_ms();
    let (_, due) = send(
        &s,
        &tok,
        json!({"to": "3001112233", "text": "a", "send_at": chrono_like(t + 1_000)}),
    );
    let (_, late) = send(
        &s,
        &tok,
        json!({"to": "3001112233", "text": "b", "send_before": t + 1_500}),
    );
    let due_id = due["id"].as_str().unwrap();
    let late_id = late["id"].as_str().unwrap();
    assert_eq!(get(&s, &tok, due_id)["status"], "scheduled");
    let v = wait_status(&s, &tok, due_id, "queued", Duration::from_secs(5));
    assert!(
        v["updated_ms"].as_i64().unwrap() >= t + 1_000,
        "not early: {v}"
    );
    wait_status(&s, &tok, late_id, "expired", Duration::from_secs(5));
    // Each move has its event, in order.
    let db = crate::common::db(d.path());
    let moves: Vec<String> = db
        .prepare("SELECT json_extract(data, '$.status') FROM events WHERE kind = 'message.status' AND json_extract(data, '$.id') = ?1 ORDER BY seq")
        .unwrap()
        .query_map([due_id], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(moves, ["scheduled", "queued"]);
}

#[test]
fn a_schedule_survives_sigkill_and_a_gateway_down_across_send_at() {
    let d = tempfile::tempdir().unwrap();
    let mut s = Server::start(d.path());
    let tok = s.create_org("4", Some("57"));
    let t = now_ms();
    let (_, v) = send(
        &s,
        &tok,
        json!({"to": "3001112233", "text": "a", "send_at": t + 1_500}),
    );
    let id = v["id"].as_str().unwrap().to_string();
    s.kill9();
    // Down across send_at.
    std::thread::sleep(Duration::from_millis(2_500));
    let s = Server::start(d.path());
    let v = wait_status(&s, &tok, &id, "queued", Duration::from_secs(5));
    assert_eq!(v["send_at_ms"], t + 1_500);
}

#[test]
fn the_cli_schedules_and_cancels() {
    let (_d, s, tok) = org();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(crate::common::bin())
            .args(["--url", &s.base, "--token", &tok])
            .args(args)
            .output()
            .expect("run wagate");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let at = (now_ms() + 3_600_000).to_string();
    let (ok, out, err) = run(&["send", "4", "3001112233", "Recordatorio", "--at", &at]);
    assert!(ok, "{out}{err}");
    assert!(out.starts_with("scheduled msg_"), "{out}");
    let id = out.split_whitespace().nth(1).unwrap().to_string();
    let (ok, out, err) = run(&["cancel", "4", &id]);
    assert!(ok, "{out}{err}");
    assert_eq!(out.trim(), format!("{id} is now canceled"));
    let (ok, out, err) = run(&["send", "4", "3001112233", "x", "--at", "tomorrow"]);
    assert!(!ok, "{out}");
    assert!(
        err.contains("invalid_send_at") || err.contains("send_at must be"),
        "{err}"
    );
}

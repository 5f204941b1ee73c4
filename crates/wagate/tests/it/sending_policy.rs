//! The sending policy over HTTP (offline): the default, a change that names
//! a few fields, refusals that name the field, tenancy, and a policy that
//! survives a restart; the conservative default without `--unpaced`.

use serde_json::json;

use crate::common::{Server, ADMIN};

#[test]
fn a_policy_is_read_changed_field_by_field_and_kept() {
    let d = tempfile::tempdir().unwrap();
    let mut s = Server::start(d.path());
    let tok = s.create_org("4", Some("57"));
    let (st, p) = s.call("GET", "/v1/orgs/4/sending-policy", Some(&tok), None);
    assert_eq!(st, 200, "{p}");
    // The test server runs --unpaced.
    assert_eq!(p["min_gap_ms"], 0, "{p}");
    assert!(p["quiet_hours"].is_null(), "{p}");
    let change = json!({
        "min_gap_ms": 20_000,
        "max_gap_ms": 40_000,
        "hourly_cap": 50,
        "quiet_hours": {"start": "21:00", "end": "08:00"},
        "timezone": "America/Bogota",
        "typing": true
    });
    let (st, p) = s.call(
        "PUT",
        "/v1/orgs/4/sending-policy",
        Some(&tok),
        Some(&change.to_string()),
    );
    assert_eq!(st, 200, "{p}");
    assert_eq!(p["max_gap_ms"], 40_000);
    assert_eq!(p["quiet_hours"]["end"], "08:00");
    assert!(p["daily_cap"].is_null(), "kept as it was: {p}");
    for (body, field) in [
        (json!({"min_gap_ms": 50_000}), "min_gap_ms"),
        (json!({"max_gap_ms": 7_200_000}), "max_gap_ms"),
        (json!({"timezone": "America/Nowhere"}), "timezone"),
        (
            json!({"quiet_hours": {"start": "21h", "end": "08:00"}}),
            "quiet_hours",
        ),
        (json!({"hourly_cap": 0}), "hourly_cap"),
        (json!({"gap": 1}), "gap"),
    ] {
        let (st, v) = s.call(
            "PUT",
            "/v1/orgs/4/sending-policy",
            Some(&tok),
            Some(&body.to_string()),
        );
        assert_eq!(st, 422, "{body}: {v}");
        assert_eq!(v["error"]["code"], "invalid_policy");
        assert!(
            v["error"]["message"].as_str().unwrap().starts_with(field),
            "{body}: {v}"
        );
    }
    // Nothing of the refused changes was stored.
    let (_, p) = s.call("GET", "/v1/orgs/4/sending-policy", Some(&tok), None);
    assert_eq!(p["min_gap_ms"], 20_000, "{p}");
    // Another org's token: 403; the admin's: fine.
    let other = s.create_org("5", None);
    let (st, _) = s.call("GET", "/v1/orgs/4/sending-policy", Some(&other), None);
    assert_eq!(st, 403);
    let (st, _) = s.call("GET", "/v1/orgs/4/sending-policy", Some(ADMIN), None);
    assert_eq!(st, 200);
    // Kept across a restart.
    s.kill9();
    let s = Server::start(d.path());
    let (_, p) = s.call("GET", "/v1/orgs/4/sending-policy", Some(&tok), None);
    assert_eq!(p["timezone"], "America/Bogota", "{p}");
    assert_eq!(p["hourly_cap"], 50, "{p}");
}

#[test]
fn without_unpaced_an_org_gets_the_conservative_default_in_the_given_zone() {
    let d = tempfile::tempdir().unwrap();
    let s = Server::start_args_raw(
        d.path(),
        &["--offline", "--default-timezone", "America/Bogota"],
    );
    let tok = s.create_org("4", None);
    let (st, p) = s.call("GET", "/v1/orgs/4/sending-policy", Some(&tok), None);
    assert_eq!(st, 200, "{p}");
    assert_eq!(
        (p["min_gap_ms"].as_i64(), p["max_gap_ms"].as_i64()),
        (Some(30_000), Some(60_000)),
        "{p}"
    );
    assert_eq!(p["quiet_hours"], json!({"start": "21:00", "end": "08:00"}));
    assert_eq!(p["timezone"], "America/Bogota");
    assert_eq!(p["typing"], true);
    assert_eq!(p["new_contacts_per_day"], 50);
}

#[test]
fn the_server_wide_default_policy_is_set_at_start_and_checked() {
    let d = tempfile::tempdir().unwrap();
    let s = Server::start_args_raw(
        d.path(),
        &[
            "--offline",
            "--default-policy",
            r#"{"min_gap_ms": 20000, "daily_cap": 300, "quiet_hours": null}"#,
        ],
    );
    let tok = s.create_org("4", None);
    let (_, p) = s.call("GET", "/v1/orgs/4/sending-policy", Some(&tok), None);
    assert_eq!(p["min_gap_ms"], 20_000, "{p}");
    assert_eq!(p["max_gap_ms"], 60_000, "the rest stays conservative: {p}");
    assert_eq!(p["daily_cap"], 300);
    assert!(p["quiet_hours"].is_null());
    drop(s);
    // A bad default stops the start with a sentence naming the field.
    for (bad, says) in [
        (r#"{"min_gap_ms": 90000}"#, "min_gap_ms"),
        (r#"{"timezone": "Mars/Olympus"}"#, "timezone"),
        ("[1, 2]", "not a JSON object"),
    ] {
        let out = std::process::Command::new(crate::common::bin())
            .args([
                "serve",
                "--offline",
                "--listen",
                "127.0.0.1:0",
                "--default-policy",
                bad,
            ])
            .arg("--data")
            .arg(d.path())
            .output()
            .expect("run wagate");
        assert!(!out.status.success(), "{bad} was accepted");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("--default-policy") && text.contains(says),
            "{bad}: {text}"
        );
    }
}

#[test]
fn queued_messages_carry_when_they_are_expected_to_leave() {
    let d = tempfile::tempdir().unwrap();
    let s = Server::start(d.path());
    let tok = s.create_org("4", Some("57"));
    let policy = json!({"min_gap_ms": 60_000, "max_gap_ms": 60_000, "quiet_hours": null,
                        "hourly_cap": null, "daily_cap": null, "typing": false});
    let (st, _) = s.call(
        "PUT",
        "/v1/orgs/4/sending-policy",
        Some(&tok),
        Some(&policy.to_string()),
    );
    assert_eq!(st, 200);
    let t0 = crate::common::now_ms();
    for i in 0..3 {
        let (st, _) = s.call(
            "POST",
            "/v1/orgs/4/messages",
            Some(&tok),
            Some(&json!({"to": "3001112233", "text": format!("m{i}")}).to_string()),
        );
        assert_eq!(st, 202);
    }
    let at = t0 + 3_600_000;
    let (_, sched) = s.call(
        "POST",
        "/v1/orgs/4/messages",
        Some(&tok),
        Some(&json!({"to": "3001112233", "text": "later", "send_at": at}).to_string()),
    );
    let (_, l) = s.call("GET", "/v1/orgs/4/messages", Some(&tok), None);
    let etas: Vec<Option<i64>> = l["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["eta_ms"].as_i64())
        .collect();
    // Offline, nothing leaves: the first is due now, then one a minute.
    let first = etas[0].expect("the first queued message has an eta");
    assert!(first >= t0, "{etas:?}");
    assert_eq!(etas[1], Some(first + 60_000), "{etas:?}");
    assert_eq!(etas[2], Some(first + 120_000), "{etas:?}");
    assert_eq!(etas[3], Some(at), "a scheduled message leaves at send_at");
    // The status says when the queue should be empty: as the last queued one leaves.
    let (_, st) = s.call("GET", "/v1/orgs/4/session", Some(&tok), None);
    assert_eq!(st["queued_messages"], 3, "{st}");
    let empty = st["queue_empty_eta_ms"].as_i64().expect("an estimate");
    assert!(empty >= first + 120_000 && empty < first + 180_000, "{st}");
    let (_, one) = s.call(
        "GET",
        &format!("/v1/orgs/4/messages/{}", sched["id"].as_str().unwrap()),
        Some(&tok),
        None,
    );
    assert_eq!(one["eta_ms"], at);
}

//! Credentials kept aside come back, through wa-sim and the real client:
//! after a reset (the old "clean session") the operator lists the org's
//! copies and restores the one the reset made, with the CLI; the org
//! reconnects as the same number with no QR, and the fresh device it
//! replaced is kept aside too. Names that are not the org's copies are
//! refused, and only the admin token may do any of it.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::sim::{add_phone, inbox, jid, linked, phone};
use crate::common::ADMIN;

fn copies(l: &crate::common::sim::Linked) -> Vec<Value> {
    let (st, v) =
        l.s.call("GET", "/v1/orgs/o0/credentials", Some(ADMIN), None);
    assert_eq!(st, 200, "{v}");
    v["aside"].as_array().cloned().unwrap_or_default()
}

#[test]
fn a_reset_org_is_restored_from_its_copy_without_a_qr() {
    let l = linked(1);
    let tok = l.token("o0");
    let (st, v) =
        l.s.call("POST", "/v1/orgs/o0/session/reset", Some(&tok), None);
    assert!(st == 202 || st == 200, "{v}");
    l.wait("o0", Duration::from_secs(30), |v| v["qr_available"] == true);
    assert_eq!(
        l.live_conns(&jid(0)),
        0,
        "the old device is no longer connected"
    );

    // Only the admin token sees or restores copies.
    let (st, v) = l.s.call("GET", "/v1/orgs/o0/credentials", Some(&tok), None);
    assert_eq!(st, 403, "{v}");
    let kept = copies(&l);
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0]["reason"], "reset");
    assert!(kept[0]["bytes"].as_u64().unwrap_or(0) > 0);
    let name = kept[0]["name"].as_str().unwrap().to_string();

    // Names that are not this org's copies.
    for bad in ["../wagate.db", "o1-reset-20261129T000000.000Z.db", "nope"] {
        let (st, v) = l.s.call(
            "POST",
            "/v1/orgs/o0/credentials/restore",
            Some(ADMIN),
            Some(&json!({"name": bad}).to_string()),
        );
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (404, Some("copy_not_found")),
            "{bad}: {v}"
        );
    }
    let (st, v) = l.s.call(
        "POST",
        "/v1/orgs/o0/credentials/restore",
        Some(ADMIN),
        Some("{}"),
    );
    assert_eq!(st, 422, "{v}");

    // The operator lists and restores with the CLI.
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(crate::common::bin())
            .args([
                "--url",
                &l.s.base,
                "--token",
                ADMIN,
                "org",
                "restore-credentials",
                "o0",
            ])
            .args(args)
            .output()
            .expect("run wagate");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let list = cli(&[]);
    assert!(list.contains(&name) && list.contains("reset"), "{list}");
    let t0 = std::time::Instant::now();
    let out = cli(&[&name]);
    assert!(out.contains(&format!("restored {name}")), "{out}");
    let (v, _) = l.wait("o0", Duration::from_secs(30), |v| v["state"] == "connected");
    assert_eq!(v["phone_number"], phone(0).as_str(), "{v}");
    println!(
        "restored {name}: connected as {} {:.1} s after the restore",
        phone(0),
        t0.elapsed().as_secs_f64()
    );
    // The fresh device it replaced is kept aside; the restored copy is kept too.
    let reasons: Vec<String> = copies(&l)
        .iter()
        .map(|k| k["reason"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(reasons.contains(&"replaced".to_string()), "{reasons:?}");
    assert!(reasons.contains(&"reset".to_string()), "{reasons:?}");

    // It sends again, over one connection.
    let patient = "573009990801";
    add_phone(&l, patient);
    let (st, v) = l.s.call(
        "POST",
        "/v1/orgs/o0/messages",
        Some(&tok),
        Some(&json!({"to": patient, "text": "De vuelta"}).to_string()),
    );
    assert_eq!(st, 202, "{v}");
    let t1 = std::time::Instant::now();
    while !inbox(&l, patient).iter().any(|m| m["text"] == "De vuelta") {
        assert!(
            t1.elapsed() < Duration::from_secs(30),
            "the message never arrived"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(l.live_conns(&jid(0)), 1);

    // The operator can see what the org's client holds in memory.
    let (st, v) =
        l.s.call("GET", "/v1/orgs/o0/debug/memory", Some(ADMIN), None);
    assert_eq!(st, 200, "{v}");
    let report = v["report"].as_str().unwrap_or("");
    assert!(
        report.contains("group_cache") && report.contains("session_locks"),
        "{v}"
    );
    let (st, _) =
        l.s.call("GET", "/v1/orgs/o0/debug/memory", Some(&tok), None);
    assert_eq!(st, 403);
}

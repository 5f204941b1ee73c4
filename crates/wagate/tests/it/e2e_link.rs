//! Linking through the real client stack: the `wagate` sim build talks to an
//! in-process wa-sim on loopback; a simulated phone scans the QR the gateway
//! shows; the link survives a SIGKILL of the gateway without a new QR.

use std::time::Duration;

use crate::common::{control, Server};
use serde_json::json;

const PHONE: &str = "573001112233";

fn sim(rt: &tokio::runtime::Runtime, dir: &std::path::Path) -> wa_sim::Running {
    rt.block_on(wa_sim::start(
        dir.to_path_buf(),
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    ))
    .expect("wa-sim")
}

#[test]
fn pair_by_qr_then_survive_sigkill_without_a_new_qr() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sim_dir = tempfile::tempdir().unwrap();
    let wa = sim(&rt, sim_dir.path());
    let ctl = wa.control_url();
    let (st, _) = control(
        &ctl,
        "POST",
        "/control/phones",
        Some(json!({"phone": PHONE, "name": "Clinica Norte"})),
    );
    assert_eq!(st, 201);

    let data = tempfile::tempdir().unwrap();
    let mut s = Server::start_sim(data.path(), &wa.ws_url());
    let t = s.create_org("4", Some("57"));
    let (st, v) = s.call("POST", "/v1/orgs/4/session/connect", Some(&t), None);
    assert_eq!(st, 202, "{v}");
    let (_, took) = s.wait_status("4", &t, Duration::from_secs(30), |v| {
        v["qr_available"] == true
    });
    println!("QR on offer after {took:?}");
    let (st, q) = s.call("GET", "/v1/orgs/4/session/qr", Some(&t), None);
    assert_eq!(st, 200, "{q}");
    let qr = q["qr"].as_str().unwrap().to_string();
    assert!(q["expires_in_ms"].as_u64().unwrap() > 0);

    let (st, v) = control(
        &ctl,
        "POST",
        &format!("/control/phones/{PHONE}/scan"),
        Some(json!({"qr": qr})),
    );
    assert_eq!(st, 200, "{v}");
    let (v, took) = s.wait_status("4", &t, Duration::from_secs(60), |v| {
        v["state"] == "connected"
    });
    println!("connected {took:?} after the scan");
    assert_eq!(v["phone_number"], PHONE);
    assert_eq!(v["connected"], true);
    let (_, phone) = control(&ctl, "GET", &format!("/control/phones/{PHONE}"), None);
    assert_eq!(phone["devices"].as_array().unwrap().len(), 1, "{phone}");

    // SIGKILL the gateway; the restarted one links again with no QR.
    s.kill9();
    let s = Server::start_sim(data.path(), &wa.ws_url());
    let (v, took) = s.wait_status("4", &t, Duration::from_secs(30), |v| {
        assert_ne!(v["state"], "pairing", "asked for a QR after a restart: {v}");
        v["state"] == "connected"
    });
    println!("linked again {took:?} after restart, without a QR");
    assert!(took <= Duration::from_secs(5), "re-linking took {took:?}");
    assert_eq!(v["phone_number"], PHONE);
}

#[test]
fn pair_by_code() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sim_dir = tempfile::tempdir().unwrap();
    let wa = sim(&rt, sim_dir.path());
    let ctl = wa.control_url();
    let phone = "573009998877";
    let (st, _) = control(
        &ctl,
        "POST",
        "/control/phones",
        Some(json!({"phone": phone, "name": "Optica Sur"})),
    );
    assert_eq!(st, 201);
    let data = tempfile::tempdir().unwrap();
    let s = Server::start_sim(data.path(), &wa.ws_url());
    let t = s.create_org("2", Some("57"));

    // Typing a code before any device asked for one is refused.
    let (st, _) = control(
        &ctl,
        "POST",
        &format!("/control/phones/{phone}/pair-code"),
        Some(json!({"code": "ABCD1234"})),
    );
    assert_eq!(st, 409);

    let (st, v) = s.call(
        "POST",
        "/v1/orgs/2/session/connect",
        Some(&t),
        Some(r#"{"phone_number":"300 999 8877"}"#),
    );
    assert_eq!(st, 200, "{v}");
    let code = v["pair_code"].as_str().unwrap().to_string();
    assert_eq!(code.len(), 8, "{code}");
    assert!(v["expires_in_ms"].as_u64().unwrap() > 0);
    let status = s.call("GET", "/v1/orgs/2/session", Some(&t), None).1;
    assert_eq!(status["state"], "pairing");
    assert_eq!(
        status["pair_code"],
        code.as_str(),
        "the code is shown in the status while on offer"
    );

    let (st, v) = control(
        &ctl,
        "POST",
        &format!("/control/phones/{phone}/pair-code"),
        Some(json!({"code": code})),
    );
    assert_eq!(st, 200, "{v}");
    let (v, took) = s.wait_status("2", &t, Duration::from_secs(60), |v| {
        v["state"] == "connected"
    });
    println!("paired by code: connected {took:?} after the code was typed");
    assert_eq!(v["phone_number"], phone);
    assert!(v["pair_code"].is_null());
}

#[test]
fn demo_links_an_org_on_loopback() {
    use std::io::{BufRead, BufReader};
    let data = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_wagate"))
        .args(["demo", "--listen", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let (mut base, mut token) = (String::new(), String::new());
    for line in out.lines() {
        let line = line.unwrap();
        if let Some(v) = line.trim().strip_prefix("Gateway:") {
            base = v.trim().to_string();
        }
        if let Some(v) = line.trim().strip_prefix("Org token:") {
            token = v.trim().to_string();
        }
        if line.starts_with("Press Ctrl-C") {
            break;
        }
    }
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let v: serde_json::Value = serde_json::from_str(
        &agent
            .get(&format!("{base}/v1/orgs/demo/session"))
            .header("Authorization", &format!("Bearer {token}"))
            .call()
            .unwrap()
            .into_body()
            .read_to_string()
            .unwrap(),
    )
    .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(v["state"], "connected", "{v}");
    assert_eq!(v["phone_number"], "573001112233");
}

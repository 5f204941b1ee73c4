//! End-to-end fixture: an in-process wa-sim plus the real `wagate` (sim build)
//! with one organization linked to a simulated phone by QR.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{control, Server};

pub struct Linked {
    pub rt: tokio::runtime::Runtime,
    pub wa: wa_sim::Running,
    pub sim_dir: tempfile::TempDir,
    pub data: tempfile::TempDir,
    pub s: Server,
    pub tokens: Vec<(String, String)>,
}

impl Linked {
    pub fn ctl(&self) -> String {
        self.wa.control_url()
    }

    pub fn token(&self, org: &str) -> String {
        self.tokens
            .iter()
            .find(|(o, _)| o == org)
            .map(|(_, t)| t.clone())
            .expect("org")
    }

    pub fn fault(&self, body: Value) {
        let (st, v) = control(&self.ctl(), "POST", "/control/faults", Some(body));
        assert_eq!(st, 200, "{v}");
    }

    pub fn heal(&self) {
        let (st, _) = control(&self.ctl(), "DELETE", "/control/faults", None);
        assert_eq!(st, 200);
    }

    pub fn status(&self, org: &str) -> Value {
        self.s
            .call(
                "GET",
                &format!("/v1/orgs/{org}/session"),
                Some(&self.token(org)),
                None,
            )
            .1
    }

    pub fn wait(
        &self,
        org: &str,
        within: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> (Value, Duration) {
        self.s.wait_status(org, &self.token(org), within, pred)
    }

    /// wa-sim's ids of the connections logged in as one device jid.
    pub fn conn_ids(&self, jid: &str) -> Vec<u64> {
        let (_, v) = control(&self.ctl(), "GET", "/control/devices", None);
        v["devices"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|d| d["jid"] == jid)
                    .filter_map(|d| d["conn"].as_u64())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Live wa-sim connections of one device jid.
    pub fn live_conns(&self, jid: &str) -> usize {
        let (_, v) = control(&self.ctl(), "GET", "/control/devices", None);
        v["devices"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["jid"] == jid)
            .count()
    }

    pub fn data_path(&self) -> PathBuf {
        self.data.path().to_path_buf()
    }

    pub fn restart_gateway(&mut self) {
        self.restart_gateway_after(|| {});
    }

    /// SIGKILL the gateway, do `meanwhile` while it is down, start it again.
    pub fn restart_gateway_after(&mut self, meanwhile: impl FnOnce()) {
        self.s.kill9();
        meanwhile();
        self.s = Server::start_sim(self.data.path(), &self.wa.ws_url());
    }
}

pub fn start_sim(rt: &tokio::runtime::Runtime, dir: &std::path::Path) -> wa_sim::Running {
    rt.block_on(wa_sim::start(
        dir.to_path_buf(),
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    ))
    .expect("wa-sim")
}

/// Link `org` to `phone`: connect, read the QR, have the phone scan it.
pub fn link(s: &Server, ctl: &str, org: &str, token: &str, phone: &str) {
    let (st, v) = control(
        ctl,
        "POST",
        "/control/phones",
        Some(json!({"phone": phone, "name": format!("Phone {phone}")})),
    );
    assert!(st == 201 || st == 409, "{v}");
    let (st, v) = s.call(
        "POST",
        &format!("/v1/orgs/{org}/session/connect"),
        Some(token),
        None,
    );
    assert_eq!(st, 202, "{v}");
    s.wait_status(org, token, Duration::from_secs(30), |v| {
        v["qr_available"] == true
    });
    let (st, q) = s.call(
        "GET",
        &format!("/v1/orgs/{org}/session/qr"),
        Some(token),
        None,
    );
    assert_eq!(st, 200, "{q}");
    let (st, v) = control(
        ctl,
        "POST",
        &format!("/control/phones/{phone}/scan"),
        Some(json!({"qr": q["qr"]})),
    );
    assert_eq!(st, 200, "{v}");
}

/// wa-sim, the gateway, and `orgs` linked to phones 57300000000N.
pub fn linked(orgs: usize) -> Linked {
    linked_args(orgs, &[])
}

/// `linked`, the gateway started with `extra` options too.
pub fn linked_args(orgs: usize, extra: &[&str]) -> Linked {
    linked_in(tempfile::tempdir().unwrap(), orgs, extra)
}

/// `linked_args` on the data directory `data`.
pub fn linked_in(data: tempfile::TempDir, orgs: usize, extra: &[&str]) -> Linked {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sim_dir = tempfile::tempdir().unwrap();
    let wa = start_sim(&rt, sim_dir.path());
    let ws = wa.ws_url();
    let mut args = vec!["--wa-url", ws.as_str(), "--webhook-allow", "127.0.0.1"];
    args.extend_from_slice(extra);
    let s = Server::start_args(data.path(), &args);
    let mut tokens = vec![];
    for i in 0..orgs {
        let org = format!("o{i}");
        let t = s.create_org(&org, Some("57"));
        link(&s, &wa.control_url(), &org, &t, &phone(i));
        tokens.push((org, t));
    }
    let start = Instant::now();
    for (org, t) in &tokens {
        s.wait_status(org, t, Duration::from_secs(90), |v| {
            v["state"] == "connected"
        });
    }
    println!(
        "{orgs} org(s) linked in {:?} after the last scan",
        start.elapsed()
    );
    Linked {
        rt,
        wa,
        sim_dir,
        data,
        s,
        tokens,
    }
}

pub fn phone(i: usize) -> String {
    format!("57300{:07}", i)
}

pub fn jid(i: usize) -> String {
    format!("{}:1@s.whatsapp.net", phone(i))
}

/// A simulated patient's phone, made in wa-sim.
pub fn add_phone(l: &Linked, phone: &str) {
    let (st, v) = control(
        &l.ctl(),
        "POST",
        "/control/phones",
        Some(json!({"phone": phone, "name": "Paciente"})),
    );
    assert_eq!(st, 201, "{v}");
}

/// What a simulated phone received, with arrival times (`t`) and copies.
pub fn inbox(l: &Linked, phone: &str) -> Vec<Value> {
    let (_, v) = control(
        &l.ctl(),
        "GET",
        &format!("/control/phones/{phone}/inbox"),
        None,
    );
    v["messages"].as_array().cloned().unwrap_or_default()
}

/// How many times `org`'s state log says `pairing` (a QR scan or a code).
pub fn pairings(s: &Server, org: &str, token: &str) -> usize {
    let (st, v) = s.call(
        "GET",
        &format!("/v1/orgs/{org}/session/history"),
        Some(token),
        None,
    );
    assert_eq!(st, 200, "{v}");
    v["changes"]
        .as_array()
        .map(|h| h.iter().filter(|e| e["state"] == "pairing").count())
        .unwrap_or(0)
}

/// Queue `text` from `org` to `to`; the message id (the send must be accepted).
pub fn send(l: &Linked, org: &str, to: &str, text: &str) -> String {
    let (st, v) = l.s.call(
        "POST",
        &format!("/v1/orgs/{org}/messages"),
        Some(&l.token(org)),
        Some(&json!({"to": to, "text": text}).to_string()),
    );
    assert_eq!(st, 202, "{v}");
    v["id"].as_str().unwrap().to_string()
}

/// Poll `done` every 50 ms until it holds; fail with `what` after `within`.
pub fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !done() {
        assert!(t0.elapsed() < within, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How many times each of orgs o0, o1, … (the first `n`) has paired.
pub fn pairings_of(l: &Linked, n: usize) -> Vec<usize> {
    (0..n)
        .map(|i| {
            let org = format!("o{i}");
            pairings(&l.s, &org, &l.token(&org))
        })
        .collect()
}

/// Wait until orgs o0, o1, … are connected again as their own numbers with
/// no pairing since `paired` (from `pairings_of`) was counted; how long it took.
pub fn back_without_qr(l: &Linked, paired: &[usize]) -> Duration {
    let t0 = Instant::now();
    for (i, before) in paired.iter().enumerate() {
        let org = format!("o{i}");
        let (v, _) = l.wait(&org, Duration::from_secs(30), |v| v["state"] == "connected");
        assert_eq!(v["phone_number"], phone(i).as_str(), "{v}");
        assert_eq!(
            pairings(&l.s, &org, &l.token(&org)),
            *before,
            "{org} paired again"
        );
    }
    t0.elapsed()
}

//! Test harness: runs the real `wagate serve` binary on loopback (offline: it
//! never dials WhatsApp) against a temporary data directory, and talks to it
//! over real HTTP.

#![allow(dead_code)]

#[cfg(feature = "sim")]
pub mod sim;
pub mod web;
#[cfg(feature = "sim")]
pub mod webdriver;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const ADMIN: &str = "test-admin-token";

pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Server {
    /// The gateway, never dialing WhatsApp.
    pub fn start(data: &Path) -> Server {
        Server::start_args(data, &["--offline"])
    }

    /// The gateway (sim build) talking to a wa-sim at `ws_url`.
    pub fn start_sim(data: &Path, ws_url: &str) -> Server {
        Server::start_args(data, &["--wa-url", ws_url])
    }

    pub fn start_args(data: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wagate"))
            .args(["serve", "--listen", "127.0.0.1:0", "--restore-rate", "50"])
            .args(extra)
            .arg("--data")
            .arg(data)
            .env("WAGATE_ADMIN_TOKEN", ADMIN)
            .env(
                "WAGATE_LOG",
                std::env::var("WAGATE_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start wagate");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let deadline = Instant::now() + Duration::from_secs(30);
        let base = loop {
            assert!(Instant::now() < deadline, "wagate did not start");
            let line = lines.next().expect("wagate exited early").expect("read");
            if let Some(rest) = line.strip_prefix("wagate listening on ") {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        // Keep draining stdout (the gateway's log) so the child never blocks on a
        // full pipe; WAGATE_TEST_ECHO=1 shows it.
        let echo = std::env::var_os("WAGATE_TEST_ECHO").is_some();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if echo {
                    eprintln!("[wagate] {line}");
                }
            }
        });
        Server { child, base }
    }

    pub fn kill9(&mut self) {
        let pid = self.child.id() as i32;
        let rc = Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(rc.success());
        let _ = self.child.wait();
    }

    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, Value) {
        self.call_h(method, path, token, body, &[])
    }

    pub fn call_h(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let url = format!("{}{}", self.base, path);
        let auth = token.map(|t| format!("Bearer {t}"));
        let resp = match method {
            "GET" => {
                let mut r = agent.get(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                for (k, v) in headers {
                    r = r.header(*k, *v);
                }
                r.call()
            }
            "DELETE" => {
                let mut r = agent.delete(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
            _ => {
                let mut r = agent.post(&url).header("Content-Type", "application/json");
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                for (k, v) in headers {
                    r = r.header(*k, *v);
                }
                r.send(body.unwrap_or("").as_bytes())
            }
        }
        .expect("request");
        let status = resp.status().as_u16();
        let text = resp.into_body().read_to_string().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Create an org as admin; returns its token.
    pub fn create_org(&self, id: &str, cc: Option<&str>) -> String {
        let body = match cc {
            Some(c) => format!(r#"{{"id":"{id}","name":"Org {id}","default_country_code":"{c}"}}"#),
            None => format!(r#"{{"id":"{id}","name":"Org {id}"}}"#),
        };
        let (st, v) = self.call("POST", "/v1/orgs", Some(ADMIN), Some(&body));
        assert_eq!(st, 201, "{v}");
        v["token"].as_str().unwrap().to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A JSON call to wa-sim's control API.
pub fn control(base: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let url = format!("{base}{path}");
    let resp = match (method, body) {
        ("GET", _) => agent.get(&url).call(),
        ("DELETE", _) => agent.delete(&url).call(),
        (_, Some(b)) => agent.post(&url).send_json(&b),
        (_, None) => agent.post(&url).send_empty(),
    }
    .expect("control request");
    let status = resp.status().as_u16();
    let text = resp.into_body().read_to_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

impl Server {
    /// Poll the org's status until `pred` holds; returns it and how long it took.
    pub fn wait_status(
        &self,
        org: &str,
        token: &str,
        within: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> (Value, Duration) {
        let start = Instant::now();
        loop {
            let (st, v) = self.call("GET", &format!("/v1/orgs/{org}/session"), Some(token), None);
            assert_eq!(st, 200, "{v}");
            if pred(&v) {
                return (v, start.elapsed());
            }
            assert!(
                start.elapsed() < within,
                "condition not reached within {within:?}; last status: {v}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

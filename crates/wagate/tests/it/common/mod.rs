//! Test harness: runs the real `wagate serve` binary on loopback (offline: it
//! never dials WhatsApp) against a temporary data directory, and talks to it
//! over real HTTP.

#![allow(dead_code)]

pub mod pg;
pub mod receiver;
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

/// Tests that load both cores for a while (hundreds of orgs, floods of
/// sends, fifty links at once) take this, so that no two of them overlap:
/// the suite runs 4 tests at a time and their timing bounds assume a
/// machine that is not saturated by another heavy test.
pub fn heavy() -> std::sync::MutexGuard<'static, ()> {
    static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());
    HEAVY.lock().unwrap_or_else(|p| p.into_inner())
}

/// The gateway binary under test: this build's, or the one named by
/// `WAGATE_TEST_BIN` (to run these tests against an earlier build and see
/// which of them it fails).
pub fn bin() -> std::path::PathBuf {
    std::env::var_os("WAGATE_TEST_BIN")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_wagate").into())
}

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
    /// Webhooks may reach loopback (the tests' receivers).
    pub fn start_sim(data: &Path, ws_url: &str) -> Server {
        Server::start_args(data, &["--wa-url", ws_url, "--webhook-allow", "127.0.0.1"])
    }

    pub fn start_args(data: &Path, extra: &[&str]) -> Server {
        Server::start_limited(data, extra, None)
    }

    /// The gateway with exactly these `serve` options (no `--unpaced`).
    pub fn start_args_raw(data: &Path, extra: &[&str]) -> Server {
        Server::spawn(data, extra, None, false)
    }

    /// The gateway with its open-file limit (soft and hard) set to `nofile`,
    /// as `ulimit -n` would.
    pub fn start_limited(data: &Path, extra: &[&str], nofile: Option<u64>) -> Server {
        Server::spawn(data, extra, nofile, true)
    }

    fn spawn(data: &Path, extra: &[&str], nofile: Option<u64>, unpaced: bool) -> Server {
        let mut cmd = match nofile {
            Some(n) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(bin());
                c
            }
            None => Command::new(bin()),
        };
        let mut child = cmd
            .args(["serve", "--listen", "127.0.0.1:0", "--restore-rate", "50"])
            // No pacing unless a test sets a sending policy (or asks for none).
            .args(unpaced.then_some("--unpaced"))
            .args(extra)
            .args(database_for(data).map(|url| format!("--database={url}")))
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

    /// The `host:port` the gateway listens on.
    pub fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_string()
    }

    /// Send SIGTERM and wait (at most `within`) for the process to exit.
    /// Returns its exit status and how long it took, or `None` if it was
    /// still running (it is then killed).
    pub fn terminate(&mut self, within: Duration) -> Option<(std::process::ExitStatus, Duration)> {
        self.signal("-TERM", within)
    }

    /// Send `sig` (`-TERM`, `-INT`) and wait as `terminate` does.
    pub fn signal(
        &mut self,
        sig: &str,
        within: Duration,
    ) -> Option<(std::process::ExitStatus, Duration)> {
        let t0 = Instant::now();
        self.send_signal(sig);
        while t0.elapsed() < within {
            if let Some(st) = self.child.try_wait().expect("wait") {
                return Some((st, t0.elapsed()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }

    pub fn kill9(&mut self) {
        self.send_signal("-9");
        let _ = self.child.wait();
    }

    /// Send `sig` (`-STOP`, `-CONT`, …) and return at once.
    pub fn send_signal(&self, sig: &str) {
        let rc = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(rc.success(), "kill {sig}");
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
        let agent = agent(Duration::from_secs(30));
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
                let r = match method {
                    "PATCH" => agent.patch(&url),
                    "PUT" => agent.put(&url),
                    _ => agent.post(&url),
                };
                let mut r = r.header("Content-Type", "application/json");
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

    /// A GET with its response headers (names lower-cased).
    pub fn get_with_headers(&self, path: &str, token: &str) -> (u16, Vec<(String, String)>, Value) {
        let agent = agent(Duration::from_secs(30));
        let resp = agent
            .get(format!("{}{}", self.base, path))
            .header("Authorization", format!("Bearer {token}"))
            .call()
            .expect("request");
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_lowercase(),
                    v.to_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        let text = resp.into_body().read_to_string().unwrap_or_default();
        (
            status,
            headers,
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

/// An HTTP client that hands back every status as an answer (not as an
/// error), giving up after `timeout`.
pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into()
}

/// A JSON call to wa-sim's control API.
pub fn control(base: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let agent = agent(Duration::from_secs(30));
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

/// A raw TCP connection to the gateway, for requests no client library
/// would send (half-sent heads, lying `Content-Length`s, idle sockets).
pub fn raw(addr: &str) -> std::net::TcpStream {
    let s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// Read from `s` until the peer closes or `within` passes; returns what was
/// read and whether the peer closed.
pub fn read_until_close(s: &mut std::net::TcpStream, within: Duration) -> (String, bool) {
    use std::io::Read;
    let t0 = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = within.saturating_sub(t0.elapsed());
        if left.is_zero() {
            return (String::from_utf8_lossy(&out).into_owned(), false);
        }
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return (String::from_utf8_lossy(&out).into_owned(), false)
            }
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), true),
        }
    }
}

/// Read an event stream (after its head) until it ends — its last chunk
/// arrives or the peer closes — or `within` passes. `true` if it ended.
pub fn stream_ends(s: &mut std::net::TcpStream, within: Duration) -> bool {
    use std::io::Read;
    let t0 = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while t0.elapsed() < within {
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => {
                seen.extend_from_slice(&buf[..n]);
                if seen.ends_with(b"\r\n0\r\n\r\n") || seen == b"0\r\n\r\n" {
                    return true;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

/// Open an event stream over raw TCP and read its response head.
pub fn open_stream(addr: &str, path: &str, headers: &[(&str, &str)]) -> std::net::TcpStream {
    use std::io::{Read, Write};
    let mut s = raw(addr);
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            s.read(&mut b).expect("stream head"),
            1,
            "stream closed early"
        );
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    s
}

/// The raw SQLite database of a (stopped or running) gateway.
pub fn db(data: &Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(data.join("wagate.db")).expect("open wagate.db");
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c
}

/// Wall-clock Unix milliseconds (the gateway's own clock for `send_at`).
/// The PostgreSQL database of each data directory whose gateways keep
/// their tables there (`--database`).
static DATABASES: std::sync::Mutex<Vec<(std::path::PathBuf, String)>> =
    std::sync::Mutex::new(Vec::new());

/// Every gateway started on `data` from now on uses PostgreSQL at `url`.
pub fn use_database(data: &Path, url: String) {
    let mut dbs = DATABASES.lock().unwrap_or_else(|p| p.into_inner());
    dbs.retain(|(d, _)| d != data);
    dbs.push((data.to_path_buf(), url));
}

/// The database a gateway on `data` uses: the one `use_database` named, or
/// with `WAGATE_TEST_DATABASE=postgres` (the whole suite on PostgreSQL) a
/// fresh one per data directory, so a restarted gateway finds its data.
pub fn database_for(data: &Path) -> Option<String> {
    let mut dbs = DATABASES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, url)) = dbs.iter().find(|(d, _)| d == data) {
        return Some(url.clone());
    }
    if std::env::var("WAGATE_TEST_DATABASE").ok().as_deref() != Some("postgres") {
        return None;
    }
    let url = fresh_db_blocking();
    dbs.push((data.to_path_buf(), url.clone()));
    Some(url)
}

/// Run `f` to its end on a runtime of its own, on a thread of its own: async
/// code (a PostgreSQL client) from a test that is not async, or from inside
/// another runtime.
pub fn on_own_runtime<T, F>(f: impl FnOnce() -> F + Send + 'static) -> T
where
    T: Send + 'static,
    F: std::future::Future<Output = T>,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(f())
    })
    .join()
    .expect("the task on its own runtime")
}

/// `pg::fresh_db` from code that is not async (or inside another runtime).
pub fn fresh_db_blocking() -> String {
    on_own_runtime(pg::fresh_db)
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// The names in `dir`, sorted; none when it does not exist.
pub fn file_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

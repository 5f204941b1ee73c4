//! One wagate per data directory: a second `serve` on a directory a gateway
//! serves exits at once, naming the process that holds it, and touches
//! nothing (the first one's orgs stay as they were); `migrate-to-postgres`
//! refuses a directory that is being served; once the first gateway is gone
//! (stopped, or killed) the directory can be served again.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{bin, Server};

fn second_serve(data: &std::path::Path) -> (Option<i32>, String, Duration) {
    use std::io::Read;
    let t = Instant::now();
    let mut child = Command::new(bin())
        .args(["serve", "--offline", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .env("WAGATE_ADMIN_TOKEN", crate::common::ADMIN)
        .env("WAGATE_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // One that does not exit by itself is serving beside the first: killed,
    // and the test fails on its exit code.
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        if t.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    (code, stderr, t.elapsed())
}

#[test]
fn a_second_gateway_on_a_served_directory_exits_naming_the_first() {
    let d = tempfile::tempdir().unwrap();
    let mut first = Server::start(d.path());
    let tok = first.create_org("4", Some("57"));
    let pid = first.child.id();
    let (code, stderr, took) = second_serve(d.path());
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("is in use")
            && stderr.contains(&format!("pid {pid}"))
            && stderr.contains("wagate serve"),
        "{stderr}"
    );
    println!(
        "the second gateway exited after {:.0} ms",
        took.as_secs_f64() * 1e3
    );
    // The first one is untouched and still serves its org.
    let (st, v) = first.call("GET", "/v1/orgs/4/session", Some(&tok), None);
    assert_eq!(st, 200, "{v}");
    // Nor can the directory be copied into PostgreSQL while it is served.
    let out = Command::new(bin())
        .args(["--data"])
        .arg(d.path())
        .args([
            "migrate-to-postgres",
            "--database",
            "host=/nonexistent dbname=x",
        ])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("is in use") && said.contains(&format!("pid {pid}")),
        "{said}"
    );
    // Killed, the lock goes with the process: the directory serves again.
    first.kill9();
    let again = Server::start(d.path());
    let (st, _) = again.call("GET", "/v1/orgs/4/session", Some(&tok), None);
    assert_eq!(st, 200);
}

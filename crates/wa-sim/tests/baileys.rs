//! The conformance test: Baileys (npm `baileys` 7.0.0-rc14, unmodified; a
//! client nobody here wrote) against wa-sim, with no workaround in between:
//! link by QR and by pairing code, send with delivery and read receipts,
//! receive, log in again without a QR, and no first-login wait. The checks
//! themselves are in `conformance/baileys.mjs`; `scripts/test` installs Node
//! and the pinned packages (`npm ci`) before the cargo tests run.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn conformance_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("conformance")
}

#[tokio::test(flavor = "multi_thread")]
async fn baileys_links_sends_receives_and_logs_in_again() {
    let dir = conformance_dir();
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|o| o.status.success()),
        "Node.js is needed for this test (scripts/test installs it: apt-get install nodejs npm)"
    );
    assert!(
        dir.join("node_modules/baileys/package.json").exists(),
        "the pinned Baileys is not installed: npm ci --prefix {} (scripts/test does it)",
        dir.display()
    );
    let state = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let any = "127.0.0.1:0".parse().unwrap();
    let sim = wa_sim::start(state.path().to_path_buf(), any, any)
        .await
        .unwrap();
    let (ws, ctl) = (sim.ws_url(), sim.control_url());
    let work_dir = work.path().to_path_buf();
    let (lines, ok) = tokio::task::spawn_blocking(move || {
        let mut child = Command::new("node")
            .arg("baileys.mjs")
            .current_dir(&dir)
            .env("WA_SIM_WS", ws)
            .env("WA_SIM_CONTROL", ctl)
            .env("WORK_DIR", &work_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node");
        let out = child.stdout.take().expect("stdout");
        let started = Instant::now();
        let watchdog = {
            let pid = child.id();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_secs(180));
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            })
        };
        let lines: Vec<serde_json::Value> = BufReader::new(out)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str(&l).ok())
            .collect();
        let status = child.wait().expect("wait for node");
        drop(watchdog);
        println!("Baileys ran {:.1} s", started.elapsed().as_secs_f64());
        (lines, status.success())
    })
    .await
    .unwrap();
    for l in &lines {
        println!(
            "{:<30} {:<5} {:>7} ms  {}",
            l["check"].as_str().unwrap_or("?"),
            l["ok"],
            l["ms"].as_u64().map(|m| m.to_string()).unwrap_or_default(),
            l["detail"].as_str().unwrap_or("")
        );
    }
    let checks: Vec<&str> = lines.iter().filter_map(|l| l["check"].as_str()).collect();
    for want in [
        "qr-link",
        "qr-link-identity",
        "initial-sync-without-timeout",
        "send-delivered",
        "send-read",
        "receive",
        "relogin-without-qr",
        "code-link",
        "done",
    ] {
        assert!(
            checks.contains(&want),
            "check {want} did not run: {checks:?}"
        );
    }
    let failed: Vec<&serde_json::Value> = lines.iter().filter(|l| l["ok"] != true).collect();
    assert!(failed.is_empty(), "failed checks: {failed:#?}");
    assert!(ok, "node exited with an error");
}

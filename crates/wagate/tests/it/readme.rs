//! The README's quick start, pasted: its shell commands (create the org,
//! schedule tomorrow's reminder, add the webhook) run with bash in a fresh
//! directory against a gateway started the way step 1 says (offline here,
//! on a free port). Only `./target/release/wagate` becomes this build's
//! binary and `http://127.0.0.1:8080` the gateway's address (also given in
//! `WAGATE_URL`); the lines that
//! wait for a phone (`wagate pair`) are left out. The README's Python
//! examples run in the Python client's suite (`tests/test_readme.py`).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const README: &str = include_str!("../../../../README.md");

/// The `sh` blocks of the README's section `title`.
fn sh_blocks(title: &str) -> Vec<String> {
    let start = README
        .find(&format!("\n## {title}"))
        .unwrap_or_else(|| panic!("README has no section {title}"));
    let rest = &README[start + 4..];
    let section = &rest[..rest.find("\n## ").unwrap_or(rest.len())];
    section
        .split("```sh\n")
        .skip(1)
        .map(|b| b[..b.find("```").unwrap_or(b.len())].to_string())
        .collect()
}

/// Run `script` with bash in `dir`, as a newcomer would, with our binary.
fn paste(dir: &Path, url: &str, script: &str) -> String {
    let bin = crate::common::bin();
    let script = script
        .replace("./target/release/wagate", &bin.to_string_lossy())
        .replace("http://127.0.0.1:8080", url);
    let out = Command::new("bash")
        .arg("-euo")
        .arg("pipefail")
        .arg("-c")
        .arg(&script)
        .current_dir(dir)
        .env("WAGATE_URL", url)
        .env_remove("WAGATE_TOKEN")
        .env_remove("WAGATE_ADMIN_TOKEN")
        .output()
        .expect("bash");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{script}\n→ {said}");
    said
}

#[test]
fn the_quick_start_runs_as_pasted() {
    let blocks = sh_blocks("A clinic's quick start");
    assert_eq!(blocks.len(), 4, "{blocks:#?}");
    let dir = tempfile::tempdir().unwrap();
    // Step 1, on a free port and without dialling WhatsApp.
    let serve = blocks[0]
        .lines()
        .find(|l| l.contains("wagate serve"))
        .expect("a serve line");
    assert!(serve.contains("--webhook-allow 127.0.0.1"), "{serve}");
    let mut gateway = Killed(
        Command::new(crate::common::bin())
            .args([
                "serve",
                "--webhook-allow",
                "127.0.0.1",
                "--offline",
                "--listen",
                "127.0.0.1:0",
            ])
            .current_dir(dir.path())
            .env_remove("WAGATE_ADMIN_TOKEN")
            .env("WAGATE_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(gateway.0.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = loop {
        assert!(Instant::now() < deadline, "the gateway did not start");
        let line = lines.next().expect("the gateway exited").unwrap();
        if let Some(rest) = line.strip_prefix("wagate listening on ") {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    assert!(
        dir.path().join("data/admin.token").exists(),
        "the admin token is written to ./data"
    );

    // Step 2, without the line that waits for a phone to scan.
    let create: String = blocks[1]
        .lines()
        .filter(|l| !l.contains(" pair "))
        .collect::<Vec<_>>()
        .join("\n");
    let made = paste(dir.path(), &url, &create);
    assert!(made.contains("wgo_") || made.contains("token"), "{made}");

    // Step 3: a reminder for tomorrow at 9:00, before 10:00.
    let sent = paste(dir.path(), &url, &blocks[2]);
    assert!(sent.contains("scheduled"), "{sent}");
    let admin = std::fs::read_to_string(dir.path().join("data/admin.token")).unwrap();
    let list: serde_json::Value = ureq::get(format!("{url}/v1/orgs/4/messages"))
        .header("Authorization", format!("Bearer {}", admin.trim()))
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    let m = &list["messages"][0];
    assert_eq!(m["status"], "scheduled", "{list}");
    let (at, before) = (
        m["send_at_ms"].as_i64().unwrap(),
        m["send_before_ms"].as_i64().unwrap(),
    );
    assert_eq!(before - at, 3_600_000, "{m}");
    let ahead = at - chrono::Utc::now().timestamp_millis();
    assert!(ahead > 0 && ahead < 48 * 3_600_000, "tomorrow at 9: {m}");

    // Step 4: the webhook for the Django app.
    let hook = paste(dir.path(), &url, &blocks[3]);
    let hook: serde_json::Value = serde_json::from_str(hook.trim()).expect(&hook);
    assert!(
        hook["secret"].as_str().is_some_and(|s| s.len() >= 16),
        "{hook}"
    );
    assert_eq!(hook["url"], "http://127.0.0.1:8000/wagate/webhook/");
}

/// A child process killed when the test ends, passed or not.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_docs_schedule_nothing_on_a_fixed_date() {
    // A pasted example with a date that has passed fails with 422; dates
    // in commands are computed (`date -d 'tomorrow 09:00'`).
    for (name, text) in [
        ("README.md", README),
        (
            "docs/operations.md",
            include_str!("../../../../docs/operations.md"),
        ),
        ("docs/api.md", include_str!("../../../../docs/api.md")),
        (
            "clients/python/README.md",
            include_str!("../../../../clients/python/README.md"),
        ),
    ] {
        for line in text.lines() {
            let command = line.contains("wagate send") && line.contains("--at 20");
            let python = line.contains("datetime(20");
            let curl = line.contains("\"send_at\":\"20") || line.contains("\"send_at\": \"20");
            let fixed = command || python || curl;
            assert!(!fixed, "{name}: a fixed date in an example: {line}");
        }
    }
}

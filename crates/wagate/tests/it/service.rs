//! Running under systemd: the unit file in `deploy/` passes
//! `systemd-analyze verify`, and the gateway speaks the notify protocol —
//! `READY=1` once it listens, `WATCHDOG=1` every half watchdog period while
//! healthy, `STOPPING=1` on SIGTERM.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{bin, ADMIN};

#[test]
fn the_unit_file_verifies_and_asks_for_what_the_gateway_provides() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/wagate.service"
    ))
    .unwrap();
    for line in [
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "DynamicUser=yes",
        "StateDirectory=wagate",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "LimitNOFILE=",
    ] {
        assert!(unit.lines().any(|l| l.starts_with(line)), "{line} missing");
    }
    // verify checks the command it runs exists: this build's binary.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("wagate.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/wagate", bin().to_str().unwrap()),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("systemd-analyze (Debian's systemd package; scripts/test installs it)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(!said.contains("wagate.service:"), "warnings: {said}");
}

#[test]
fn the_gateway_tells_systemd_it_is_ready_alive_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let child = Command::new(bin())
        .arg("--data")
        .arg(dir.path().join("data"))
        .args([
            "serve",
            "--offline",
            "--listen",
            "127.0.0.1:0",
            "--admin-token",
            ADMIN,
        ])
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "1000000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut got: Vec<(Instant, String)> = vec![];
    let t0 = Instant::now();
    let mut buf = [0u8; 512];
    while t0.elapsed() < Duration::from_secs(10) {
        if let Ok(n) = sock.recv(&mut buf) {
            got.push((
                Instant::now(),
                String::from_utf8_lossy(&buf[..n]).into_owned(),
            ));
        }
        if got.iter().filter(|(_, m)| m == "WATCHDOG=1").count() >= 4 {
            break;
        }
    }
    let ready = got.iter().position(|(_, m)| {
        m.starts_with("READY=1\nSTATUS=serving 0 organization(s) on http://127.0.0.1:")
    });
    assert_eq!(ready, Some(0), "READY first: {got:?}");
    let dogs: Vec<Instant> = got
        .iter()
        .filter(|(_, m)| m == "WATCHDOG=1")
        .map(|(t, _)| *t)
        .collect();
    assert!(dogs.len() >= 4, "fed every 0.5 s: {got:?}");
    // Half of WATCHDOG_USEC apart (0.5 s), give or take the machine.
    let span = *dogs.last().unwrap() - dogs[0];
    assert!(
        span >= Duration::from_millis(1200) && span <= Duration::from_millis(5000),
        "4 feeds over {span:?}"
    );
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let t1 = Instant::now();
    let mut stopping = false;
    while t1.elapsed() < Duration::from_secs(10) && !stopping {
        if let Ok(n) = sock.recv(&mut buf) {
            stopping = String::from_utf8_lossy(&buf[..n]).starts_with("STOPPING=1");
        }
    }
    assert!(stopping, "no STOPPING=1 after SIGTERM");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}", out.status);
}

//! The commands that work on a data directory, as an operator runs them,
//! offline: `wagate backup` and `wagate restore` —
//! a round trip while the gateway serves, and the archives and directories a
//! restore refuses (never overwriting data, never writing outside the
//! target) —, and `wagate doctor`.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::json;

use crate::common::{bin, Server, ADMIN};

fn wagate(data: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .arg("--data")
        .arg(data)
        .args(args)
        .output()
        .unwrap()
}

fn said(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn a_backup_of_a_serving_gateway_restores_its_orgs_and_messages() {
    let data = tempfile::tempdir().unwrap();
    let mut s = Server::start(data.path());
    let token = s.create_org("4", Some("57"));
    let mut ids = vec![];
    for i in 0..20 {
        let (st, v) = s.call(
            "POST",
            "/v1/orgs/4/messages",
            Some(&token),
            Some(&json!({"to": "3001112233", "text": format!("cita {i}")}).to_string()),
        );
        assert_eq!(st, 202, "{v}");
        ids.push(v["id"].as_str().unwrap().to_string());
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("b.tar");
    let f = file.to_str().unwrap();
    let o = wagate(data.path(), &["backup", f]);
    assert!(o.status.success(), "{}", said(&o));
    assert!(said(&o).contains("1 org(s)"), "{}", said(&o));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the archive holds credentials");
    }
    // A second backup to the same name replaces it.
    let o = wagate(data.path(), &["backup", f]);
    assert!(o.status.success(), "{}", said(&o));
    s.terminate(Duration::from_secs(10)).expect("stopped");

    let restored = dir.path().join("new");
    let o = wagate(&restored, &["restore", f]);
    assert!(o.status.success(), "{}", said(&o));
    assert!(restored.join("wagate.db").is_file());
    let s = Server::start(&restored);
    let (st, v) = s.call("GET", "/v1/orgs", Some(ADMIN), None);
    assert_eq!(st, 200, "{v}");
    assert!(v.to_string().contains("\"4\""), "{v}");
    for id in &ids {
        let (st, v) = s.call(
            "GET",
            &format!("/v1/orgs/4/messages/{id}"),
            Some(&token),
            None,
        );
        assert_eq!(st, 200, "{id}: {v}");
    }
}

#[test]
fn restore_never_overwrites_and_refuses_what_is_not_a_backup() {
    let dir = tempfile::tempdir().unwrap();
    // Backing up a directory that is not a data dir.
    let o = wagate(
        dir.path(),
        &["backup", dir.path().join("x.tar").to_str().unwrap()],
    );
    assert!(!o.status.success());
    assert!(
        said(&o).contains("holds no wagate database"),
        "{}",
        said(&o)
    );

    // Into the data directory itself (here over its database): refused.
    let data = tempfile::tempdir().unwrap();
    let mut s = Server::start(data.path());
    s.create_org("4", None);
    s.terminate(Duration::from_secs(10)).expect("stopped");
    let db = data.path().join("wagate.db");
    let before = std::fs::read(&db).unwrap();
    let o = wagate(data.path(), &["backup", db.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        said(&o).contains("inside the data directory"),
        "{}",
        said(&o)
    );
    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "the database was touched"
    );

    // A real backup to restore from.
    let data = tempfile::tempdir().unwrap();
    let mut s = Server::start(data.path());
    s.create_org("4", None);
    s.terminate(Duration::from_secs(10)).expect("stopped");
    let file = dir.path().join("b.tar");
    let o = wagate(data.path(), &["backup", file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", said(&o));

    // Into a directory that holds anything: refused, left as it was.
    let busy = dir.path().join("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("keep.txt"), "mine").unwrap();
    let o = wagate(&busy, &["restore", file.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(said(&o).contains("is not empty"), "{}", said(&o));
    assert_eq!(std::fs::read_dir(&busy).unwrap().count(), 1);
    assert_eq!(
        std::fs::read_to_string(busy.join("keep.txt")).unwrap(),
        "mine"
    );

    // Not an archive at all.
    let junk = dir.path().join("junk.tar");
    std::fs::write(
        &junk,
        b"this is not a tar archive, just some text".repeat(40),
    )
    .unwrap();
    let o = wagate(&dir.path().join("r1"), &["restore", junk.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(said(&o).contains("not a wagate backup"), "{}", said(&o));
    assert!(!dir.path().join("r1").exists());

    // A missing file.
    let o = wagate(&dir.path().join("r2"), &["restore", "/nonexistent/b.tar"]);
    assert!(!o.status.success());
    assert!(
        said(&o).contains("opening /nonexistent/b.tar"),
        "{}",
        said(&o)
    );

    // An archive that reaches outside, or holds a link or a foreign name.
    for (name, kind) in [
        ("../escaped.db", tar::EntryType::Regular),
        ("/tmp/absolute.db", tar::EntryType::Regular),
        ("wagate.db", tar::EntryType::Symlink),
        ("orgs/4/wa.db", tar::EntryType::Regular),
    ] {
        let bad = dir.path().join("bad.tar");
        let mut t = tar::Builder::new(std::fs::File::create(&bad).unwrap());
        let manifest = br#"{"format": 1}"#;
        let mut h = tar::Header::new_gnu();
        h.set_size(manifest.len() as u64);
        h.set_mode(0o600);
        t.append_data(&mut h, "wagate-backup.json", &manifest[..])
            .unwrap();
        let mut h = tar::Header::new_old();
        // Written by hand: the tar crate itself refuses such names.
        let field = &mut h.as_old_mut().name;
        field[..name.len()].copy_from_slice(name.as_bytes());
        h.set_entry_type(kind);
        if kind == tar::EntryType::Symlink {
            h.set_link_name("/etc/passwd").unwrap();
        }
        h.set_size(4);
        h.set_mode(0o600);
        h.set_cksum();
        t.append(&h, &b"data"[..]).unwrap();
        t.finish().unwrap();
        drop(t);
        let target = dir.path().join("r3");
        let o = wagate(&target, &["restore", bad.to_str().unwrap()]);
        assert!(!o.status.success(), "{name} taken");
        assert!(said(&o).contains("refused"), "{name}: {}", said(&o));
        assert!(!target.exists(), "{name}: a directory was made");
        assert!(!dir.path().join("escaped.db").exists());
        assert!(!Path::new("/tmp/absolute.db").exists());
    }
}

#[test]
fn doctor_finds_a_serving_gateways_dir_healthy_and_names_a_damaged_database() {
    let data = tempfile::tempdir().unwrap();
    let mut s = Server::start(data.path());
    s.create_org("4", None);
    let o = wagate(data.path(), &["doctor"]);
    assert!(o.status.success(), "{}", said(&o));
    let out = said(&o);
    for line in [
        "ok   permissions",
        "ok   writable",
        "ok   wagate.db    intact",
        "for 1 org(s)",
    ] {
        assert!(out.contains(line), "{line}: {out}");
    }
    s.terminate(Duration::from_secs(10)).expect("stopped");
    std::fs::write(data.path().join("wagate.db"), b"garbage".repeat(1000)).unwrap();
    let _ = std::fs::remove_file(data.path().join("wagate.db-wal"));
    let _ = std::fs::remove_file(data.path().join("wagate.db-shm"));
    let o = wagate(data.path(), &["doctor"]);
    assert_eq!(o.status.code(), Some(1), "{}", said(&o));
    assert!(said(&o).contains("FAIL wagate.db"), "{}", said(&o));
}

#[test]
fn doctor_checks_the_postgresql_database_a_gateway_uses() {
    let data = tempfile::tempdir().unwrap();
    let url = crate::common::fresh_db_blocking();
    let db = format!("--database={url}");
    // An empty database: reachable, and the gateway will make its schema.
    let o = wagate(data.path(), &["doctor", &db]);
    assert!(o.status.success(), "{}", said(&o));
    assert!(
        said(&o).contains("empty (the schema is made"),
        "{}",
        said(&o)
    );
    // A gateway on it: the schema is this wagate's, and its org is counted.
    crate::common::use_database(data.path(), url.clone());
    let mut s = Server::start(data.path());
    s.create_org("4", None);
    let o = wagate(data.path(), &["doctor", &db]);
    let out = said(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains(&format!(
            "schema versions cluster 2, devices 1, gateway {}",
            wagate::store::VERSION
        )),
        "{out}"
    );
    assert!(
        out.contains("1 org(s)") && out.contains("round trip"),
        "{out}"
    );
    assert!(
        !out.contains("wagate.db"),
        "SQLite files are not checked: {out}"
    );
    s.terminate(Duration::from_secs(10)).expect("stopped");
    // A server that is not there fails the check, with what to look at.
    let o = wagate(
        data.path(),
        &[
            "doctor",
            "--database=host=/nonexistent/sock user=wagate dbname=x",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", said(&o));
    assert!(said(&o).contains("FAIL database"), "{}", said(&o));
}

#[test]
fn a_config_file_sets_serve_options_under_the_environment_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = dir.path().join("wagate.toml");
    std::fs::write(
        &conf,
        format!(
            "data = {:?}\nlisten = \"127.0.0.1:{port}\"\nadmin_token = \"from-the-file\"\noffline = true\nidle-timeout = 45\n",
            dir.path().join("data")
        ),
    )
    .unwrap();
    let c = conf.to_str().unwrap();
    // What serve would run with: the file's values, the environment over
    // them, the secret masked.
    let o = Command::new(bin())
        .args(["--config", c, "config", "check"])
        .env("WAGATE_IDLE_TIMEOUT", "90")
        .output()
        .unwrap();
    let out = said(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains(&format!("\"127.0.0.1:{port}\"  # file")),
        "{out}"
    );
    assert!(out.contains("\"90\"  # environment"), "{out}");
    assert!(out.contains("\"20\"  # default"), "restore-rate: {out}");
    assert!(!out.contains("from-the-file"), "secret shown: {out}");

    // serve takes them: the port, the admin token, JSON logs.
    let child = Command::new(bin())
        .args(["--config", c, "--log-format", "json", "serve"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let t0 = std::time::Instant::now();
    let status = loop {
        let r = ureq::get(&format!("{base}/v1/orgs"))
            .header("Authorization", "Bearer from-the-file")
            .config()
            .http_status_as_error(false)
            .build()
            .call();
        if let Ok(r) = r {
            break r.status().as_u16();
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "never listened");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status, 200, "the file's admin token");
    // SIGTERM, then every log line is a JSON object.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let out = child.wait_with_output().unwrap();
    let logs = String::from_utf8_lossy(&out.stdout);
    assert!(logs.lines().count() >= 2, "{logs}");
    for line in logs.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }

    // A misspelt key is named, with what the file may set.
    std::fs::write(&conf, "lisen = \"127.0.0.1:1\"\n").unwrap();
    let o = Command::new(bin())
        .args(["--config", c, "config", "check"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        said(&o).contains("unknown option `lisen`") && said(&o).contains("listen"),
        "{}",
        said(&o)
    );
}

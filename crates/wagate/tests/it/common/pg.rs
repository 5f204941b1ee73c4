//! A real, throwaway PostgreSQL for the tests: Debian's `postgresql`
//! binaries (scripts/test installs them when missing), a cluster made with
//! `initdb` in a temporary directory, listening only on a Unix socket there,
//! started once per test binary and stopped when it exits. Each test gets a
//! database of its own (`fresh_db`). `WAGATE_TEST_POSTGRES` (a connection
//! string) uses a server you run instead.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

struct Cluster {
    /// Connection string without a database name.
    base: String,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
/// The server this binary started, and its directory (removed at exit).
static SERVER: Mutex<Option<(Child, PathBuf)>> = Mutex::new(None);
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// Where Debian keeps a PostgreSQL program (`initdb` and `postgres` are not
/// on the PATH there).
fn program(name: &str) -> PathBuf {
    if let Ok(found) = which(name) {
        return found;
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs.into_iter()
        .rev()
        .map(|d| d.join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!("PostgreSQL's {name} not found: install Debian's postgresql (scripts/test does)")
        })
}

fn which(name: &str) -> Result<PathBuf, ()> {
    let path = std::env::var_os("PATH").ok_or(())?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or(())
}

/// Run PostgreSQL's programs as the `postgres` user when the tests run as
/// root (the server refuses to run as root).
fn as_server_user(program: PathBuf) -> Command {
    if unsafe { libc::geteuid() } == 0 {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--",
        ])
        .arg(program);
        c
    } else {
        Command::new(program)
    }
}

extern "C" fn stop_server() {
    if let Ok(mut s) = SERVER.lock() {
        if let Some((child, dir)) = s.as_mut() {
            // SIGQUIT: stop at once; the cluster is thrown away.
            unsafe { libc::kill(child.id() as i32, libc::SIGQUIT) };
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn start() -> Cluster {
    if let Ok(url) = std::env::var("WAGATE_TEST_POSTGRES") {
        return Cluster { base: url };
    }
    let dir = tempfile::Builder::new()
        .prefix("wagate-pg-")
        .tempdir()
        .expect("temp dir")
        .keep();
    let data = dir.join("data");
    let sock = dir.join("sock");
    std::fs::create_dir(&sock).expect("socket dir");
    if unsafe { libc::geteuid() } == 0 {
        let st = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status()
            .expect("chown");
        assert!(st.success(), "chown the cluster's directory to postgres");
    }
    let out = as_server_user(program("initdb"))
        .arg("-D")
        .arg(&data)
        .args(["-U", "wagate", "--auth=trust", "-E", "UTF8", "--no-sync"])
        .output()
        .expect("initdb");
    assert!(
        out.status.success(),
        "initdb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let child = as_server_user(program("postgres"))
        .arg("-D")
        .arg(&data)
        .arg("-k")
        .arg(&sock)
        .args([
            "-c",
            "listen_addresses=",
            "-c",
            "fsync=off",
            "-c",
            "max_connections=200",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start postgres");
    *SERVER.lock().unwrap() = Some((child, dir.clone()));
    unsafe { libc::atexit(stop_server) };
    let base = format!("host={} user=wagate", sock.display());
    wait_ready(&sock);
    Cluster { base }
}

/// The server is up when its socket accepts a connection.
fn wait_ready(sock: &Path) {
    let t = Instant::now();
    let path = sock.join(".s.PGSQL.5432");
    while std::os::unix::net::UnixStream::connect(&path).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "PostgreSQL did not start within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A connection string to a new, empty database of its own.
pub async fn fresh_db() -> String {
    let c = CLUSTER.get_or_init(start);
    let name = format!(
        "t{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::SeqCst)
    );
    let admin = format!("{} dbname=postgres", c.base);
    let t = Instant::now();
    let client = loop {
        match wagate::cluster::connect(&admin).await {
            Ok(client) => break client,
            // Up, but still starting (the socket opens before it accepts logins).
            Err(e) if t.elapsed() < Duration::from_secs(30) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("connect to the test PostgreSQL: {e}"),
        }
    };
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create database");
    format!("{} dbname={name}", c.base)
}

//! `wagate doctor`: checks what a gateway needs from the machine it runs on —
//! the data directory (there, private, writable, with free space, its
//! databases intact), the clock, and the open-file limit against the orgs —
//! and says for each what to do; with `--database`, the PostgreSQL server
//! instead of the SQLite files (reachable, its schema this wagate's, how
//! long a round trip takes). Reads only; changes nothing.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

/// One check: what was looked at, and what it found or what to do.
#[derive(Debug, Clone)]
pub struct Finding {
    pub level: Level,
    pub what: &'static str,
    pub say: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tag = match self.level {
            Level::Ok => "ok  ",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        };
        write!(f, "{tag} {:<12} {}", self.what, self.say)
    }
}

fn ok(what: &'static str, say: String) -> Finding {
    Finding {
        level: Level::Ok,
        what,
        say,
    }
}
fn warn(what: &'static str, say: String) -> Finding {
    Finding {
        level: Level::Warn,
        what,
        say,
    }
}
fn fail(what: &'static str, say: String) -> Finding {
    Finding {
        level: Level::Fail,
        what,
        say,
    }
}

/// Free space below which the data directory is reported.
const LOW_SPACE: u64 = 1 << 30;

/// Every check on the data directory `data`, for a gateway allowing
/// `max_connections` HTTP connections and keeping its tables in SQLite
/// files there, or in PostgreSQL at `database`.
pub fn run(data: &Path, max_connections: usize, database: Option<&str>) -> Vec<Finding> {
    let mut out = vec![];
    let shown = data.display();
    let meta = match std::fs::metadata(data) {
        Ok(m) if m.is_dir() => m,
        Ok(_) => {
            out.push(fail(
                "data dir",
                format!(
                    "{shown} is not a directory: give the gateway's data directory with --data"
                ),
            ));
            return out;
        }
        Err(e) => {
            out.push(fail(
                "data dir",
                format!("{shown}: {e}. A new gateway creates it at its first start; otherwise give the right --data"),
            ));
            return out;
        }
    };
    out.push(permissions(data, &meta));
    out.push(writable(data));
    out.push(free_space(data));
    let orgs = match database {
        None => {
            for db in ["wagate.db", "devices.db"] {
                out.push(integrity(&data.join(db), db));
            }
            out.push(ok(
                "database",
                "SQLite in the data directory (no database server to reach)".into(),
            ));
            count(&data.join("wagate.db"), "SELECT COUNT(*) FROM orgs").unwrap_or(0)
        }
        Some(url) => {
            let (finding, orgs) = postgres(url);
            out.push(finding);
            orgs
        }
    };
    out.push(clock());
    out.push(descriptors(orgs, max_connections));
    out
}

fn permissions(data: &Path, meta: &std::fs::Metadata) -> Finding {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let mode = meta.permissions().mode() & 0o777;
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        if meta.uid() != me {
            return warn(
                "permissions",
                format!(
                    "{} belongs to user {}, and this is user {me}: run wagate as the directory's owner (or chown -R it to the service's user)",
                    data.display(),
                    meta.uid()
                ),
            );
        }
        if mode & 0o077 != 0 {
            return warn(
                "permissions",
                format!(
                    "{} is {mode:o}: other users can reach device keys and messages. The gateway makes it private at its next start, or: chmod -R go-rwx {}",
                    data.display(),
                    data.display()
                ),
            );
        }
        ok(
            "permissions",
            format!("{} is private ({mode:o})", data.display()),
        )
    }
    #[cfg(not(unix))]
    {
        let _ = (data, meta);
        ok("permissions", "not checked on this system".into())
    }
}

fn writable(data: &Path) -> Finding {
    match tempfile::Builder::new()
        .prefix(".wagate-doctor-")
        .tempfile_in(data)
    {
        Ok(f) => {
            drop(f);
            ok("writable", "a file can be created and removed".into())
        }
        Err(e) => fail(
            "writable",
            format!(
                "cannot create a file in {}: {e}. The gateway must write there: fix the owner or the mount (read-only?)",
                data.display()
            ),
        ),
    }
}

fn free_space(data: &Path) -> Finding {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let Ok(c) = std::ffi::CString::new(data.as_os_str().as_bytes()) else {
            return warn("free space", "the path cannot be asked about".into());
        };
        // SAFETY: statvfs fills a plain struct from a valid C string.
        let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
            return warn(
                "free space",
                format!("cannot read: {}", std::io::Error::last_os_error()),
            );
        }
        let free = s.f_bavail as u64 * s.f_frsize as u64;
        let total = s.f_blocks as u64 * s.f_frsize as u64;
        let gb = |b: u64| b as f64 / (1u64 << 30) as f64;
        let say = format!("{:.1} GiB free of {:.1} GiB", gb(free), gb(total));
        if free < LOW_SPACE / 8 {
            fail(
                "free space",
                format!("{say}: the gateway stops accepting messages when the disk fills; free space or move the data directory"),
            )
        } else if free < LOW_SPACE || free < total / 20 {
            warn(
                "free space",
                format!("{say}: below 1 GiB or 5 %; free space before the disk fills"),
            )
        } else {
            ok("free space", say)
        }
    }
    #[cfg(not(unix))]
    {
        let _ = data;
        ok("free space", "not checked on this system".into())
    }
}

fn integrity(path: &Path, what: &'static str) -> Finding {
    if !path.exists() {
        return ok(
            what,
            "not there yet (made at the gateway's first start)".into(),
        );
    }
    let c = match Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY) {
        Ok(c) => c,
        Err(e) => return fail(what, format!("cannot open {}: {e}", path.display())),
    };
    let _ = c.busy_timeout(std::time::Duration::from_secs(10));
    match c.query_row("PRAGMA quick_check", [], |r| r.get::<_, String>(0)) {
        Ok(r) if r == "ok" => {
            let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            ok(what, format!("intact ({:.1} MB)", size as f64 / 1e6))
        }
        Ok(r) => fail(
            what,
            format!("damaged ({r}): stop the gateway and restore the last backup (wagate restore), or keep this file and ask for help"),
        ),
        Err(e) => fail(
            what,
            format!("cannot be read ({e}): it is not a SQLite database, or it is damaged; restore the last backup"),
        ),
    }
}

fn clock() -> Finding {
    let now = crate::store::now_ms();
    // 2024-01-01 and 2100-01-01.
    if !(1_704_067_200_000..4_102_444_800_000).contains(&now) {
        return fail(
            "clock",
            format!("the system clock reads {now} ms since 1970, which cannot be right: set the time (timedatectl set-ntp true)"),
        );
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: adjtimex with modes 0 only reads the kernel's clock state.
        let mut t: libc::timex = unsafe { std::mem::zeroed() };
        let state = unsafe { libc::adjtimex(&mut t) };
        if state == libc::TIME_ERROR || t.status & libc::STA_UNSYNC != 0 {
            return warn(
                "clock",
                "not synchronized (NTP): scheduled reminders and quiet hours follow this clock; enable time sync (timedatectl set-ntp true, chrony or systemd-timesyncd)".into(),
            );
        }
        ok("clock", "synchronized".into())
    }
    #[cfg(not(target_os = "linux"))]
    ok(
        "clock",
        "the date is plausible; synchronization not checked here".into(),
    )
}

/// The PostgreSQL server at `url`: reachable within 5 s, at this wagate's
/// schema version (or empty: the gateway creates it), and the median of 5
/// round trips; with the number of orgs it holds.
fn postgres(url: &str) -> (Finding, i64) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return (fail("database", format!("cannot start a runtime: {e}")), 0),
    };
    rt.block_on(async {
        let attempt = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            crate::cluster::connect(url),
        )
        .await;
        let c = match attempt {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                return (
                    fail(
                        "database",
                        format!("PostgreSQL (--database) cannot be reached: {e}. Is the server up, and are the host, user, password and database name right?"),
                    ),
                    0,
                )
            }
            Err(_) => {
                return (
                    fail(
                        "database",
                        "PostgreSQL (--database) did not answer within 5 s: check the host and port, and any firewall between".into(),
                    ),
                    0,
                )
            }
        };
        let mut trips = Vec::new();
        for _ in 0..5 {
            let t = std::time::Instant::now();
            if let Err(e) = c.simple_query("SELECT 1").await {
                return (fail("database", format!("PostgreSQL answered with an error: {e}")), 0);
            }
            trips.push(t.elapsed());
        }
        trips.sort();
        let trip_ms = trips[2].as_secs_f64() * 1e3;
        let server = match c.query_one("SHOW server_version", &[]).await {
            Ok(r) => r.get::<_, String>(0),
            Err(_) => "?".into(),
        };
        let versions = crate::db::migrate::pg_versions(&c).await.unwrap_or_default();
        let orgs = match c.query_one("SELECT COUNT(*) FROM orgs", &[]).await {
            Ok(r) => r.get::<_, i64>(0),
            Err(_) => 0,
        };
        let said = format!(
            "PostgreSQL {server}, a round trip {trip_ms:.1} ms (median of 5), {orgs} org(s)"
        );
        let finding = schema_finding(&said, &versions);
        (finding, orgs)
    })
}

/// What the stores' schema versions in PostgreSQL say, against this
/// wagate's (`cluster::schema_versions`).
fn schema_finding(said: &str, versions: &[(String, i64)]) -> Finding {
    if versions.is_empty() {
        return ok(
            "database",
            format!("{said}; empty (the schema is made at the gateway's first start)"),
        );
    }
    let mut behind = Vec::new();
    for (name, ours) in crate::cluster::schema_versions() {
        let at = versions
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, v)| *v);
        if at > ours {
            return fail(
                "database",
                format!("{said}; its {name} tables (schema version {at}) are newer than this wagate's ({ours}): upgrade wagate"),
            );
        }
        if at < ours {
            behind.push(format!("{name} {at} → {ours}"));
        }
    }
    let list = versions
        .iter()
        .map(|(n, v)| format!("{n} {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    if behind.is_empty() {
        ok("database", format!("{said}; schema versions {list}"))
    } else {
        ok(
            "database",
            format!(
                "{said}; schema versions {list}, migrated at the gateway's next start ({})",
                behind.join(", ")
            ),
        )
    }
}

fn descriptors(orgs: i64, max_connections: usize) -> Finding {
    #[cfg(unix)]
    {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit fills a plain struct.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
            return warn("open files", "the limit cannot be read".into());
        }
        // The gateway raises its soft limit to the hard one at start.
        let limit = r.rlim_max;
        let need = crate::datadir::descriptors_needed(orgs as usize, max_connections);
        let say = format!(
            "limit {limit} (hard; soft {}) for {orgs} org(s) and {max_connections} HTTP connections: {need} needed at most",
            r.rlim_cur
        );
        if limit < need {
            warn(
                "open files",
                format!("{say}. Raise it (LimitNOFILE= in the service unit, or ulimit -n), or orgs will wait for a descriptor"),
            )
        } else {
            ok("open files", say)
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (orgs, max_connections);
        ok("open files", "not checked on this system".into())
    }
}

fn count(db: &Path, sql: &str) -> Option<i64> {
    let c = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
    c.query_row(sql, [], |r| r.get(0)).ok()
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn find<'a>(f: &'a [Finding], what: &str) -> &'a Finding {
        f.iter().find(|x| x.what == what).unwrap()
    }

    #[test]
    fn a_damaged_database_and_a_loose_directory_are_named_with_the_fix() {
        let d = tempfile::tempdir().unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(
            d.path().join("wagate.db"),
            b"not a database at all".repeat(300),
        )
        .unwrap();
        let f = run(d.path(), 1024, None);
        let p = find(&f, "permissions");
        assert_eq!(p.level, Level::Warn, "{p}");
        assert!(p.say.contains("chmod -R go-rwx"), "{p}");
        let w = find(&f, "wagate.db");
        assert_eq!(w.level, Level::Fail, "{w}");
        assert!(w.say.contains("restore the last backup"), "{w}");
        assert_eq!(find(&f, "devices.db").level, Level::Ok);
        assert_eq!(find(&f, "writable").level, Level::Ok);
    }

    #[test]
    fn a_missing_directory_is_one_failure_that_says_what_to_do() {
        let f = run(Path::new("/nonexistent/wagate-data"), 1024, None);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].level, Level::Fail);
        assert!(f[0].say.contains("--data"), "{}", f[0]);
    }

    #[test]
    fn a_healthy_database_is_intact() {
        let d = tempfile::tempdir().unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let c = Connection::open(d.path().join("wagate.db")).unwrap();
        c.execute_batch("CREATE TABLE orgs (id TEXT); INSERT INTO orgs VALUES ('4');")
            .unwrap();
        drop(c);
        let f = run(d.path(), 1024, None);
        assert_eq!(find(&f, "permissions").level, Level::Ok);
        let w = find(&f, "wagate.db");
        assert_eq!(w.level, Level::Ok, "{w}");
        let o = find(&f, "open files");
        assert!(o.say.contains("for 1 org(s)"), "{o}");
    }
}

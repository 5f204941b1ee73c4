//! The data directory and the process's limits: private permissions (0700
//! folders, 0600 files, tightened at start-up when found looser — device keys
//! and message data must not be readable by other users), the admin token,
//! and the descriptor limit (raised from the soft to the hard limit, with a
//! warning when the configured orgs need more), and setting folders aside
//! (never deleted) under `aside/`.

use std::path::Path;

use anyhow::Context;

/// New files 0600 and folders 0700, whoever creates them (the WhatsApp
/// library creates its own database files).
pub fn private_umask() {
    #[cfg(unix)]
    // SAFETY: umask only sets the process's file-creation mask.
    unsafe {
        libc::umask(0o077);
    }
}

/// Create `data` if needed and make everything under it private. Returns
/// how many entries had looser permissions.
pub fn prepare(data: &Path) -> anyhow::Result<usize> {
    private_umask();
    std::fs::create_dir_all(data)
        .with_context(|| format!("creating data directory {}", data.display()))?;
    // The data dir itself may be a link (e.g. /var/lib/wagate → a volume);
    // what is below it is never followed.
    let root = std::fs::canonicalize(data).unwrap_or_else(|_| data.to_path_buf());
    let fixed = tighten(&root);
    if fixed > 0 {
        tracing::warn!(
            fixed,
            data = %data.display(),
            "files or folders under the data directory were readable by other users; made private (0600/0700)"
        );
    }
    Ok(fixed)
}

/// The file in the data directory that says its gateway keeps its tables in
/// PostgreSQL (`--database`; never the connection string, which is a
/// secret). A start without `--database` on such a directory is refused, so
/// a lost setting never brings the gateway up empty on fresh SQLite files.
pub const DATABASE_MARK: &str = "database";

/// Which database the data directory's gateway last used: `true` for
/// PostgreSQL.
pub fn uses_postgres(data: &Path) -> bool {
    std::fs::read_to_string(data.join(DATABASE_MARK))
        .map(|s| s.trim() == "postgresql")
        .unwrap_or(false)
}

/// Check that a start with (`postgres`) or without `--database` matches the
/// data directory, and mark a directory served from PostgreSQL.
pub fn check_database(data: &Path, postgres: bool) -> anyhow::Result<()> {
    let mark = data.join(DATABASE_MARK);
    match (postgres, uses_postgres(data)) {
        (true, false) => std::fs::write(&mark, "postgresql\n")
            .with_context(|| format!("writing {}", mark.display())),
        (false, true) => anyhow::bail!(
            "{} says this gateway keeps its tables in PostgreSQL: start it with --database (or WAGATE_DATABASE) as before. To serve the SQLite files in {} instead, delete {}",
            mark.display(),
            data.display(),
            mark.display()
        ),
        _ => Ok(()),
    }
}

/// Make `path` and everything under it private; symbolic links are left
/// alone (never followed). Returns how many entries changed.
#[cfg(unix)]
pub fn tighten(path: &Path) -> usize {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.file_type().is_symlink() {
        return 0;
    }
    let mode = meta.permissions().mode() & 0o7777;
    let mut fixed = 0;
    if mode & 0o077 != 0 {
        // Group and others lose every right; the owner keeps theirs.
        match std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & !0o077)) {
            Ok(()) => fixed += 1,
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot make private"),
        }
    }
    if meta.is_dir() {
        if let Ok(entries) = std::fs::read_dir(path) {
            for e in entries.flatten() {
                fixed += tighten(&e.path());
            }
        }
    }
    fixed
}

#[cfg(not(unix))]
pub fn tighten(_: &Path) -> usize {
    0
}

/// The admin token: from the environment, else `data/admin.token`, else a new
/// one written there with mode 0600. Returns the token and where it came from.
pub fn admin_token(data: &Path, from_env: Option<String>) -> anyhow::Result<(String, String)> {
    if let Some(t) = from_env.filter(|t| !t.trim().is_empty()) {
        return Ok((t.trim().to_string(), "WAGATE_ADMIN_TOKEN".into()));
    }
    let path = data.join("admin.token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        let t = t.trim().to_string();
        if !t.is_empty() {
            return Ok((t, path.display().to_string()));
        }
    }
    let token = crate::auth::generate("wga_");
    write_private(&path, &token).with_context(|| format!("writing {}", path.display()))?;
    Ok((token, format!("{} (new)", path.display())))
}

fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(path)?;
    f.write_all(content.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}

/// Raise the soft descriptor limit to the hard one; returns the limit now
/// in force (`None` where it cannot be read).
pub fn raise_fd_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit fill and read a plain struct.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
                return None;
            }
            if r.rlim_cur < r.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: r.rlim_max,
                    rlim_max: r.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    tracing::info!(
                        from = r.rlim_cur,
                        to = r.rlim_max,
                        "raised the open-file limit"
                    );
                    return Some(r.rlim_max);
                }
            }
            Some(r.rlim_cur)
        }
    }
    #[cfg(not(unix))]
    None
}

/// Descriptors each org may hold: its WhatsApp socket when linked (every
/// org's device state is in the one `devices.db`).
pub const PER_ORG: u64 = 1;
/// Descriptors the gateway itself needs (its database, listener, runtime).
pub const BASE: u64 = 64;

/// Descriptors a gateway with `orgs` organizations and `connections` HTTP
/// connections may hold.
pub fn descriptors_needed(orgs: usize, connections: usize) -> u64 {
    orgs as u64 * PER_ORG + connections as u64 + BASE
}

/// How the open-file `limit` is shared: at most `max_connections` HTTP
/// connections but never more than a quarter of the limit, and the rest for
/// org device stores, so that running out of descriptors costs some orgs
/// their turn (they wait in `error` and are retried), never the API.
/// Returns (connections, org stores open at once).
pub fn budget(limit: u64, max_connections: usize) -> (usize, usize) {
    let connections = (max_connections as u64).min(limit / 4).max(1);
    let orgs = limit.saturating_sub(connections + BASE) / PER_ORG;
    (connections as usize, orgs as usize)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn loose_entries_are_made_private() {
        let d = tempfile::tempdir().unwrap();
        let data = d.path().join("data");
        std::fs::create_dir_all(data.join("orgs/4")).unwrap();
        std::fs::write(data.join("wagate.db"), b"x").unwrap();
        std::fs::write(data.join("orgs/4/wa.db"), b"x").unwrap();
        for p in ["", "orgs", "orgs/4"] {
            std::fs::set_permissions(data.join(p), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        for p in ["wagate.db", "orgs/4/wa.db"] {
            std::fs::set_permissions(data.join(p), std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        assert_eq!(tighten(&data), 5);
        for p in ["", "orgs", "orgs/4"] {
            assert_eq!(mode(&data.join(p)), 0o700, "{p}");
        }
        for p in ["wagate.db", "orgs/4/wa.db"] {
            assert_eq!(mode(&data.join(p)), 0o600, "{p}");
        }
        assert_eq!(tighten(&data), 0, "nothing left to fix");
    }

    #[test]
    fn the_descriptor_budget_leaves_room_for_the_api() {
        // One descriptor per org (its socket): the device store is shared.
        assert_eq!(budget(1024, 1024), (256, 704));
        assert_eq!(budget(256, 1024), (64, 128));
        assert_eq!(budget(20_000, 1024), (1024, 18_912));
        assert_eq!(budget(10, 1024), (2, 0));
        let (c, o) = budget(1024, 1024);
        assert!(descriptors_needed(o, c) <= 1024);
    }

    #[test]
    fn admin_token_is_generated_once_with_private_mode() {
        let d = tempfile::tempdir().unwrap();
        let (t1, _) = admin_token(d.path(), None).unwrap();
        let (t2, _) = admin_token(d.path(), None).unwrap();
        assert_eq!(t1, t2);
        assert_eq!(mode(&d.path().join("admin.token")), 0o600);
        let (t3, src) = admin_token(d.path(), Some("from-env".into())).unwrap();
        assert_eq!(t3, "from-env");
        assert_eq!(src, "WAGATE_ADMIN_TOKEN");
    }
}

/// The name of a copy set aside now: `<org>-<why>-<UTC time>` (plus the
/// extension the engine gives it).
pub fn aside_name(org: &str, why: &str) -> String {
    let ts = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    format!("{org}-{why}-{ts}")
}

/// Move the folder `dir` into `aside_dir` as `aside_name(org, why)`; where
/// it went, or `None` when there is no such folder. Never deletes.
pub fn move_dir_aside(
    dir: &std::path::Path,
    aside_dir: &std::path::Path,
    org: &str,
    why: &str,
) -> std::io::Result<Option<std::path::PathBuf>> {
    if !dir.exists() {
        return Ok(None);
    }
    let target = aside_dir.join(aside_name(org, why));
    std::fs::create_dir_all(aside_dir)?;
    std::fs::rename(dir, &target)?;
    Ok(Some(target))
}

/// The file whose lock says who owns the data directory.
pub const LOCK_FILE: &str = "lock";

/// The data directory's one owner: an exclusive `flock` on `data/lock`,
/// held while the value lives (the kernel drops it when the process ends,
/// killed or not). The file says who holds it, for the sentence a second
/// process gets.
pub struct DirLock {
    _file: std::fs::File,
}

/// Take `data`'s lock for `what` (`serve`, `migrate-to-postgres`), or say
/// which process holds it.
pub fn lock(data: &Path, what: &str) -> anyhow::Result<DirLock> {
    use std::io::{Read, Seek, Write};
    let path = data.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    #[cfg(unix)]
    let locked = {
        use std::os::unix::io::AsRawFd;
        // SAFETY: flock on a descriptor this function owns; no memory is shared.
        unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
    };
    #[cfg(not(unix))]
    let locked = true;
    if !locked {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        let holder = holder.split_whitespace().collect::<Vec<_>>().join(" ");
        let holder = if holder.is_empty() {
            "another process".to_string()
        } else {
            holder
        };
        anyhow::bail!(
            "{} is in use: {holder} holds it; one wagate at a time writes a data directory (stop that one first, or give this one its own --data)",
            data.display()
        );
    }
    let note = format!(
        "wagate {what} (pid {}) since {}\n",
        std::process::id(),
        crate::times::rfc3339(chrono::Utc::now().timestamp_millis())
    );
    file.set_len(0)
        .and_then(|_| file.rewind())
        .and_then(|_| file.write_all(note.as_bytes()))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(DirLock { _file: file })
}

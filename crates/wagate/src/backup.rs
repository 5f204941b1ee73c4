//! Backups of a data directory: `wagate backup FILE` takes a consistent
//! snapshot while the gateway serves, `wagate restore FILE --data DIR`
//! rebuilds a data directory from one.
//!
//! A backup is a tar archive: `wagate-backup.json` (what it holds), the
//! gateway's database `wagate.db` and every org's WhatsApp state
//! `devices.db`, each copied with SQLite's online backup in one step (one
//! read transaction, so a consistent snapshot that writers never restart;
//! in WAL mode they are not blocked either), the admin token file, and the
//! credentials kept aside (`aside/`). Restore writes only into a new or
//! empty directory, takes only those names (no absolute path, no `..`, no
//! links), and checks each database's integrity before the directory is put
//! in place.

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use rusqlite::{Connection, OpenFlags};
use serde_json::{json, Value};

/// The archive's manifest, first in the archive.
const MANIFEST: &str = "wagate-backup.json";
/// Databases, copied with the online backup.
const DATABASES: [&str; 2] = ["wagate.db", "devices.db"];
/// Plain files and folders copied as they are.
const ADMIN_TOKEN: &str = "admin.token";
const ASIDE: &str = "aside";
/// The manifest's format; a restore refuses a newer one.
const FORMAT: u64 = 1;

/// What a backup or a restore handled, for the operator.
#[derive(Debug, Clone)]
pub struct Summary {
    pub orgs: i64,
    pub devices: i64,
    pub messages: i64,
    pub files: usize,
    pub bytes: u64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} org(s), {} linked device(s), {} message(s); {} file(s), {:.1} MB",
            self.orgs,
            self.devices,
            self.messages,
            self.files,
            self.bytes as f64 / 1e6
        )
    }
}

/// Snapshot the data directory `data` into the archive `file` (replaced
/// atomically when it exists). `say` gets a line per step.
pub fn backup(data: &Path, file: &Path, say: &mut dyn FnMut(&str)) -> anyhow::Result<Summary> {
    if crate::datadir::uses_postgres(data) {
        bail!(
            "the gateway of {} keeps its tables in PostgreSQL (--database): back them up with pg_dump (pg_dump -Fc -f wagate.dump <database>); the data directory itself holds only the admin token and aside/",
            data.display()
        );
    }
    let main = data.join("wagate.db");
    if !main.is_file() {
        bail!(
            "{} holds no wagate database (wagate.db): give the gateway's data directory with --data",
            data.display()
        );
    }
    crate::datadir::private_umask();
    let dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // Written inside the data directory, the archive could replace a live
    // database (`backup data/wagate.db`) and would be copied into the next
    // backup's `aside/`.
    if let (Ok(d), Ok(out)) = (std::fs::canonicalize(data), std::fs::canonicalize(dir)) {
        if out.starts_with(&d) {
            bail!(
                "{} is inside the data directory {}: write the backup somewhere else",
                file.display(),
                data.display()
            );
        }
    }
    let name = file
        .file_name()
        .with_context(|| format!("{} names no file", file.display()))?
        .to_string_lossy()
        .into_owned();
    let stage = tempfile::Builder::new()
        .prefix(&format!(".{name}.stage-"))
        .tempdir_in(dir)
        .with_context(|| format!("making a staging folder in {}", dir.display()))?;

    let mut files = vec![];
    for db in DATABASES {
        let src = data.join(db);
        if !src.is_file() {
            continue;
        }
        say(&format!("copying {} …", src.display()));
        let to = stage.path().join(db);
        let t0 = std::time::Instant::now();
        snapshot(&src, &to).with_context(|| format!("copying {}", src.display()))?;
        let size = std::fs::metadata(&to).map(|m| m.len()).unwrap_or(0);
        say(&format!(
            "  {db}: {:.1} MB in {:.1} s",
            size as f64 / 1e6,
            t0.elapsed().as_secs_f64()
        ));
        files.push(db.to_string());
    }
    let mut summary = count(stage.path())?;

    let out_tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.part-"))
        .tempfile_in(dir)
        .with_context(|| format!("making a file in {}", dir.display()))?;
    let mut tar = tar::Builder::new(std::io::BufWriter::new(out_tmp.as_file()));
    tar.mode(tar::HeaderMode::Deterministic);
    let manifest = json!({
        "format": FORMAT,
        "wagate": env!("CARGO_PKG_VERSION"),
        "created_ms": crate::store::now_ms(),
        "from": data.display().to_string(),
        "orgs": summary.orgs,
        "devices": summary.devices,
        "messages": summary.messages,
    });
    let manifest = serde_json::to_vec_pretty(&manifest)?;
    append_bytes(&mut tar, MANIFEST, &manifest)?;
    let mut bytes = manifest.len() as u64;
    for db in &files {
        bytes += append_file(&mut tar, db, &stage.path().join(db))?;
    }
    let token = data.join(ADMIN_TOKEN);
    if token.is_file() {
        bytes += append_file(&mut tar, ADMIN_TOKEN, &token)?;
        files.push(ADMIN_TOKEN.into());
    }
    let aside = data.join(ASIDE);
    if aside.is_dir() {
        let mut kept = 0;
        for (rel, path) in walk(&aside, Path::new(ASIDE))? {
            bytes += append_file(&mut tar, &rel.to_string_lossy(), &path)?;
            files.push(rel.to_string_lossy().into_owned());
            kept += 1;
        }
        say(&format!(
            "  aside/: {kept} file(s) of credentials kept aside"
        ));
    }
    let mut w = tar.into_inner().context("finishing the archive")?;
    w.flush().context("writing the archive")?;
    drop(w);
    out_tmp
        .as_file()
        .sync_all()
        .context("syncing the archive")?;
    out_tmp
        .persist(file)
        .map_err(|e| e.error)
        .with_context(|| format!("writing {}", file.display()))?;
    summary.files = files.len() + 1;
    summary.bytes = bytes;
    Ok(summary)
}

/// Rebuild a data directory `data` (new or empty) from the archive `file`.
pub fn restore(file: &Path, data: &Path, say: &mut dyn FnMut(&str)) -> anyhow::Result<Summary> {
    if data.exists() {
        let mut entries =
            std::fs::read_dir(data).with_context(|| format!("reading {}", data.display()))?;
        if entries.next().is_some() {
            bail!(
                "{} is not empty: restore only writes into a new or empty directory, it never overwrites data",
                data.display()
            );
        }
    }
    let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    crate::datadir::private_umask();
    let parent = data
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let stage = tempfile::Builder::new()
        .prefix(".wagate-restore-")
        .tempdir_in(parent)
        .with_context(|| format!("making a staging folder in {}", parent.display()))?;

    let mut archive = tar::Archive::new(std::io::BufReader::new(f));
    let mut manifest: Option<Value> = None;
    let mut files = 0;
    let mut bytes = 0;
    let not_backup = || {
        format!(
            "{} is not a wagate backup (made by `wagate backup`)",
            file.display()
        )
    };
    for entry in archive.entries().with_context(not_backup)? {
        let mut entry = entry.with_context(not_backup)?;
        let rel = entry.path().with_context(not_backup)?.into_owned();
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            continue;
        }
        if !kind.is_file() {
            bail!(
                "{}: entry {} is not a plain file; refused",
                file.display(),
                rel.display()
            );
        }
        let rel = allowed(&rel).with_context(|| {
            format!(
                "{}: entry {} is not part of a wagate backup; refused",
                file.display(),
                rel.display()
            )
        })?;
        if rel == Path::new(MANIFEST) {
            let mut buf = vec![];
            entry
                .by_ref()
                .take(1 << 20)
                .read_to_end(&mut buf)
                .with_context(not_backup)?;
            manifest = Some(serde_json::from_slice(&buf).with_context(not_backup)?);
            continue;
        }
        if manifest.is_none() {
            bail!("{}", not_backup());
        }
        let to = stage.path().join(&rel);
        if let Some(p) = to.parent() {
            std::fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?;
        }
        let mut out =
            std::fs::File::create(&to).with_context(|| format!("writing {}", to.display()))?;
        bytes += std::io::copy(&mut entry, &mut out)
            .with_context(|| format!("{}: reading {}", file.display(), rel.display()))?;
        out.sync_all()?;
        files += 1;
    }
    let Some(manifest) = manifest else {
        bail!("{}", not_backup());
    };
    let format = manifest["format"].as_u64().unwrap_or(0);
    if format == 0 || format > FORMAT {
        bail!(
            "{} was made by wagate {} in backup format {format}; this wagate reads format {FORMAT}: restore it with that version or a newer one",
            file.display(),
            manifest["wagate"].as_str().unwrap_or("?")
        );
    }
    if !stage.path().join("wagate.db").is_file() {
        bail!("{} holds no wagate.db; not restored", file.display());
    }
    for db in DATABASES {
        let p = stage.path().join(db);
        if p.is_file() {
            say(&format!("checking {db} …"));
            check(&p)
                .with_context(|| format!("{}: {db} is damaged; not restored", file.display()))?;
        }
    }
    let mut summary = count(stage.path())?;
    summary.files = files + 1;
    summary.bytes = bytes;
    crate::datadir::tighten(stage.path());
    if data.exists() {
        std::fs::remove_dir(data).with_context(|| format!("replacing {}", data.display()))?;
    }
    let stage = stage.keep();
    std::fs::rename(&stage, data)
        .with_context(|| format!("moving the restored files to {}", data.display()))?;
    Ok(summary)
}

/// Copy the database at `src` to a new file `to` with SQLite's online
/// backup, all pages in one step.
fn snapshot(src: &Path, to: &Path) -> anyhow::Result<()> {
    let src = Connection::open_with_flags(
        src,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    src.busy_timeout(Duration::from_secs(30))?;
    let mut dst = Connection::open(to)?;
    {
        let b = rusqlite::backup::Backup::new(&src, &mut dst)?;
        loop {
            match b.step(-1)? {
                rusqlite::backup::StepResult::Done => break,
                rusqlite::backup::StepResult::More => continue,
                // Busy or locked: try again shortly.
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
    // A file of its own: no WAL beside it.
    dst.pragma_update(None, "journal_mode", "DELETE")?;
    check(to)?;
    Ok(())
}

/// `PRAGMA integrity_check` says ok.
fn check(db: &Path) -> anyhow::Result<()> {
    let c = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let r: String = c.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if r != "ok" {
        bail!("integrity check: {r}");
    }
    Ok(())
}

/// Orgs, devices and messages in the databases under `dir`.
fn count(dir: &Path) -> anyhow::Result<Summary> {
    let one = |db: &str, sql: &str| -> anyhow::Result<i64> {
        let p = dir.join(db);
        if !p.is_file() {
            return Ok(0);
        }
        let c = Connection::open_with_flags(&p, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        Ok(c.query_row(sql, [], |r| r.get(0)).unwrap_or(0))
    };
    Ok(Summary {
        orgs: one("wagate.db", "SELECT COUNT(*) FROM orgs")?,
        devices: one("devices.db", "SELECT COUNT(*) FROM device")?,
        messages: one("wagate.db", "SELECT COUNT(*) FROM messages")?,
        files: 0,
        bytes: 0,
    })
}

/// The path to write an archive entry to, if a backup may hold it.
fn allowed(rel: &Path) -> Option<PathBuf> {
    let parts: Vec<&str> = rel
        .components()
        .map(|c| match c {
            Component::Normal(s) => s.to_str(),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    match parts.as_slice() {
        [one] if *one == MANIFEST || *one == ADMIN_TOKEN || DATABASES.contains(one) => {
            Some(PathBuf::from(one))
        }
        [first, rest @ ..] if *first == ASIDE && !rest.is_empty() && rest.len() <= 2 => {
            Some(parts.iter().collect())
        }
        _ => None,
    }
}

/// Regular files under `root` (two levels at most, as `aside/` holds), with
/// their names under `prefix`; links are skipped.
fn walk(root: &Path, prefix: &Path) -> anyhow::Result<Vec<(PathBuf, PathBuf)>> {
    let mut out = vec![];
    let mut todo = vec![(root.to_path_buf(), prefix.to_path_buf(), 0)];
    while let Some((dir, rel, depth)) = todo.pop() {
        for e in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let e = e?;
            let t = e.file_type()?;
            let (p, r) = (e.path(), rel.join(e.file_name()));
            if t.is_file() {
                out.push((r, p));
            } else if t.is_dir() && depth == 0 {
                todo.push((p, r, depth + 1));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn append_bytes<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    data: &[u8],
) -> anyhow::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o600);
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, name, data)
        .with_context(|| format!("adding {name} to the archive"))
}

fn append_file<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    path: &Path,
) -> anyhow::Result<u64> {
    let mut f = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let len = f.metadata()?.len();
    let mut h = tar::Header::new_gnu();
    h.set_size(len);
    h.set_mode(0o600);
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, name, &mut f)
        .with_context(|| format!("adding {} to the archive", path.display()))?;
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_names_of_a_backup_are_taken() {
        for ok in [
            "wagate.db",
            "devices.db",
            "admin.token",
            "wagate-backup.json",
            "aside/4-reset-1.db",
            "aside/4-migrated-1/wa.db",
        ] {
            assert_eq!(allowed(Path::new(ok)), Some(PathBuf::from(ok)), "{ok}");
        }
        for bad in [
            "/etc/passwd",
            "../wagate.db",
            "aside/../../x",
            "aside",
            "aside/a/b/c",
            "orgs/4/wa.db",
            "wagate.db/x",
            "./wagate.db/../x",
            "other.db",
        ] {
            assert_eq!(allowed(Path::new(bad)), None, "{bad}");
        }
    }
}

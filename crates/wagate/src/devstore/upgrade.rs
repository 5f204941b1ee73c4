//! From the one-folder-per-org layout of earlier versions
//! (`data/orgs/<org>/wa.db`, the library's own store) to `devices.db`, at
//! start-up and without a QR scan: each org's file is carried into its
//! device, then its folder is moved to `data/aside/<org>-migrated-<time>`
//! (kept, never deleted). A file that is not a sound database is moved
//! aside as `corrupt` and that org starts unlinked, as it would have before;
//! one that cannot be carried over is moved aside as `unmigrated`, to be
//! restored by hand (`wagate org restore-credentials`).

use std::path::Path;

use super::copy::import_legacy;
use super::Devices;

/// What the upgrade did, for the log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Upgraded {
    /// Orgs whose device was carried over.
    pub carried: usize,
    /// Of those, the ones that were linked.
    pub linked: usize,
    /// Files set aside as corrupt, or that could not be carried over.
    pub set_aside: usize,
}

/// SQLite's file header.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Is `db` a SQLite file whose pages pass `quick_check`? `Ok(false)`: no
/// file, or an empty one. `Err`: why it is not sound.
fn sound(db: &Path) -> Result<bool, String> {
    let meta = match std::fs::metadata(db) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(format!("cannot be examined: {e}")),
    };
    if meta.len() == 0 {
        return Ok(false);
    }
    let mut head = [0u8; 16];
    use std::io::Read;
    std::fs::File::open(db)
        .and_then(|mut f| f.read_exact(&mut head))
        .map_err(|e| format!("cannot be read: {e}"))?;
    if &head != SQLITE_MAGIC {
        return Err("is not a SQLite database".into());
    }
    let conn = rusqlite::Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("cannot be opened: {e}"))?;
    let verdict: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|e| format!("cannot be checked: {e}"))?;
    if verdict != "ok" {
        return Err(format!("is damaged: {verdict}"));
    }
    Ok(true)
}

/// Carry every org folder under `orgs_dir` whose org is in `orgs` (id,
/// device number) into `devices`.
pub async fn from_org_folders(
    devices: &Devices,
    orgs: &[(String, i64)],
    orgs_dir: &Path,
    aside_dir: &Path,
) -> Upgraded {
    let mut done = Upgraded::default();
    for (org, dev) in orgs {
        let dir = orgs_dir.join(org);
        if !dir.is_dir() {
            continue;
        }
        let db = dir.join("wa.db");
        let already = devices.has_device(*dev).await.unwrap_or(false);
        let outcome = match (already, sound(&db)) {
            // Carried over before a crash left the folder: only move it.
            (true, _) | (false, Ok(false)) => Ok("migrated"),
            (false, Err(why)) => {
                tracing::warn!(org = %org, file = %db.display(), %why, "an org's WhatsApp file is damaged; it starts unlinked");
                Err("corrupt")
            }
            (false, Ok(true)) => match import_legacy(devices, &db, *dev).await {
                Ok(c) => {
                    done.carried += 1;
                    done.linked += usize::from(c.linked);
                    tracing::info!(org = %org, rows = c.rows, linked = c.linked, "carried an org's WhatsApp state into devices.db");
                    Ok("migrated")
                }
                Err(e) => {
                    tracing::error!(org = %org, error = %e, "cannot carry an org's WhatsApp state over; its file is kept aside");
                    // Nothing half-carried stays behind.
                    let _ = devices.delete(*dev).await;
                    Err("unmigrated")
                }
            },
        };
        let why = match outcome {
            Ok(w) => w,
            Err(w) => {
                done.set_aside += 1;
                w
            }
        };
        match crate::datadir::move_dir_aside(&dir, aside_dir, org, why) {
            Ok(None) => {}
            Ok(Some(p)) => {
                tracing::info!(org = %org, aside = %p.display(), "the org's old folder is kept aside ({why})")
            }
            Err(e) => {
                tracing::error!(org = %org, error = %e, "cannot move the org's old folder aside")
            }
        }
    }
    done
}

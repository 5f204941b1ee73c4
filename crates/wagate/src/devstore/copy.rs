//! One device's rows in and out of `devices.db`:
//! - `export`: into a file of their own with the same tables (the copy kept
//!   aside on logout, reset, corruption or deletion; credentials are never
//!   just deleted);
//! - `import`: such a file back in, under a device number (a restore);
//! - `import_legacy`: an org's `wa.db` from the one-file-per-org layout
//!   (the library's own SQLite store; a copy of it is read, through that
//!   store where its rows are encoded and by SQL where they are plain);
//! - `restore`: whichever of the two a file or folder kept aside is.

use std::path::Path;

use rusqlite::{params, Connection};
use whatsapp_rust::store::SqliteStore;
use whatsapp_rust::wacore::appstate::processor::AppStateMutationMAC;
use whatsapp_rust::wacore::store::traits::{
    AppSyncStore, DeviceStore, LidPnMappingEntry, MsgSecretEntry, MsgSecretStore,
    PendingInboundRow, ProtocolStore, SignalStore, TcTokenEntry,
};

use super::sql::{Stmt, Val};
use super::{schema, Devices, OrgDevice, TABLES};

/// Why a copy failed, in a sentence.
pub type CopyError = String;

/// One table's rows, every column (`dev` first), as read.
type TableRows = (&'static str, Vec<Vec<Val>>);

/// `INSERT INTO table VALUES (?1, …, ?width)`: one row of every column.
fn insert_row(table: &str, width: usize) -> String {
    let marks = (1..=width)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("INSERT INTO {table} VALUES ({marks})")
}

/// Copy every row of device `dev` into a new file at `to` (which must not
/// exist); how many rows were copied. The rows are read through the
/// device statements, so this works on SQLite and PostgreSQL alike; the
/// copy is always a SQLite file with the device tables. The caller makes
/// sure nothing writes the device meanwhile (`Devices::retire`).
pub async fn export(devices: &Devices, dev: i64, to: &Path) -> Result<usize, CopyError> {
    if to.exists() {
        return Err(format!("{} exists already", to.display()));
    }
    let sql = devices.sql();
    let mut tables: Vec<TableRows> = Vec::with_capacity(TABLES.len());
    for t in TABLES {
        let rows = sql
            .query(
                format!("SELECT * FROM {t} WHERE dev = ?1").into(),
                vec![Val::Int(dev)],
            )
            .await
            .map_err(|e| format!("cannot read device {dev} ({t}): {e}"))?;
        tables.push((t, rows));
    }
    let to = to.to_path_buf();
    tokio::task::spawn_blocking(move || -> Result<usize, CopyError> {
        let out =
            Connection::open(&to).map_err(|e| format!("cannot create {}: {e}", to.display()))?;
        schema::migrate(&out).map_err(|e| format!("cannot write {}: {e}", to.display()))?;
        let write = || -> rusqlite::Result<usize> {
            out.execute_batch("BEGIN")?;
            let mut n = 0;
            for (t, rows) in &tables {
                let Some(width) = rows.first().map(Vec::len) else {
                    continue;
                };
                let mut st = out.prepare(&insert_row(t, width))?;
                for row in rows {
                    n += st.execute(rusqlite::params_from_iter(row.iter()))?;
                }
            }
            out.execute_batch("COMMIT")?;
            Ok(n)
        };
        write().map_err(|e| format!("cannot copy device {dev} into {}: {e}", to.display()))
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Every row of every device table in the copy at `from`, which must hold
/// exactly one device.
fn read_copy(from: &Path) -> Result<Vec<TableRows>, CopyError> {
    let c = Connection::open_with_flags(from, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("cannot open {}: {e}", from.display()))?;
    let devs: i64 = c
        .query_row("SELECT COUNT(DISTINCT dev) FROM device", [], |r| r.get(0))
        .map_err(|e| format!("{} is not a device copy: {e}", from.display()))?;
    if devs != 1 {
        return Err(format!("{} holds {devs} devices, not one", from.display()));
    }
    let read = |t: &str| -> Result<Vec<Vec<Val>>, String> {
        let mut st = c
            .prepare(&format!("SELECT * FROM {t}"))
            .map_err(|e| e.to_string())?;
        crate::db::sqlite_rows(&mut st, &[], None)
            .map(|rows| rows.into_iter().map(|r| r.0).collect())
            .map_err(|e| e.to_string())
    };
    TABLES
        .iter()
        .map(|t| {
            read(t)
                .map(|rows| (*t, rows))
                .map_err(|e| format!("cannot read {} ({t}): {e}", from.display()))
        })
        .collect()
}

/// Put the copy at `from` (one `export` made) in place of device `dev`'s
/// rows, in one transaction; how many rows it holds.
pub async fn import(devices: &Devices, from: &Path, dev: i64) -> Result<usize, CopyError> {
    let path = from.to_path_buf();
    let tables = tokio::task::spawn_blocking(move || read_copy(&path))
        .await
        .map_err(|e| e.to_string())??;
    let mut batch: Vec<Stmt> = Vec::new();
    let mut n = 0;
    for (t, rows) in tables {
        batch.push((
            format!("DELETE FROM {t} WHERE dev = ?1").into(),
            vec![Val::Int(dev)],
        ));
        let Some(width) = rows.first().map(Vec::len) else {
            continue;
        };
        let insert = insert_row(t, width);
        for mut row in rows {
            // The first column is the device number: it becomes `dev`.
            row[0] = Val::Int(dev);
            batch.push((insert.clone().into(), row));
            n += 1;
        }
    }
    devices
        .sql()
        .exec(batch)
        .await
        .map_err(|e| format!("cannot restore device {dev}: {e}"))?;
    Ok(n)
}

/// What `import_legacy` carried over.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Carried {
    pub rows: usize,
    /// Whether the device had been linked (it knew its number).
    pub linked: bool,
}

/// Copy the per-org `wa.db` at `legacy` (the library's own store, device
/// number 1) into device `dev` of `devices.db`. A copy of the file is
/// opened through the library's store (which may update its schema), so
/// the original stays as it was.
pub async fn import_legacy(
    devices: &Devices,
    legacy: &Path,
    dev: i64,
) -> Result<Carried, CopyError> {
    // Read a copy: opening the library's store may update its schema, and
    // the original is kept as it was.
    // Beside devices.db (the same file system); on PostgreSQL, in the
    // system's temporary directory.
    let near = devices
        .path()
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir);
    let work = tempfile::Builder::new()
        .prefix(&format!(".import-{dev}-"))
        .tempdir_in(&near)
        .map_err(|e| format!("cannot create a work folder in {}: {e}", near.display()))?;
    let copy = work.path().join("wa.db");
    let copied = (|| -> std::io::Result<()> {
        std::fs::copy(legacy, &copy)?;
        for ext in ["db-wal", "db-shm"] {
            let side = legacy.with_extension(ext);
            if side.exists() {
                std::fs::copy(&side, copy.with_extension(ext))?;
            }
        }
        Ok(())
    })();
    let result = match copied {
        Ok(()) => import_library_store(devices, &copy, dev).await,
        Err(e) => Err(format!("cannot copy {}: {e}", legacy.display())),
    };
    drop(work);
    result
}

/// Restore device `dev` from `from`: a copy `export` made, an earlier
/// version's folder, or its `wa.db`. What `dev` had is replaced.
pub async fn restore(devices: &Devices, from: &Path, dev: i64) -> Result<usize, CopyError> {
    let legacy = if from.is_dir() {
        Some(from.join("wa.db"))
    } else if is_library_store(from) {
        Some(from.to_path_buf())
    } else {
        None
    };
    match legacy {
        Some(db) => {
            if !db.exists() {
                return Err(format!("{} holds no wa.db", from.display()));
            }
            devices.delete(dev).await.map_err(|e| e.to_string())?;
            let c = import_legacy(devices, &db, dev).await?;
            if c.rows == 0 {
                return Err(format!("{} holds no device", db.display()));
            }
            Ok(c.rows)
        }
        None => import(devices, from, dev).await,
    }
}

/// Is `p` the library's own store (a `device` table keyed by `id`) rather
/// than one of ours (keyed by `dev`)?
fn is_library_store(p: &Path) -> bool {
    let Ok(c) = Connection::open_with_flags(p, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY) else {
        return false;
    };
    let has = |col: &str| {
        c.query_row(
            "SELECT 1 FROM pragma_table_info('device') WHERE name = ?1",
            [col],
            |_| Ok(()),
        )
        .is_ok()
    };
    has("id") && !has("dev")
}

async fn import_library_store(
    devices: &Devices,
    legacy: &Path,
    dev: i64,
) -> Result<Carried, CopyError> {
    let url = legacy.to_str().ok_or("the legacy path is not UTF-8")?;
    let old = SqliteStore::new(url)
        .await
        .map_err(|e| format!("cannot open {}: {e}", legacy.display()))?;
    let Some(device) = old
        .load()
        .await
        .map_err(|e| format!("cannot read the device in {}: {e}", legacy.display()))?
    else {
        return Ok(Carried::default());
    };
    let to: OrgDevice = devices.device(dev);
    let mut carried = Carried {
        rows: 1,
        linked: device.pn.is_some(),
    };
    let fail = |what: &str, e: &dyn std::fmt::Display| format!("{what}: {e}");
    to.save(&device)
        .await
        .map_err(|e| fail("saving the device", &e))?;

    let plain = read_plain(legacy).await?;
    // Batches where the rows are many (812 one-time pre-keys an org): one
    // write each, not one per row.
    let identities: Vec<(std::sync::Arc<str>, [u8; 32])> = plain
        .identities
        .into_iter()
        .map(|(a, k)| (a.into(), k))
        .collect();
    carried.rows += identities.len();
    to.put_identities_batch(&identities)
        .await
        .map_err(|e| fail("identities", &e))?;
    let sessions: Vec<(std::sync::Arc<str>, bytes::Bytes)> = plain
        .sessions
        .into_iter()
        .map(|(a, r)| (a.into(), r.into()))
        .collect();
    carried.rows += sessions.len();
    to.put_sessions_batch(&sessions)
        .await
        .map_err(|e| fail("sessions", &e))?;
    for uploaded in [false, true] {
        let keys: Vec<(u32, bytes::Bytes)> = plain
            .prekeys
            .iter()
            .filter(|(_, _, u)| *u == uploaded)
            .map(|(id, rec, _)| (*id, bytes::Bytes::copy_from_slice(rec)))
            .collect();
        carried.rows += keys.len();
        to.store_prekeys_batch(&keys, uploaded)
            .await
            .map_err(|e| fail("pre-keys", &e))?;
    }
    for (id, rec) in plain.signed_prekeys {
        to.store_signed_prekey(id, &rec)
            .await
            .map_err(|e| fail("signed pre-keys", &e))?;
        carried.rows += 1;
    }
    let sender_keys: Vec<(std::sync::Arc<str>, bytes::Bytes)> = plain
        .sender_keys
        .into_iter()
        .map(|(a, r)| (a.into(), r.into()))
        .collect();
    carried.rows += sender_keys.len();
    to.put_sender_keys_batch(&sender_keys)
        .await
        .map_err(|e| fail("sender keys", &e))?;
    for (group, devs) in plain.sender_key_devices {
        let entries: Vec<(&str, bool)> = devs.iter().map(|(d, k)| (d.as_str(), *k)).collect();
        to.set_sender_key_status(&group, &entries)
            .await
            .map_err(|e| fail("sender-key devices", &e))?;
        carried.rows += entries.len();
    }
    carried.rows += plain.lids.len();
    to.put_lid_mappings(&plain.lids)
        .await
        .map_err(|e| fail("LID map", &e))?;
    for (addr, msg, key) in plain.base_keys {
        to.save_base_key(&addr, &msg, &key)
            .await
            .map_err(|e| fail("base keys", &e))?;
        carried.rows += 1;
    }
    for (group, blob) in plain.groups {
        to.put_group_metadata(&group, &blob)
            .await
            .map_err(|e| fail("groups", &e))?;
        carried.rows += 1;
    }
    for (jid, entry) in plain.tc_tokens {
        to.put_tc_token(&jid, &entry)
            .await
            .map_err(|e| fail("tokens", &e))?;
        carried.rows += 1;
    }
    for (chat, id, payload) in plain.sent {
        to.store_sent_message(&chat, &id, &payload)
            .await
            .map_err(|e| fail("sent messages", &e))?;
        carried.rows += 1;
    }
    let pending: Vec<PendingInboundRow> = plain
        .pending
        .iter()
        .map(|(chat, sender, id, message)| PendingInboundRow {
            chat,
            sender,
            id,
            message,
        })
        .collect();
    carried.rows += pending.len();
    to.store_pending_inbound_batch(&pending)
        .await
        .map_err(|e| fail("pending inbound", &e))?;
    carried.rows += plain.secrets.len();
    to.put_msg_secrets(plain.secrets)
        .await
        .map_err(|e| fail("message secrets", &e))?;
    for (name, macs) in plain.macs {
        // One write per app-state version of the collection.
        let mut versions: Vec<u64> = macs.iter().map(|(v, _, _)| *v).collect();
        versions.sort_unstable();
        versions.dedup();
        for version in versions {
            let batch: Vec<AppStateMutationMAC> = macs
                .iter()
                .filter(|(v, _, _)| *v == version)
                .map(|(_, index_mac, value_mac)| AppStateMutationMAC {
                    index_mac: index_mac.clone(),
                    value_mac: value_mac.clone(),
                })
                .collect();
            carried.rows += batch.len();
            to.put_mutation_macs(&name, version, &batch)
                .await
                .map_err(|e| fail("mutation MACs", &e))?;
        }
    }
    // Encoded in the library's own format: read through its store.
    for key_id in plain.sync_key_ids {
        if let Some(k) = old
            .get_sync_key(&key_id)
            .await
            .map_err(|e| fail("sync keys", &e))?
        {
            to.set_sync_key(&key_id, k)
                .await
                .map_err(|e| fail("sync keys", &e))?;
            carried.rows += 1;
        }
    }
    for name in plain.version_names {
        let v = old
            .get_version(&name)
            .await
            .map_err(|e| fail("app-state versions", &e))?;
        to.set_version(&name, v)
            .await
            .map_err(|e| fail("app-state versions", &e))?;
        carried.rows += 1;
    }
    for user in plain.registry_users {
        if let Some(r) = old
            .get_devices(&user)
            .await
            .map_err(|e| fail("device lists", &e))?
        {
            to.update_device_list(r)
                .await
                .map_err(|e| fail("device lists", &e))?;
            carried.rows += 1;
        }
    }
    Ok(carried)
}

type Macs = Vec<(String, Vec<(u64, Vec<u8>, Vec<u8>)>)>;

/// The legacy rows that are plain columns, and the keys of the encoded ones.
#[derive(Default)]
struct Plain {
    identities: Vec<(String, [u8; 32])>,
    sessions: Vec<(String, Vec<u8>)>,
    prekeys: Vec<(u32, Vec<u8>, bool)>,
    signed_prekeys: Vec<(u32, Vec<u8>)>,
    sender_keys: Vec<(String, Vec<u8>)>,
    sender_key_devices: Vec<(String, Vec<(String, bool)>)>,
    lids: Vec<LidPnMappingEntry>,
    base_keys: Vec<(String, String, Vec<u8>)>,
    groups: Vec<(String, Vec<u8>)>,
    tc_tokens: Vec<(String, TcTokenEntry)>,
    sent: Vec<(String, String, Vec<u8>)>,
    pending: Vec<(String, String, String, Vec<u8>)>,
    secrets: Vec<MsgSecretEntry>,
    macs: Macs,
    sync_key_ids: Vec<Vec<u8>>,
    version_names: Vec<String>,
    registry_users: Vec<String>,
}

async fn read_plain(legacy: &Path) -> Result<Plain, CopyError> {
    let legacy = legacy.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let c = Connection::open_with_flags(&legacy, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| format!("cannot open {}: {e}", legacy.display()))?;
        plain_rows(&c).map_err(|e| format!("cannot read {}: {e}", legacy.display()))
    })
    .await
    .map_err(|e| e.to_string())?
}

fn plain_rows(c: &Connection) -> rusqlite::Result<Plain> {
    let mut p = Plain::default();
    /// Every row of a query on the library's single device (id 1).
    fn all<T>(
        c: &Connection,
        sql: &str,
        f: impl FnMut(&rusqlite::Row) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<Vec<T>> {
        c.prepare(sql)?.query_map(params![1i64], f)?.collect()
    }
    p.identities = all(
        c,
        "SELECT address, key FROM identities WHERE device_id = ?1",
        |r| {
            let key: Vec<u8> = r.get(1)?;
            Ok((r.get(0)?, key))
        },
    )?
    .into_iter()
    .filter_map(|(a, k): (String, Vec<u8>)| <[u8; 32]>::try_from(k).ok().map(|k| (a, k)))
    .collect();
    p.sessions = all(
        c,
        "SELECT address, record FROM sessions WHERE device_id = ?1",
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    p.prekeys = all(
        c,
        "SELECT id, key, uploaded FROM prekeys WHERE device_id = ?1",
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    p.signed_prekeys = all(
        c,
        "SELECT id, record FROM signed_prekeys WHERE device_id = ?1",
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    p.sender_keys = all(
        c,
        "SELECT address, record FROM sender_keys WHERE device_id = ?1",
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let skd: Vec<(String, String, bool)> = all(
        c,
        "SELECT group_jid, device_jid, has_key != 0 FROM sender_key_devices WHERE device_id = ?1 ORDER BY group_jid",
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    for (g, d, k) in skd {
        match p.sender_key_devices.last_mut() {
            Some((last, devs)) if *last == g => devs.push((d, k)),
            _ => p.sender_key_devices.push((g, vec![(d, k)])),
        }
    }
    p.lids = all(
        c,
        "SELECT lid, phone_number, created_at, updated_at, learning_source FROM lid_pn_mapping
         WHERE device_id = ?1 ORDER BY updated_at",
        lid_entry,
    )?;
    p.base_keys = all(
        c,
        "SELECT address, message_id, base_key FROM base_keys WHERE device_id = ?1",
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    p.groups = all(
        c,
        "SELECT group_jid, info FROM group_metadata WHERE device_id = ?1",
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    p.tc_tokens = all(
        c,
        "SELECT jid, token, token_timestamp, sender_timestamp FROM tc_tokens WHERE device_id = ?1",
        |r| {
            Ok((
                r.get(0)?,
                TcTokenEntry {
                    token: r.get(1)?,
                    token_timestamp: r.get(2)?,
                    sender_timestamp: r.get(3)?,
                },
            ))
        },
    )?;
    p.sent = all(
        c,
        "SELECT chat_jid, message_id, payload FROM sent_messages WHERE device_id = ?1",
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    p.pending = all(
        c,
        "SELECT chat, sender, id, message FROM pending_inbound_messages WHERE device_id = ?1",
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    p.secrets = all(
        c,
        "SELECT chat, sender, msg_id, secret, expires_at, message_ts FROM msg_secrets WHERE device_id = ?1",
        |r| {
            let (chat, sender, id, secret): (String, String, String, Vec<u8>) =
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
            Ok((chat, sender, id, secret, r.get::<_, i64>(4)?, r.get::<_, i64>(5)?))
        },
    )?
    .into_iter()
    .filter_map(|(chat, sender, id, secret, expires_at, message_ts)| {
        Some(MsgSecretEntry {
            chat: chat.into(),
            sender: sender.into(),
            msg_id: id.into(),
            secret: secret.try_into().ok()?,
            expires_at,
            message_ts,
        })
    })
    .collect();
    let macs: Vec<(String, i64, Vec<u8>, Vec<u8>)> = all(
        c,
        "SELECT name, version, index_mac, value_mac FROM app_state_mutation_macs
         WHERE device_id = ?1 ORDER BY name",
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    for (name, version, index, value) in macs {
        let row = (version.max(0) as u64, index, value);
        match p.macs.last_mut() {
            Some((last, rows)) if *last == name => rows.push(row),
            _ => p.macs.push((name, vec![row])),
        }
    }
    p.sync_key_ids = all(
        c,
        "SELECT key_id FROM app_state_keys WHERE device_id = ?1",
        |r| r.get(0),
    )?;
    p.version_names = all(
        c,
        "SELECT name FROM app_state_versions WHERE device_id = ?1",
        |r| r.get(0),
    )?;
    p.registry_users = all(
        c,
        "SELECT user_id FROM device_registry WHERE device_id = ?1",
        |r| r.get(0),
    )?;
    Ok(p)
}

/// A `lid_map` row (lid, pn, created_at, updated_at, source) as the library's entry.
fn lid_entry(r: &rusqlite::Row) -> rusqlite::Result<LidPnMappingEntry> {
    Ok(LidPnMappingEntry {
        lid: r.get(0)?,
        phone_number: r.get(1)?,
        created_at: r.get(2)?,
        updated_at: r.get(3)?,
        learning_source: r.get(4)?,
    })
}

//! One database for every org's WhatsApp client state (`data/devices.db`):
//! one file, one writer thread with group commit and one reader, whatever
//! the number of orgs. Each org is a device number in it (`dev`, its
//! incarnation); `OrgDevice` is the client library's storage backend for
//! one org, every query scoped to its `dev` and written once in `sql.rs`'s
//! portable form, so the same code runs on PostgreSQL (`OrgDevice::on`).
//! Commits are `synchronous = NORMAL` in WAL, as the library's own SQLite
//! store does: they survive a killed process without an fsync each.
//!
//! `copy.rs` moves one device's rows to and from a file of its own (the
//! copy kept aside, a restore, the per-org `wa.db` of earlier versions).

mod appsync;
pub mod copy;
mod protocol;
mod schema;
mod secrets;
mod signal;
pub mod sql;
#[cfg(test)]
mod tests;
pub mod upgrade;

use parking_lot::Mutex;
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use sql::{Done, FromVal, Rows, Val};
use whatsapp_rust::wacore::store::error::{Result, StoreError as WaError};
use whatsapp_rust::wacore::store::traits::DeviceStore;

use crate::store::{Kind, Store, StoreError};

pub use schema::{SCHEMA, SQLITE, TABLES};

const DEVICES: Kind = Kind {
    writer: "wagate-devices-writer",
    migrate: schema::migrate,
    synchronous: "NORMAL",
    cache_kib: 4096,
    live_events: 1,
};

/// Handle to `devices.db`; cheap to clone.
#[derive(Clone)]
pub struct Devices {
    db: Store,
    /// The same database, through the backend-neutral statements.
    sql: Arc<dyn sql::DeviceSql>,
    path: PathBuf,
    /// The flag shared by the handles given out for each device.
    live: Arc<Mutex<HashMap<i64, Arc<AtomicBool>>>>,
}

impl Devices {
    /// Open (creating or migrating) the database at `path`.
    pub fn open(path: &Path) -> std::result::Result<Devices, StoreError> {
        let db = Store::open_kind(path, &DEVICES)?;
        Ok(Devices {
            sql: Arc::new(sql::StoreSql { db: db.clone() }),
            db,
            path: path.to_path_buf(),
            live: Arc::default(),
        })
    }

    /// The device tables in PostgreSQL at `url` (schema already migrated).
    /// Copies aside (`copy.rs`) are SQLite files and are not made there yet.
    pub async fn open_pg(url: &str) -> std::result::Result<Devices, StoreError> {
        let db = Store::open_pg(url, &DEVICES).await?;
        Ok(Devices {
            sql: Arc::new(sql::StoreSql { db: db.clone() }),
            db,
            path: PathBuf::new(),
            live: Arc::default(),
        })
    }

    /// The device tables as backend-neutral SQL (`sql.rs`).
    pub fn sql(&self) -> Arc<dyn sql::DeviceSql> {
        self.sql.clone()
    }

    /// The storage backend of device `dev` (every handle given out until
    /// the next `retire` of `dev` shares one flag).
    pub fn device(&self, dev: i64) -> OrgDevice {
        let retired = self.live.lock().entry(dev).or_default().clone();
        OrgDevice {
            sql: self.sql.clone(),
            dev,
            retired,
        }
    }

    /// Refuse every later write through the handles of `dev` given out so
    /// far: a client that is shutting down cannot write its device back
    /// after it was set aside. Writes queued before this still apply first.
    pub fn retire(&self, dev: i64) {
        if let Some(flag) = self.live.lock().remove(&dev) {
            flag.store(true, Ordering::SeqCst);
        }
    }

    /// Is there a device row for `dev` (an org that was ever opened)?
    pub async fn has_device(&self, dev: i64) -> std::result::Result<bool, sql::SqlError> {
        Ok(!self
            .sql
            .query(
                "SELECT 1 FROM device WHERE dev = ?1".into(),
                vec![Val::Int(dev)],
            )
            .await?
            .is_empty())
    }

    /// Is device `dev` stored with credentials (linked to a number)? Only a
    /// device that says `"pn": null` is not; any row that is not a device
    /// counts as stored, so that opening it finds the damage.
    pub async fn linked(&self, dev: i64) -> std::result::Result<bool, sql::SqlError> {
        let rows = self
            .sql
            .query(
                "SELECT data FROM device WHERE dev = ?1".into(),
                vec![Val::Int(dev)],
            )
            .await?;
        let Some(data) = rows.into_iter().next().and_then(|r| r.into_iter().next()) else {
            return Ok(false);
        };
        // Only JSON whose `pn` is present and null is an unlinked device.
        let unlinked = match data {
            Val::Text(t) => serde_json::from_str::<serde_json::Value>(&t)
                .ok()
                .and_then(|v| v.get("pn").map(serde_json::Value::is_null))
                .unwrap_or(false),
            _ => false,
        };
        Ok(!unlinked)
    }

    /// Wait until every write queued so far is committed.
    pub async fn flush(&self) -> std::result::Result<(), StoreError> {
        self.db.write(|_| Ok(())).await
    }

    /// Delete every row of `dev`, in one transaction.
    pub async fn delete(&self, dev: i64) -> std::result::Result<(), sql::SqlError> {
        self.sql
            .exec(
                TABLES
                    .iter()
                    .map(|t| {
                        (
                            format!("DELETE FROM {t} WHERE dev = ?1").into(),
                            vec![Val::Int(dev)],
                        )
                    })
                    .collect(),
            )
            .await
            .map(|_| ())
    }

    /// Where the file is (copies in and out open it beside the writer).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this node may act for device `dev` now (always, without
    /// fences).
    pub fn may_act(&self, dev: i64) -> bool {
        self.db.may_act(dev)
    }

    /// Fence device writes by this node's leases (several nodes).
    pub fn set_fences(&self, fences: std::sync::Arc<dyn crate::store::Fences>) {
        self.db.set_fences(fences);
    }

    /// Commit what is queued and stop the writer.
    pub async fn close(&self, within: std::time::Duration) -> bool {
        self.db.close(within).await
    }
}

/// One org's client state: the library's `Backend`.
#[derive(Clone)]
pub struct OrgDevice {
    sql: Arc<dyn sql::DeviceSql>,
    dev: i64,
    /// Set aside: writes are refused.
    retired: Arc<AtomicBool>,
}

fn sql_err(e: sql::SqlError) -> WaError {
    WaError::Database(Box::new(e))
}

/// A value read back as `T`, or the library's database error.
fn from_val<T: FromVal>(v: Val) -> Result<T> {
    T::from_val(v).map_err(|e| sql_err(e.into()))
}

/// A row's first two columns as `(A, B)`.
fn pair<A: FromVal, B: FromVal>(row: Vec<Val>) -> Result<(A, B)> {
    let mut cols = row.into_iter();
    match (cols.next(), cols.next()) {
        (Some(a), Some(b)) => Ok((from_val(a)?, from_val(b)?)),
        _ => Err(WaError::Validation(
            "a row with fewer than two columns".into(),
        )),
    }
}

fn json_err(e: serde_json::Error) -> WaError {
    WaError::Serialization(Box::new(e))
}

impl OrgDevice {
    /// Device `dev` on any database that runs the device statements (on
    /// SQLite, `Devices::device` gives out handles that share one flag for
    /// `retire`).
    pub fn on(sql: Arc<dyn sql::DeviceSql>, dev: i64) -> OrgDevice {
        OrgDevice {
            sql,
            dev,
            retired: Arc::default(),
        }
    }

    pub fn dev(&self) -> i64 {
        self.dev
    }

    /// `args` after this device's number, which every statement takes as `?1`.
    fn with_dev(&self, args: Vec<Val>) -> Vec<Val> {
        let mut all = Vec::with_capacity(args.len() + 1);
        all.push(Val::Int(self.dev));
        all.extend(args);
        all
    }

    /// The rows of a `SELECT` whose `?1` is this device (`args` are `?2`…).
    async fn rows(&self, q: impl Into<Cow<'static, str>>, args: Vec<Val>) -> Result<Rows> {
        self.sql
            .query(q.into(), self.with_dev(args))
            .await
            .map_err(sql_err)
    }

    /// The first row, if there is one.
    async fn first_row(
        &self,
        q: impl Into<Cow<'static, str>>,
        args: Vec<Val>,
    ) -> Result<Option<Vec<Val>>> {
        Ok(self.rows(q, args).await?.into_iter().next())
    }

    /// The first column of the first row, if there is one.
    async fn one<T: FromVal>(
        &self,
        q: impl Into<Cow<'static, str>>,
        args: Vec<Val>,
    ) -> Result<Option<T>> {
        let first = self.first_row(q, args).await?;
        first
            .and_then(|r| r.into_iter().next())
            .map(from_val)
            .transpose()
    }

    /// Statements whose `?1` is this device, in one transaction; refused
    /// once the device was set aside.
    async fn run(&self, batch: Vec<(Cow<'static, str>, Vec<Val>)>) -> Result<Vec<Done>> {
        if self.retired.load(Ordering::SeqCst) {
            return Err(WaError::Validation(format!(
                "device {} was set aside; this client may no longer write it",
                self.dev
            )));
        }
        let batch = batch
            .into_iter()
            .map(|(q, args)| (q, self.with_dev(args)))
            .collect();
        self.sql.exec(batch).await.map_err(sql_err)
    }

    /// This device's `column` in `table` on the row whose `key` is `value`.
    async fn value_where<T: FromVal>(
        &self,
        table: &'static str,
        column: &'static str,
        key: &'static str,
        value: impl Into<Val>,
    ) -> Result<Option<T>> {
        self.one(
            format!("SELECT \"{column}\" FROM {table} WHERE dev = ?1 AND \"{key}\" = ?2"),
            vec![value.into()],
        )
        .await
    }

    /// Set this device's `column` in `table` to `value` on the row whose
    /// `key` is `k`, making the row when there is none.
    async fn set_where(
        &self,
        table: &'static str,
        key: &'static str,
        column: &'static str,
        k: impl Into<Val>,
        value: impl Into<Val>,
    ) -> Result<()> {
        self.run(vec![(
            format!(
                "INSERT INTO {table} (dev, \"{key}\", \"{column}\") VALUES (?1, ?2, ?3)
                 ON CONFLICT (dev, \"{key}\") DO UPDATE SET \"{column}\" = excluded.\"{column}\""
            )
            .into(),
            vec![k.into(), value.into()],
        )])
        .await
        .map(|_| ())
    }

    /// Delete this device's rows of `table` whose `key` is `value`.
    async fn delete_where(
        &self,
        table: &'static str,
        key: &'static str,
        value: impl Into<Val>,
    ) -> Result<()> {
        self.run(vec![(
            format!("DELETE FROM {table} WHERE dev = ?1 AND \"{key}\" = ?2").into(),
            vec![value.into()],
        )])
        .await
        .map(|_| ())
    }

    /// Insert or replace this device's `(address, record)` rows of `table`.
    async fn put_records(
        &self,
        table: &'static str,
        rows: &[(Arc<str>, bytes::Bytes)],
    ) -> Result<()> {
        let q: Cow<'static, str> = format!(
            "INSERT INTO {table} (dev, address, record) VALUES (?1, ?2, ?3)
             ON CONFLICT (dev, address) DO UPDATE SET record = excluded.record"
        )
        .into();
        self.run(
            rows.iter()
                .map(|(a, r)| (q.clone(), vec![a.as_ref().into(), r.as_ref().into()]))
                .collect(),
        )
        .await
        .map(|_| ())
    }
}

/// A device as the library keeps it, read back from its JSON: the parts
/// that are not stored (the properties sent at login, the client profile)
/// are set as the library's own store sets them.
fn device_from_json(text: &str) -> Result<whatsapp_rust::wacore::store::Device> {
    let mut d: whatsapp_rust::wacore::store::Device =
        serde_json::from_str(text).map_err(json_err)?;
    d.device_props = Arc::new(whatsapp_rust::wacore::store::device::DEVICE_PROPS.clone());
    d.client_profile = whatsapp_rust::ClientProfile::web();
    Ok(d)
}

#[async_trait::async_trait]
impl DeviceStore for OrgDevice {
    async fn save(&self, device: &whatsapp_rust::wacore::store::Device) -> Result<()> {
        let text = serde_json::to_string(device).map_err(json_err)?;
        self.run(vec![(
            "INSERT INTO device (dev, data, updated_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (dev) DO UPDATE SET data = excluded.data, updated_ms = excluded.updated_ms"
                .into(),
            vec![text.into(), crate::store::now_ms().into()],
        )])
        .await
        .map(|_| ())
    }

    async fn load(&self) -> Result<Option<whatsapp_rust::wacore::store::Device>> {
        let text: Option<String> = self
            .one("SELECT data FROM device WHERE dev = ?1", vec![])
            .await?;
        text.map(|t| device_from_json(&t)).transpose()
    }

    async fn exists(&self) -> Result<bool> {
        Ok(!self
            .rows("SELECT 1 FROM device WHERE dev = ?1", vec![])
            .await?
            .is_empty())
    }

    async fn create(&self) -> Result<i32> {
        let fresh = whatsapp_rust::wacore::store::Device::new();
        let text = serde_json::to_string(&fresh).map_err(json_err)?;
        self.run(vec![(
            "INSERT INTO device (dev, data, updated_ms) VALUES (?1, ?2, ?3) ON CONFLICT (dev) DO NOTHING"
                .into(),
            vec![text.into(), crate::store::now_ms().into()],
        )])
        .await?;
        Ok(self.dev as i32)
    }
}

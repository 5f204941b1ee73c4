//! The Signal protocol's state of one device: identities, sessions, one-time
//! and signed pre-keys, sender keys. Records are the library's bytes, stored
//! as they are; a batch is one transaction.

use std::sync::Arc;

use bytes::Bytes;
use rusqlite::{params, OptionalExtension};
use whatsapp_rust::wacore::store::error::{Result, StoreError as WaError};
use whatsapp_rust::wacore::store::traits::SignalStore;

use super::OrgDevice;

/// A 32-byte identity key, or an error naming what was wrong with it.
fn key32(v: Vec<u8>) -> Result<[u8; 32]> {
    let n = v.len();
    v.try_into()
        .map_err(|_| WaError::Validation(format!("an identity key of {n} bytes, not 32")))
}

#[async_trait::async_trait]
impl SignalStore for OrgDevice {
    async fn put_identity(&self, address: &str, key: [u8; 32]) -> Result<()> {
        self.set_where(
            "identities",
            "address",
            "key",
            address.to_string(),
            key.to_vec(),
        )
        .await
    }

    async fn put_identities_batch(&self, identities: &[(Arc<str>, [u8; 32])]) -> Result<()> {
        let rows: Vec<(Arc<str>, [u8; 32])> = identities.to_vec();
        self.write(move |c, dev| {
            let mut st = c.prepare_cached(
                "INSERT INTO identities (dev, address, key) VALUES (?1, ?2, ?3)
                 ON CONFLICT(dev, address) DO UPDATE SET key = excluded.key",
            )?;
            for (a, k) in &rows {
                st.execute(params![dev, a.as_ref(), &k[..]])?;
            }
            Ok(())
        })
        .await
    }

    async fn load_identity(&self, address: &str) -> Result<Option<[u8; 32]>> {
        let key: Option<Vec<u8>> = self
            .value_where("identities", "key", "address", address.to_string())
            .await?;
        key.map(key32).transpose()
    }

    async fn delete_identity(&self, address: &str) -> Result<()> {
        self.delete_where("identities", "address", address.to_string())
            .await
    }

    async fn get_session(&self, address: &str) -> Result<Option<Bytes>> {
        let rec: Option<Vec<u8>> = self
            .value_where("sessions", "record", "address", address.to_string())
            .await?;
        Ok(rec.map(Bytes::from))
    }

    async fn put_session(&self, address: &str, session: &[u8]) -> Result<()> {
        self.put_sessions_batch(&[(Arc::from(address), Bytes::copy_from_slice(session))])
            .await
    }

    async fn put_sessions_batch(&self, sessions: &[(Arc<str>, Bytes)]) -> Result<()> {
        self.put_records("sessions", sessions).await
    }

    async fn delete_session(&self, address: &str) -> Result<()> {
        self.delete_where("sessions", "address", address.to_string())
            .await
    }

    async fn has_session(&self, address: &str) -> Result<bool> {
        let address = address.to_string();
        self.read(move |c, dev| {
            c.prepare_cached("SELECT 1 FROM sessions WHERE dev = ?1 AND address = ?2")?
                .query_row(params![dev, address], |_| Ok(()))
                .optional()
                .map(|r| r.is_some())
        })
        .await
    }

    /// A session or identity for any device of `user` (`user@…`, `user:N@…`).
    async fn has_signal_state_for_user(&self, user: &str) -> Result<bool> {
        let (at, colon) = (format!("{user}@"), format!("{user}:"));
        self.read(move |c, dev| {
            let found = |table: &str| -> rusqlite::Result<bool> {
                c.prepare_cached(&format!(
                    "SELECT 1 FROM {table} WHERE dev = ?1
                       AND (substr(address, 1, length(?2)) = ?2 OR substr(address, 1, length(?3)) = ?3)
                     LIMIT 1"
                ))?
                .query_row(params![dev, at, colon], |_| Ok(()))
                .optional()
                .map(|r| r.is_some())
            };
            Ok(found("sessions")? || found("identities")?)
        })
        .await
    }

    async fn store_prekey(&self, id: u32, record: &[u8], uploaded: bool) -> Result<()> {
        self.store_prekeys_batch(&[(id, Bytes::copy_from_slice(record))], uploaded)
            .await
    }

    async fn store_prekeys_batch(&self, keys: &[(u32, Bytes)], uploaded: bool) -> Result<()> {
        let rows: Vec<(u32, Bytes)> = keys.to_vec();
        self.write(move |c, dev| {
            let mut st = c.prepare_cached(
                "INSERT INTO prekeys (dev, id, record, uploaded) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(dev, id) DO UPDATE SET record = excluded.record, uploaded = excluded.uploaded",
            )?;
            for (id, r) in &rows {
                st.execute(params![dev, id, r.as_ref(), uploaded])?;
            }
            Ok(())
        })
        .await
    }

    async fn load_prekey(&self, id: u32) -> Result<Option<Bytes>> {
        let rec: Option<Vec<u8>> = self.value_where("prekeys", "record", "id", id).await?;
        Ok(rec.map(Bytes::from))
    }

    async fn load_prekeys_batch(&self, ids: &[u32]) -> Result<Vec<(u32, Bytes)>> {
        let ids = ids.to_vec();
        self.read(move |c, dev| {
            let mut st =
                c.prepare_cached("SELECT record FROM prekeys WHERE dev = ?1 AND id = ?2")?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let rec: Option<Vec<u8>> =
                    st.query_row(params![dev, id], |r| r.get(0)).optional()?;
                if let Some(r) = rec {
                    out.push((id, Bytes::from(r)));
                }
            }
            Ok(out)
        })
        .await
    }

    /// Marks the ones that still exist; a removed key is not brought back.
    async fn mark_prekeys_uploaded(&self, ids: &[u32]) -> Result<()> {
        let ids = ids.to_vec();
        self.write(move |c, dev| {
            let mut st =
                c.prepare_cached("UPDATE prekeys SET uploaded = 1 WHERE dev = ?1 AND id = ?2")?;
            for id in ids {
                st.execute(params![dev, id])?;
            }
            Ok(())
        })
        .await
    }

    async fn remove_prekey(&self, id: u32) -> Result<()> {
        self.delete_where("prekeys", "id", id).await
    }

    async fn get_max_prekey_id(&self) -> Result<u32> {
        self.read(|c, dev| {
            c.prepare_cached("SELECT COALESCE(MAX(id), 0) FROM prekeys WHERE dev = ?1")?
                .query_row([dev], |r| r.get(0))
        })
        .await
    }

    async fn store_signed_prekey(&self, id: u32, record: &[u8]) -> Result<()> {
        let record = record.to_vec();
        self.set_where("signed_prekeys", "id", "record", id, record)
            .await
    }

    async fn load_signed_prekey(&self, id: u32) -> Result<Option<Vec<u8>>> {
        self.value_where("signed_prekeys", "record", "id", id).await
    }

    async fn load_all_signed_prekeys(&self) -> Result<Vec<(u32, Vec<u8>)>> {
        self.read(|c, dev| {
            c.prepare_cached("SELECT id, record FROM signed_prekeys WHERE dev = ?1 ORDER BY id")?
                .query_map([dev], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
        .await
    }

    async fn remove_signed_prekey(&self, id: u32) -> Result<()> {
        self.delete_where("signed_prekeys", "id", id).await
    }

    async fn put_sender_key(&self, address: &str, record: &[u8]) -> Result<()> {
        self.put_sender_keys_batch(&[(Arc::from(address), Bytes::copy_from_slice(record))])
            .await
    }

    async fn put_sender_keys_batch(&self, sender_keys: &[(Arc<str>, Bytes)]) -> Result<()> {
        self.put_records("sender_keys", sender_keys).await
    }

    async fn get_sender_key(&self, address: &str) -> Result<Option<Vec<u8>>> {
        self.value_where("sender_keys", "record", "address", address.to_string())
            .await
    }

    async fn delete_sender_key(&self, address: &str) -> Result<()> {
        self.delete_where("sender_keys", "address", address.to_string())
            .await
    }
}

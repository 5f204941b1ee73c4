//! The Signal protocol's state of one device: identities, sessions, one-time
//! and signed pre-keys, sender keys. Records are the library's bytes, stored
//! as they are; a batch is one transaction.

use std::sync::Arc;

use bytes::Bytes;
use whatsapp_rust::wacore::store::error::{Result, StoreError as WaError};
use whatsapp_rust::wacore::store::traits::SignalStore;

use super::{pair, OrgDevice};

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
        self.run(
            identities
                .iter()
                .map(|(a, k)| {
                    (
                        "INSERT INTO identities (dev, address, key) VALUES (?1, ?2, ?3)
                         ON CONFLICT (dev, address) DO UPDATE SET key = excluded.key"
                            .into(),
                        vec![a.as_ref().into(), k[..].into()],
                    )
                })
                .collect(),
        )
        .await
        .map(|_| ())
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
        Ok(!self
            .rows(
                "SELECT 1 FROM sessions WHERE dev = ?1 AND address = ?2",
                vec![address.into()],
            )
            .await?
            .is_empty())
    }

    /// A session or identity for any device of `user` (`user@…`, `user:N@…`).
    async fn has_signal_state_for_user(&self, user: &str) -> Result<bool> {
        let (at, colon) = (format!("{user}@"), format!("{user}:"));
        for table in ["sessions", "identities"] {
            let found = self
                .rows(
                    format!(
                        "SELECT 1 FROM {table} WHERE dev = ?1
                           AND (substr(address, 1, length(?2)) = ?2
                                OR substr(address, 1, length(?3)) = ?3)
                         LIMIT 1"
                    ),
                    vec![at.as_str().into(), colon.as_str().into()],
                )
                .await?;
            if !found.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn store_prekey(&self, id: u32, record: &[u8], uploaded: bool) -> Result<()> {
        self.store_prekeys_batch(&[(id, Bytes::copy_from_slice(record))], uploaded)
            .await
    }

    async fn store_prekeys_batch(&self, keys: &[(u32, Bytes)], uploaded: bool) -> Result<()> {
        self.run(
            keys.iter()
                .map(|(id, r)| {
                    (
                        "INSERT INTO prekeys (dev, id, record, uploaded) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (dev, id) DO UPDATE
                         SET record = excluded.record, uploaded = excluded.uploaded"
                            .into(),
                        vec![(*id).into(), r.as_ref().into(), uploaded.into()],
                    )
                })
                .collect(),
        )
        .await
        .map(|_| ())
    }

    async fn load_prekey(&self, id: u32) -> Result<Option<Bytes>> {
        let rec: Option<Vec<u8>> = self.value_where("prekeys", "record", "id", id).await?;
        Ok(rec.map(Bytes::from))
    }

    async fn load_prekeys_batch(&self, ids: &[u32]) -> Result<Vec<(u32, Bytes)>> {
        let mut out = Vec::with_capacity(ids.len());
        // One query per 500 ids (far below either database's limit on parameters).
        for chunk in ids.chunks(500) {
            let marks: Vec<String> = (2..chunk.len() + 2).map(|i| format!("?{i}")).collect();
            let rows = self
                .rows(
                    format!(
                        "SELECT id, record FROM prekeys WHERE dev = ?1 AND id IN ({})",
                        marks.join(", ")
                    ),
                    chunk.iter().map(|id| (*id).into()).collect(),
                )
                .await?;
            for r in rows {
                let (id, record): (i64, Vec<u8>) = pair(r)?;
                if let Ok(id) = u32::try_from(id) {
                    out.push((id, Bytes::from(record)));
                }
            }
        }
        // In the order asked for, as the library expects.
        out.sort_by_key(|(id, _)| ids.iter().position(|x| x == id));
        Ok(out)
    }

    /// Marks the ones that still exist; a removed key is not brought back.
    async fn mark_prekeys_uploaded(&self, ids: &[u32]) -> Result<()> {
        self.run(
            ids.iter()
                .map(|id| {
                    (
                        "UPDATE prekeys SET uploaded = 1 WHERE dev = ?1 AND id = ?2".into(),
                        vec![(*id).into()],
                    )
                })
                .collect(),
        )
        .await
        .map(|_| ())
    }

    async fn remove_prekey(&self, id: u32) -> Result<()> {
        self.delete_where("prekeys", "id", id).await
    }

    async fn get_max_prekey_id(&self) -> Result<u32> {
        let max: Option<i64> = self
            .one(
                "SELECT COALESCE(MAX(id), 0) FROM prekeys WHERE dev = ?1",
                vec![],
            )
            .await?;
        Ok(u32::try_from(max.unwrap_or(0)).unwrap_or(u32::MAX))
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
        self.rows(
            "SELECT id, record FROM signed_prekeys WHERE dev = ?1 ORDER BY id",
            vec![],
        )
        .await?
        .into_iter()
        .map(|r| {
            let (id, record): (i64, Vec<u8>) = pair(r)?;
            let id = u32::try_from(id)
                .map_err(|_| WaError::Validation(format!("a signed pre-key id {id}")))?;
            Ok((id, record))
        })
        .collect()
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

//! App-state sync of one device: the sync keys the phone shared, each
//! collection's version and hash state, and the mutation MACs that let a
//! patch be checked. Keys and versions are stored as JSON.

use std::collections::HashMap;

use rusqlite::{params, OptionalExtension};
use whatsapp_rust::wacore::appstate::hash::HashState;
use whatsapp_rust::wacore::appstate::processor::AppStateMutationMAC;
use whatsapp_rust::wacore::store::error::Result;
use whatsapp_rust::wacore::store::traits::{AppStateSyncKey, AppSyncStore};

use super::{json_err, OrgDevice};

#[async_trait::async_trait]
impl AppSyncStore for OrgDevice {
    async fn get_sync_key(&self, key_id: &[u8]) -> Result<Option<AppStateSyncKey>> {
        let text: Option<String> = self
            .value_where("sync_keys", "data", "key_id", key_id.to_vec())
            .await?;
        text.map(|t| serde_json::from_str(&t).map_err(json_err))
            .transpose()
    }

    async fn set_sync_key(&self, key_id: &[u8], key: AppStateSyncKey) -> Result<()> {
        let key_id = key_id.to_vec();
        let text = serde_json::to_string(&key).map_err(json_err)?;
        self.set_where("sync_keys", "key_id", "data", key_id, text)
            .await
    }

    async fn get_version(&self, name: &str) -> Result<HashState> {
        let text: Option<String> = self
            .value_where("app_versions", "state", "name", name.to_string())
            .await?;
        match text {
            Some(t) => serde_json::from_str(&t).map_err(json_err),
            None => Ok(HashState::default()),
        }
    }

    async fn set_version(&self, name: &str, state: HashState) -> Result<()> {
        let name = name.to_string();
        let text = serde_json::to_string(&state).map_err(json_err)?;
        self.set_where("app_versions", "name", "state", name, text)
            .await
    }

    async fn put_mutation_macs(
        &self,
        name: &str,
        version: u64,
        mutations: &[AppStateMutationMAC],
    ) -> Result<()> {
        let name = name.to_string();
        let rows: Vec<(Vec<u8>, Vec<u8>)> = mutations
            .iter()
            .map(|m| (m.index_mac.clone(), m.value_mac.clone()))
            .collect();
        self.write(move |c, dev| {
            let mut st = c.prepare_cached(
                "INSERT INTO mutation_macs (dev, name, index_mac, version, value_mac)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(dev, name, index_mac) DO UPDATE
                   SET version = excluded.version, value_mac = excluded.value_mac",
            )?;
            for (index, value) in &rows {
                st.execute(params![dev, name, index, version as i64, value])?;
            }
            Ok(())
        })
        .await
    }

    async fn get_mutation_mac(&self, name: &str, index_mac: &[u8]) -> Result<Option<Vec<u8>>> {
        let (name, index_mac) = (name.to_string(), index_mac.to_vec());
        self.read(move |c, dev| {
            c.prepare_cached(
                "SELECT value_mac FROM mutation_macs WHERE dev = ?1 AND name = ?2 AND index_mac = ?3",
            )?
            .query_row(params![dev, name, index_mac], |r| r.get(0))
            .optional()
        })
        .await
    }

    async fn get_mutation_macs(
        &self,
        name: &str,
        index_macs: &[[u8; 32]],
    ) -> Result<HashMap<[u8; 32], Vec<u8>>> {
        let (name, wanted) = (name.to_string(), index_macs.to_vec());
        self.read(move |c, dev| {
            let mut st = c.prepare_cached(
                "SELECT value_mac FROM mutation_macs WHERE dev = ?1 AND name = ?2 AND index_mac = ?3",
            )?;
            let mut out = HashMap::with_capacity(wanted.len());
            for index in wanted {
                let v: Option<Vec<u8>> = st
                    .query_row(params![dev, name, &index[..]], |r| r.get(0))
                    .optional()?;
                if let Some(v) = v {
                    out.insert(index, v);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn delete_mutation_macs(&self, name: &str, index_macs: &[Vec<u8>]) -> Result<()> {
        let (name, gone) = (name.to_string(), index_macs.to_vec());
        self.write(move |c, dev| {
            let mut st = c.prepare_cached(
                "DELETE FROM mutation_macs WHERE dev = ?1 AND name = ?2 AND index_mac = ?3",
            )?;
            for index in &gone {
                st.execute(params![dev, name, index])?;
            }
            Ok(())
        })
        .await
    }

    async fn clear_mutation_macs(&self, name: &str) -> Result<()> {
        self.delete_where("mutation_macs", "name", name.to_string())
            .await
    }

    /// The newest key that can be read (the highest id, as the library's own
    /// store answers), skipping a row that no longer decodes.
    async fn get_latest_sync_key_id(&self) -> Result<Option<Vec<u8>>> {
        let rows: Vec<(Vec<u8>, String)> = self
            .read(|c, dev| {
                c.prepare_cached(
                    "SELECT key_id, data FROM sync_keys WHERE dev = ?1 ORDER BY key_id DESC",
                )?
                .query_map([dev], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
            })
            .await?;
        Ok(rows
            .into_iter()
            .find(|(_, data)| serde_json::from_str::<AppStateSyncKey>(data).is_ok())
            .map(|(id, _)| id))
    }
}

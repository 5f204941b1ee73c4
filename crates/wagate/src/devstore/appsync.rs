//! App-state sync of one device: the sync keys the phone shared, each
//! collection's version and hash state, and the mutation MACs that let a
//! patch be checked. Keys and versions are stored as JSON.

use std::collections::HashMap;

use whatsapp_rust::wacore::appstate::hash::HashState;
use whatsapp_rust::wacore::appstate::processor::AppStateMutationMAC;
use whatsapp_rust::wacore::store::error::Result;
use whatsapp_rust::wacore::store::traits::{AppStateSyncKey, AppSyncStore};

use super::{json_err, pair, OrgDevice};

const MAC: &str =
    "SELECT value_mac FROM mutation_macs WHERE dev = ?1 AND name = ?2 AND index_mac = ?3";

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
        self.run(
            mutations
                .iter()
                .map(|m| {
                    (
                        "INSERT INTO mutation_macs (dev, name, index_mac, version, value_mac)
                         VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (dev, name, index_mac) DO UPDATE
                           SET version = excluded.version, value_mac = excluded.value_mac"
                            .into(),
                        vec![
                            name.into(),
                            m.index_mac[..].into(),
                            (version as i64).into(),
                            m.value_mac[..].into(),
                        ],
                    )
                })
                .collect(),
        )
        .await
        .map(|_| ())
    }

    async fn get_mutation_mac(&self, name: &str, index_mac: &[u8]) -> Result<Option<Vec<u8>>> {
        self.one(MAC, vec![name.into(), index_mac.into()]).await
    }

    async fn get_mutation_macs(
        &self,
        name: &str,
        index_macs: &[[u8; 32]],
    ) -> Result<HashMap<[u8; 32], Vec<u8>>> {
        let mut out = HashMap::with_capacity(index_macs.len());
        for index in index_macs {
            let v: Option<Vec<u8>> = self.one(MAC, vec![name.into(), index[..].into()]).await?;
            if let Some(v) = v {
                out.insert(*index, v);
            }
        }
        Ok(out)
    }

    async fn delete_mutation_macs(&self, name: &str, index_macs: &[Vec<u8>]) -> Result<()> {
        self.run(
            index_macs
                .iter()
                .map(|index| {
                    (
                        "DELETE FROM mutation_macs WHERE dev = ?1 AND name = ?2 AND index_mac = ?3"
                            .into(),
                        vec![name.into(), index[..].into()],
                    )
                })
                .collect(),
        )
        .await
        .map(|_| ())
    }

    async fn clear_mutation_macs(&self, name: &str) -> Result<()> {
        self.delete_where("mutation_macs", "name", name.to_string())
            .await
    }

    /// The newest key that can be read (the highest id, as the library's own
    /// store answers), skipping a row that no longer decodes.
    async fn get_latest_sync_key_id(&self) -> Result<Option<Vec<u8>>> {
        let rows: Vec<(Vec<u8>, String)> = self
            .rows(
                "SELECT key_id, data FROM sync_keys WHERE dev = ?1 ORDER BY key_id DESC",
                vec![],
            )
            .await?
            .into_iter()
            .map(pair)
            .collect::<Result<_>>()?;
        Ok(rows
            .into_iter()
            .find(|(_, data)| serde_json::from_str::<AppStateSyncKey>(data).is_ok())
            .map(|(id, _)| id))
    }
}

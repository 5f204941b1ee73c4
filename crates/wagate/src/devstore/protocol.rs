//! WhatsApp's protocol bookkeeping for one device: which group devices hold
//! our sender key, the LID↔phone map, base keys (collision checks), device
//! lists, group metadata, trusted-contact tokens, sent messages kept for
//! retry receipts, and the inbound buffer that makes receiving at least once.

use whatsapp_rust::wacore::store::error::Result;
use whatsapp_rust::wacore::store::traits::{
    DeviceListRecord, LidPnMappingEntry, PendingInboundKey, PendingInboundRow, ProtocolStore,
    TcTokenEntry,
};

use super::sql::{Done, Val};
use super::{from_val, json_err, pair, OrgDevice};

/// The rows the first statement of a batch changed.
fn changed(done: &[Done]) -> u32 {
    done.first()
        .map_or(0, |d| u32::try_from(d.changed).unwrap_or(u32::MAX))
}

fn now_secs() -> i64 {
    crate::store::now_ms() / 1000
}

/// A `lid_map` row (lid, pn, created_at, updated_at, source) as the library's entry.
fn lid_entry(row: Vec<Val>) -> Result<LidPnMappingEntry> {
    let mut cols = row.into_iter();
    let mut next = || cols.next().unwrap_or(Val::Null);
    Ok(LidPnMappingEntry {
        lid: from_val(next())?,
        phone_number: from_val(next())?,
        created_at: from_val(next())?,
        updated_at: from_val(next())?,
        learning_source: from_val(next())?,
    })
}

/// Learn (or re-learn) a LID; a number's newest LID is the one updated last,
/// as the library's own store answers.
const PUT_LID: &str = "INSERT INTO lid_map (dev, lid, pn, created_at, updated_at, source)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
     ON CONFLICT (dev, lid) DO UPDATE SET pn = excluded.pn, created_at = excluded.created_at,
       updated_at = excluded.updated_at, source = excluded.source";

const LID_COLUMNS: &str = "lid, pn, created_at, updated_at, source";

fn lid_args(e: &LidPnMappingEntry) -> Vec<Val> {
    vec![
        e.lid.as_str().into(),
        e.phone_number.as_str().into(),
        e.created_at.into(),
        e.updated_at.into(),
        e.learning_source.as_str().into(),
    ]
}

/// Keep (or refresh) one message in the inbound buffer.
const PUT_PENDING: &str =
    "INSERT INTO pending_inbound (dev, chat, sender, id, message, ts) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
     ON CONFLICT (dev, chat, sender, id) DO UPDATE SET message = excluded.message, ts = excluded.ts";

const DELETE_PENDING: &str =
    "DELETE FROM pending_inbound WHERE dev = ?1 AND chat = ?2 AND sender = ?3 AND id = ?4";

#[async_trait::async_trait]
impl ProtocolStore for OrgDevice {
    async fn get_sender_key_devices(&self, group_jid: &str) -> Result<Vec<(String, bool)>> {
        self.rows(
            "SELECT device_jid, has_key FROM sender_key_devices WHERE dev = ?1 AND group_jid = ?2",
            vec![group_jid.into()],
        )
        .await?
        .into_iter()
        .map(|r| {
            let (jid, has): (String, i64) = pair(r)?;
            Ok((jid, has != 0))
        })
        .collect()
    }

    async fn set_sender_key_status(&self, group_jid: &str, entries: &[(&str, bool)]) -> Result<()> {
        self.run(
            entries
                .iter()
                .map(|(j, k)| {
                    (
                        "INSERT INTO sender_key_devices (dev, group_jid, device_jid, has_key)
                         VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (dev, group_jid, device_jid) DO UPDATE SET has_key = excluded.has_key"
                            .into(),
                        vec![group_jid.into(), (*j).into(), (*k).into()],
                    )
                })
                .collect(),
        )
        .await
        .map(|_| ())
    }

    async fn clear_sender_key_devices(&self, group_jid: &str) -> Result<()> {
        self.delete_where("sender_key_devices", "group_jid", group_jid.to_string())
            .await
    }

    async fn delete_sender_key_device_rows(&self, device_jids: &[&str]) -> Result<()> {
        if device_jids.is_empty() {
            return Ok(());
        }
        self.run(
            device_jids
                .iter()
                .map(|j| {
                    (
                        "DELETE FROM sender_key_devices WHERE dev = ?1 AND device_jid = ?2".into(),
                        vec![(*j).into()],
                    )
                })
                .collect(),
        )
        .await
        .map(|_| ())
    }

    async fn clear_all_sender_key_devices(&self) -> Result<()> {
        self.run(vec![(
            "DELETE FROM sender_key_devices WHERE dev = ?1".into(),
            vec![],
        )])
        .await
        .map(|_| ())
    }

    async fn get_lid_mapping(&self, lid: &str) -> Result<Option<LidPnMappingEntry>> {
        self.first_row(
            format!("SELECT {LID_COLUMNS} FROM lid_map WHERE dev = ?1 AND lid = ?2"),
            vec![lid.into()],
        )
        .await?
        .map(lid_entry)
        .transpose()
    }

    async fn get_pn_mapping(&self, phone: &str) -> Result<Option<LidPnMappingEntry>> {
        self.first_row(
            format!(
                "SELECT {LID_COLUMNS} FROM lid_map WHERE dev = ?1 AND pn = ?2
                 ORDER BY updated_at DESC, lid DESC LIMIT 1"
            ),
            vec![phone.into()],
        )
        .await?
        .map(lid_entry)
        .transpose()
    }

    async fn put_lid_mapping(&self, entry: &LidPnMappingEntry) -> Result<()> {
        self.put_lid_mappings(std::slice::from_ref(entry)).await
    }

    async fn put_lid_mappings(&self, entries: &[LidPnMappingEntry]) -> Result<()> {
        self.run(
            entries
                .iter()
                .map(|e| (PUT_LID.into(), lid_args(e)))
                .collect(),
        )
        .await
        .map(|_| ())
    }

    async fn get_all_lid_mappings(&self) -> Result<Vec<LidPnMappingEntry>> {
        self.rows(
            format!("SELECT {LID_COLUMNS} FROM lid_map WHERE dev = ?1 ORDER BY updated_at, lid"),
            vec![],
        )
        .await?
        .into_iter()
        .map(lid_entry)
        .collect()
    }

    async fn save_base_key(&self, address: &str, message_id: &str, base_key: &[u8]) -> Result<()> {
        self.run(vec![(
            "INSERT INTO base_keys (dev, address, message_id, base_key) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (dev, address, message_id) DO UPDATE SET base_key = excluded.base_key"
                .into(),
            vec![address.into(), message_id.into(), base_key.into()],
        )])
        .await
        .map(|_| ())
    }

    async fn has_same_base_key(
        &self,
        address: &str,
        message_id: &str,
        current_base_key: &[u8],
    ) -> Result<bool> {
        let stored: Option<Vec<u8>> = self
            .one(
                "SELECT base_key FROM base_keys WHERE dev = ?1 AND address = ?2 AND message_id = ?3",
                vec![address.into(), message_id.into()],
            )
            .await?;
        Ok(stored.is_some_and(|s| s == current_base_key))
    }

    async fn delete_base_key(&self, address: &str, message_id: &str) -> Result<()> {
        self.run(vec![(
            "DELETE FROM base_keys WHERE dev = ?1 AND address = ?2 AND message_id = ?3".into(),
            vec![address.into(), message_id.into()],
        )])
        .await
        .map(|_| ())
    }

    async fn update_device_list(&self, record: DeviceListRecord) -> Result<()> {
        self.update_device_lists(vec![record]).await
    }

    async fn update_device_lists(&self, records: Vec<DeviceListRecord>) -> Result<()> {
        let rows = records
            .iter()
            .map(|r| Ok((r.user.clone(), serde_json::to_string(r).map_err(json_err)?)))
            .collect::<Result<Vec<(String, String)>>>()?;
        self.run(
            rows.into_iter()
                .map(|(u, r)| {
                    (
                        "INSERT INTO device_lists (dev, \"user\", record) VALUES (?1, ?2, ?3)
                         ON CONFLICT (dev, \"user\") DO UPDATE SET record = excluded.record"
                            .into(),
                        vec![u.into(), r.into()],
                    )
                })
                .collect(),
        )
        .await
        .map(|_| ())
    }

    async fn get_devices(&self, user: &str) -> Result<Option<DeviceListRecord>> {
        let text: Option<String> = self
            .value_where("device_lists", "record", "user", user.to_string())
            .await?;
        text.map(|t| serde_json::from_str(&t).map_err(json_err))
            .transpose()
    }

    async fn delete_devices(&self, user: &str) -> Result<()> {
        self.delete_where("device_lists", "user", user.to_string())
            .await
    }

    async fn get_group_metadata(&self, group_jid: &str) -> Result<Option<Vec<u8>>> {
        self.value_where("group_meta", "blob", "group_jid", group_jid.to_string())
            .await
    }

    async fn put_group_metadata(&self, group_jid: &str, blob: &[u8]) -> Result<()> {
        let (g, b) = (group_jid.to_string(), blob.to_vec());
        self.set_where("group_meta", "group_jid", "blob", g, b)
            .await
    }

    async fn delete_group_metadata(&self, group_jid: &str) -> Result<()> {
        self.delete_where("group_meta", "group_jid", group_jid.to_string())
            .await
    }

    async fn get_tc_token(&self, jid: &str) -> Result<Option<TcTokenEntry>> {
        let Some(row) = self
            .first_row(
                "SELECT token, token_ts, sender_ts FROM tc_tokens WHERE dev = ?1 AND jid = ?2",
                vec![jid.into()],
            )
            .await?
        else {
            return Ok(None);
        };
        let mut cols = row.into_iter();
        let mut next = || cols.next().unwrap_or(Val::Null);
        Ok(Some(TcTokenEntry {
            token: from_val(next())?,
            token_timestamp: from_val(next())?,
            sender_timestamp: from_val(next())?,
        }))
    }

    async fn put_tc_token(&self, jid: &str, entry: &TcTokenEntry) -> Result<()> {
        self.run(vec![(
            "INSERT INTO tc_tokens (dev, jid, token, token_ts, sender_ts) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (dev, jid) DO UPDATE SET token = excluded.token,
               token_ts = excluded.token_ts, sender_ts = excluded.sender_ts"
                .into(),
            vec![
                jid.into(),
                entry.token[..].into(),
                entry.token_timestamp.into(),
                entry.sender_timestamp.into(),
            ],
        )])
        .await
        .map(|_| ())
    }

    async fn delete_tc_token(&self, jid: &str) -> Result<()> {
        self.delete_where("tc_tokens", "jid", jid.to_string()).await
    }

    async fn get_all_tc_token_jids(&self) -> Result<Vec<String>> {
        self.rows("SELECT jid FROM tc_tokens WHERE dev = ?1", vec![])
            .await?
            .into_iter()
            .map(|r| from_val(r.into_iter().next().unwrap_or(Val::Null)))
            .collect()
    }

    /// A row goes only when both its received token and its sender
    /// timestamp are stale.
    async fn delete_expired_tc_tokens(&self, token_cutoff: i64, sender_cutoff: i64) -> Result<u32> {
        let done = self
            .run(vec![(
                "DELETE FROM tc_tokens WHERE dev = ?1
                   AND NOT (length(token) > 0 AND token_ts >= ?2)
                   AND NOT (sender_ts IS NOT NULL AND sender_ts >= ?3)"
                    .into(),
                vec![token_cutoff.into(), sender_cutoff.into()],
            )])
            .await?;
        Ok(changed(&done))
    }

    /// In one write, so two touches cannot lose each other.
    async fn touch_tc_token_sender_timestamp(
        &self,
        jid: &str,
        sender_timestamp: i64,
    ) -> Result<()> {
        // A new row has an empty token (passed as ?4: the two databases
        // write an empty blob literal differently).
        self.run(vec![(
            "INSERT INTO tc_tokens (dev, jid, token, token_ts, sender_ts) VALUES (?1, ?2, ?4, ?3, ?3)
             ON CONFLICT (dev, jid) DO UPDATE
               SET sender_ts = CASE
                   WHEN tc_tokens.sender_ts IS NULL OR tc_tokens.sender_ts < excluded.sender_ts
                   THEN excluded.sender_ts ELSE tc_tokens.sender_ts END"
                .into(),
            vec![jid.into(), sender_timestamp.into(), Val::Blob(Vec::new())],
        )])
        .await
        .map(|_| ())
    }

    /// Newer wins: an older token does not replace a fresher real one.
    async fn store_received_tc_token(
        &self,
        jid: &str,
        token: &[u8],
        token_timestamp: i64,
    ) -> Result<()> {
        self.run(vec![(
            "INSERT INTO tc_tokens (dev, jid, token, token_ts, sender_ts) VALUES (?1, ?2, ?3, ?4, NULL)
             ON CONFLICT (dev, jid) DO UPDATE SET token = excluded.token, token_ts = excluded.token_ts
               WHERE length(tc_tokens.token) = 0 OR excluded.token_ts >= tc_tokens.token_ts"
                .into(),
            vec![jid.into(), token.into(), token_timestamp.into()],
        )])
        .await
        .map(|_| ())
    }

    async fn store_sent_message(
        &self,
        chat_jid: &str,
        message_id: &str,
        payload: &[u8],
    ) -> Result<()> {
        self.run(vec![(
            "INSERT INTO sent_messages (dev, chat, id, payload, ts) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (dev, chat, id) DO UPDATE SET payload = excluded.payload, ts = excluded.ts"
                .into(),
            vec![
                chat_jid.into(),
                message_id.into(),
                payload.into(),
                now_secs().into(),
            ],
        )])
        .await
        .map(|_| ())
    }

    async fn take_sent_message(&self, chat_jid: &str, message_id: &str) -> Result<Option<Vec<u8>>> {
        let done = self
            .run(vec![(
                "DELETE FROM sent_messages WHERE dev = ?1 AND chat = ?2 AND id = ?3 RETURNING payload"
                    .into(),
                vec![chat_jid.into(), message_id.into()],
            )])
            .await?;
        done.into_iter()
            .next()
            .and_then(|d| d.rows.into_iter().next())
            .and_then(|r| r.into_iter().next())
            .map(from_val)
            .transpose()
    }

    async fn delete_expired_sent_messages(&self, cutoff_timestamp: i64) -> Result<u32> {
        let done = self
            .run(vec![(
                "DELETE FROM sent_messages WHERE dev = ?1 AND ts < ?2".into(),
                vec![cutoff_timestamp.into()],
            )])
            .await?;
        Ok(changed(&done))
    }

    async fn store_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        id: &str,
        message: &[u8],
    ) -> Result<()> {
        self.run(vec![(
            PUT_PENDING.into(),
            vec![
                chat.into(),
                sender.into(),
                id.into(),
                message.into(),
                now_secs().into(),
            ],
        )])
        .await
        .map(|_| ())
    }

    async fn store_pending_inbound_batch(&self, rows: &[PendingInboundRow<'_>]) -> Result<()> {
        let ts = now_secs();
        self.run(
            rows.iter()
                .map(|r| {
                    (
                        PUT_PENDING.into(),
                        vec![
                            r.chat.into(),
                            r.sender.into(),
                            r.id.into(),
                            r.message.into(),
                            ts.into(),
                        ],
                    )
                })
                .collect(),
        )
        .await
        .map(|_| ())
    }

    async fn get_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        id: &str,
    ) -> Result<Option<Vec<u8>>> {
        self.one(
            "SELECT message FROM pending_inbound WHERE dev = ?1 AND chat = ?2 AND sender = ?3 AND id = ?4",
            vec![chat.into(), sender.into(), id.into()],
        )
        .await
    }

    async fn delete_pending_inbound(&self, chat: &str, sender: &str, id: &str) -> Result<()> {
        self.run(vec![(
            DELETE_PENDING.into(),
            vec![chat.into(), sender.into(), id.into()],
        )])
        .await
        .map(|_| ())
    }

    async fn delete_pending_inbound_batch(&self, keys: &[PendingInboundKey<'_>]) -> Result<()> {
        self.run(
            keys.iter()
                .map(|k| {
                    (
                        DELETE_PENDING.into(),
                        vec![k.chat.into(), k.sender.into(), k.id.into()],
                    )
                })
                .collect(),
        )
        .await
        .map(|_| ())
    }

    async fn delete_expired_pending_inbound(&self, cutoff_timestamp: i64) -> Result<u32> {
        let done = self
            .run(vec![(
                "DELETE FROM pending_inbound WHERE dev = ?1 AND ts < ?2".into(),
                vec![cutoff_timestamp.into()],
            )])
            .await?;
        Ok(changed(&done))
    }
}

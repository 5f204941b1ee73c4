//! WhatsApp's protocol bookkeeping for one device: which group devices hold
//! our sender key, the LID↔phone map, base keys (collision checks), device
//! lists, group metadata, trusted-contact tokens, sent messages kept for
//! retry receipts, and the inbound buffer that makes receiving at least once.

use rusqlite::{params, Connection, OptionalExtension, Row};
use whatsapp_rust::wacore::store::error::Result;
use whatsapp_rust::wacore::store::traits::{
    DeviceListRecord, LidPnMappingEntry, PendingInboundKey, PendingInboundRow, ProtocolStore,
    TcTokenEntry,
};

use super::{json_err, OrgDevice};

fn now_secs() -> i64 {
    crate::store::now_ms() / 1000
}

/// A `lid_map` row (lid, pn, created_at, updated_at, source) as the library's entry.
pub(super) fn lid_entry(r: &Row) -> rusqlite::Result<LidPnMappingEntry> {
    Ok(LidPnMappingEntry {
        lid: r.get(0)?,
        phone_number: r.get(1)?,
        created_at: r.get(2)?,
        updated_at: r.get(3)?,
        learning_source: r.get(4)?,
    })
}

fn put_lid(c: &Connection, dev: i64, e: &LidPnMappingEntry) -> rusqlite::Result<()> {
    // REPLACE gives the row a new rowid: the number's newest LID is the last written.
    c.prepare_cached(
        "INSERT OR REPLACE INTO lid_map (dev, lid, pn, created_at, updated_at, source)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        dev,
        e.lid,
        e.phone_number,
        e.created_at,
        e.updated_at,
        e.learning_source
    ])
    .map(|_| ())
}

fn put_pending(
    c: &Connection,
    dev: i64,
    chat: &str,
    sender: &str,
    id: &str,
    message: &[u8],
) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO pending_inbound (dev, chat, sender, id, message, ts) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT(dev, chat, sender, id) DO UPDATE SET message = excluded.message, ts = excluded.ts",
    )?
    .execute(params![dev, chat, sender, id, message, now_secs()])
    .map(|_| ())
}

#[async_trait::async_trait]
impl ProtocolStore for OrgDevice {
    async fn get_sender_key_devices(&self, group_jid: &str) -> Result<Vec<(String, bool)>> {
        let g = group_jid.to_string();
        self.read(move |c, dev| {
            c.prepare_cached(
                "SELECT device_jid, has_key FROM sender_key_devices WHERE dev = ?1 AND group_jid = ?2",
            )?
            .query_map(params![dev, g], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect()
        })
        .await
    }

    async fn set_sender_key_status(&self, group_jid: &str, entries: &[(&str, bool)]) -> Result<()> {
        let g = group_jid.to_string();
        let rows: Vec<(String, bool)> = entries.iter().map(|(j, k)| (j.to_string(), *k)).collect();
        self.write(move |c, dev| {
            let mut st = c.prepare_cached(
                "INSERT INTO sender_key_devices (dev, group_jid, device_jid, has_key) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(dev, group_jid, device_jid) DO UPDATE SET has_key = excluded.has_key",
            )?;
            for (j, k) in &rows {
                st.execute(params![dev, g, j, k])?;
            }
            Ok(())
        })
        .await
    }

    async fn clear_sender_key_devices(&self, group_jid: &str) -> Result<()> {
        self.delete_where("sender_key_devices", "group_jid", group_jid.to_string())
            .await
    }

    async fn delete_sender_key_device_rows(&self, device_jids: &[&str]) -> Result<()> {
        let jids: Vec<String> = device_jids.iter().map(|j| j.to_string()).collect();
        if jids.is_empty() {
            return Ok(());
        }
        self.write(move |c, dev| {
            let mut st = c.prepare_cached(
                "DELETE FROM sender_key_devices WHERE dev = ?1 AND device_jid = ?2",
            )?;
            for j in &jids {
                st.execute(params![dev, j])?;
            }
            Ok(())
        })
        .await
    }

    async fn clear_all_sender_key_devices(&self) -> Result<()> {
        self.write(|c, dev| {
            c.prepare_cached("DELETE FROM sender_key_devices WHERE dev = ?1")?
                .execute([dev])
                .map(|_| ())
        })
        .await
    }

    async fn get_lid_mapping(&self, lid: &str) -> Result<Option<LidPnMappingEntry>> {
        let lid = lid.to_string();
        self.read(move |c, dev| {
            c.prepare_cached(
                "SELECT lid, pn, created_at, updated_at, source FROM lid_map WHERE dev = ?1 AND lid = ?2",
            )?
            .query_row(params![dev, lid], lid_entry)
            .optional()
        })
        .await
    }

    async fn get_pn_mapping(&self, phone: &str) -> Result<Option<LidPnMappingEntry>> {
        let pn = phone.to_string();
        self.read(move |c, dev| {
            c.prepare_cached(
                "SELECT lid, pn, created_at, updated_at, source FROM lid_map
                 WHERE dev = ?1 AND pn = ?2 ORDER BY rowid DESC LIMIT 1",
            )?
            .query_row(params![dev, pn], lid_entry)
            .optional()
        })
        .await
    }

    async fn put_lid_mapping(&self, entry: &LidPnMappingEntry) -> Result<()> {
        let e = entry.clone();
        self.write(move |c, dev| put_lid(c, dev, &e)).await
    }

    async fn put_lid_mappings(&self, entries: &[LidPnMappingEntry]) -> Result<()> {
        let all = entries.to_vec();
        self.write(move |c, dev| all.iter().try_for_each(|e| put_lid(c, dev, e)))
            .await
    }

    async fn get_all_lid_mappings(&self) -> Result<Vec<LidPnMappingEntry>> {
        self.read(|c, dev| {
            c.prepare_cached(
                "SELECT lid, pn, created_at, updated_at, source FROM lid_map WHERE dev = ?1 ORDER BY rowid",
            )?
            .query_map([dev], lid_entry)?
            .collect()
        })
        .await
    }

    async fn save_base_key(&self, address: &str, message_id: &str, base_key: &[u8]) -> Result<()> {
        let (a, m, k) = (
            address.to_string(),
            message_id.to_string(),
            base_key.to_vec(),
        );
        self.write(move |c, dev| {
            c.prepare_cached(
                "INSERT INTO base_keys (dev, address, message_id, base_key) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(dev, address, message_id) DO UPDATE SET base_key = excluded.base_key",
            )?
            .execute(params![dev, a, m, k])
            .map(|_| ())
        })
        .await
    }

    async fn has_same_base_key(
        &self,
        address: &str,
        message_id: &str,
        current_base_key: &[u8],
    ) -> Result<bool> {
        let (a, m) = (address.to_string(), message_id.to_string());
        let stored: Option<Vec<u8>> = self
            .read(move |c, dev| {
                c.prepare_cached(
                    "SELECT base_key FROM base_keys WHERE dev = ?1 AND address = ?2 AND message_id = ?3",
                )?
                .query_row(params![dev, a, m], |r| r.get(0))
                .optional()
            })
            .await?;
        Ok(stored.is_some_and(|s| s == current_base_key))
    }

    async fn delete_base_key(&self, address: &str, message_id: &str) -> Result<()> {
        let (a, m) = (address.to_string(), message_id.to_string());
        self.write(move |c, dev| {
            c.prepare_cached(
                "DELETE FROM base_keys WHERE dev = ?1 AND address = ?2 AND message_id = ?3",
            )?
            .execute(params![dev, a, m])
            .map(|_| ())
        })
        .await
    }

    async fn update_device_list(&self, record: DeviceListRecord) -> Result<()> {
        self.update_device_lists(vec![record]).await
    }

    async fn update_device_lists(&self, records: Vec<DeviceListRecord>) -> Result<()> {
        let rows = records
            .iter()
            .map(|r| Ok((r.user.clone(), serde_json::to_string(r).map_err(json_err)?)))
            .collect::<Result<Vec<(String, String)>>>()?;
        self.write(move |c, dev| {
            let mut st = c.prepare_cached(
                "INSERT INTO device_lists (dev, user, record) VALUES (?1, ?2, ?3)
                 ON CONFLICT(dev, user) DO UPDATE SET record = excluded.record",
            )?;
            for (u, r) in &rows {
                st.execute(params![dev, u, r])?;
            }
            Ok(())
        })
        .await
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
        let j = jid.to_string();
        self.read(move |c, dev| {
            c.prepare_cached(
                "SELECT token, token_ts, sender_ts FROM tc_tokens WHERE dev = ?1 AND jid = ?2",
            )?
            .query_row(params![dev, j], |r| {
                Ok(TcTokenEntry {
                    token: r.get(0)?,
                    token_timestamp: r.get(1)?,
                    sender_timestamp: r.get(2)?,
                })
            })
            .optional()
        })
        .await
    }

    async fn put_tc_token(&self, jid: &str, entry: &TcTokenEntry) -> Result<()> {
        let (j, e) = (jid.to_string(), entry.clone());
        self.write(move |c, dev| {
            c.prepare_cached(
                "INSERT INTO tc_tokens (dev, jid, token, token_ts, sender_ts) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(dev, jid) DO UPDATE SET token = excluded.token,
                   token_ts = excluded.token_ts, sender_ts = excluded.sender_ts",
            )?
            .execute(params![dev, j, e.token, e.token_timestamp, e.sender_timestamp])
            .map(|_| ())
        })
        .await
    }

    async fn delete_tc_token(&self, jid: &str) -> Result<()> {
        self.delete_where("tc_tokens", "jid", jid.to_string()).await
    }

    async fn get_all_tc_token_jids(&self) -> Result<Vec<String>> {
        self.read(|c, dev| {
            c.prepare_cached("SELECT jid FROM tc_tokens WHERE dev = ?1")?
                .query_map([dev], |r| r.get(0))?
                .collect()
        })
        .await
    }

    /// A row goes only when both its received token and its sender
    /// timestamp are stale.
    async fn delete_expired_tc_tokens(&self, token_cutoff: i64, sender_cutoff: i64) -> Result<u32> {
        self.write(move |c, dev| {
            c.prepare_cached(
                "DELETE FROM tc_tokens WHERE dev = ?1
                   AND NOT (length(token) > 0 AND token_ts >= ?2)
                   AND NOT (sender_ts IS NOT NULL AND sender_ts >= ?3)",
            )?
            .execute(params![dev, token_cutoff, sender_cutoff])
            .map(|n| n as u32)
        })
        .await
    }

    /// In one write, so two touches cannot lose each other.
    async fn touch_tc_token_sender_timestamp(
        &self,
        jid: &str,
        sender_timestamp: i64,
    ) -> Result<()> {
        let j = jid.to_string();
        self.write(move |c, dev| {
            c.prepare_cached(
                "INSERT INTO tc_tokens (dev, jid, token, token_ts, sender_ts) VALUES (?1, ?2, x'', ?3, ?3)
                 ON CONFLICT(dev, jid) DO UPDATE
                   SET sender_ts = MAX(COALESCE(sender_ts, excluded.sender_ts), excluded.sender_ts)",
            )?
            .execute(params![dev, j, sender_timestamp])
            .map(|_| ())
        })
        .await
    }

    /// Newer wins: an older token does not replace a fresher real one.
    async fn store_received_tc_token(
        &self,
        jid: &str,
        token: &[u8],
        token_timestamp: i64,
    ) -> Result<()> {
        let (j, t) = (jid.to_string(), token.to_vec());
        self.write(move |c, dev| {
            c.prepare_cached(
                "INSERT INTO tc_tokens (dev, jid, token, token_ts, sender_ts) VALUES (?1, ?2, ?3, ?4, NULL)
                 ON CONFLICT(dev, jid) DO UPDATE SET token = excluded.token, token_ts = excluded.token_ts
                   WHERE length(tc_tokens.token) = 0 OR excluded.token_ts >= tc_tokens.token_ts",
            )?
            .execute(params![dev, j, t, token_timestamp])
            .map(|_| ())
        })
        .await
    }

    async fn store_sent_message(
        &self,
        chat_jid: &str,
        message_id: &str,
        payload: &[u8],
    ) -> Result<()> {
        let (ch, id, p) = (
            chat_jid.to_string(),
            message_id.to_string(),
            payload.to_vec(),
        );
        self.write(move |c, dev| {
            c.prepare_cached(
                "INSERT INTO sent_messages (dev, chat, id, payload, ts) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(dev, chat, id) DO UPDATE SET payload = excluded.payload, ts = excluded.ts",
            )?
            .execute(params![dev, ch, id, p, now_secs()])
            .map(|_| ())
        })
        .await
    }

    async fn take_sent_message(&self, chat_jid: &str, message_id: &str) -> Result<Option<Vec<u8>>> {
        let (ch, id) = (chat_jid.to_string(), message_id.to_string());
        self.write(move |c, dev| {
            c.prepare_cached(
                "DELETE FROM sent_messages WHERE dev = ?1 AND chat = ?2 AND id = ?3 RETURNING payload",
            )?
            .query_row(params![dev, ch, id], |r| r.get(0))
            .optional()
        })
        .await
    }

    async fn delete_expired_sent_messages(&self, cutoff_timestamp: i64) -> Result<u32> {
        self.write(move |c, dev| {
            c.prepare_cached("DELETE FROM sent_messages WHERE dev = ?1 AND ts < ?2")?
                .execute(params![dev, cutoff_timestamp])
                .map(|n| n as u32)
        })
        .await
    }

    async fn store_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        id: &str,
        message: &[u8],
    ) -> Result<()> {
        let (ch, s, i, m) = (
            chat.to_string(),
            sender.to_string(),
            id.to_string(),
            message.to_vec(),
        );
        self.write(move |c, dev| put_pending(c, dev, &ch, &s, &i, &m))
            .await
    }

    async fn store_pending_inbound_batch(&self, rows: &[PendingInboundRow<'_>]) -> Result<()> {
        let all: Vec<(String, String, String, Vec<u8>)> = rows
            .iter()
            .map(|r| {
                (
                    r.chat.to_string(),
                    r.sender.to_string(),
                    r.id.to_string(),
                    r.message.to_vec(),
                )
            })
            .collect();
        self.write(move |c, dev| {
            all.iter()
                .try_for_each(|(ch, s, i, m)| put_pending(c, dev, ch, s, i, m))
        })
        .await
    }

    async fn get_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        id: &str,
    ) -> Result<Option<Vec<u8>>> {
        let (ch, s, i) = (chat.to_string(), sender.to_string(), id.to_string());
        self.read(move |c, dev| {
            c.prepare_cached(
                "SELECT message FROM pending_inbound WHERE dev = ?1 AND chat = ?2 AND sender = ?3 AND id = ?4",
            )?
            .query_row(params![dev, ch, s, i], |r| r.get(0))
            .optional()
        })
        .await
    }

    async fn delete_pending_inbound(&self, chat: &str, sender: &str, id: &str) -> Result<()> {
        let (ch, s, i) = (chat.to_string(), sender.to_string(), id.to_string());
        self.write(move |c, dev| {
            c.prepare_cached(
                "DELETE FROM pending_inbound WHERE dev = ?1 AND chat = ?2 AND sender = ?3 AND id = ?4",
            )?
            .execute(params![dev, ch, s, i])
            .map(|_| ())
        })
        .await
    }

    async fn delete_pending_inbound_batch(&self, keys: &[PendingInboundKey<'_>]) -> Result<()> {
        let all: Vec<(String, String, String)> = keys
            .iter()
            .map(|k| (k.chat.to_string(), k.sender.to_string(), k.id.to_string()))
            .collect();
        self.write(move |c, dev| {
            let mut st = c.prepare_cached(
                "DELETE FROM pending_inbound WHERE dev = ?1 AND chat = ?2 AND sender = ?3 AND id = ?4",
            )?;
            for (ch, s, i) in &all {
                st.execute(params![dev, ch, s, i])?;
            }
            Ok(())
        })
        .await
    }

    async fn delete_expired_pending_inbound(&self, cutoff_timestamp: i64) -> Result<u32> {
        self.write(move |c, dev| {
            c.prepare_cached("DELETE FROM pending_inbound WHERE dev = ?1 AND ts < ?2")?
                .execute(params![dev, cutoff_timestamp])
                .map(|n| n as u32)
        })
        .await
    }
}

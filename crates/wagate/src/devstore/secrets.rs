//! Message secrets of one device (what lets a reaction, a poll vote or an
//! edit be read): keyed by chat, sender and message id, with the deadline
//! after which the client's sweep deletes them (0: never) and the parent
//! message's time.

use rusqlite::{params, OptionalExtension};
use whatsapp_rust::wacore::store::error::Result;
use whatsapp_rust::wacore::store::traits::{MsgSecretEntry, MsgSecretStore};

use super::OrgDevice;

#[async_trait::async_trait]
impl MsgSecretStore for OrgDevice {
    /// Upserts every entry; on a known key the secret is replaced, the
    /// deadline merged (never, if either says never; else the later) and the
    /// message time kept at its latest, as the library's merge rules say.
    async fn put_msg_secrets(&self, entries: Vec<MsgSecretEntry>) -> Result<usize> {
        let n = entries.len();
        self.write(move |c, dev| {
            let mut st = c.prepare_cached(
                "INSERT INTO msg_secrets (dev, chat, sender, msg_id, secret, expires_at, message_ts)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT(dev, chat, sender, msg_id) DO UPDATE SET
                   secret = excluded.secret,
                   expires_at = CASE WHEN msg_secrets.expires_at = 0 OR excluded.expires_at = 0 THEN 0
                                     ELSE MAX(msg_secrets.expires_at, excluded.expires_at) END,
                   message_ts = MAX(msg_secrets.message_ts, excluded.message_ts)",
            )?;
            for e in &entries {
                st.execute(params![
                    dev,
                    e.chat.as_ref(),
                    e.sender.as_ref(),
                    e.msg_id.as_ref(),
                    &e.secret[..],
                    e.expires_at,
                    e.message_ts
                ])?;
            }
            Ok(n)
        })
        .await
    }

    async fn get_msg_secret(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> Result<Option<Vec<u8>>> {
        Ok(self
            .get_msg_secret_with_ts(chat, sender, msg_id)
            .await?
            .map(|(s, _)| s))
    }

    async fn get_msg_secret_with_ts(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> Result<Option<(Vec<u8>, i64)>> {
        let (ch, s, m) = (chat.to_string(), sender.to_string(), msg_id.to_string());
        self.read(move |c, dev| {
            c.prepare_cached(
                "SELECT secret, message_ts FROM msg_secrets
                 WHERE dev = ?1 AND chat = ?2 AND sender = ?3 AND msg_id = ?4",
            )?
            .query_row(params![dev, ch, s, m], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
        })
        .await
    }

    async fn delete_expired_msg_secrets(&self, cutoff_timestamp: i64) -> Result<u32> {
        self.write(move |c, dev| {
            c.prepare_cached(
                "DELETE FROM msg_secrets WHERE dev = ?1 AND expires_at != 0 AND expires_at <= ?2",
            )?
            .execute(params![dev, cutoff_timestamp])
            .map(|n| n as u32)
        })
        .await
    }
}

//! Message secrets of one device (what lets a reaction, a poll vote or an
//! edit be read): keyed by chat, sender and message id, with the deadline
//! after which the client's sweep deletes them (0: never) and the parent
//! message's time.

use whatsapp_rust::wacore::store::error::Result;
use whatsapp_rust::wacore::store::traits::{MsgSecretEntry, MsgSecretStore};

use super::OrgDevice;

/// Upsert one entry: the secret replaced, the deadline merged (never, if
/// either says never; else the later), the message time kept at its latest.
const MERGE: &str =
    "INSERT INTO msg_secrets (dev, chat, sender, msg_id, secret, expires_at, message_ts)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
     ON CONFLICT (dev, chat, sender, msg_id) DO UPDATE SET
       secret = excluded.secret,
       expires_at = CASE WHEN msg_secrets.expires_at = 0 OR excluded.expires_at = 0 THEN 0
                         WHEN msg_secrets.expires_at > excluded.expires_at THEN msg_secrets.expires_at
                         ELSE excluded.expires_at END,
       message_ts = CASE WHEN msg_secrets.message_ts > excluded.message_ts
                         THEN msg_secrets.message_ts ELSE excluded.message_ts END";

#[async_trait::async_trait]
impl MsgSecretStore for OrgDevice {
    /// Upserts every entry in one transaction, with the library's merge rules.
    async fn put_msg_secrets(&self, entries: Vec<MsgSecretEntry>) -> Result<usize> {
        let n = entries.len();
        self.run(
            entries
                .iter()
                .map(|e| {
                    (
                        MERGE.into(),
                        vec![
                            e.chat.as_ref().into(),
                            e.sender.as_ref().into(),
                            e.msg_id.as_ref().into(),
                            e.secret[..].into(),
                            e.expires_at.into(),
                            e.message_ts.into(),
                        ],
                    )
                })
                .collect(),
        )
        .await?;
        Ok(n)
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
        self.first_row(
            "SELECT secret, message_ts FROM msg_secrets
             WHERE dev = ?1 AND chat = ?2 AND sender = ?3 AND msg_id = ?4",
            vec![chat.into(), sender.into(), msg_id.into()],
        )
        .await?
        .map(super::pair)
        .transpose()
    }

    async fn delete_expired_msg_secrets(&self, cutoff_timestamp: i64) -> Result<u32> {
        let done = self
            .run(vec![(
                "DELETE FROM msg_secrets WHERE dev = ?1 AND expires_at != 0 AND expires_at <= ?2"
                    .into(),
                vec![cutoff_timestamp.into()],
            )])
            .await?;
        Ok(done.first().map_or(0, |d| d.changed as u32))
    }
}

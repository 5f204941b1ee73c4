//! What `/metrics` reads at scrape time: orgs per link state and the age of
//! each connected org's last frame (from the supervisors), messages and
//! webhook deliveries per status (one grouped count each in the database).

use std::time::Duration;

use super::{App, AppError};
use crate::auth::Caller;
use crate::metrics::Snapshot;

impl App {
    /// The scrape-time figures; admin only (or the metrics listener, which
    /// passes `None`).
    pub async fn metrics(&self, caller: Option<&Caller>) -> Result<String, AppError> {
        if let Some(c) = caller {
            self.require_admin(c)?;
        }
        let mut by_state: std::collections::BTreeMap<&'static str, i64> = Default::default();
        let mut frame_ages = vec![];
        let now = crate::store::now_ms();
        for h in self.sessions.list() {
            let s = h.status();
            *by_state.entry(s.state.as_str()).or_default() += 1;
            if s.state == crate::session::State::Connected {
                if let Some(seen) = s.last_seen_ms {
                    frame_ages.push(Duration::from_millis(now.saturating_sub(seen).max(0) as u64));
                }
            }
        }
        let grouped = |sql: &'static str| {
            move |c: &crate::store::Conn| -> crate::store::DbResult<Vec<(String, i64)>> {
                c.query_map(sql, Vec::new(), |r| -> crate::store::DbResult<_> {
                    Ok((r.get(0)?, r.get(1)?))
                })?
                .collect()
            }
        };
        let messages = self
            .store
            .read(grouped(
                "SELECT status, COUNT(*) FROM messages GROUP BY status",
            ))
            .await?;
        let deliveries = self
            .store
            .read(grouped(
                "SELECT status, COUNT(*) FROM deliveries GROUP BY status",
            ))
            .await?;
        let snap = Snapshot {
            orgs: by_state
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            messages,
            deliveries,
            frame_ages,
        };
        Ok(crate::metrics::get().render(&snap))
    }
}

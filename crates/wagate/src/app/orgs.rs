//! Organizations: create (admin; the token is shown once), list with their
//! link state and queue, show, delete. Deleting an org ends its event
//! streams and dashboard sign-ins at once, stops its link (credentials moved
//! aside) and removes its rows; nothing of it reaches an org created later
//! under the same id (see `store/schema.rs`, incarnations).

use std::sync::Arc;

use super::{App, AppError, ErrorCode};
use crate::auth::{self, Caller};
use crate::session::Status;
use crate::store::orgs::NewOrg;
use crate::store::{self, OrgRow};

/// How long creating an org waits for its device store to open.
const OPEN_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// An org id: 1–64 letters, digits, `-` or `_`, starting with a letter or digit.
pub fn valid_org_id(id: &str) -> bool {
    let b = id.as_bytes();
    (1..=64).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
}

/// What it takes to create an org.
pub struct NewOrgRequest {
    pub id: Option<String>,
    pub name: Option<String>,
    pub default_country_code: Option<String>,
}

/// An org with its link status (for lists).
pub struct OrgSummary {
    pub row: Arc<OrgRow>,
    pub status: Status,
}

impl App {
    /// Create an organization; returns it with its token (shown once).
    pub async fn create_org(
        &self,
        caller: &Caller,
        req: NewOrgRequest,
    ) -> Result<(OrgSummary, String), AppError> {
        self.require_admin(caller)?;
        let id = req
            .id
            .ok_or_else(|| AppError::new(ErrorCode::MissingId, "field 'id' is required"))?;
        if !valid_org_id(&id) {
            return Err(AppError::new(
                ErrorCode::InvalidOrgId,
                "org id must be 1-64 letters, digits, '-' or '_', starting with a letter or digit",
            ));
        }
        let name = req.name.unwrap_or_else(|| id.clone()).trim().to_string();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(AppError::new(
                ErrorCode::InvalidName,
                "name must be 1-200 characters",
            ));
        }
        let cc = req
            .default_country_code
            .map(|c| c.trim().trim_start_matches('+').to_string());
        if let Some(c) = &cc {
            if !crate::phone::valid_country_code(c) {
                return Err(AppError::new(
                    ErrorCode::InvalidCountryCode,
                    "default_country_code must be 1-3 digits, e.g. \"57\"",
                ));
            }
        }
        let exists = || {
            AppError::new(
                ErrorCode::OrgExists,
                format!("organization '{id}' already exists"),
            )
        };
        if self.directory.read().contains_key(&id) {
            return Err(exists());
        }
        // A folder left under this id (an earlier org whose credentials could
        // not be moved aside) must never become the new org's device.
        self.sessions
            .set_leftovers_aside(&id)
            .map_err(|e| AppError::internal("cannot set aside an earlier org's credentials", e))?;
        let token = auth::generate("wgo_");
        let new = NewOrg {
            id: id.clone(),
            name,
            default_country_code: cc,
            token_hash: auth::hash_hex(&token),
            created_ms: store::now_ms(),
        };
        let row = self
            .store
            .write(move |tx| store::orgs::insert(tx, &new))
            .await?
            .ok_or_else(exists)?;
        let h = self.register(row.clone());
        tracing::info!(org = %row.id, inc = row.inc, "organization created");
        if let Some(c) = self.cluster() {
            // Several nodes: this node takes the new org (the balancing
            // passes move it later if this node has more than its share).
            c.route(&row.id, Some(row.inc)).await;
        }
        // Answer once its device store is open, so the state it shows means
        // something (`new`, or `error` when the store cannot be opened).
        let mut rx = h.status.clone();
        let _ = tokio::time::timeout(
            OPEN_WAIT,
            rx.wait_for(|s| s.state != crate::session::State::Starting),
        )
        .await;
        let mut status = self.link_status(&h);
        status.queued_messages = Some(0);
        Ok((
            OrgSummary {
                row: Arc::new(row),
                status,
            },
            token,
        ))
    }

    /// The orgs the caller may see, with status and queue (one query for all).
    pub async fn list_orgs(&self, caller: &Caller) -> Result<Vec<OrgSummary>, AppError> {
        let rows = self.visible(caller);
        let counts = self.store.read(store::messages::queued_counts).await?;
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                let h = self
                    .sessions
                    .get(&row.id)
                    .filter(|h| h.org.inc == row.inc)?;
                let mut status = self.link_status(&h);
                status.queued_messages = Some(counts.get(&row.inc).copied().unwrap_or(0));
                Some(OrgSummary { row, status })
            })
            .collect())
    }

    pub async fn get_org(&self, caller: &Caller, org: &str) -> Result<OrgSummary, AppError> {
        let a = self.authorize(caller, org)?;
        let status = self.status_of(&a).await;
        Ok(OrgSummary { row: a.row, status })
    }

    /// Delete an org (admin). Returns the deleted row.
    pub async fn delete_org(&self, caller: &Caller, org: &str) -> Result<Arc<OrgRow>, AppError> {
        self.require_admin(caller)?;
        let a = self.authorize(caller, org)?;
        let row = a.row.clone();
        self.deleted.lock().insert(row.inc);
        // No new request reaches it: its token and its entry are gone.
        self.tokens.remove_org(&row.id);
        self.directory.write().remove(&row.id);
        // Its open event streams end now.
        if let Some(t) = self.scopes.lock().remove(&row.inc) {
            t.cancel();
        }
        // Its link stops; the credentials are moved aside, never deleted.
        self.sessions.remove(&row.id, true).await;
        // Its rows go with it: messages, events, inbound, sign-ins (cascade).
        let (inc, id) = (row.inc, row.id.clone());
        let clustered = self.cluster().is_some();
        self.store
            .write(move |tx| {
                if clustered {
                    // Several nodes: its lease goes with it.
                    crate::cluster::lease::forget(tx, &id)?;
                }
                store::orgs::delete(tx, inc)
            })
            .await?;
        tracing::info!(org = %row.id, inc, "organization deleted; credentials moved aside");
        Ok(row)
    }
}

#[cfg(test)]
mod tests {
    use super::valid_org_id;

    #[test]
    fn org_ids() {
        for ok in ["4", "oceano-optico", "A_1", "a-"] {
            assert!(valid_org_id(ok), "{ok}");
        }
        let long = "x".repeat(65);
        for bad in ["", "-4", "_a", "a b", "ñ", "a/b", "a.b", long.as_str()] {
            assert!(!valid_org_id(bad), "{bad:?}");
        }
    }
}

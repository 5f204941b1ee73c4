//! Dashboard sign-ins, kept on the server: signing in with a token creates a
//! random sign-in id (the only thing the browser holds; its hash is stored)
//! that lasts `SIGNIN_TTL`. It ends on sign-out, when its org is deleted, and
//! for the admin when the admin token changes. Each sign-in has its own CSRF
//! token, derived from the secret id.

use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{App, AppError};
use crate::auth::{self, Caller};
use crate::session::OrgRef;
use crate::store::now_ms;
use crate::store::signins::{self, Signer};

/// A sign-in lasts this long; then the token must be pasted again.
pub const SIGNIN_TTL: Duration = Duration::from_secs(12 * 3600);

/// A live sign-in.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub caller: Caller,
    /// What the sign-in's forms must carry.
    pub csrf: String,
}

fn id_hash(id: &str) -> String {
    auth::hash_hex(id)
}

/// The CSRF token of a sign-in.
fn csrf_of(id: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"wagate-dashboard-csrf\0");
    h.update(id.as_bytes());
    hex::encode(&h.finalize()[..16])
}

/// A sign-in id has this shape; anything else is not looked up.
fn plausible(id: &str) -> bool {
    id.len() == 4 + 64 && id.starts_with("wgs_") && id[4..].bytes().all(|b| b.is_ascii_hexdigit())
}

impl App {
    /// Sign in with a token; returns the new sign-in id (for the cookie).
    pub async fn sign_in(&self, token: &str) -> Result<(String, SignedIn), AppError> {
        let caller = self.identify(token)?;
        let signer = match &caller {
            Caller::Admin => Signer::Admin {
                token_hash: self.tokens.admin_hash_hex(),
            },
            Caller::Org(o) => Signer::Org {
                inc: o.inc,
                org: o.id.clone(),
            },
        };
        let id = auth::generate("wgs_");
        let hash = id_hash(&id);
        let now = now_ms();
        let expires = now + SIGNIN_TTL.as_millis() as i64;
        self.store
            .write(move |tx| {
                signins::purge_expired(tx, now)?;
                signins::insert(tx, &hash, &signer, now, expires)
            })
            .await
            .map_err(|e| {
                if e.is_org_gone() {
                    AppError::new(super::ErrorCode::Unauthorized, "invalid token")
                } else {
                    AppError::from(e)
                }
            })?;
        let csrf = csrf_of(&id);
        Ok((id, SignedIn { caller, csrf }))
    }

    /// The live sign-in with this id: not expired, not signed out, its org
    /// still there, its admin token still the admin token.
    pub async fn signed_in(&self, id: &str) -> Option<SignedIn> {
        if !plausible(id) {
            return None;
        }
        let hash = id_hash(id);
        let row = self
            .store
            .read(move |c| signins::get(c, &hash))
            .await
            .ok()
            .flatten()?;
        if row.expires_ms <= now_ms() {
            return None;
        }
        let caller = match row.signer {
            Signer::Admin { token_hash } => {
                let current = self.tokens.admin_hash_hex();
                let same: bool =
                    subtle::ConstantTimeEq::ct_eq(token_hash.as_bytes(), current.as_bytes()).into();
                if !same {
                    return None;
                }
                Caller::Admin
            }
            Signer::Org { inc, org } => {
                let live = self
                    .directory
                    .read()
                    .get(&org)
                    .is_some_and(|r| r.inc == inc);
                if !live {
                    return None;
                }
                Caller::Org(OrgRef { id: org, inc })
            }
        };
        Some(SignedIn {
            caller,
            csrf: csrf_of(id),
        })
    }

    /// End a sign-in (sign-out). Unknown ids are fine.
    pub async fn sign_out(&self, id: &str) {
        if !plausible(id) {
            return;
        }
        let hash = id_hash(id);
        if let Err(e) = self
            .store
            .write(move |tx| signins::delete(tx, &hash).map(|_| ()))
            .await
        {
            tracing::warn!(error = %e, "sign-out not recorded");
        }
    }
}

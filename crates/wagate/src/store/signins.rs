//! Rows of the `signins` table: dashboard sign-ins kept on the server. The
//! browser holds only a random sign-in id; the table keeps its hash, who signed
//! in (an org incarnation, or the admin with the hash of the admin token of
//! the time) and when it expires. An org's sign-ins go when the org goes.

use super::{Conn, DbResult, OptionalExt};
use crate::args;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    /// The admin, signed in with the admin token whose hash this is.
    Admin { token_hash: String },
    /// An organization (incarnation `inc`, id `org`).
    Org { inc: i64, org: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigninRow {
    pub signer: Signer,
    pub created_ms: i64,
    pub expires_ms: i64,
}

pub fn insert(
    c: &Conn,
    id_hash: &str,
    signer: &Signer,
    now_ms: i64,
    expires_ms: i64,
) -> DbResult<()> {
    let (inc, admin) = match signer {
        Signer::Admin { token_hash } => (None, Some(token_hash.as_str())),
        Signer::Org { inc, .. } => (Some(*inc), None),
    };
    c.execute(
        "INSERT INTO signins (id_hash, inc, admin_hash, created_ms, expires_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        args![id_hash, inc, admin, now_ms, expires_ms],
    )?;
    Ok(())
}

/// The sign-in with this id hash, if it exists (expired or not).
pub fn get(c: &Conn, id_hash: &str) -> DbResult<Option<SigninRow>> {
    c.query_row(
        "SELECT s.inc, o.id, s.admin_hash, s.created_ms, s.expires_ms
         FROM signins s LEFT JOIN orgs o ON o.inc = s.inc WHERE s.id_hash = ?1",
        args![id_hash],
        |r| {
            let inc: Option<i64> = r.get(0)?;
            let org: Option<String> = r.get(1)?;
            let admin: Option<String> = r.get(2)?;
            Ok((inc, org, admin, r.get::<i64>(3)?, r.get::<i64>(4)?))
        },
    )
    .optional()
    .map(|row| {
        row.and_then(|(inc, org, admin, created_ms, expires_ms)| {
            let signer = match (inc, org, admin) {
                (Some(inc), Some(org), _) => Signer::Org { inc, org },
                (None, _, Some(token_hash)) => Signer::Admin { token_hash },
                _ => return None,
            };
            Some(SigninRow {
                signer,
                created_ms,
                expires_ms,
            })
        })
    })
}

/// End one sign-in; `false` if there was none.
pub fn delete(c: &Conn, id_hash: &str) -> DbResult<bool> {
    Ok(c.execute("DELETE FROM signins WHERE id_hash = ?1", args![id_hash])? == 1)
}

/// Forget sign-ins past their expiry; returns how many.
pub fn purge_expired(c: &Conn, now_ms: i64) -> DbResult<usize> {
    c.execute("DELETE FROM signins WHERE expires_ms <= ?1", args![now_ms])
}

//! Rows of the `orgs` table: one per organization, with its incarnation
//! number (`inc`: unique for all time, so a re-created org is a new one) and
//! its token's hash.

use super::{Conn, DbResult, OptionalExt};
use crate::args;
use crate::db::Row;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgRow {
    pub inc: i64,
    pub id: String,
    pub name: String,
    pub default_country_code: Option<String>,
    pub token_hash: String,
    pub created_ms: i64,
}

/// A new organization's fields (the incarnation is assigned on insert).
pub struct NewOrg {
    pub id: String,
    pub name: String,
    pub default_country_code: Option<String>,
    pub token_hash: String,
    pub created_ms: i64,
}

fn from_row(r: &Row) -> DbResult<OrgRow> {
    Ok(OrgRow {
        inc: r.get(0)?,
        id: r.get(1)?,
        name: r.get(2)?,
        default_country_code: r.get(3)?,
        token_hash: r.get(4)?,
        created_ms: r.get(5)?,
    })
}

const COLS: &str = "inc, id, name, default_cc, token_hash, created_ms";

/// Insert a new org; `None` when the id is taken.
pub fn insert(c: &Conn, org: &NewOrg) -> DbResult<Option<OrgRow>> {
    let inc: Option<i64> = c
        .query_row(
            "INSERT INTO orgs (id, name, default_cc, token_hash, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (id) DO NOTHING RETURNING inc",
            args![org.id, org.name, org.default_country_code, org.token_hash, org.created_ms],
            |r| r.get(0),
        )
        .optional()?;
    let Some(inc) = inc else {
        return Ok(None);
    };
    Ok(Some(OrgRow {
        inc,
        id: org.id.clone(),
        name: org.name.clone(),
        default_country_code: org.default_country_code.clone(),
        token_hash: org.token_hash.clone(),
        created_ms: org.created_ms,
    }))
}

pub fn list(c: &Conn) -> DbResult<Vec<OrgRow>> {
    c.query_map(
        &format!("SELECT {COLS} FROM orgs ORDER BY id"),
        args![],
        from_row,
    )?
    .collect()
}

pub fn count(c: &Conn) -> DbResult<i64> {
    c.query_row("SELECT COUNT(*) FROM orgs", args![], |r| r.get(0))
}

pub fn get(c: &Conn, id: &str) -> DbResult<Option<OrgRow>> {
    c.query_row(
        &format!("SELECT {COLS} FROM orgs WHERE id = ?1"),
        args![id],
        from_row,
    )
    .optional()
}

/// Remove one incarnation of an org; its messages, events, received messages
/// and dashboard sign-ins go with it (foreign keys cascade). `false` if unknown.
pub fn delete(c: &Conn, inc: i64) -> DbResult<bool> {
    Ok(c.execute("DELETE FROM orgs WHERE inc = ?1", args![inc])? == 1)
}

/// The id of incarnation `inc`, while it exists.
pub fn id_of(c: &Conn, inc: i64) -> DbResult<Option<String>> {
    c.query_row("SELECT id FROM orgs WHERE inc = ?1", args![inc], |r| {
        r.get(0)
    })
    .optional()
}

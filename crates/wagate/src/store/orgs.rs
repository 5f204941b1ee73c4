//! Rows of the `orgs` table: one per organization, with its token's hash.

use rusqlite::{params, Connection, OptionalExtension, Row};

#[derive(Debug, Clone, serde::Serialize)]
pub struct OrgRow {
    pub id: String,
    pub name: String,
    pub default_country_code: Option<String>,
    #[serde(skip)]
    pub token_hash: String,
    pub created_ms: i64,
}

fn from_row(r: &Row) -> rusqlite::Result<OrgRow> {
    Ok(OrgRow {
        id: r.get(0)?,
        name: r.get(1)?,
        default_country_code: r.get(2)?,
        token_hash: r.get(3)?,
        created_ms: r.get(4)?,
    })
}

const COLS: &str = "id, name, default_cc, token_hash, created_ms";

/// Insert a new org; `Ok(false)` when the id is taken.
pub fn insert(c: &Connection, org: &OrgRow) -> rusqlite::Result<bool> {
    let n = c.execute(
        "INSERT OR IGNORE INTO orgs (id, name, default_cc, token_hash, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![org.id, org.name, org.default_country_code, org.token_hash, org.created_ms],
    )?;
    Ok(n == 1)
}

pub fn list(c: &Connection) -> rusqlite::Result<Vec<OrgRow>> {
    let mut st = c.prepare(&format!("SELECT {COLS} FROM orgs ORDER BY id"))?;
    let rows = st.query_map([], from_row)?;
    rows.collect()
}

pub fn get(c: &Connection, id: &str) -> rusqlite::Result<Option<OrgRow>> {
    c.query_row(
        &format!("SELECT {COLS} FROM orgs WHERE id = ?1"),
        [id],
        from_row,
    )
    .optional()
}

/// Remove an org and everything the gateway stored for it; `Ok(false)` if unknown.
pub fn delete(c: &Connection, id: &str) -> rusqlite::Result<bool> {
    c.execute("DELETE FROM messages WHERE org = ?1", [id])?;
    c.execute("DELETE FROM events WHERE org = ?1", [id])?;
    c.execute("DELETE FROM inbound WHERE org = ?1", [id])?;
    Ok(c.execute("DELETE FROM orgs WHERE id = ?1", [id])? == 1)
}

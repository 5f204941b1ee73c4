//! `wagate migrate-to-postgres`: copy a stopped gateway's SQLite data
//! directory (`wagate.db` and `devices.db`) into an empty PostgreSQL
//! database, in one transaction, so the gateway started with `--database`
//! finds every org, message, event, webhook and linked device as it was —
//! linked orgs connect again with no QR. Numbers are kept (org
//! incarnations, message and event sequence numbers), and the counters
//! behind them continue after the highest one copied.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context};
use rusqlite::{Connection, OpenFlags};
use tokio_postgres::types::ToSql;

use crate::db::{self, Val};

/// The gateway's tables, parents before children (foreign keys).
const GATEWAY_TABLES: &[&str] = &[
    "orgs",
    "messages",
    "events",
    "inbound",
    "signins",
    "counters",
    "policies",
    "contacts",
    "account_limits",
    "webhooks",
    "deliveries",
];

/// Identity columns whose sequences must continue after the copied rows.
const IDENTITIES: &[(&str, &str)] = &[
    ("orgs", "inc"),
    ("messages", "seq"),
    ("events", "seq"),
    ("inbound", "seq"),
    ("deliveries", "seq"),
];

/// Most parameters in one multi-row `INSERT` (PostgreSQL allows 65,535).
const PARAMS_PER_INSERT: usize = 30_000;

/// What was copied: rows per table, in order.
#[derive(Debug, Default)]
pub struct Copied {
    pub tables: Vec<(String, usize)>,
}

impl Copied {
    pub fn rows(&self) -> usize {
        self.tables.iter().map(|(_, n)| n).sum()
    }
}

fn open(path: &Path) -> anyhow::Result<Connection> {
    if !path.is_file() {
        bail!(
            "{} not found: give the gateway's data directory with --data",
            path.display()
        );
    }
    let c = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("opening {}", path.display()))?;
    // The copy reads one consistent snapshot of each file.
    c.execute_batch("BEGIN")?;
    Ok(c)
}

/// A table's column names, in order.
fn columns(c: &Connection, table: &str) -> anyhow::Result<Vec<String>> {
    let mut st = c.prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")?;
    let cols = st
        .query_map([table], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    if cols.is_empty() {
        bail!("table {table} is missing: is this a data directory of this wagate version? Start the gateway on it once (it migrates its files), stop it, then copy");
    }
    Ok(cols)
}

/// Copy `table` from SQLite to the open PostgreSQL transaction; its rows.
async fn copy_table(
    from: &Connection,
    to: &tokio_postgres::Transaction<'_>,
    table: &str,
) -> anyhow::Result<usize> {
    let cols = columns(from, table)?;
    let quoted: Vec<String> = cols.iter().map(|c| format!("\"{c}\"")).collect();
    let mut st = from.prepare(&format!("SELECT {} FROM {table}", quoted.join(", ")))?;
    let rows: Vec<Vec<Val>> = db::sqlite_rows(&mut st, &[], None)
        .with_context(|| format!("reading {table}"))?
        .into_iter()
        .map(|r| r.0)
        .collect();
    let per_insert = (PARAMS_PER_INSERT / cols.len()).max(1);
    for chunk in rows.chunks(per_insert) {
        let mut marks = Vec::with_capacity(chunk.len());
        let mut n = 0;
        for _ in chunk {
            let row: Vec<String> = (0..cols.len())
                .map(|_| {
                    n += 1;
                    format!("${n}")
                })
                .collect();
            marks.push(format!("({})", row.join(", ")));
        }
        let stmt = format!(
            "INSERT INTO {table} ({}) VALUES {}",
            quoted.join(", "),
            marks.join(", ")
        );
        let params: Vec<&(dyn ToSql + Sync)> = chunk
            .iter()
            .flat_map(|r| r.iter().map(|v| v as &(dyn ToSql + Sync)))
            .collect();
        to.execute(stmt.as_str(), &params)
            .await
            .map_err(|e| anyhow::anyhow!("writing {table}: {}", db::pg_detail(&e)))?;
    }
    Ok(rows.len())
}

/// Copy the SQLite files in `data` into the PostgreSQL database at `url`,
/// which must hold no organization yet. `say` hears one line per table.
pub async fn run(data: &Path, url: &str, say: &mut dyn FnMut(String)) -> anyhow::Result<Copied> {
    let t0 = Instant::now();
    if data.join("orgs").is_dir() && !data.join("devices.db").exists() {
        bail!("{} still has the one-folder-per-org layout: start this wagate on it once (it carries them into devices.db), stop it, then copy", data.display());
    }
    // A gateway still serving this directory would accept sends after the
    // copy, lost at the switch: refused while it holds the directory.
    let _owner = if data.is_dir() {
        Some(crate::datadir::lock(data, "migrate-to-postgres")?)
    } else {
        None
    };
    let gateway = open(&data.join("wagate.db"))?;
    let devices = open(&data.join("devices.db"))?;
    let version: i64 = gateway.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version != crate::store::VERSION {
        bail!(
            "wagate.db is at schema version {version}, this wagate writes {}: start this wagate on the data directory once (it migrates the file), stop it, then copy",
            crate::store::VERSION
        );
    }
    let mut pg = crate::cluster::connect(url)
        .await
        .context("connecting to PostgreSQL")?;
    crate::cluster::migrate(&mut pg)
        .await
        .context("creating the schema in PostgreSQL")?;
    let tx = pg.transaction().await?;
    let existing: i64 = tx.query_one("SELECT COUNT(*) FROM orgs", &[]).await?.get(0);
    if existing > 0 {
        bail!("the PostgreSQL database already holds {existing} organizations; copy into an empty database");
    }
    // The schema seeds the event counter; the copy brings the rest.
    tx.execute("DELETE FROM counters", &[]).await?;
    let mut copied = Copied::default();
    for (file, tables) in [
        (&gateway, GATEWAY_TABLES),
        (&devices, crate::devstore::TABLES),
    ] {
        for t in tables {
            let n = copy_table(file, &tx, t).await?;
            say(format!("{t}: {n} rows"));
            copied.tables.push((t.to_string(), n));
        }
    }
    for (table, col) in IDENTITIES {
        tx.execute(
            &format!(
                "SELECT setval(pg_get_serial_sequence('{table}', '{col}'), COALESCE(MAX({col}), 0) + 1, false) FROM {table}"
            ),
            &[],
        )
        .await?;
    }
    tx.execute(
        "INSERT INTO counters (name, value) SELECT 'event_seq', COALESCE(MAX(seq), 0) FROM events
         ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
        &[],
    )
    .await?;
    tx.commit().await.context("committing the copy")?;
    say(format!(
        "copied {} rows in {:.1} s",
        copied.rows(),
        t0.elapsed().as_secs_f64()
    ));
    Ok(copied)
}

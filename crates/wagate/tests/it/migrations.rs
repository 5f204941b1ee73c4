//! The frozen migration steps: a database made with each released schema
//! (version 1 … 5 of the gateway's tables, from the step files themselves),
//! on SQLite and on a real PostgreSQL, migrated by this wagate, has the same
//! tables, columns, indexes and counters as a fresh install (`latest.sql`).
//! On PostgreSQL also: a database that only has the one counter older
//! wagates kept is adopted, and a step added later (a v6) reaches a
//! database that is already migrated.

use std::collections::BTreeMap;

use rusqlite::Connection;
use tokio_postgres::Client;
use wagate::cluster;
use wagate::db::migrate::{self, Schema, Steps};
use wagate::store::{SCHEMA, SQLITE, VERSION};

use crate::common::pg::fresh_db;

/// A SQLite schema as comparable text: per table its columns in order
/// (name, type, not null, default, key position), its indexes' SQL with
/// spaces normalized, and the counters' names.
fn sqlite_shape(c: &Connection) -> BTreeMap<String, String> {
    let mut shape = BTreeMap::new();
    let tables: Vec<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for t in tables {
        let cols: Vec<String> = c
            .prepare(&format!(
                "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info('{t}')"
            ))
            .unwrap()
            .query_map([], |r| {
                Ok(format!(
                    "{} {} notnull={} default={:?} pk={}",
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, i64>(4)?
                ))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        shape.insert(format!("table {t}"), cols.join("\n"));
    }
    let indexes: Vec<(String, Option<String>)> = c
        .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'index' ORDER BY name")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (name, sql) in indexes {
        shape.insert(format!("index {name}"), normalize(&sql.unwrap_or_default()));
    }
    let counters: Vec<String> = c
        .prepare("SELECT name FROM counters ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    shape.insert("counters".into(), counters.join(","));
    shape
}

fn normalize(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A file made by the released steps up to `version`, as that release left it.
fn sqlite_at(path: &std::path::Path, version: usize) {
    let c = Connection::open(path).unwrap();
    for step in &SQLITE.steps[..version] {
        c.execute_batch(step).unwrap();
    }
    c.pragma_update(None, "user_version", version as i64)
        .unwrap();
}

#[test]
fn each_released_sqlite_schema_migrates_to_what_a_fresh_install_makes() {
    let dir = tempfile::tempdir().unwrap();
    let fresh_path = dir.path().join("fresh.db");
    drop(wagate::store::Store::open(&fresh_path).unwrap());
    let fresh = sqlite_shape(&Connection::open(&fresh_path).unwrap());
    assert!(fresh.contains_key("table deliveries"), "{fresh:?}");
    assert_eq!(SQLITE.version(), VERSION);
    for version in 1..=SQLITE.steps.len() {
        let path = dir.path().join(format!("v{version}.db"));
        sqlite_at(&path, version);
        drop(wagate::store::Store::open(&path).unwrap());
        let c = Connection::open(&path).unwrap();
        let at: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(at, VERSION, "from version {version}");
        let migrated = sqlite_shape(&c);
        for (k, v) in &fresh {
            assert_eq!(migrated.get(k), Some(v), "from version {version}: {k}");
        }
        assert_eq!(
            migrated.len(),
            fresh.len(),
            "from version {version}: {migrated:?}"
        );
    }
}

/// A PostgreSQL schema as comparable text: columns (in order, with type,
/// nullability, default, identity), indexes, constraints, counters, for the
/// tables of the public schema other than the migration bookkeeping.
async fn pg_shape(c: &Client) -> BTreeMap<String, String> {
    let mut shape = BTreeMap::new();
    let cols = c
        .query(
            "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text,
                    COALESCE(column_default::text, ''), COALESCE(identity_generation::text, '')
             FROM information_schema.columns WHERE table_schema = 'public'
               AND table_name NOT IN ('schema_version', 'schema_versions')
             ORDER BY table_name, ordinal_position",
            &[],
        )
        .await
        .unwrap();
    for r in cols {
        let t: String = r.get(0);
        let line = format!(
            "{} {} null={} default={} identity={}",
            r.get::<_, String>(1),
            r.get::<_, String>(2),
            r.get::<_, String>(3),
            r.get::<_, String>(4),
            r.get::<_, String>(5)
        );
        let e = shape
            .entry(format!("table {t}"))
            .or_insert_with(String::new);
        e.push_str(&line);
        e.push('\n');
    }
    for r in c
        .query(
            "SELECT indexname::text, indexdef FROM pg_indexes WHERE schemaname = 'public'
               AND tablename NOT IN ('schema_version', 'schema_versions')",
            &[],
        )
        .await
        .unwrap()
    {
        shape.insert(format!("index {}", r.get::<_, String>(0)), r.get(1));
    }
    for r in c
        .query(
            "SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint
             WHERE connamespace = 'public'::regnamespace",
            &[],
        )
        .await
        .unwrap()
    {
        shape.insert(format!("constraint {}", r.get::<_, String>(0)), r.get(1));
    }
    let counters: Vec<String> = c
        .query("SELECT name FROM counters ORDER BY name", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    shape.insert("counters".into(), counters.join(","));
    shape
}

async fn versions(c: &Client) -> Vec<(String, i64)> {
    migrate::pg_versions(c).await.unwrap()
}

fn want(gateway: i64) -> Vec<(String, i64)> {
    vec![
        ("cluster".into(), 2),
        ("devices".into(), 1),
        ("gateway".into(), gateway),
    ]
}

async fn fresh_pg_shape() -> BTreeMap<String, String> {
    let url = fresh_db().await;
    let mut c = cluster::connect(&url).await.unwrap();
    cluster::migrate(&mut c).await.unwrap();
    assert_eq!(versions(&c).await, want(VERSION));
    pg_shape(&c).await
}

#[tokio::test]
async fn each_released_postgres_schema_migrates_to_what_a_fresh_install_makes() {
    let fresh = fresh_pg_shape().await;
    assert!(fresh.contains_key("table deliveries"), "{fresh:?}");
    assert!(fresh.contains_key("table org_leases"), "{fresh:?}");
    assert_eq!(fresh["counters"], "event_seq,qpos");
    for version in 1..=SCHEMA.pg.steps.len() {
        let url = fresh_db().await;
        let mut c = cluster::connect(&url).await.unwrap();
        // The gateway's tables at `version` from its released steps; the
        // other stores fresh; the bookkeeping as this wagate writes it.
        let cut = Schema {
            name: "gateway",
            pg: Steps {
                steps: &SCHEMA.pg.steps[..version],
                latest: "",
            },
        };
        let stepped = [cluster::SCHEMA, cut, wagate::devstore::SCHEMA];
        let tx = c.transaction().await.unwrap();
        for step in cut.pg.steps {
            tx.batch_execute(step).await.unwrap();
        }
        tx.commit().await.unwrap();
        c.batch_execute(&format!(
            "CREATE TABLE schema_versions (name TEXT PRIMARY KEY, version BIGINT NOT NULL);
             INSERT INTO schema_versions VALUES ('gateway', {version});"
        ))
        .await
        .unwrap();
        migrate::pg(&mut c, &stepped).await.unwrap();
        assert_eq!(versions(&c).await, want(version as i64));
        cluster::migrate(&mut c).await.unwrap();
        assert_eq!(versions(&c).await, want(VERSION), "from version {version}");
        let migrated = pg_shape(&c).await;
        for (k, v) in &fresh {
            assert_eq!(migrated.get(k), Some(v), "from version {version}: {k}");
        }
        assert_eq!(migrated.len(), fresh.len(), "from version {version}");
    }
}

#[tokio::test]
async fn a_database_with_the_old_single_counter_is_adopted() {
    let fresh = fresh_pg_shape().await;
    // What wagate wrote before per-store versions: one counter at 4 (the
    // cluster's tables, the gateway's at 5, the devices', the nodes' URLs).
    let url = fresh_db().await;
    let mut c = cluster::connect(&url).await.unwrap();
    let tx = c.transaction().await.unwrap();
    tx.batch_execute(cluster::SCHEMA.pg.steps[0]).await.unwrap();
    for step in SCHEMA.pg.steps {
        tx.batch_execute(step).await.unwrap();
    }
    tx.batch_execute(wagate::devstore::SCHEMA.pg.steps[0])
        .await
        .unwrap();
    tx.batch_execute(cluster::SCHEMA.pg.steps[1]).await.unwrap();
    tx.batch_execute(
        "CREATE TABLE schema_version (id BOOLEAN PRIMARY KEY DEFAULT true CHECK (id), version BIGINT NOT NULL);
         INSERT INTO schema_version VALUES (true, 4);
         INSERT INTO orgs (id, name, token_hash, created_ms) VALUES ('4', 'Óptica', 'x', 0);",
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    cluster::migrate(&mut c).await.unwrap();
    assert_eq!(versions(&c).await, want(VERSION));
    assert_eq!(pg_shape(&c).await, fresh);
    let orgs: i64 = c
        .query_one("SELECT count(*) FROM orgs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(orgs, 1, "the data stays");
    // An older wagate now refuses the database instead of migrating it.
    let old: i64 = c
        .query_one("SELECT version FROM schema_version", &[])
        .await
        .unwrap()
        .get(0);
    assert!(old > 4, "{old}");
}

#[tokio::test]
async fn a_new_step_reaches_a_database_already_migrated() {
    let url = fresh_db().await;
    let mut c = cluster::connect(&url).await.unwrap();
    cluster::migrate(&mut c).await.unwrap();
    c.batch_execute(
        "INSERT INTO orgs (id, name, token_hash, created_ms) VALUES ('4', 'Óptica', 'x', 0)",
    )
    .await
    .unwrap();
    // The next release adds a step 6 (and its fresh install has it too).
    const V6: &str = "CREATE TABLE v6_probe (id BIGINT PRIMARY KEY);";
    let mut steps = SCHEMA.pg.steps.to_vec();
    steps.push(V6);
    let latest: &'static str = Box::leak(format!("{}\n{V6}", SCHEMA.pg.latest).into_boxed_str());
    let next = Schema {
        name: "gateway",
        pg: Steps {
            steps: Box::leak(steps.into_boxed_slice()),
            latest,
        },
    };
    let schemas = [cluster::SCHEMA, next, wagate::devstore::SCHEMA];
    migrate::pg(&mut c, &schemas).await.unwrap();
    assert_eq!(versions(&c).await, want(VERSION + 1));
    let probe: Option<String> = c
        .query_one("SELECT to_regclass('v6_probe')::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(probe.as_deref(), Some("v6_probe"), "step 6 ran");
    // Run again: nothing applied twice.
    migrate::pg(&mut c, &schemas).await.unwrap();
    // And this wagate, older than the database now, refuses it.
    let refused = cluster::migrate(&mut c).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("newer than this wagate knows")),
        "{refused:?}"
    );
    // A fresh install of that release makes the same.
    let url = fresh_db().await;
    let mut f = cluster::connect(&url).await.unwrap();
    migrate::pg(&mut f, &schemas).await.unwrap();
    assert_eq!(pg_shape(&f).await, pg_shape(&c).await);
}

#[test]
fn every_step_file_says_what_it_does_and_that_it_is_frozen() {
    let all = [
        ("gateway sqlite", SQLITE.steps),
        ("gateway pg", SCHEMA.pg.steps),
        ("devices sqlite", wagate::devstore::SQLITE.steps),
        ("devices pg", wagate::devstore::SCHEMA.pg.steps),
        ("cluster pg", cluster::SCHEMA.pg.steps),
    ];
    for (store, steps) in all {
        for (i, s) in steps.iter().enumerate() {
            assert!(
                s.starts_with("-- "),
                "{store} v{}: no opening comment",
                i + 1
            );
            assert!(
                s.contains("never changes"),
                "{store} v{}: not marked frozen",
                i + 1
            );
        }
    }
}

//! The device store's backend-neutral SQL (`devstore/sql.rs`) on SQLite
//! (`devices.db`) and on a real PostgreSQL: the device tables made from one
//! schema, the same statements giving the same rows on both, and device
//! writes on PostgreSQL refused once the node's lease is gone (the store's
//! one fence, through the node's ownership).

use std::sync::Arc;
use wagate::cluster::{self, Leases, Timing};

use wagate::cluster::ownership::Ownership;
use wagate::db::DbError;
use wagate::devstore::sql::{DeviceSql, SqlError, Val};
use wagate::devstore::{Devices, TABLES};
use wagate::store::StoreError;

use crate::common::pg::fresh_db;

fn text(s: &str) -> Val {
    Val::Text(s.into())
}

/// The statements the device store's kinds of write need: upserts that
/// replace, a prefix match, the quoted `"user"` column, `DELETE …
/// RETURNING` (merging upserts are in `library_calls`).
const UPSERT_SESSION: &str = "INSERT INTO sessions (dev, address, record) VALUES (?1, ?2, ?3)
     ON CONFLICT (dev, address) DO UPDATE SET record = excluded.record";
const PUT_DEVICE_LIST: &str = "INSERT INTO device_lists (dev, \"user\", record) VALUES (?1, ?2, ?3)
     ON CONFLICT (dev, \"user\") DO UPDATE SET record = excluded.record";
const TAKE_SENT: &str = "DELETE FROM sent_messages WHERE dev = ?1 AND chat = ?2 AND id = ?3
     RETURNING payload";
const PUT_SENT: &str =
    "INSERT INTO sent_messages (dev, chat, id, payload, ts) VALUES (?1, ?2, ?3, ?4, ?5)";

/// One scenario, its answers in order.
async fn scenario(db: &dyn DeviceSql) -> Vec<Vec<Vec<Val>>> {
    let mut seen = Vec::new();
    let s = |a: &str, r: &[u8]| vec![Val::Int(7), text(a), Val::Blob(r.to_vec())];
    db.exec(vec![
        (UPSERT_SESSION.into(), s("5730011@s.whatsapp.net", b"one")),
        (UPSERT_SESSION.into(), s("5730011:3@s.whatsapp.net", b"two")),
        (
            UPSERT_SESSION.into(),
            s("5730011@s.whatsapp.net", b"one, again"),
        ),
        // Another device's row: never seen by device 7's queries.
        (
            UPSERT_SESSION.into(),
            vec![
                Val::Int(8),
                text("5730011@s.whatsapp.net"),
                Val::Blob(b"x".to_vec()),
            ],
        ),
    ])
    .await
    .unwrap();
    seen.push(
        db.query(
            "SELECT address, record FROM sessions WHERE dev = ?1 ORDER BY address".into(),
            vec![Val::Int(7)],
        )
        .await
        .unwrap(),
    );
    seen.push(
        db.query(
            "SELECT count(*) FROM sessions WHERE dev = ?1
               AND (substr(address, 1, length(?2)) = ?2 OR substr(address, 1, length(?3)) = ?3)"
                .into(),
            vec![Val::Int(7), text("5730011@"), text("5730011:")],
        )
        .await
        .unwrap(),
    );
    db.exec(vec![(
        PUT_DEVICE_LIST.into(),
        vec![Val::Int(7), text("5730011"), text("{\"devices\":[0,3]}")],
    )])
    .await
    .unwrap();
    seen.push(
        db.query(
            "SELECT \"user\", record FROM device_lists WHERE dev = ?1".into(),
            vec![Val::Int(7)],
        )
        .await
        .unwrap(),
    );
    db.exec(vec![(
        PUT_SENT.into(),
        vec![
            Val::Int(7),
            text("chat"),
            text("id1"),
            Val::Blob(b"payload".to_vec()),
            Val::Int(1),
        ],
    )])
    .await
    .unwrap();
    for _ in 0..2 {
        let taken = db
            .exec(vec![(
                TAKE_SENT.into(),
                vec![Val::Int(7), text("chat"), text("id1")],
            )])
            .await
            .unwrap();
        seen.push(taken[0].rows.clone());
    }
    // A batch is all or nothing: the second statement fails (no such
    // table), so the first is not kept.
    let failed = db
        .exec(vec![
            (UPSERT_SESSION.into(), s("rolled@back", b"no")),
            (
                "INSERT INTO no_such_table VALUES (?1)".into(),
                vec![Val::Int(1)],
            ),
        ])
        .await;
    assert!(failed.is_err());
    seen.push(
        db.query(
            "SELECT count(*) FROM sessions WHERE address = ?1".into(),
            vec![text("rolled@back")],
        )
        .await
        .unwrap(),
    );
    seen
}

#[tokio::test]
async fn the_same_statements_give_the_same_rows_on_sqlite_and_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let devices = Devices::open(&dir.path().join("devices.db")).unwrap();
    let sqlite = devices.sql();

    let url = fresh_db().await;
    let mut c = cluster::connect(&url).await.unwrap();
    cluster::migrate(&mut c).await.unwrap();
    let made: Vec<String> = c
        .query(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for t in TABLES {
        assert!(
            made.iter().any(|m| m == t),
            "{t} not made in PostgreSQL: {made:?}"
        );
    }
    drop(c);
    let pg = Devices::open_pg(&url).await.unwrap().sql();
    let on_sqlite = scenario(sqlite.as_ref()).await;
    let on_pg = scenario(pg.as_ref()).await;
    assert_eq!(on_sqlite, on_pg);
    // And the answers are the ones the statements mean.
    assert_eq!(
        on_pg[0][0],
        vec![text("5730011:3@s.whatsapp.net"), Val::Blob(b"two".to_vec())]
    );
    assert_eq!(on_pg[0][1][1], Val::Blob(b"one, again".to_vec()));
    assert_eq!(on_pg[1], vec![vec![Val::Int(2)]]);
    assert_eq!(
        on_pg[2],
        vec![vec![text("5730011"), text("{\"devices\":[0,3]}")]]
    );
    assert_eq!(
        on_pg[3],
        vec![vec![Val::Blob(b"payload".to_vec())]],
        "taken once"
    );
    assert!(on_pg[4].is_empty(), "and only once");
    assert_eq!(
        on_pg[5],
        vec![vec![Val::Int(0)]],
        "the failed batch left nothing"
    );
}

#[tokio::test]
async fn device_writes_on_postgres_stop_when_the_lease_is_gone() {
    let url = fresh_db().await;
    let mut c = cluster::connect(&url).await.unwrap();
    cluster::migrate(&mut c).await.unwrap();
    let a = Leases::new("a", Timing::DEFAULT).unwrap();
    a.ensure(&c, &["org1".to_string()]).await.unwrap();
    let held = a.try_acquire(&c, "org1").await.unwrap().unwrap();
    let admin = c;
    let devices = Devices::open_pg(&url).await.unwrap();
    let ownership = Arc::new(Ownership::new("a"));
    ownership.insert(1, held);
    devices.set_fences(ownership);
    let pg = devices.sql();
    let put = |r: &[u8]| {
        vec![(
            UPSERT_SESSION.into(),
            vec![Val::Int(1), text("x@s.whatsapp.net"), Val::Blob(r.to_vec())],
        )]
    };
    pg.exec(put(b"while owner"))
        .await
        .expect("the owner writes");
    admin
        .execute(
            "UPDATE org_leases SET expires_at = now() - interval '1 second'",
            &[],
        )
        .await
        .unwrap();
    let b = Leases::new("b", Timing::DEFAULT).unwrap();
    assert!(b.try_acquire(&admin, "org1").await.unwrap().is_some());
    let refused = pg.exec(put(b"after takeover")).await;
    assert!(
        matches!(
            refused,
            Err(SqlError::Store(StoreError::Sql(DbError::Fenced(1))))
        ),
        "{refused:?}"
    );
    let rows = pg
        .query(
            "SELECT record FROM sessions WHERE dev = ?1".into(),
            vec![Val::Int(1)],
        )
        .await
        .unwrap();
    assert_eq!(rows, vec![vec![Val::Blob(b"while owner".to_vec())]]);
}

/// The client library's storage calls on one device, each answer written
/// down: the same on `devices.db` and on PostgreSQL.
async fn library_calls(dev: &wagate::devstore::OrgDevice) -> Vec<String> {
    use whatsapp_rust::wacore::store::traits::*;
    let mut seen = Vec::new();
    let mut note = |what: &str, v: String| seen.push(format!("{what}: {v}"));
    note(
        "exists before",
        format!("{:?}", dev.exists().await.unwrap()),
    );
    note("create", format!("{:?}", dev.create().await.unwrap()));
    let mut d = dev.load().await.unwrap().expect("created");
    d.push_name = "Óptica Océano".into();
    d.login_counter = 3;
    dev.save(&d).await.unwrap();
    let back = dev.load().await.unwrap().unwrap();
    note(
        "device",
        format!("{} {}", back.push_name, back.login_counter),
    );
    dev.put_identity("5730011@s.whatsapp.net", [7; 32])
        .await
        .unwrap();
    note(
        "identity",
        format!(
            "{:?}",
            dev.load_identity("5730011@s.whatsapp.net").await.unwrap()
        ),
    );
    dev.put_session("5730011:2@s.whatsapp.net", b"session")
        .await
        .unwrap();
    note(
        "has session",
        format!(
            "{:?}",
            dev.has_session("5730011:2@s.whatsapp.net").await.unwrap()
        ),
    );
    note(
        "user state",
        format!(
            "{:?}",
            dev.has_signal_state_for_user("5730011").await.unwrap()
        ),
    );
    note(
        "other user",
        format!(
            "{:?}",
            dev.has_signal_state_for_user("573009").await.unwrap()
        ),
    );
    let keys: Vec<(u32, bytes::Bytes)> = (1..=5)
        .map(|i| (i, bytes::Bytes::from(vec![i as u8; 3])))
        .collect();
    dev.store_prekeys_batch(&keys, false).await.unwrap();
    dev.remove_prekey(2).await.unwrap();
    dev.mark_prekeys_uploaded(&[1, 2, 3]).await.unwrap();
    note(
        "prekeys",
        format!("{:?}", dev.load_prekeys_batch(&[5, 2, 1]).await.unwrap()),
    );
    note(
        "max prekey",
        format!("{:?}", dev.get_max_prekey_id().await.unwrap()),
    );
    dev.store_signed_prekey(9, b"signed").await.unwrap();
    note(
        "signed",
        format!("{:?}", dev.load_all_signed_prekeys().await.unwrap()),
    );
    let lid = |l: &str, at: i64| LidPnMappingEntry {
        lid: l.into(),
        phone_number: "573001".into(),
        created_at: at,
        updated_at: at,
        learning_source: "usync".into(),
    };
    dev.put_lid_mappings(&[lid("111", 10), lid("222", 20)])
        .await
        .unwrap();
    note(
        "newest lid",
        format!(
            "{:?}",
            dev.get_pn_mapping("573001").await.unwrap().map(|e| e.lid)
        ),
    );
    dev.put_lid_mapping(&lid("111", 30)).await.unwrap();
    note(
        "re-learned",
        format!(
            "{:?}",
            dev.get_pn_mapping("573001").await.unwrap().map(|e| e.lid)
        ),
    );
    dev.store_received_tc_token("a@s.whatsapp.net", b"new", 200)
        .await
        .unwrap();
    dev.store_received_tc_token("a@s.whatsapp.net", b"old", 100)
        .await
        .unwrap();
    dev.touch_tc_token_sender_timestamp("a@s.whatsapp.net", 500)
        .await
        .unwrap();
    dev.touch_tc_token_sender_timestamp("a@s.whatsapp.net", 400)
        .await
        .unwrap();
    dev.touch_tc_token_sender_timestamp("b@s.whatsapp.net", 50)
        .await
        .unwrap();
    note(
        "token",
        format!("{:?}", dev.get_tc_token("a@s.whatsapp.net").await.unwrap()),
    );
    note(
        "expired tokens",
        format!(
            "{:?}",
            dev.delete_expired_tc_tokens(300, 450).await.unwrap()
        ),
    );
    dev.store_sent_message("c@s.whatsapp.net", "M1", b"payload")
        .await
        .unwrap();
    note(
        "taken",
        format!(
            "{:?}",
            dev.take_sent_message("c@s.whatsapp.net", "M1")
                .await
                .unwrap()
        ),
    );
    note(
        "taken again",
        format!(
            "{:?}",
            dev.take_sent_message("c@s.whatsapp.net", "M1")
                .await
                .unwrap()
        ),
    );
    dev.store_pending_inbound("c", "s", "I1", b"msg")
        .await
        .unwrap();
    note(
        "pending",
        format!(
            "{:?}",
            dev.get_pending_inbound("c", "s", "I1").await.unwrap()
        ),
    );
    let secret = |exp: i64, ts: i64, s: u8| MsgSecretEntry {
        chat: std::sync::Arc::from("c"),
        sender: std::sync::Arc::from("s"),
        msg_id: std::sync::Arc::from("M1"),
        secret: [s; 32],
        expires_at: exp,
        message_ts: ts,
    };
    dev.put_msg_secrets(vec![secret(100, 5, 1), secret(300, 3, 2)])
        .await
        .unwrap();
    note(
        "secret",
        format!(
            "{:?}",
            dev.get_msg_secret_with_ts("c", "s", "M1")
                .await
                .unwrap()
                .map(|(s, t)| (s[0], t))
        ),
    );
    let key = AppStateSyncKey {
        key_data: vec![1, 2],
        fingerprint: vec![3],
        timestamp: 9,
    };
    dev.set_sync_key(b"k1", key).await.unwrap();
    note(
        "sync key",
        format!("{:?}", dev.get_latest_sync_key_id().await.unwrap()),
    );
    dev.update_device_list(DeviceListRecord {
        user: "5730011".into(),
        devices: Vec::new(),
        timestamp: 1,
        phash: None,
        raw_id: None,
    })
    .await
    .unwrap();
    note(
        "device list",
        format!(
            "{:?}",
            dev.get_devices("5730011").await.unwrap().map(|r| r.user)
        ),
    );
    seen
}

#[tokio::test]
async fn the_client_librarys_storage_calls_answer_alike_on_postgres() {
    use wagate::devstore::OrgDevice;
    let dir = tempfile::tempdir().unwrap();
    let devices = Devices::open(&dir.path().join("devices.db")).unwrap();
    let on_sqlite = library_calls(&devices.device(5)).await;

    let url = fresh_db().await;
    let mut c = cluster::connect(&url).await.unwrap();
    cluster::migrate(&mut c).await.unwrap();
    drop(c);
    let pg = Devices::open_pg(&url).await.unwrap().sql();
    let on_pg = library_calls(&OrgDevice::on(pg, 5)).await;
    assert_eq!(on_sqlite, on_pg);
    let find = |what: &str| {
        on_pg
            .iter()
            .find(|l| l.starts_with(what))
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(find("device:"), "device: Óptica Océano 3");
    assert_eq!(
        find("prekeys:"),
        "prekeys: [(5, b\"\\x05\\x05\\x05\"), (1, b\"\\x01\\x01\\x01\")]"
    );
    assert_eq!(find("re-learned:"), "re-learned: Some(\"111\")");
    assert_eq!(find("taken again:"), "taken again: None");
    assert_eq!(find("secret:"), "secret: Some((2, 5))");
}

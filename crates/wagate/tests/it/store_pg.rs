//! The gateway's store on a real PostgreSQL whose sessions are ended under
//! it (`pg_terminate_backend`, as a restart or an operator would): the next
//! write and the next read open their connection again and succeed, every
//! time, with nothing lost; and while it refuses the gateway's logins, each
//! write and read fails as "unavailable" with the reason, and the writer
//! carries on afterwards.

use std::time::Duration;

use wagate::cluster;
use wagate::store::orgs::{self, NewOrg};
use wagate::store::{Store, StoreError, GATEWAY};

use crate::common::pg::fresh_db;

/// End every session on the database but `admin`'s own; how many.
async fn terminate_others(admin: &tokio_postgres::Client) -> usize {
    admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .len()
}

/// A new database with the gateway's tables, and a connection of its own.
async fn migrated_db() -> (String, tokio_postgres::Client) {
    let url = fresh_db().await;
    let mut c = cluster::connect(&url).await.unwrap();
    cluster::migrate(&mut c).await.unwrap();
    (url, c)
}

fn org(i: usize) -> NewOrg {
    NewOrg {
        id: format!("org{i}"),
        name: format!("Clinic {i}"),
        default_country_code: None,
        token_hash: "00".repeat(32),
        created_ms: 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_and_reads_right_after_the_backends_are_terminated_succeed() {
    let (url, admin) = migrated_db().await;
    let store = Store::open_pg(&url, &GATEWAY).await.unwrap();
    for round in 0..20 {
        // Both of the store's connections in round 0; later, the reader's
        // (the writer's stays closed until the next write opens it).
        let ended = terminate_others(&admin).await;
        assert!(ended >= 1, "round {round}: {ended} sessions ended");
        // Give the server time to send its goodbye on some rounds, none on
        // others: the reconnection must not depend on when it arrives.
        if round % 2 == 1 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let new = org(round);
        let made = store.write(move |tx| orgs::insert(tx, &new)).await;
        assert!(matches!(made, Ok(Some(_))), "round {round}: {made:?}");
        // The writer's, opened again by the write.
        let ended = terminate_others(&admin).await;
        assert!(ended >= 1, "round {round}: {ended} sessions ended");
        let listed = store.read(orgs::list).await;
        match listed {
            Ok(all) => assert_eq!(all.len(), round + 1, "round {round}"),
            Err(e) => panic!("round {round}: the read after the termination: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_database_refuses_the_gateway_writes_fail_with_the_reason_then_resume() {
    let (url, admin) = migrated_db().await;
    let role = format!("gw_{}", std::process::id());
    admin
        .batch_execute(&format!("CREATE ROLE {role} LOGIN SUPERUSER"))
        .await
        .unwrap();
    let store = Store::open_pg(
        &url.replace("user=wagate", &format!("user={role}")),
        &GATEWAY,
    )
    .await
    .unwrap();
    let first = org(0);
    assert!(matches!(
        store.write(move |tx| orgs::insert(tx, &first)).await,
        Ok(Some(_))
    ));
    // The gateway's sessions end and it may not log in again.
    admin
        .batch_execute(&format!(
            "ALTER ROLE {role} NOLOGIN;
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}';"
        ))
        .await
        .unwrap();
    for i in 1..4 {
        let new = org(i);
        match store.write(move |tx| orgs::insert(tx, &new)).await {
            Err(StoreError::Unavailable(why)) => {
                assert!(why.contains("cannot begin"), "{why}");
                assert!(why.contains("not permitted to log in"), "{why}");
            }
            other => panic!("write {i} while refused: {other:?}"),
        }
        let read = store.read(orgs::list).await;
        assert!(
            read.as_ref().is_err_and(StoreError::is_unavailable),
            "read {i} while refused: {read:?}"
        );
    }
    // The writer did not stop: once logins are allowed, the next write is
    // committed, and only it and the first are there.
    admin
        .batch_execute(&format!("ALTER ROLE {role} LOGIN"))
        .await
        .unwrap();
    let back = org(9);
    let made = store.write(move |tx| orgs::insert(tx, &back)).await;
    assert!(matches!(made, Ok(Some(_))), "{made:?}");
    let ids: Vec<String> = store
        .read(orgs::list)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.id)
        .collect();
    assert_eq!(ids, ["org0", "org9"]);
}

/// Run `sql` on the database at `url` from code that is not async.
fn admin_sql(url: &str, sql: &str) {
    let (url, sql) = (url.to_string(), sql.to_string());
    crate::common::on_own_runtime(move || async move {
        let c = cluster::connect(&url).await.unwrap();
        c.batch_execute(&sql).await.unwrap();
    })
}

#[test]
fn while_postgres_refuses_the_gateway_the_api_answers_503_and_recovers() {
    let url = crate::common::fresh_db_blocking();
    let role = format!("api_{}", std::process::id());
    admin_sql(&url, &format!("CREATE ROLE {role} LOGIN SUPERUSER"));
    let data = tempfile::tempdir().unwrap();
    crate::common::use_database(
        data.path(),
        url.replace("user=wagate", &format!("user={role}")),
    );
    let s = crate::common::Server::start(data.path());
    let token = s.create_org("clinic", Some("57"));
    let send = |key: &str| {
        s.call_h(
            "POST",
            "/v1/orgs/clinic/messages",
            Some(&token),
            Some(r#"{"to":"+573001112233","text":"Su cita es mañana"}"#),
            &[("Idempotency-Key", key)],
        )
    };
    let (st, v) = send("before");
    assert_eq!(st, 202, "{v}");

    admin_sql(
        &url,
        &format!(
            "ALTER ROLE {role} NOLOGIN;
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}';"
        ),
    );
    let (st, v) = send("during");
    assert_eq!(st, 503, "{v}");
    assert_eq!(v["error"]["code"], "database_unavailable", "{v}");
    let (st, headers, v) = s.get_with_headers("/v1/orgs/clinic/messages", &token);
    assert_eq!(st, 503, "{v}");
    assert_eq!(v["error"]["code"], "database_unavailable", "{v}");
    assert!(
        headers.iter().any(|(k, v)| k == "retry-after" && v == "5"),
        "{headers:?}"
    );

    // PostgreSQL takes the gateway back: the same send is accepted once,
    // and both messages are there.
    admin_sql(&url, &format!("ALTER ROLE {role} LOGIN"));
    let (st, v) = send("during");
    assert_eq!(st, 202, "{v}");
    let (st, again) = send("during");
    assert_eq!(st, 202, "{again}");
    assert_eq!(again["id"], v["id"], "one message for one key");
    let (st, list) = s.call("GET", "/v1/orgs/clinic/messages", Some(&token), None);
    assert_eq!(st, 200, "{list}");
    assert_eq!(list["messages"].as_array().map(Vec::len), Some(2), "{list}");
}

//! `wagate migrate-to-postgres`, through wa-sim and the real client: orgs
//! linked on SQLite, with messages, replies and a webhook, are copied into
//! PostgreSQL; the gateway started with `--database` has them all — linked
//! orgs connect with no QR, the patient gets the next message, every old
//! message and event is there, and new numbers continue after the old ones.
//! A second copy into the same database is refused.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::sim::{
    add_phone, back_without_qr, inbox, linked, pairings_of, phone, send, wait_for, Linked,
};
use crate::common::{bin, control, fresh_db_blocking, use_database, Server};

fn list(l: &Linked, org: &str, what: &str) -> Vec<Value> {
    let (st, v) = l.s.call(
        "GET",
        &format!("/v1/orgs/{org}/{what}?limit=500"),
        Some(&l.token(org)),
        None,
    );
    assert_eq!(st, 200, "{v}");
    v["messages"].as_array().cloned().unwrap_or_default()
}

/// What a message is, leaving out what is estimated at the time of asking.
fn facts(messages: &[Value]) -> Vec<Value> {
    messages
        .iter()
        .map(|m| {
            json!([
                m["id"],
                m["to"],
                m["text"],
                m["status"],
                m["wa_id"],
                m["created_ms"]
            ])
        })
        .collect()
}

fn migrate(data: &std::path::Path, url: &str) -> std::process::Output {
    Command::new(bin())
        .arg("--data")
        .arg(data)
        .arg("migrate-to-postgres")
        .arg(format!("--database={url}"))
        .output()
        .expect("run migrate-to-postgres")
}

#[test]
fn a_sqlite_data_dir_copied_into_postgres_keeps_links_messages_and_numbers() {
    let mut l = linked(2);
    let patient = "573009990901";
    add_phone(&l, patient);
    // A webhook to a receiver that is not there: its deliveries wait.
    let (st, hook) = l.s.call(
        "POST",
        "/v1/orgs/o0/webhooks",
        Some(&l.token("o0")),
        Some(&json!({"url": "http://127.0.0.1:9/hook"}).to_string()),
    );
    assert_eq!(st, 201, "{hook}");
    let mut sent = Vec::new();
    for i in 0..6 {
        let org = if i % 2 == 0 { "o0" } else { "o1" };
        let text = format!("Antes de copiar {i}");
        sent.push((org, send(&l, org, patient, &text), text));
    }
    wait_for("every message arrived", Duration::from_secs(60), || {
        let got = inbox(&l, patient);
        sent.iter()
            .all(|(_, _, t)| got.iter().any(|m| &m["text"] == t))
    });
    let (st, v) = control(
        &l.ctl(),
        "POST",
        &format!("/control/phones/{patient}/send"),
        Some(json!({"to": phone(0), "text": "Gracias"})),
    );
    assert_eq!(st, 200, "{v}");
    wait_for("the reply was stored", Duration::from_secs(30), || {
        list(&l, "o0", "inbound")
            .iter()
            .any(|m| m["text"] == "Gracias")
    });
    let paired = pairings_of(&l, 2);
    let messages_before = [
        facts(&list(&l, "o0", "messages")),
        facts(&list(&l, "o1", "messages")),
    ];
    l.s.terminate(Duration::from_secs(15)).expect("stopped");

    let url = fresh_db_blocking();
    let out = migrate(&l.data_path(), &url);
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("messages: 6 rows"), "{said}");
    assert!(said.contains("webhooks: 1 rows"), "{said}");
    assert!(!said.contains("deliveries: 0 rows"), "{said}");
    println!("{said}");

    // A second copy into the same database is refused, and changes nothing.
    let again = migrate(&l.data_path(), &url);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already holds 2 organizations"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    // The SQLite files are put away, so only PostgreSQL can answer.
    let data = l.data_path();
    for f in ["wagate.db", "devices.db"] {
        std::fs::rename(data.join(f), data.join(format!("{f}.before-postgres"))).unwrap();
    }
    use_database(&data, url);
    let t0 = Instant::now();
    l.s = Server::start_sim(&data, &l.wa.ws_url());
    back_without_qr(&l, &paired);
    println!(
        "2 orgs connected on PostgreSQL {:.1} s after the start, with no QR",
        t0.elapsed().as_secs_f64()
    );
    for (i, org) in ["o0", "o1"].iter().enumerate() {
        assert_eq!(
            facts(&list(&l, org, "messages")),
            messages_before[i],
            "{org}"
        );
    }
    assert!(list(&l, "o0", "inbound")
        .iter()
        .any(|m| m["text"] == "Gracias"));
    let (st, hooks) =
        l.s.call("GET", "/v1/orgs/o0/webhooks", Some(&l.token("o0")), None);
    assert_eq!(st, 200, "{hooks}");
    let hook_id = hook["id"].as_str().unwrap();
    assert!(hooks.to_string().contains(hook_id), "{hooks}");

    // The sessions came along, and numbers go on after the old ones.
    let id = send(&l, "o0", patient, "Después de copiar");
    wait_for(
        "the message after the copy",
        Duration::from_secs(30),
        || {
            inbox(&l, patient)
                .iter()
                .any(|m| m["text"] == "Después de copiar")
        },
    );
    let now = list(&l, "o0", "messages");
    assert_eq!(now.last().and_then(|m| m["id"].as_str()), Some(id.as_str()));
    assert_eq!(now.len(), messages_before[0].len() + 1);

    // The data directory remembers PostgreSQL: a start without --database
    // (a lost setting) is refused instead of coming up empty on SQLite, and
    // a file backup points at pg_dump.
    l.s.terminate(Duration::from_secs(15)).expect("stopped");
    let o = Command::new(bin())
        .arg("--data")
        .arg(&data)
        .args(["serve", "--offline", "--listen", "127.0.0.1:0"])
        .env_remove("WAGATE_DATABASE")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("keeps its tables in PostgreSQL"), "{err}");
    assert!(!data.join("wagate.db").exists(), "no SQLite file made");
    let out = tempfile::tempdir().unwrap();
    let o = Command::new(bin())
        .arg("--data")
        .arg(&data)
        .arg("backup")
        .arg(out.path().join("b.tar"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("pg_dump"), "{err}");
}

//! The gateway on PostgreSQL (`--database`), through wa-sim and the real
//! client: orgs link by QR, messages go out and replies come in, and after
//! a SIGKILL the gateway finds everything in the database — the orgs
//! connect again with no QR, every accepted message is there once, and the
//! event log goes on numbering where it stopped. Nothing of it is in the
//! data directory's SQLite files.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::sim::{
    add_phone, back_without_qr, inbox, linked_in, pairings_of, phone, send, wait_for, Linked,
};
use crate::common::{control, fresh_db_blocking, open_stream, read_until_close, use_database};

fn messages(l: &Linked, org: &str) -> Vec<Value> {
    let (st, v) = l.s.call(
        "GET",
        &format!("/v1/orgs/{org}/messages?limit=200"),
        Some(&l.token(org)),
        None,
    );
    assert_eq!(st, 200, "{v}");
    v["messages"].as_array().cloned().unwrap_or_default()
}

/// The ids of `org`'s events: its whole log, replayed by the event stream
/// from `Last-Event-ID: 0` (read for 2 s).
fn event_seqs(l: &Linked, org: &str) -> Vec<i64> {
    let auth = format!("Bearer {}", l.token(org));
    let mut s = open_stream(
        &l.s.addr(),
        &format!("/v1/orgs/{org}/events"),
        &[("Authorization", &auth), ("Last-Event-ID", "0")],
    );
    let (text, _) = read_until_close(&mut s, Duration::from_secs(2));
    text.lines()
        .filter_map(|line| {
            line.strip_prefix("id: ")
                .or_else(|| line.strip_prefix("id:"))
        })
        .filter_map(|id| id.trim().parse().ok())
        .collect()
}

#[test]
fn a_gateway_on_postgres_keeps_links_messages_and_events_across_a_sigkill() {
    let data = tempfile::tempdir().unwrap();
    let url = fresh_db_blocking();
    use_database(data.path(), url.clone());
    let mut l = linked_in(data, 2, &[]);
    let patient = "573009990801";
    add_phone(&l, patient);

    let mut sent = Vec::new();
    for i in 0..10 {
        let org = if i % 2 == 0 { "o0" } else { "o1" };
        let text = format!("Recordatorio {i}");
        sent.push((org, send(&l, org, patient, &text), text));
    }
    wait_for(
        "every reminder reached the patient",
        Duration::from_secs(60),
        || {
            let got = inbox(&l, patient);
            sent.iter()
                .all(|(_, _, t)| got.iter().any(|m| &m["text"] == t))
        },
    );
    let paired = pairings_of(&l, 2);
    let events_before = event_seqs(&l, "o0");
    assert!(!events_before.is_empty());

    // The SQLite files are not where any of this lives.
    for f in ["wagate.db", "devices.db"] {
        assert!(
            !l.data_path().join(f).exists(),
            "{f} was made in the data dir"
        );
    }

    l.restart_gateway();
    let t0 = Instant::now();
    back_without_qr(&l, &paired);
    println!(
        "2 orgs on PostgreSQL connected again {:.1} s after the restart, with no QR",
        t0.elapsed().as_secs_f64()
    );

    // Every accepted message is there, once, and none is sent again.
    for org in ["o0", "o1"] {
        let ids: Vec<String> = messages(&l, org)
            .iter()
            .filter_map(|m| m["id"].as_str().map(str::to_string))
            .collect();
        let ours: Vec<&String> = sent
            .iter()
            .filter(|(o, _, _)| *o == org)
            .map(|(_, id, _)| id)
            .collect();
        assert_eq!(ids.len(), ours.len(), "{org}: {ids:?}");
        assert!(ours.iter().all(|id| ids.contains(id)), "{org}: {ids:?}");
    }
    std::thread::sleep(Duration::from_secs(1));
    let got = inbox(&l, patient);
    for (_, _, t) in &sent {
        let n = got.iter().filter(|m| &m["text"] == t).count();
        assert_eq!(n, 1, "{t} arrived {n} times");
    }

    // Sessions came back: the next message arrives, and a reply is read.
    send(&l, "o0", patient, "Después del reinicio");
    wait_for(
        "the message after the restart",
        Duration::from_secs(30),
        || {
            inbox(&l, patient)
                .iter()
                .any(|m| m["text"] == "Después del reinicio")
        },
    );
    let (st, v) = control(
        &l.ctl(),
        "POST",
        &format!("/control/phones/{patient}/send"),
        Some(json!({"to": phone(0), "text": "SÍ"})),
    );
    assert_eq!(st, 200, "{v}");
    wait_for("the patient's reply", Duration::from_secs(30), || {
        let (_, v) =
            l.s.call("GET", "/v1/orgs/o0/inbound", Some(&l.token("o0")), None);
        v["messages"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["text"] == "SÍ" && m["from"] == patient))
    });

    // The event log goes on after the old numbers, in order, with no gap
    // reused.
    let after = event_seqs(&l, "o0");
    assert!(
        after.starts_with(&events_before),
        "{events_before:?} {after:?}"
    );
    assert!(after.len() > events_before.len());
    assert!(after.windows(2).all(|w| w[0] < w[1]), "{after:?}");
    assert_eq!(l.live_conns(&crate::common::sim::jid(0)), 1);

    // PostgreSQL drops every connection of the gateway, as a restart of the
    // server would: the next writes and reads open them again, and nothing
    // accepted is lost.
    let dropped = terminate_backends(&url);
    assert!(dropped >= 4, "the gateway's connections: {dropped}");
    let id = send(&l, "o0", patient, "Tras la caída de la base");
    wait_for(
        "the message after the reconnection",
        Duration::from_secs(30),
        || {
            inbox(&l, patient)
                .iter()
                .any(|m| m["text"] == "Tras la caída de la base")
        },
    );
    wait_for("its status read back", Duration::from_secs(30), || {
        let (st, v) = l.s.call(
            "GET",
            &format!("/v1/orgs/o0/messages/{id}"),
            Some(&l.token("o0")),
            None,
        );
        st == 200 && v["status"] == "delivered"
    });
    println!("{dropped} connections dropped by PostgreSQL; the gateway opened them again");
}

/// End every other session on the database at `url`; how many.
fn terminate_backends(url: &str) -> i64 {
    let url = url.to_string();
    crate::common::on_own_runtime(move || async move {
        let c = wagate::cluster::connect(&url).await.unwrap();
        let rows = c
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .unwrap();
        rows.len() as i64
    })
}

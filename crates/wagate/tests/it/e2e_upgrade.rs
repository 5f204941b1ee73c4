//! Upgrading a data dir of the one-folder-per-org layout to the one device
//! store, through wa-sim and the real client. The old layout is made by the
//! hidden `--legacy-org-files`, which keeps device state exactly as earlier
//! versions did (the library's own store in `data/orgs/<org>/wa.db`). After
//! the upgrade every linked org is connected again with no QR, keeps its
//! Signal sessions (a patient gets the next message, the org reads the
//! patient's reply), and the old folders are kept aside.

use std::time::Duration;

use serde_json::json;

use crate::common::sim::{add_phone, inbox, linked_args, phone, send};
use crate::common::Server;
use crate::common::{control, file_names};

fn arrived(l: &crate::common::sim::Linked, to: &str, text: &str) {
    let t0 = std::time::Instant::now();
    while !inbox(l, to).iter().any(|m| m["text"] == text) {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "{text} never reached {to}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How many times `org`'s state log says `pairing`.
fn pairings(l: &crate::common::sim::Linked, org: &str) -> usize {
    crate::common::sim::pairings(&l.s, org, &l.token(org))
}

#[test]
fn linked_orgs_of_the_per_org_layout_stay_linked_after_the_upgrade() {
    let mut l = linked_args(2, &["--legacy-org-files"]);
    let patient = "573009990701";
    add_phone(&l, patient);
    for org in ["o0", "o1"] {
        send(&l, org, patient, &format!("Antes de actualizar ({org})"));
    }
    for org in ["o0", "o1"] {
        arrived(&l, patient, &format!("Antes de actualizar ({org})"));
    }
    let paired_before = [pairings(&l, "o0"), pairings(&l, "o1")];
    l.s.terminate(Duration::from_secs(15)).expect("stopped");
    let data = l.data_path();
    for org in ["o0", "o1"] {
        let f = data.join("orgs").join(org).join("wa.db");
        assert!(
            std::fs::metadata(&f).map(|m| m.len() > 0).unwrap_or(false),
            "{}",
            f.display()
        );
    }

    // This version's layout, on the same data dir.
    let t0 = std::time::Instant::now();
    l.s = Server::start_sim(&data, &l.wa.ws_url());
    for (i, org) in ["o0", "o1"].iter().enumerate() {
        let (v, _) = l.wait(org, Duration::from_secs(30), |v| v["state"] == "connected");
        assert_eq!(v["phone_number"], phone(i).as_str(), "{v}");
    }
    println!(
        "2 linked orgs carried into devices.db and connected {:.1} s after the start",
        t0.elapsed().as_secs_f64()
    );
    // No QR was offered: the state log holds no more pairing than before.
    for org in ["o0", "o1"] {
        assert_eq!(
            pairings(&l, org),
            paired_before[usize::from(org == "o1")],
            "{org} paired again"
        );
    }
    // The old folders are kept aside, and the old layout is gone.
    let aside = file_names(&data.join("aside"));
    for org in ["o0", "o1"] {
        let kept = aside
            .iter()
            .find(|n| n.starts_with(&format!("{org}-migrated-")))
            .unwrap_or_else(|| panic!("{org} not kept aside: {aside:?}"));
        assert!(data.join("aside").join(kept).join("wa.db").exists());
    }
    assert!(
        !data.join("orgs").exists(),
        "{:?}",
        file_names(&data.join("orgs"))
    );
    let devices: i64 = rusqlite::Connection::open(data.join("devices.db"))
        .unwrap()
        .query_row("SELECT COUNT(*) FROM device", [], |r| r.get(0))
        .unwrap();
    assert_eq!(devices, 2);

    // Sessions came along: the patient gets the next message, and the org
    // reads the patient's reply.
    send(&l, "o0", patient, "Después de actualizar");
    arrived(&l, patient, "Después de actualizar");
    let (st, v) = control(
        &l.ctl(),
        "POST",
        &format!("/control/phones/{patient}/send"),
        Some(json!({"to": phone(0), "text": "Recibido"})),
    );
    assert_eq!(st, 200, "{v}");
    let t1 = std::time::Instant::now();
    loop {
        let (_, v) =
            l.s.call("GET", "/v1/orgs/o0/inbound", Some(&l.token("o0")), None);
        if v["messages"].as_array().is_some_and(|m| {
            m.iter()
                .any(|m| m["text"] == "Recibido" && m["from"] == patient)
        }) {
            break;
        }
        assert!(
            t1.elapsed() < Duration::from_secs(30),
            "the reply never arrived: {v}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // One live connection per device: nothing left of the old client.
    for i in 0..2 {
        assert_eq!(l.live_conns(&crate::common::sim::jid(i)), 1);
    }
}

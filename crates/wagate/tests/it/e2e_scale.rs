//! Fifty organizations linked to fifty simulated phones through one gateway;
//! SIGKILL and restart the gateway: all fifty are back, without QR codes.
//! Also: wa-sim itself restarts and nobody is unlinked.

use std::time::{Duration, Instant};

use crate::common::sim::linked;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse()
                    .unwrap_or(0)
            })
        })
        .unwrap_or(0)
}

#[test]
fn fifty_orgs_come_back_within_30s_after_a_restart() {
    let _heavy = crate::common::heavy();
    let mut l = linked(50);
    println!(
        "gateway RSS with 50 linked orgs: {} KiB",
        rss_kib(l.s.child.id())
    );
    l.restart_gateway();
    let start = Instant::now();
    let mut times = vec![];
    for (org, t) in l.tokens.clone() {
        let (_, took) = l.s.wait_status(&org, &t, Duration::from_secs(30), |v| {
            assert_ne!(v["state"], "pairing", "{org} asked for a QR after restart");
            v["state"] == "connected"
        });
        times.push(took);
    }
    let all = start.elapsed();
    println!("50 orgs connected again {all:?} after the restart (restore paced at 50/s)");
    assert!(all <= Duration::from_secs(30), "took {all:?}");
    std::thread::sleep(Duration::from_secs(2));
    println!(
        "gateway RSS after the restore: {} KiB",
        rss_kib(l.s.child.id())
    );
}

#[test]
fn wa_sim_restart_unlinks_nobody() {
    let l = linked(1);
    let crate::common::sim::Linked {
        rt,
        wa,
        sim_dir,
        data,
        s,
        tokens,
    } = l;
    let t = tokens[0].1.clone();
    let addr = wa.ws_addr;
    rt.block_on(wa.stop());
    s.wait_status("o0", &t, Duration::from_secs(40), |v| {
        v["state"] != "connected"
    });
    // Same state directory, same port: the server key survives, so the client's
    // stored credentials and cached certificate still work.
    let wa2 = rt
        .block_on(wa_sim::start(
            sim_dir.path().to_path_buf(),
            addr,
            "127.0.0.1:0".parse().unwrap(),
        ))
        .expect("restart wa-sim");
    let (v, took) = s.wait_status("o0", &t, Duration::from_secs(60), |v| {
        assert_ne!(v["state"], "pairing");
        v["state"] == "connected"
    });
    println!(
        "wa-sim restarted: linked again {took:?} later ({})",
        v["detail"]
    );
    let (_, phone) = crate::common::control(
        &wa2.control_url(),
        "GET",
        &format!("/control/phones/{}", crate::common::sim::phone(0)),
        None,
    );
    assert_eq!(phone["devices"].as_array().unwrap().len(), 1);
    drop((data, s));
}

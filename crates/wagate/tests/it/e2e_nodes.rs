//! Three gateways on one PostgreSQL, through wa-sim and the real client:
//! 30 orgs linked and spread over the nodes by lease. A node SIGKILLed in
//! the middle of a burst of sends: its orgs are connected on the others
//! within 30 s, every accepted message reaches its patient once, and wa-sim
//! never sees two live connections for one device. A node SIGSTOPped past
//! its lease: after SIGCONT it sends and records nothing for the orgs it
//! lost, and it takes orgs again. `wagate node drain`: every org moves off
//! a node with no QR and no message lost. A node stopped with SIGTERM: its
//! leases are handed back as it exits, and its orgs move at once. An event
//! stream held on a node that does not own the org shows every move live,
//! and a webhook gets every delivery through all of it.

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::receiver::Receiver;
use crate::common::sim::{link, phone, start_sim};
use crate::common::{
    bin, control, fresh_db_blocking, open_stream, read_until_close, use_database, Server, ADMIN,
};

const ORGS: usize = 30;
const PATIENT: &str = "573009990901";

struct Node {
    id: String,
    data: tempfile::TempDir,
    s: Option<Server>,
}

struct Cluster {
    _rt: tokio::runtime::Runtime,
    wa: wa_sim::Running,
    _sim_dir: tempfile::TempDir,
    db: String,
    nodes: Vec<Node>,
    tokens: Vec<(String, String)>,
}

impl Cluster {
    fn start(n: usize) -> Cluster {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let sim_dir = tempfile::tempdir().unwrap();
        let wa = start_sim(&rt, sim_dir.path());
        let db = fresh_db_blocking();
        let mut c = Cluster {
            _rt: rt,
            wa,
            _sim_dir: sim_dir,
            db,
            nodes: Vec::new(),
            tokens: Vec::new(),
        };
        for i in 0..n {
            let data = tempfile::tempdir().unwrap();
            use_database(data.path(), c.db.clone());
            c.nodes.push(Node {
                id: format!("node-{}", (b'a' + i as u8) as char),
                data,
                s: None,
            });
            c.boot(i);
        }
        c
    }

    fn boot(&mut self, i: usize) {
        let ws = self.wa.ws_url();
        let n = &mut self.nodes[i];
        n.s = Some(Server::start_args(
            n.data.path(),
            &[
                "--wa-url",
                &ws,
                "--node-id",
                &n.id,
                "--webhook-allow",
                "127.0.0.1",
            ],
        ));
    }

    fn s(&self, i: usize) -> &Server {
        self.nodes[i].s.as_ref().expect("node running")
    }

    fn token(&self, org: &str) -> String {
        self.tokens
            .iter()
            .find(|(o, _)| o == org)
            .map(|(_, t)| t.clone())
            .expect("org")
    }

    /// Every org's state and owner, as node `i` lists them.
    fn owners(&self, i: usize) -> HashMap<String, (String, String)> {
        let (st, v) = self.s(i).call("GET", "/v1/orgs", Some(ADMIN), None);
        assert_eq!(st, 200, "{v}");
        v["orgs"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|o| {
                (
                    o["id"].as_str().unwrap_or_default().to_string(),
                    (
                        o["state"].as_str().unwrap_or_default().to_string(),
                        o["node"].as_str().unwrap_or_default().to_string(),
                    ),
                )
            })
            .collect()
    }

    /// wa-sim's count of logins that found another live connection for
    /// the same device, over every device.
    fn overlaps(&self) -> u64 {
        let (_, v) = control(&self.wa.control_url(), "GET", "/control/devices", None);
        v["logins"]
            .as_object()
            .map(|m| {
                m.values()
                    .map(|l| l["overlaps"].as_u64().unwrap_or(0))
                    .sum()
            })
            .unwrap_or(0)
    }

    fn overlaps_of(&self, jids: &[String]) -> u64 {
        let (_, v) = control(&self.wa.control_url(), "GET", "/control/devices", None);
        jids.iter()
            .map(|j| v["logins"][j]["overlaps"].as_u64().unwrap_or(0))
            .sum()
    }

    fn inbox(&self) -> Vec<Value> {
        let (_, v) = control(
            &self.wa.control_url(),
            "GET",
            &format!("/control/phones/{PATIENT}/inbox"),
            None,
        );
        v["messages"].as_array().cloned().unwrap_or_default()
    }

    fn node_cmd(&self, args: &[&str]) -> String {
        let out = Command::new(bin())
            .args(["node", "--database", &self.db])
            .args(args)
            .output()
            .expect("wagate node");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "wagate node {args:?}: {text}");
        text
    }
}

/// One send through `base`; the message id when it was accepted.
fn try_send(base: &str, token: &str, org: &str, text: &str) -> Option<String> {
    let agent = crate::common::agent(Duration::from_secs(10));
    let resp = agent
        .post(&format!("{base}/v1/orgs/{org}/messages"))
        .header("Authorization", &format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .send(json!({"to": PATIENT, "text": text}).to_string().as_bytes())
        .ok()?;
    if resp.status().as_u16() != 202 {
        return None;
    }
    let v: Value = serde_json::from_str(&resp.into_body().read_to_string().ok()?).ok()?;
    v["id"].as_str().map(str::to_string)
}

/// Every accepted text is in the patient's inbox exactly once (one item
/// per WhatsApp id, no second id for one text); how many arrived more than
/// once under their id (re-sent after a node died, which the phone drops).
fn delivered_once(c: &Cluster, accepted: &[String], within: Duration) -> usize {
    let t0 = Instant::now();
    loop {
        let got = c.inbox();
        let missing: Vec<&String> = accepted
            .iter()
            .filter(|t| !got.iter().any(|m| m["text"] == t.as_str()))
            .collect();
        if missing.is_empty() {
            break;
        }
        if t0.elapsed() > within {
            let via = 1;
            let mut seen = Vec::new();
            for t in missing.iter().take(8) {
                let org = t.rsplit(' ').next().unwrap_or_default();
                let (_, v) = c.s(via).call(
                    "GET",
                    &format!("/v1/orgs/{org}/messages?limit=500"),
                    Some(&c.token(org)),
                    None,
                );
                let m = v["messages"]
                    .as_array()
                    .and_then(|a| a.iter().find(|m| m["text"] == t.as_str()).cloned());
                seen.push(format!("{t}: {m:?}"));
            }
            panic!(
                "{} of {} accepted messages never reached the patient; e.g. {seen:#?}",
                missing.len(),
                accepted.len()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let got = c.inbox();
    let mut by_text: HashMap<String, usize> = HashMap::new();
    let mut copies = 0;
    for m in &got {
        *by_text
            .entry(m["text"].as_str().unwrap_or_default().to_string())
            .or_default() += 1;
        if m["copies"].as_u64().unwrap_or(1) > 1 {
            copies += 1;
        }
    }
    for t in accepted {
        assert_eq!(by_text.get(t), Some(&1), "'{t}' must arrive exactly once");
    }
    copies
}

/// A burst of sends spread over the orgs and over the nodes in `via`,
/// until `stop`; the accepted texts.
fn burst(
    c: &Cluster,
    via: &[usize],
    tag: &'static str,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<String>> {
    let bases: Vec<String> = via.iter().map(|i| c.s(*i).base.clone()).collect();
    let tokens = c.tokens.clone();
    std::thread::spawn(move || {
        let mut accepted = Vec::new();
        let mut n = 0usize;
        while !stop.load(Ordering::SeqCst) {
            let (org, token) = &tokens[n % tokens.len()];
            let base = &bases[n % bases.len()];
            let text = format!("{tag} {n} for {org}");
            if try_send(base, token, org, &text).is_some() {
                accepted.push(text);
            }
            n += 1;
            std::thread::sleep(Duration::from_millis(20));
        }
        accepted
    })
}

/// Poll node `via`'s list of orgs until `done` holds; on failure, say
/// where each org stood.
fn wait_owners(
    c: &Cluster,
    via: usize,
    what: &str,
    within: Duration,
    done: impl Fn(&HashMap<String, (String, String)>) -> bool,
) {
    let t0 = Instant::now();
    loop {
        let o = c.owners(via);
        if done(&o) {
            return;
        }
        if t0.elapsed() > within {
            let mut v: Vec<_> = o.into_iter().collect();
            v.sort();
            // What the owners themselves say of the orgs not connected.
            let live: Vec<String> = v
                .iter()
                .filter(|(_, (s, _))| s != "connected")
                .map(|(org, _)| {
                    let (_, st) = c.s(via).call(
                        "GET",
                        &format!("/v1/orgs/{org}/session"),
                        Some(&c.token(org)),
                        None,
                    );
                    format!(
                        "{org}: {} on {} ({}); last state events in the database: {:?}",
                        st["state"],
                        st["node"],
                        st["detail"],
                        last_states(&c.db, org)
                    )
                })
                .collect();
            panic!("{what}: not within {within:?}; orgs as node {via} lists them: {v:?}; their owners say: {live:#?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Rows of `sql` (with `arg` as `$1`) on the shared database.
fn db_rows(db: &str, sql: &'static str, arg: &str) -> Vec<tokio_postgres::Row> {
    let (db, arg) = (db.to_string(), arg.to_string());
    crate::common::on_own_runtime(move || async move {
        let c = wagate::cluster::connect(&db).await.unwrap();
        c.query(sql, &[&arg]).await.unwrap()
    })
}

/// The org's last three `state` events as the database holds them.
fn last_states(db: &str, org: &str) -> Vec<(i64, String)> {
    db_rows(
        db,
        "SELECT e.seq, e.data FROM events e JOIN orgs o ON o.inc = e.inc
         WHERE o.id = $1 AND e.kind = 'state' ORDER BY e.seq DESC LIMIT 3",
        org,
    )
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

/// How many leases `node` holds by the database's clock.
fn leases_held(db: &str, node: &str) -> i64 {
    db_rows(
        db,
        "SELECT count(*) FROM org_leases WHERE owner = $1 AND expires_at > now()",
        node,
    )[0]
    .get(0)
}

/// The `message.status` events of a stream's text, in the order sent:
/// (event number, message id, status).
fn status_events(text: &str) -> Vec<(i64, String, String)> {
    let mut out = Vec::new();
    let mut id = None;
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("id:") {
            id = n.trim().parse::<i64>().ok();
        } else if let Some(d) = line.strip_prefix("data:") {
            let v: Value = serde_json::from_str(d.trim()).unwrap_or(Value::Null);
            if let (Some(n), Some(m), Some(st)) =
                (id.take(), v["id"].as_str(), v["status"].as_str())
            {
                out.push((n, m.to_string(), st.to_string()));
            }
        }
    }
    out
}

/// Message ids the webhook receiver got a `delivered` event for, with
/// how many times each came.
fn hooked_delivered(r: &Receiver) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for x in r.received() {
        let v = x.json();
        if v["type"] == "message.status" && v["data"]["status"] == "delivered" {
            *m.entry(v["data"]["id"].as_str().unwrap_or("").to_string())
                .or_insert(0) += 1;
        }
    }
    m
}

/// Every message of `org` the database has as delivered (or read), asked
/// through node `via`.
fn delivered_ids(c: &Cluster, via: usize, org: &str) -> Vec<String> {
    get_as(c, via, org, &format!("/v1/orgs/{org}/messages?limit=1000"))["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["status"] == "delivered" || m["status"] == "read")
        .filter_map(|m| m["id"].as_str().map(str::to_string))
        .collect()
}

/// Wait until each of `ids` has reached the receiver as delivered.
fn wait_hooked(r: &Receiver, ids: &[String], what: &str, within: Duration) {
    let t0 = Instant::now();
    loop {
        let got = hooked_delivered(r);
        let missing: Vec<&String> = ids.iter().filter(|i| !got.contains_key(*i)).collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            t0.elapsed() < within,
            "{what}: {} of {} never reached the webhook as delivered, e.g. {:?}",
            missing.len(),
            ids.len(),
            &missing[..missing.len().min(5)]
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One org's link status as asked through `base` until `stop`, every
/// 200 ms: (HTTP status, state, reason code, owning node) per answer.
fn watch_status(
    base: String,
    token: String,
    org: String,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<(u16, String, String, String)>> {
    std::thread::spawn(move || {
        let agent = crate::common::agent(Duration::from_secs(10));
        let mut seen = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            let answer = agent
                .get(&format!("{base}/v1/orgs/{org}/session"))
                .header("Authorization", &format!("Bearer {token}"))
                .call();
            if let Ok(r) = answer {
                let code = r.status().as_u16();
                let v: Value = r
                    .into_body()
                    .read_to_string()
                    .ok()
                    .and_then(|b| serde_json::from_str(&b).ok())
                    .unwrap_or(Value::Null);
                let text = |v: &Value| v.as_str().unwrap_or("").to_string();
                seen.push((
                    code,
                    text(&v["state"]),
                    text(&v["reason"]["code"]) + &text(&v["error"]["code"]),
                    text(&v["node"]),
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        seen
    })
}

/// Wait until each of `orgs` is listed connected on a node other than
/// `away_from`.
fn wait_moved(
    c: &Cluster,
    via: usize,
    what: &str,
    within: Duration,
    orgs: &[String],
    away_from: &str,
) {
    wait_owners(c, via, what, within, |o| {
        orgs.iter().all(|v| {
            o.get(v)
                .is_some_and(|(s, n)| s == "connected" && n != away_from && !n.is_empty())
        })
    });
}

/// Wait until every org is connected and each node owns 10.
fn wait_balanced(c: &Cluster, via: usize, what: &str, within: Duration) {
    wait_owners(c, via, what, within, |o| {
        o.len() == ORGS
            && o.values().all(|(s, _)| s == "connected")
            && c.nodes.iter().all(|n| owned_by(o, &n.id).len() == 10)
    });
}

fn owned_by(owners: &HashMap<String, (String, String)>, node: &str) -> Vec<String> {
    let mut v: Vec<String> = owners
        .iter()
        .filter(|(_, (_, n))| n == node)
        .map(|(o, _)| o.clone())
        .collect();
    v.sort();
    v
}

fn jids_of(orgs: &[String]) -> Vec<String> {
    orgs.iter()
        .map(|o| {
            let i: usize = o[1..].parse().unwrap();
            format!("{}:1@s.whatsapp.net", phone(i))
        })
        .collect()
}

/// A GET through node `via` with `org`'s token; its 200 answer.
fn get_as(c: &Cluster, via: usize, org: &str, path: &str) -> Value {
    let (st, v) = c.s(via).call("GET", path, Some(&c.token(org)), None);
    assert_eq!(st, 200, "GET {path} via node {via}: {v}");
    v
}

fn history_states(c: &Cluster, via: usize, org: &str) -> Vec<String> {
    get_as(c, via, org, &format!("/v1/orgs/{org}/session/history"))["changes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| e["state"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn three_nodes_survive_a_kill_a_stop_a_drain_and_a_sigterm() {
    let _heavy = crate::common::heavy();
    let mut c = Cluster::start(3);
    control(
        &c.wa.control_url(),
        "POST",
        "/control/phones",
        Some(json!({"phone": PATIENT, "name": "Paciente"})),
    );

    // 30 orgs, each created and linked through a different node (link
    // actions reach the owner whichever node takes them).
    let t0 = Instant::now();
    for i in 0..ORGS {
        let org = format!("o{i}");
        let via = i % 3;
        let token = c.s(via).create_org(&org, Some("57"));
        link(c.s(via), &c.wa.control_url(), &org, &token, &phone(i));
        c.tokens.push((org, token));
    }
    wait_balanced(
        &c,
        0,
        "30 orgs connected, 10 on each node",
        Duration::from_secs(120),
    );
    println!("30 orgs linked and spread 10/10/10 in {:?}", t0.elapsed());
    assert_eq!(c.overlaps(), 0, "no device ever had two live connections");

    // One org's token reaches nothing of another's on any node, whether
    // the request is answered there or forwarded to the owner; an unknown
    // token is refused where it arrives.
    let other = c.token("o1");
    for via in 0..3 {
        for (method, path) in [
            ("GET", "/v1/orgs/o0/session"),
            ("GET", "/v1/orgs/o0/messages"),
            ("POST", "/v1/orgs/o0/session/logout"),
            ("POST", "/v1/orgs/o0/session/reset"),
            ("DELETE", "/v1/orgs/o0"),
        ] {
            let (st, v) = c.s(via).call(method, path, Some(&other), None);
            assert_eq!(
                st, 403,
                "{method} {path} via node {via} with o1's token: {v}"
            );
            let (st, v) = c.s(via).call(method, path, Some("wgo_not_a_token"), None);
            assert_eq!(
                st, 401,
                "{method} {path} via node {via}, unknown token: {v}"
            );
        }
    }
    let (_, v) = c
        .s(0)
        .call("GET", "/v1/orgs/o0/session", Some(&c.token("o0")), None);
    assert_eq!(
        v["state"], "connected",
        "o0 untouched by the refused requests: {v}"
    );

    // A stream held on a node that does not own o0 and a webhook added
    // through the third: messages sent through that third node show every
    // move live on the stream, in order, and reach the webhook.
    let owner = c.owners(0)["o0"].1.clone();
    let others: Vec<usize> = (0..3).filter(|i| c.nodes[*i].id != owner).collect();
    let (watcher_node, sender_node) = (others[0], others[1]);
    let hook = Receiver::start();
    let (st, v) = c.s(sender_node).call(
        "POST",
        "/v1/orgs/o0/webhooks",
        Some(&c.token("o0")),
        Some(&json!({"url": hook.url, "events": ["message.status"]}).to_string()),
    );
    assert_eq!(st, 201, "{v}");
    let auth = format!("Bearer {}", c.token("o0"));
    let mut stream = open_stream(
        &c.s(watcher_node).addr(),
        "/v1/orgs/o0/events",
        &[("Authorization", &auth)],
    );
    let sent: Vec<String> = (0..5)
        .map(|i| {
            try_send(
                &c.s(sender_node).base,
                &c.token("o0"),
                "o0",
                &format!("stream {i}"),
            )
            .expect("accepted")
        })
        .collect();
    let mut text = String::new();
    let t = Instant::now();
    let seen = loop {
        let (more, closed) = read_until_close(&mut stream, Duration::from_millis(500));
        text.push_str(&more);
        let seen = status_events(&text);
        let delivered = sent
            .iter()
            .all(|m| seen.iter().any(|(_, id, st)| id == m && st == "delivered"));
        if delivered {
            break seen;
        }
        assert!(
            !closed,
            "the stream on {} ended: {text}",
            c.nodes[watcher_node].id
        );
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "not every move on the stream of {} within 30 s: {seen:?}",
            c.nodes[watcher_node].id
        );
    };
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "{seen:?}");
    for m in &sent {
        let moves: Vec<&str> = seen
            .iter()
            .filter(|(_, id, _)| id == m)
            .map(|(_, _, st)| st.as_str())
            .collect();
        let at = |st: &str| moves.iter().position(|x| *x == st);
        // `sent` (the server's ack) may come after the delivery receipt,
        // and then there is no move back to it.
        assert!(
            at("queued") == Some(0)
                && at("delivered") > at("queued")
                && at("sent").is_none_or(|sent| Some(sent) < at("delivered")),
            "{m}: {moves:?}"
        );
    }
    drop(stream);
    wait_hooked(&hook, &sent, "o0's first five", Duration::from_secs(30));
    println!(
        "o0 owned by {owner}: its stream on {} showed {} moves of 5 messages sent through {}, in order; the webhook got each delivery",
        c.nodes[watcher_node].id,
        seen.len(),
        c.nodes[sender_node].id
    );

    // --- SIGKILL node-a in the middle of a burst sent through all three.
    let stop = Arc::new(AtomicBool::new(false));
    let sender = burst(&c, &[0, 1, 2], "kill", stop.clone());
    std::thread::sleep(Duration::from_secs(3));
    let victims = owned_by(&c.owners(1), "node-a");
    assert_eq!(victims.len(), 10);
    c.nodes[0].s.as_mut().unwrap().kill9();
    let killed = Instant::now();
    // One victim's status, asked of a survivor all through the failover.
    let watching = Arc::new(AtomicBool::new(false));
    let watcher = watch_status(
        c.s(1).base.clone(),
        c.token(&victims[0]),
        victims[0].clone(),
        watching.clone(),
    );
    // Connected elsewhere: the survivors list each victim as connected on
    // another node.
    wait_moved(
        &c,
        1,
        "node-a's orgs connected on the other nodes within 30 s",
        Duration::from_secs(30),
        &victims,
        "node-a",
    );
    let failover = killed.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    watching.store(true, Ordering::SeqCst);
    let seen = watcher.join().unwrap();
    // Never a dead node's link shown as connected; a 503 only while the
    // owner may still be alive; once it is known silent, `reconnecting`
    // with `owner_silent`; then connected on its new owner.
    for (code, state, why, node) in &seen {
        match code {
            200 => assert!(
                node != "node-a" || (state == "reconnecting" && why == "owner_silent"),
                "{} as node-b saw it after the kill: {seen:?}",
                victims[0]
            ),
            503 => assert_eq!(why, "owner_unreachable", "{seen:?}"),
            _ => panic!("status answered {code}: {seen:?}"),
        }
    }
    assert!(
        seen.iter().any(|(_, _, why, _)| why == "owner_silent"),
        "never shown owner_silent: {seen:?}"
    );
    assert!(
        seen.last()
            .is_some_and(|(code, state, _, node)| *code == 200
                && state == "connected"
                && node != "node-a"),
        "{seen:?}"
    );
    // The answers in runs: "503 owner_unreachable ×21 → …".
    let mut runs: Vec<(String, usize)> = Vec::new();
    for (code, state, why, node) in &seen {
        let k = format!("{code} {state} {why} {node}");
        match runs.last_mut() {
            Some((last, n)) if *last == k => *n += 1,
            _ => runs.push((k, 1)),
        }
    }
    let runs: Vec<String> = runs
        .iter()
        .map(|(k, n)| {
            format!(
                "{} ×{n}",
                k.split_whitespace().collect::<Vec<_>>().join(" ")
            )
        })
        .collect();
    println!(
        "status of {} through node-b during the failover, every 200 ms: {}",
        victims[0],
        runs.join(" → ")
    );
    stop.store(true, Ordering::SeqCst);
    let accepted = sender.join().unwrap();
    println!(
        "failover after SIGKILL: {:.1} s; {} sends accepted in the burst",
        failover.as_secs_f64(),
        accepted.len()
    );
    let resent = delivered_once(&c, &accepted, Duration::from_secs(60));
    println!("delivered exactly once; {resent} arrived twice under one id (dropped by the phone)");
    assert_eq!(c.overlaps(), 0, "no device ever had two live connections");

    // --- node-a comes back and takes its share again (no QR anywhere).
    c.boot(0);
    wait_balanced(
        &c,
        1,
        "node-a back with a share of the orgs, all connected",
        Duration::from_secs(90),
    );
    assert_eq!(c.overlaps(), 0, "no device ever had two live connections");
    for (org, _) in &c.tokens {
        let pairings = history_states(&c, 1, org)
            .iter()
            .filter(|s| *s == "pairing")
            .count();
        assert_eq!(pairings, 1, "{org} paired once, at the start");
    }

    // --- SIGSTOP node-b past its lease, with sends going on through the
    // others; then SIGCONT.
    let stopped = owned_by(&c.owners(2), "node-b");
    assert!(!stopped.is_empty());
    let stop = Arc::new(AtomicBool::new(false));
    let sender = burst(&c, &[0, 2], "stop", stop.clone());
    c.s(1).send_signal("-STOP");
    wait_moved(
        &c,
        2,
        "node-b's orgs connected elsewhere while it is stopped",
        Duration::from_secs(40),
        &stopped,
        "node-b",
    );
    let replaced_before = c.overlaps_of(&jids_of(&stopped));
    std::thread::sleep(Duration::from_secs(2));
    c.s(1).send_signal("-CONT");
    let resumed = Instant::now();
    std::thread::sleep(Duration::from_secs(5));
    stop.store(true, Ordering::SeqCst);
    let accepted = sender.join().unwrap();
    let resent = delivered_once(&c, &accepted, Duration::from_secs(60));
    println!(
        "SIGSTOP: {} sends accepted, delivered once ({resent} twice under one id); {} of node-b's devices were taken over while it slept",
        accepted.len(),
        replaced_before
    );
    // What node-b recorded for the orgs it lost after SIGCONT: nothing. Its
    // old links were told `replaced` by wa-sim when it woke; had it written
    // anything for them, the history would say `replaced`.
    for org in &stopped {
        let states = history_states(&c, 2, org);
        assert!(
            !states.iter().any(|s| s == "replaced"),
            "{org}: node-b wrote after losing it: {states:?}"
        );
    }
    // No device logged in again from node-b while another node had it:
    // further overlaps would mean node-b reconnected after SIGCONT.
    assert_eq!(
        c.overlaps_of(&jids_of(&stopped)),
        replaced_before,
        "node-b logged in again for an org it lost"
    );
    // It rejoins as a normal node.
    wait_balanced(
        &c,
        0,
        "node-b rejoined with its share",
        Duration::from_secs(90),
    );
    println!(
        "node-b rejoined {:.1} s after SIGCONT",
        resumed.elapsed().as_secs_f64()
    );

    // --- Drain node-c: everything moves off it, no QR, nothing lost.
    let overlaps_before = c.overlaps();
    let stop = Arc::new(AtomicBool::new(false));
    let sender = burst(&c, &[0, 1, 2], "drain", stop.clone());
    let t = Instant::now();
    let out = c.node_cmd(&["drain", "node-c"]);
    println!(
        "drain took {:.1} s: {}",
        t.elapsed().as_secs_f64(),
        out.trim()
    );
    wait_owners(
        &c,
        0,
        "every org connected on node-a or node-b",
        Duration::from_secs(60),
        |o| {
            o.values()
                .all(|(s, n)| s == "connected" && (n == "node-a" || n == "node-b"))
        },
    );
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::SeqCst);
    let accepted = sender.join().unwrap();
    let resent = delivered_once(&c, &accepted, Duration::from_secs(60));
    println!(
        "drain: {} sends accepted, delivered once ({resent} twice under one id)",
        accepted.len()
    );
    assert_eq!(
        c.overlaps(),
        overlaps_before,
        "a drain closes each link before the next node opens it"
    );
    for (org, _) in &c.tokens {
        let pairings = history_states(&c, 0, org)
            .iter()
            .filter(|s| *s == "pairing")
            .count();
        assert_eq!(pairings, 1, "{org} paired once, at the start");
    }
    let list = c.node_cmd(&["list"]);
    println!("{list}");
    assert!(
        list.contains("node-c") && list.contains("draining"),
        "{list}"
    );

    // --- SIGTERM node-a: it closes its links and hands its leases back as
    // it exits, so node-b takes its orgs without waiting for them to lapse.
    let leaving = owned_by(&c.owners(1), "node-a");
    assert!(!leaving.is_empty());
    let overlaps_before = c.overlaps();
    let stop = Arc::new(AtomicBool::new(false));
    let sender = burst(&c, &[1], "term", stop.clone());
    std::thread::sleep(Duration::from_secs(1));
    let t = Instant::now();
    let stopped_in = c.nodes[0]
        .s
        .as_mut()
        .unwrap()
        .terminate(Duration::from_secs(30))
        .map(|(_, took)| took);
    assert!(stopped_in.is_some(), "node-a did not exit on SIGTERM");
    assert_eq!(
        leases_held(&c.db, "node-a"),
        0,
        "node-a handed every lease back before exiting"
    );
    wait_moved(
        &c,
        1,
        "node-a's orgs connected on node-b after its SIGTERM",
        Duration::from_secs(30),
        &leaving,
        "node-a",
    );
    let moved = t.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::SeqCst);
    let accepted = sender.join().unwrap();
    let resent = delivered_once(&c, &accepted, Duration::from_secs(60));
    assert_eq!(
        c.overlaps(),
        overlaps_before,
        "each link closed before node-b opened it"
    );
    // The webhook went on through the kill, the stop, the drain and the
    // SIGTERM (whichever node delivered): every message of o0 that was
    // delivered reached it as delivered.
    let all = delivered_ids(&c, 1, "o0");
    assert!(all.len() > sent.len(), "{all:?}");
    wait_hooked(
        &hook,
        &all,
        "o0's messages of the whole test",
        Duration::from_secs(60),
    );
    let twice = hooked_delivered(&hook).values().filter(|n| **n > 1).count();
    println!(
        "webhook: {} delivered messages of o0, each reached the receiver ({twice} more than once)",
        all.len()
    );
    println!(
        "SIGTERM: node-a exited in {:.1} s; its {} orgs connected on node-b {:.1} s after the signal; \
         {} sends accepted, delivered once ({resent} twice under one id)",
        stopped_in.unwrap_or_default().as_secs_f64(),
        leaving.len(),
        moved.as_secs_f64(),
        accepted.len()
    );
}

//! Benchmark (sim build): accepted sends per second over HTTP, and end-to-end
//! send → server-ack latency (p50/p99) through the real client and wa-sim, all
//! on loopback in one process. Prints figures; asserts nothing.
//!
//!   cargo run --release -p wagate --features sim --example bench_send [-- ACCEPTS LATENCY_SAMPLES CLIENTS]
//!
//! `WAGATE_BENCH_DATABASE=<PostgreSQL URL or key=value settings>` runs the
//! gateway on that (empty) PostgreSQL database instead of SQLite files.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

fn post(a: &ureq::Agent, url: &str, token: &str, body: &serde_json::Value) -> Option<String> {
    let r = a
        .post(url)
        .header("Authorization", &format!("Bearer {token}"))
        .send_json(body)
        .ok()?;
    if r.status().as_u16() != 202 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&r.into_body().read_to_string().ok()?).ok()?;
    v["id"].as_str().map(str::to_string)
}

fn status(a: &ureq::Agent, url: &str, token: &str) -> String {
    a.get(url)
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .ok()
        .and_then(|r| r.into_body().read_to_string().ok())
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["status"].as_str().map(str::to_string))
        .unwrap_or_default()
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() -> anyhow::Result<()> {
    const USAGE: &str = "usage: bench_send [ACCEPTS [LATENCY_SAMPLES [CLIENTS]]], each a whole number of at least 1";
    let args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().ok().filter(|n| *n >= 1))
        .collect::<Option<Vec<usize>>>()
        .ok_or_else(|| anyhow::anyhow!(USAGE))?;
    anyhow::ensure!(args.len() <= 3, USAGE);
    let accepts = *args.first().unwrap_or(&5000);
    let samples = *args.get(1).unwrap_or(&300);
    let clients = *args.get(2).unwrap_or(&8);
    let rt = tokio::runtime::Runtime::new()?;
    let dir = tempfile::tempdir()?;
    let wa = rt.block_on(wa_sim::start(
        dir.path().join("sim"),
        "127.0.0.1:0".parse()?,
        "127.0.0.1:0".parse()?,
    ))?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let data = dir.path().join("gw");
    let database = std::env::var("WAGATE_BENCH_DATABASE").ok();
    rt.spawn(wagate::server::serve(wagate::server::ServeOptions {
        listen: "127.0.0.1:0".parse()?,
        data: data.clone(),
        database: database.clone(),
        admin_token: None,
        wa_url: Some(wa.ws_url()),
        ready: Some(tx),
        // Raw throughput: no sending policy's gaps.
        unpaced: true,
        ..Default::default()
    }));
    let addr = rt.block_on(rx)?;
    let base = format!("http://{addr}");
    let token = wagate::demo::link_org(
        &base,
        &wa.control_url(),
        &data,
        "bench",
        "573001112233",
        false,
    )?;
    let to = "573009990000";
    wagate::demo::control(&wa.control_url(), "/control/phones", json!({"phone": to}))?;
    let url = format!("{base}/v1/orgs/bench/messages");

    // Latency first, on an idle queue: POST, then poll until the server ack.
    let a = agent();
    let mut lat = vec![];
    for i in 0..samples {
        let t = Instant::now();
        let id = post(
            &a,
            &url,
            &token,
            &json!({"to": to, "text": format!("lat {i}")}),
        )
        .expect("accepted");
        let murl = format!("{url}/{id}");
        loop {
            let s = status(&a, &murl, &token);
            if s == "sent" || s == "delivered" || s == "read" {
                break;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        lat.push(t.elapsed());
    }
    lat.sort();

    // Accept throughput: `clients` threads POST as fast as they can.
    let done = Arc::new(AtomicUsize::new(0));
    let t = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let (url, token, done) = (url.clone(), token.clone(), done.clone());
            std::thread::spawn(move || {
                let a = agent();
                for i in 0..accepts / clients {
                    if post(
                        &a,
                        &url,
                        &token,
                        &json!({"to": to, "text": format!("tp {c} {i}")}),
                    )
                    .is_some()
                    {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
    let secs = t.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    println!(
        "machine: {} cores; build: {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    let on = if database.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!("accepted sends: {n} in {secs:.2} s = {:.0} per second ({clients} HTTP clients, durable {on} writes, group commit)", n as f64 / secs);
    println!(
        "send → server ack latency over {samples} sequential sends: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        pct(&lat, 0.5).as_secs_f64() * 1e3,
        pct(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().map(|d| d.as_secs_f64() * 1e3).unwrap_or(0.0)
    );
    // How fast the queue drains through the client (encrypt + send + ack).
    let t = Instant::now();
    let a = agent();
    loop {
        let v: serde_json::Value = a
            .get(&format!("{url}?status=queued&limit=1"))
            .header("Authorization", &format!("Bearer {token}"))
            .call()
            .ok()
            .and_then(|r| r.into_body().read_to_string().ok())
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        if v["messages"].as_array().is_some_and(|m| m.is_empty()) {
            break;
        }
        if t.elapsed() > Duration::from_secs(600) {
            println!("queue not drained after 600 s");
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!(
        "queue of {n} drained {:.1} s after the last accept",
        t.elapsed().as_secs_f64()
    );
    // The event log: every status a message reached has its event.
    let t = Instant::now();
    let db = Db::open(&rt, database.as_deref(), &data)?;
    let undelivered = "SELECT COUNT(*) FROM messages WHERE status NOT IN ('delivered', 'read')";
    while db.count(&rt, undelivered)? > 0 && t.elapsed() < Duration::from_secs(300) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let waited = t.elapsed();
    let logged: std::collections::HashSet<(String, String)> = db
        .pairs(
            &rt,
            if database.is_some() {
                "SELECT data::jsonb->>'id', data::jsonb->>'status' FROM events WHERE kind = 'message.status'"
            } else {
                "SELECT json_extract(data, '$.id'), json_extract(data, '$.status') FROM events WHERE kind = 'message.status'"
            },
        )?
        .into_iter()
        .collect();
    let (mut messages, mut missing) = (0, 0);
    for (id, status) in db.pairs(&rt, "SELECT id, status FROM messages")? {
        messages += 1;
        if !logged.contains(&(id.clone(), "queued".to_string())) || !logged.contains(&(id, status))
        {
            missing += 1;
        }
    }
    let events = db.count(
        &rt,
        "SELECT COUNT(*) FROM events WHERE kind = 'message.status'",
    )?;
    println!(
        "all delivered {:.1} s after the drain ({} not delivered); event log: {events} message.status events for {messages} messages; messages missing their `queued` or final-status event: {missing}",
        waited.as_secs_f64(),
        db.count(&rt, undelivered)?,
    );
    Ok(())
}

/// The gateway's tables, read after the run: its SQLite file or PostgreSQL.
enum Db {
    Sqlite(rusqlite::Connection),
    Pg(tokio_postgres::Client),
}

impl Db {
    fn open(
        rt: &tokio::runtime::Runtime,
        pg: Option<&str>,
        data: &std::path::Path,
    ) -> anyhow::Result<Db> {
        Ok(match pg {
            Some(url) => Db::Pg(rt.block_on(wagate::cluster::connect(url))?),
            None => Db::Sqlite(rusqlite::Connection::open(data.join("wagate.db"))?),
        })
    }

    fn count(&self, rt: &tokio::runtime::Runtime, sql: &str) -> anyhow::Result<i64> {
        Ok(match self {
            Db::Sqlite(c) => c.query_row(sql, [], |r| r.get(0))?,
            Db::Pg(c) => rt.block_on(c.query_one(sql, &[]))?.get(0),
        })
    }

    fn pairs(
        &self,
        rt: &tokio::runtime::Runtime,
        sql: &str,
    ) -> anyhow::Result<Vec<(String, String)>> {
        Ok(match self {
            Db::Sqlite(c) => c
                .prepare(sql)?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?,
            Db::Pg(c) => rt
                .block_on(c.query(sql, &[]))?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect(),
        })
    }
}

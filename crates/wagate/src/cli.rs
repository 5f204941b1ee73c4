//! The operator's command line (`wagate org …`, `status`, `send`, `pair`,
//! `reset`, `sessions`): a small HTTP client of a running server. The token
//! comes from `--token`/`WAGATE_TOKEN`, else the server's `data/admin.token`.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use http_body_util::Full;
use serde_json::{json, Value};

use crate::http_client::{self, Base};

pub struct Api {
    base: Base,
    url: String,
    token: String,
    /// The CLI is synchronous; its requests run on this runtime.
    rt: tokio::runtime::Runtime,
}

/// How long one request to the server may take (a pairing code waits 30 s).
const REQUEST_WAIT: Duration = Duration::from_secs(60);
const CONNECT_WAIT: Duration = Duration::from_secs(10);
/// The largest answer read.
const ANSWER_LIMIT: usize = 32 * 1024 * 1024;

/// Read the token from the flag/env, or from the data directory's admin.token.
pub fn resolve_token(token: Option<String>, data: &Path) -> anyhow::Result<String> {
    if let Some(t) = token.filter(|t| !t.is_empty()) {
        return Ok(t);
    }
    let p = data.join("admin.token");
    std::fs::read_to_string(&p)
        .map(|t| t.trim().to_string())
        .with_context(|| {
            format!(
                "no token given (--token or WAGATE_TOKEN) and cannot read {}",
                p.display()
            )
        })
}

impl Api {
    /// A client of the server at `base` (`http://host:port`, or `https://`,
    /// with a path prefix when it is served under one).
    pub fn new(base: &str, token: String) -> anyhow::Result<Api> {
        let url = base.trim_end_matches('/').to_string();
        let base = Base::parse(&url).map_err(|e| anyhow!("--url: {e}"))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the CLI's runtime")?;
        Ok(Api {
            base,
            url,
            token,
            rt,
        })
    }

    /// One request; the answer's status and body (JSON, else its text).
    pub fn exchange(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let unreachable = || {
            format!(
                "cannot reach wagate at {} (is `wagate serve` running?)",
                self.url
            )
        };
        // The timer is made inside the runtime (it needs its clock).
        let answer = self.rt.block_on(async {
            tokio::time::timeout(REQUEST_WAIT, async {
                let mut sender = http_client::dial::<Full<Bytes>>(
                    &self.base.host,
                    self.base.port,
                    self.base.https,
                    CONNECT_WAIT,
                )
                .await?;
                let mut req = hyper::Request::builder()
                    .method(method)
                    .uri(format!("{}{path}", self.base.prefix))
                    .header(hyper::header::HOST, self.base.host_header())
                    .header(
                        hyper::header::USER_AGENT,
                        concat!("wagate-cli/", env!("CARGO_PKG_VERSION")),
                    );
                if !self.token.is_empty() {
                    req = req.header(
                        hyper::header::AUTHORIZATION,
                        format!("Bearer {}", self.token),
                    );
                }
                let bytes = match &body {
                    Some(b) => {
                        req = req.header(hyper::header::CONTENT_TYPE, "application/json");
                        Bytes::from(b.to_string())
                    }
                    None => Bytes::new(),
                };
                let req = req.body(Full::new(bytes)).map_err(|e| e.to_string())?;
                let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
                let status = resp.status().as_u16();
                let text = http_client::read_body(resp.into_body(), ANSWER_LIMIT).await?;
                Ok::<_, String>((status, text))
            })
            .await
        });
        let (status, text) = match answer {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => return Err(anyhow!(e)).with_context(unreachable),
            Err(_) => bail!(
                "{}: no answer within {} s",
                unreachable(),
                REQUEST_WAIT.as_secs()
            ),
        };
        let text = String::from_utf8_lossy(&text).to_string();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, v))
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let (status, v) = self.exchange(method, path, body)?;
        if status >= 400 {
            let code = v["error"]["code"].as_str().unwrap_or("error");
            let msg = v["error"]["message"].as_str().unwrap_or("");
            bail!("{status} {code}: {msg}");
        }
        Ok(v)
    }

    pub fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call("GET", path, None)
    }
    pub fn post(&self, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        self.call("POST", path, body)
    }
    pub fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.call("DELETE", path, None)
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn org_create(
    api: &Api,
    id: &str,
    name: Option<String>,
    cc: Option<String>,
) -> anyhow::Result<()> {
    let v = api.post(
        "/v1/orgs",
        Some(json!({"id": id, "name": name, "default_country_code": cc})),
    )?;
    println!("created organization {}", s(&v["id"]));
    println!("token (shown once, keep it safe): {}", s(&v["token"]));
    Ok(())
}

pub fn org_list(api: &Api) -> anyhow::Result<()> {
    let v = api.get("/v1/orgs")?;
    println!(
        "{:<16} {:<28} {:<4} {:<14} PHONE",
        "ID", "NAME", "CC", "STATE"
    );
    for o in v["orgs"].as_array().cloned().unwrap_or_default() {
        println!(
            "{:<16} {:<28} {:<4} {:<14} {}",
            s(&o["id"]),
            s(&o["name"]),
            s(&o["default_country_code"]),
            s(&o["state"]),
            s(&o["phone_number"])
        );
    }
    Ok(())
}

pub fn org_delete(api: &Api, id: &str) -> anyhow::Result<()> {
    api.delete(&format!("/v1/orgs/{id}"))?;
    println!("deleted organization {id} (its WhatsApp credentials were moved aside, not deleted)");
    Ok(())
}

/// Without `name`: the copies of `org`'s credentials kept aside. With it:
/// put that copy back (the current credentials are set aside as `replaced`).
pub fn restore_credentials(api: &Api, org: &str, name: Option<String>) -> anyhow::Result<()> {
    let Some(name) = name else {
        let v = api.get(&format!("/v1/orgs/{org}/credentials"))?;
        let kept = v["aside"].as_array().cloned().unwrap_or_default();
        if kept.is_empty() {
            println!("no credentials of {org} are kept aside");
            return Ok(());
        }
        println!("{:<52} {:<12} {:>10}", "NAME", "REASON", "BYTES");
        for k in kept {
            println!(
                "{:<52} {:<12} {:>10}",
                s(&k["name"]),
                s(&k["reason"]),
                s(&k["bytes"])
            );
        }
        println!("restore one with: wagate org restore-credentials {org} NAME");
        return Ok(());
    };
    let v = api.post(
        &format!("/v1/orgs/{org}/credentials/restore"),
        Some(serde_json::json!({ "name": name })),
    )?;
    println!("restored {name} as {org}'s credentials");
    if let Some(r) = v["replaced_aside"].as_str() {
        println!("the ones it replaced are kept aside as {r}");
    }
    println!("state: {}", s(&v["status"]["state"]));
    Ok(())
}

pub fn status(api: &Api, org: Option<String>) -> anyhow::Result<()> {
    match org {
        Some(o) => {
            let v = api.get(&format!("/v1/orgs/{o}/session"))?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(())
        }
        None => sessions(api),
    }
}

pub fn sessions(api: &Api) -> anyhow::Result<()> {
    let orgs = api.get("/v1/orgs")?;
    println!(
        "{:<16} {:<14} {:<16} {:<8} {:<7} DETAIL",
        "ORG", "STATE", "PHONE", "ATTEMPT", "QUEUED"
    );
    for o in orgs["orgs"].as_array().cloned().unwrap_or_default() {
        let id = s(&o["id"]);
        let v = api.get(&format!("/v1/orgs/{id}/session"))?;
        println!(
            "{:<16} {:<14} {:<16} {:<8} {:<7} {}",
            id,
            s(&v["state"]),
            s(&v["phone_number"]),
            s(&v["reconnect_attempt"]),
            s(&v["queued_messages"]),
            s(&v["detail"])
        );
    }
    Ok(())
}

/// A time as typed: digits are Unix milliseconds, anything else RFC 3339
/// text (the server checks both).
fn when(t: &str) -> serde_json::Value {
    match t.trim().parse::<i64>() {
        Ok(ms) => json!(ms),
        Err(_) => json!(t.trim()),
    }
}

pub fn send(
    api: &Api,
    org: &str,
    phone: &str,
    text: &str,
    at: Option<String>,
    before: Option<String>,
) -> anyhow::Result<()> {
    let mut body = json!({"to": phone, "text": text});
    if let Some(a) = at {
        body["send_at"] = when(&a);
    }
    if let Some(b) = before {
        body["send_before"] = when(&b);
    }
    let v = api.post(&format!("/v1/orgs/{org}/messages"), Some(body))?;
    match v["send_at_ms"].as_i64() {
        Some(ms) if v["status"] == "scheduled" => println!(
            "scheduled {} to +{} for {}",
            s(&v["id"]),
            s(&v["to"]),
            chrono::DateTime::from_timestamp_millis(ms)
                .map(|d| d.to_rfc3339())
                .unwrap_or_default()
        ),
        _ => println!(
            "accepted {} ({}) to +{}",
            s(&v["id"]),
            s(&v["status"]),
            s(&v["to"])
        ),
    }
    Ok(())
}

pub fn cancel(api: &Api, org: &str, id: &str) -> anyhow::Result<()> {
    let v = api.delete(&format!("/v1/orgs/{org}/messages/{id}"))?;
    println!("{} is now {}", s(&v["id"]), s(&v["status"]));
    Ok(())
}

/// Whether `phone` is on WhatsApp, as the org's number sees it.
pub fn contact(api: &Api, org: &str, phone: &str) -> anyhow::Result<()> {
    // The number goes in the path: every byte but letters and digits escaped.
    let escaped: String = phone
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let v = api.get(&format!("/v1/orgs/{org}/contacts/{escaped}"))?;
    let source = if v["cached"] == true {
        "cached"
    } else {
        "asked now"
    };
    if v["on_whatsapp"] == true {
        println!(
            "+{} is on WhatsApp ({}; {source}, {})",
            s(&v["phone"]),
            s(&v["jid"]),
            s(&v["checked_at"])
        );
    } else {
        println!(
            "+{} is not on WhatsApp ({source}, {})",
            s(&v["phone"]),
            s(&v["checked_at"])
        );
    }
    Ok(())
}

/// Start pairing, print each QR (or the pairing code) and wait until linked.
pub fn pair(api: &Api, org: &str, phone: Option<String>, wait: Duration) -> anyhow::Result<()> {
    if let Some(p) = phone {
        let v = api.post(
            &format!("/v1/orgs/{org}/session/connect"),
            Some(json!({"phone_number": p})),
        )?;
        println!("Pairing code: {}", s(&v["pair_code"]));
        println!("On the phone: WhatsApp → Settings → Linked devices → Link a device → Link with phone number instead");
    } else {
        api.post(&format!("/v1/orgs/{org}/session/connect"), None)?;
    }
    let start = Instant::now();
    let mut shown = String::new();
    let mut last_state = String::new();
    while start.elapsed() < wait {
        let st = api.get(&format!("/v1/orgs/{org}/session"))?;
        let state = s(&st["state"]);
        if state != last_state {
            eprintln!("state: {state} — {}", s(&st["detail"]));
            last_state = state.clone();
        }
        match state.as_str() {
            "connected" => {
                println!("Linked: WhatsApp connected as +{}", s(&st["phone_number"]));
                return Ok(());
            }
            "needs_qr" | "logged_out" | "banned" | "outdated" | "replaced" => {
                return Err(anyhow!("pairing stopped: {}", s(&st["detail"])));
            }
            _ => {}
        }
        if st["qr_available"].as_bool() == Some(true) {
            if let Ok(q) = api.get(&format!("/v1/orgs/{org}/session/qr")) {
                let code = s(&q["qr"]);
                if code != shown {
                    let art = crate::qr::terminal(&code).map_err(|e| anyhow!(e))?;
                    println!("\n{art}\nScan with WhatsApp: Settings → Linked devices → Link a device (expires in {} s)", q["expires_in_ms"].as_u64().unwrap_or(0) / 1000);
                    shown = code;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    bail!("not linked within {} s", wait.as_secs())
}

pub fn reset(api: &Api, org: Option<String>, all: bool) -> anyhow::Result<()> {
    let targets: Vec<String> = if all {
        api.get("/v1/orgs")?["orgs"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|o| s(&o["id"]))
            .collect()
    } else {
        vec![org.ok_or_else(|| anyhow!("name an organization or pass --all"))?]
    };
    for o in targets {
        api.post(&format!("/v1/orgs/{o}/session/reset"), None)?;
        println!("reset {o}: credentials moved aside; pair again with `wagate pair {o}`");
    }
    Ok(())
}

//! `wagate demo` (sim build only): wa-sim and the gateway in one process on
//! loopback; a demo organization is created and linked by a simulated phone
//! scanning the QR, exactly as a person would, then the URL and tokens are
//! printed. Everything stays on this machine.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::cli::Api;
use crate::server::{self, ServeOptions};

const DEMO_PHONE: &str = "573001112233";
const DEMO_ORG: &str = "demo";

/// Blocking JSON call to wa-sim's control API.
pub fn control(base: &str, path: &str, body: Value) -> anyhow::Result<Value> {
    let (status, v) = Api::new(base, String::new())?.exchange("POST", path, Some(body))?;
    if status >= 400 && status != 409 {
        bail!("wa-sim {path}: {status} {v}");
    }
    Ok(v)
}

pub async fn run(data: PathBuf, listen: SocketAddr) -> anyhow::Result<()> {
    // Kept apart from a real gateway's data.
    let data = data.join("demo");
    let sim_dir = data.join("wa-sim");
    let wa = wa_sim::start(sim_dir, "127.0.0.1:0".parse()?, "127.0.0.1:0".parse()?)
        .await
        .context("starting wa-sim")?;
    println!(
        "wa-sim (simulated WhatsApp) on {} — control API {}",
        wa.ws_url(),
        wa.control_url()
    );
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let opts = ServeOptions {
        listen,
        data: data.clone(),
        admin_token: None,
        wa_url: Some(wa.ws_url()),
        ready: Some(ready_tx),
        // The simulated numbers cannot be banned; the demo answers at once.
        unpaced: true,
        ..ServeOptions::default()
    };
    let gateway = tokio::spawn(server::serve(opts));
    let addr = match ready_rx.await {
        Ok(a) => a,
        Err(_) => {
            return match gateway.await {
                Ok(Err(e)) => Err(e),
                _ => bail!("the gateway did not start"),
            }
        }
    };
    let base = format!("http://{addr}");
    let ctl = wa.control_url();
    let data2 = data.clone();
    let base2 = base.clone();
    let outcome = tokio::task::spawn_blocking(move || link_demo(&base2, &ctl, &data2)).await??;
    println!();
    println!("Demo organization '{DEMO_ORG}' is linked to the simulated phone +{DEMO_PHONE}.");
    println!("  Gateway:      {base}");
    println!("  Dashboard:    {base}/ui/ (sign in with the org token)");
    println!("  Org token:    {}", outcome.org_token);
    println!("  Admin token:  in {}", data.join("admin.token").display());
    println!();
    println!("Try:");
    println!(
        "  curl -H 'Authorization: Bearer {}' {base}/v1/orgs/{DEMO_ORG}/session",
        outcome.org_token
    );
    println!(
        "  curl -H 'Authorization: Bearer {}' -H 'Content-Type: application/json' \\\n       -d '{{\"to\":\"573009998877\",\"text\":\"Hola\"}}' {base}/v1/orgs/{DEMO_ORG}/messages",
        outcome.org_token
    );
    println!("Press Ctrl-C to stop.");
    tokio::select! {
        r = gateway => match r {
            Ok(r) => r,
            Err(e) => bail!("gateway task failed: {e}"),
        },
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

struct Outcome {
    org_token: String,
}

fn link_demo(base: &str, ctl: &str, data: &std::path::Path) -> anyhow::Result<Outcome> {
    let org_token = link_org(base, ctl, data, DEMO_ORG, DEMO_PHONE, true)?;
    Ok(Outcome { org_token })
}

/// Create `org_id` (anew), have simulated `phone` scan its QR, wait until it
/// is connected; returns the org token. Blocking; used by the demo and the bench.
pub fn link_org(
    base: &str,
    ctl: &str,
    data: &std::path::Path,
    org_id: &str,
    phone: &str,
    show_qr: bool,
) -> anyhow::Result<String> {
    let admin = crate::cli::resolve_token(None, data)?;
    let api = Api::new(base, admin)?;
    control(
        ctl,
        "/control/phones",
        json!({"phone": phone, "name": "Demo Clinic"}),
    )?;
    // A token is shown only once: on a second run the org exists, so make it anew.
    let _ = api.delete(&format!("/v1/orgs/{org_id}"));
    let org = api.post(
        "/v1/orgs",
        Some(json!({"id": org_id, "name": "Demo Clinic", "default_country_code": "57"})),
    )?;
    let token = org["token"]
        .as_str()
        .context("no token in the answer")?
        .to_string();
    let api = Api::new(base, token.clone())?;
    api.post(&format!("/v1/orgs/{org_id}/session/connect"), None)?;
    let mut qr = None;
    for _ in 0..300 {
        if let Ok(q) = api.get(&format!("/v1/orgs/{org_id}/session/qr")) {
            qr = q["qr"].as_str().map(str::to_string);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let qr = qr.context("the gateway offered no QR code within 30 s")?;
    if show_qr {
        if let Ok(art) = crate::qr::terminal(&qr) {
            println!("\nThe QR code the gateway shows (a simulated phone scans it now):\n{art}");
        }
    }
    control(
        ctl,
        &format!("/control/phones/{phone}/scan"),
        json!({"qr": qr}),
    )?;
    println!("Scanned; logging in…");
    for _ in 0..600 {
        let st = api.get(&format!("/v1/orgs/{org_id}/session"))?;
        if st["state"] == "connected" {
            return Ok(token);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("organization {org_id} did not connect within 60 s")
}

//! `wagate serve`: opens the data directory, the admin token and the store,
//! starts one supervisor per organization, restores linked ones at a paced
//! rate, and serves the HTTP API until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};

use crate::api::{self, AppState};
use crate::auth::{self, TokenBook};
use crate::engine::wa::{WaConfig, WaFactory};
use crate::engine::EngineFactory;
use crate::hub::Hub;
use crate::outbox::Outbox;
use crate::session::{Deps, Sessions};
use crate::store::{self, Store};

pub struct ServeOptions {
    pub listen: SocketAddr,
    pub data: PathBuf,
    pub admin_token: Option<String>,
    pub wa_url: Option<String>,
    pub restore_per_second: u32,
    pub offline: bool,
    /// Told the bound address once the API listens (for `wagate demo`).
    pub ready: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
}

/// The admin token: from the environment, else `data/admin.token`, else a new
/// one written there with mode 0600. Returns the token and where it came from.
pub fn admin_token(data: &Path, from_env: Option<String>) -> anyhow::Result<(String, String)> {
    if let Some(t) = from_env.filter(|t| !t.trim().is_empty()) {
        return Ok((t.trim().to_string(), "WAGATE_ADMIN_TOKEN".into()));
    }
    let path = data.join("admin.token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        let t = t.trim().to_string();
        if !t.is_empty() {
            return Ok((t, path.display().to_string()));
        }
    }
    let token = auth::generate("wga_");
    write_private(&path, &token).with_context(|| format!("writing {}", path.display()))?;
    Ok((token, format!("{} (new)", path.display())))
}

fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(path)?;
    f.write_all(content.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}

/// Which WhatsApp server this build may talk to.
fn wa_config(wa_url: Option<String>, offline: bool) -> anyhow::Result<WaConfig> {
    let Some(url) = wa_url else {
        if cfg!(feature = "sim") && !offline {
            bail!("this is a sim build (certificate checks off): it needs --wa-url pointing at a loopback wa-sim, or --offline");
        }
        return Ok(WaConfig {
            offline,
            ..WaConfig::default()
        });
    };
    if !cfg!(feature = "sim") {
        bail!("--wa-url needs the sim build (cargo build --features sim); this build talks only to WhatsApp");
    }
    if !is_loopback_url(&url) {
        bail!("the sim build refuses non-loopback WhatsApp URLs: {url} (use 127.0.0.0/8, localhost or [::1])");
    }
    Ok(WaConfig {
        ws_url: Some(url),
        version: Some((2, 3000, 1_000_000_000)),
        no_http: true,
        offline,
    })
}

/// `ws://` or `wss://` to 127.0.0.0/8, `localhost` or `[::1]`.
pub fn is_loopback_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("wss://"));
    let Some(rest) = rest else { return false };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return false;
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

pub async fn serve(opts: ServeOptions) -> anyhow::Result<()> {
    let wa = wa_config(opts.wa_url.clone(), opts.offline)?;
    if let Some(u) = &wa.ws_url {
        tracing::warn!(url = %u, "SIM BUILD: certificate checks are skipped; talking to a local WhatsApp simulator");
    }
    std::fs::create_dir_all(&opts.data)
        .with_context(|| format!("creating data directory {}", opts.data.display()))?;
    let (token, source) = admin_token(&opts.data, opts.admin_token.clone())?;
    tracing::info!(source = %source, "admin token loaded");
    let store =
        Store::open(&opts.data.join("wagate.db")).context("opening the gateway database")?;
    let hub = Hub::start(Some(store.clone()));
    let outbox = Outbox::start(store.clone(), hub.clone());
    let tokens = Arc::new(TokenBook::new(&token));
    let factory: Arc<dyn EngineFactory> = Arc::new(WaFactory::new(wa));
    let sessions = Arc::new(Sessions::new(Deps {
        factory,
        hub: hub.clone(),
        hooks: outbox.clone(),
        orgs_dir: opts.data.join("orgs"),
        aside_dir: opts.data.join("aside"),
        jitter: Arc::new(|| rand::random::<f64>() * 2.0 - 1.0),
    }));
    let orgs = store
        .read(store::orgs::list)
        .await
        .context("reading organizations")?;
    for o in &orgs {
        tokens.add_org(&o.id, &o.token_hash);
        sessions.add(&o.id);
    }
    tracing::info!(
        orgs = orgs.len(),
        per_second = opts.restore_per_second,
        "restoring linked organizations"
    );
    // Give supervisors a moment to open their devices before restoring.
    let restorer = sessions.clone();
    let rate = opts.restore_per_second;
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let _ = restorer.restore_all(rate).await;
    });

    let app = api::router(AppState {
        store,
        hub,
        sessions: sessions.clone(),
        outbox,
        tokens,
    });
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("cannot listen on {}", opts.listen))?;
    let addr = listener.local_addr()?;
    if let Some(tx) = opts.ready {
        let _ = tx.send(addr);
    }
    tracing::info!(%addr, data = %opts.data.display(), "wagate listening");
    println!(
        "wagate listening on http://{addr} (data in {})",
        opts.data.display()
    );
    println!("dashboard: http://{addr}/ui/");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("HTTP server failed")?;
    tracing::info!("shutting down: closing WhatsApp links");
    sessions.stop_all().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_urls() {
        assert!(is_loopback_url("ws://127.0.0.1:9000/ws/chat"));
        assert!(is_loopback_url("ws://127.3.2.1/ws/chat"));
        assert!(is_loopback_url("ws://localhost:1/x"));
        assert!(is_loopback_url("ws://[::1]:9000/ws/chat"));
        assert!(!is_loopback_url("wss://web.whatsapp.com/ws/chat"));
        assert!(!is_loopback_url("ws://10.0.0.1/ws"));
        assert!(!is_loopback_url("ws://127.0.0.1@evil.example/ws"));
        assert!(!is_loopback_url("http://127.0.0.1/"));
        assert!(!is_loopback_url("ws://127.0.0.1.evil.example/"));
    }

    #[test]
    fn admin_token_is_generated_once_with_private_mode() {
        let d = tempfile::tempdir().unwrap();
        let (t1, _) = admin_token(d.path(), None).unwrap();
        let (t2, _) = admin_token(d.path(), None).unwrap();
        assert_eq!(t1, t2);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(d.path().join("admin.token"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (t3, src) = admin_token(d.path(), Some("from-env".into())).unwrap();
        assert_eq!(t3, "from-env");
        assert_eq!(src, "WAGATE_ADMIN_TOKEN");
    }
}

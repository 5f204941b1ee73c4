//! `wagate serve`: the gateway's lifecycle. Start-up prepares the data
//! directory (private permissions, the admin token, the descriptor limit),
//! opens the store, starts one supervisor per organization, restores linked
//! ones at a paced rate and composes the API and the dashboard into one
//! router. Shutdown (SIGTERM or SIGINT) is one signal reaching everything
//! that holds a handle: event streams end and HTTP connections drain while
//! every supervisor stops, concurrently and each within a deadline; then the
//! outbox applies what it received and the store commits what is queued.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use axum::extract::Request;
use axum::response::Response;
use axum::Router;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::App;
use crate::auth::TokenBook;
use crate::datadir;
use crate::engine::wa::{WaConfig, WaFactory};
use crate::engine::EngineFactory;
use crate::listener::{self, HttpLimits};
use crate::outbox::Outbox;
use crate::session::{Deps, Sessions};
use crate::store::Store;
use crate::{api, web};

pub use datadir::admin_token;

/// How long supervisors may take to close their links at shutdown.
const STOP_LINKS: Duration = Duration::from_secs(5);
/// How long the outbox and the store may take to finish at shutdown.
const FLUSH: Duration = Duration::from_secs(1);

pub struct ServeOptions {
    pub listen: SocketAddr,
    /// A second address serving only `/metrics`, without a token.
    pub metrics_listen: Option<SocketAddr>,
    /// Print the address and the dashboard's as plain lines on stdout (off
    /// with JSON logs, where only the log event says it).
    pub banner: bool,
    pub data: PathBuf,
    pub admin_token: Option<String>,
    pub wa_url: Option<String>,
    pub restore_per_second: u32,
    pub offline: bool,
    /// Orgs without a sending policy of their own send as fast as the link
    /// allows (tests, benchmarks); otherwise the conservative default.
    pub unpaced: bool,
    /// Time zone of orgs that set none (an IANA name); default: the server's.
    pub default_timezone: Option<String>,
    /// Changes to the conservative default policy (JSON, the fields of
    /// `PUT …/sending-policy`); checked at start-up.
    pub default_policy: Option<String>,
    /// Non-public hosts and networks webhooks may reach (comma-separated).
    pub webhook_allow: Option<String>,
    /// Hours a webhook delivery is retried before it fails.
    pub webhook_max_age_hours: u64,
    /// The first webhook retry's delay (tests shorten it).
    pub webhook_first_retry_ms: u64,
    /// Days events (and their finished webhook deliveries) are kept.
    pub retention_days: u64,
    /// PostgreSQL (a `postgres://` URL) for the gateway's tables and the
    /// device state; none: SQLite files in `data`.
    pub database: Option<String>,
    /// With `database`: this node's id (default: the host name).
    pub node_id: Option<String>,
    /// With `database`: where other nodes reach this one's API.
    pub advertise_url: Option<String>,
    /// With `database`: the lease timing.
    pub lease: crate::cluster::Timing,
    /// Keep device state in earlier versions' one-file-per-org layout
    /// (hidden; the upgrade test makes such a data dir with it).
    pub legacy_org_files: bool,
    pub http: HttpLimits,
    /// Told the bound address once the API listens (for `wagate demo`).
    pub ready: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
    /// Stops the gateway as a signal would (tests, embedding); signals work too.
    pub stop: CancellationToken,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            banner: true,
            metrics_listen: None,
            data: PathBuf::from("./data"),
            admin_token: None,
            wa_url: None,
            restore_per_second: 20,
            offline: false,
            unpaced: false,
            default_timezone: None,
            default_policy: None,
            webhook_allow: None,
            webhook_max_age_hours: 24,
            webhook_first_retry_ms: crate::webhook::FIRST_BACKOFF_MS as u64,
            retention_days: 30,
            database: None,
            node_id: None,
            advertise_url: None,
            lease: crate::cluster::Timing::DEFAULT,
            legacy_org_files: false,
            http: HttpLimits::default(),
            ready: None,
            stop: CancellationToken::new(),
        }
    }
}

/// The gateway's tables and the device store: SQLite files in the data
/// directory, or PostgreSQL with `--database` (schema migrated first).
async fn open_databases(opts: &ServeOptions) -> anyhow::Result<(Store, crate::devstore::Devices)> {
    datadir::check_database(&opts.data, opts.database.is_some())?;
    let Some(url) = &opts.database else {
        let store =
            Store::open(&opts.data.join("wagate.db")).context("opening the gateway database")?;
        let devices = crate::devstore::Devices::open(&opts.data.join("devices.db"))
            .context("opening the WhatsApp device store (devices.db)")?;
        return Ok((store, devices));
    };
    if opts.legacy_org_files {
        bail!("--legacy-org-files keeps files in --data; it cannot be used with --database");
    }
    let is_url = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let is_settings = !url.contains("://") && url.contains('=');
    if !(is_url || is_settings) {
        bail!("--database takes a PostgreSQL URL (postgres://user:password@host/dbname) or key=value settings (host=/run/postgresql dbname=wagate); without it, wagate keeps SQLite files in --data");
    }
    let mut admin = crate::cluster::connect(url)
        .await
        .context("connecting to PostgreSQL (--database)")?;
    let version = crate::cluster::migrate(&mut admin)
        .await
        .context("migrating the PostgreSQL schema")?;
    tracing::info!(versions = ?version, "PostgreSQL schema ready");
    let store = Store::open_pg(url, &crate::store::GATEWAY)
        .await
        .context("opening the gateway's tables in PostgreSQL")?;
    let devices = crate::devstore::Devices::open_pg(url)
        .await
        .context("opening the device tables in PostgreSQL")?;
    Ok((store, devices))
}

/// This machine's host name (a node's default id).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "wagate".to_string())
}

/// The address other nodes reach this one at, from the bound address.
fn advertised(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("http://{}:{}", host_name(), addr.port())
    } else {
        format!("http://{addr}")
    }
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

/// The API and the dashboard as one router: unknown addresses get the
/// API's JSON 404 (the dashboard answers its own under `/ui/`), a wrong
/// method gets each surface's own answer, and every dashboard answer
/// carries the security headers.
pub fn compose(app: Arc<App>) -> Router {
    let around = |r: Router<Arc<App>>, bound: crate::app::Bound| {
        r.route_layer(axum::middleware::from_fn_with_state(
            (app.clone(), bound),
            crate::forward::to_owner,
        ))
    };
    api::router(app.clone(), &around)
        .merge(web::router(app.clone(), &around))
        .fallback(api::not_found)
        .method_not_allowed_fallback(wrong_method)
        .layer(axum::middleware::from_fn(api::record_http))
        .layer(axum::middleware::from_fn(web::security_headers))
}

/// The metrics alone, without a token, for `--metrics-listen`.
fn metrics_only(app: Arc<App>) -> Router {
    Router::new()
        .route(
            "/metrics",
            axum::routing::get(
                |axum::extract::State(app): axum::extract::State<Arc<App>>| async move {
                    match app.metrics(None).await {
                        Ok(text) => api::metrics_text(text),
                        Err(e) => {
                            axum::response::IntoResponse::into_response(api::ApiError::from(e))
                        }
                    }
                },
            ),
        )
        .with_state(app)
}

async fn wrong_method(req: Request) -> Response {
    use axum::response::IntoResponse;
    if web::is_dashboard_path(req.uri().path()) {
        web::method_not_allowed(req.headers().clone()).await
    } else {
        api::method_not_allowed().await.into_response()
    }
}

/// Run the gateway until SIGTERM, SIGINT or `opts.stop`: build it, run
/// it, stop it.
pub async fn serve(opts: ServeOptions) -> anyhow::Result<()> {
    let mut gateway = Gateway::build(opts).await?;
    gateway.run().await;
    gateway.stop().await;
    Ok(())
}

/// A built gateway: listening, its links being restored, and what
/// stopping it needs.
pub struct Gateway {
    /// The data directory's lock, released when the gateway is dropped.
    _dir_lock: datadir::DirLock,
    signals: Signals,
    stop_asked: CancellationToken,
    /// Cancelled when stopping begins: listener, connections, streams.
    shutdown: CancellationToken,
    /// Cancelled once every link is closed: the background loops.
    background: CancellationToken,
    /// Retention, memory trimming, the watchdog, the paced restore.
    tasks: TaskTracker,
    /// Quiets the systemd watchdog as stopping begins.
    watchdog_stop: CancellationToken,
    notifier: Arc<crate::notify::Notifier>,
    node: Option<crate::node::Node>,
    http: tokio::task::JoinHandle<usize>,
    metrics_http: Option<tokio::task::JoinHandle<usize>>,
    deliveries: Option<tokio::task::JoinHandle<()>>,
    sessions: Arc<Sessions>,
    outbox: Arc<Outbox>,
    store: Store,
    devices: crate::devstore::Devices,
}

impl Gateway {
    /// Open the stores, make the services, join the cluster (several nodes),
    /// bind the listeners and start the background tasks.
    pub async fn build(opts: ServeOptions) -> anyhow::Result<Gateway> {
        let signals = Signals::install();
        let wa = wa_config(opts.wa_url.clone(), opts.offline)?;
        if let Some(u) = &wa.ws_url {
            tracing::warn!(url = %u, "SIM BUILD: certificate checks are skipped; talking to a local WhatsApp simulator");
        }
        datadir::prepare(&opts.data)?;
        // One gateway per data directory: a second one would fight over
        // every org's link (each replacing the other's).
        let dir_lock = datadir::lock(&opts.data, "serve")?;
        let fd_limit = datadir::raise_fd_limit();
        let mut http_limits = opts.http;
        let open_budget = fd_limit.map(|limit| {
            let (connections, stores) = datadir::budget(limit, http_limits.max_connections);
            if connections < http_limits.max_connections {
                tracing::warn!(
                    limit,
                    asked = http_limits.max_connections,
                    connections,
                    "the open-file limit caps HTTP connections lower than --max-connections"
                );
                http_limits.max_connections = connections;
            }
            tracing::info!(limit, connections, org_stores = stores, "open-file budget");
            Arc::new(tokio::sync::Semaphore::new(stores))
        });
        let (token, source) = admin_token(&opts.data, opts.admin_token.clone())?;
        tracing::info!(source = %source, "admin token loaded");
        let node_id = opts.node_id.clone().unwrap_or_else(host_name);
        if opts.database.is_some() {
            crate::cluster::identity::node_id(&node_id).map_err(|e| {
                anyhow::anyhow!("{e}; the node id defaults to the host name: give --node-id")
            })?;
            // Every PostgreSQL connection of this process carries its node's name.
            crate::db::pg::name_connections(&node_id);
        }
        let (store, devices) = open_databases(&opts).await?;
        // Several nodes: writes are fenced before any supervisor starts.
        let ownership = opts
            .database
            .is_some()
            .then(|| crate::node::fence_stores(&node_id, &store, &devices));
        let tz = crate::outbox::pacing::default_timezone(opts.default_timezone.as_deref())?;
        let mut policy = if opts.unpaced {
            tracing::warn!(
                "--unpaced: orgs without a sending policy send as fast as the link allows"
            );
            crate::outbox::pacing::Policy::unpaced(&tz)
        } else {
            crate::outbox::pacing::Policy::conservative(&tz)
        };
        if let Some(json) = &opts.default_policy {
            let change: serde_json::Map<String, serde_json::Value> = serde_json::from_str(json)
                .map_err(|e| anyhow::anyhow!("--default-policy is not a JSON object: {e}"))?;
            policy = crate::app::policy::apply(policy, &change)
                .map_err(|e| anyhow::anyhow!("--default-policy: {}", e.message))?;
            tracing::info!(?policy, "default sending policy set by --default-policy");
        }
        tracing::info!(timezone = %tz, "default time zone of sending policies");
        let outbox = Outbox::start(store.clone(), policy);
        let factory: Arc<dyn EngineFactory> = if opts.legacy_org_files {
            tracing::warn!(
                "--legacy-org-files: device state in data/orgs/<org>/wa.db, as before 0.2"
            );
            Arc::new(WaFactory::legacy(
                wa,
                opts.data.join("orgs"),
                opts.data.join("aside"),
            ))
        } else {
            upgrade_org_folders(&store, &devices, &opts.data).await?;
            Arc::new(WaFactory::new(wa, devices.clone(), opts.data.join("aside")))
        };
        let sessions = Arc::new(Sessions::new(Deps {
            factory,
            journal: Arc::new(store.clone()),
            hooks: outbox.clone(),
            orgs_dir: opts.data.join("orgs"),
            aside_dir: opts.data.join("aside"),
            jitter: Arc::new(|| rand::random::<f64>() * 2.0 - 1.0),
            open_budget,
        }));
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .with_context(|| format!("cannot listen on {}", opts.listen))?;
        let addr = listener.local_addr()?;
        // Several nodes: the view of the cluster the service layer asks.
        let cluster = match (&opts.database, ownership) {
            (Some(url), Some(ownership)) => {
                let settings = crate::cluster::view::NodeSettings {
                    db_url: url.clone(),
                    node: node_id.clone(),
                    advertise: opts
                        .advertise_url
                        .clone()
                        .unwrap_or_else(|| advertised(addr)),
                    timing: opts.lease,
                    restore_per_second: opts.restore_per_second,
                };
                Some(crate::cluster::view::ClusterView::new(
                    ownership,
                    settings,
                    store.clone(),
                ))
            }
            _ => None,
        };
        let shutdown = CancellationToken::new();
        let app = Arc::new(App::new(
            store.clone(),
            sessions.clone(),
            outbox.clone(),
            TokenBook::new(&token),
            shutdown.clone(),
            cluster.as_ref().map(|(view, _)| view.clone()),
        ));
        let guard =
            crate::webhook::target::Guard::parse(opts.webhook_allow.as_deref().unwrap_or(""))
                .map_err(|e| anyhow::anyhow!("--webhook-allow: {e}"))?;
        app.set_webhook_guard(guard.clone());
        let start_webhooks = {
            let (store, wake) = (store.clone(), app.webhook_wake());
            let max_age_ms = (opts.webhook_max_age_hours.clamp(1, 24 * 30) as i64) * 3_600_000;
            let first_backoff_ms = opts.webhook_first_retry_ms.clamp(10, 3_600_000) as i64;
            move |stop: CancellationToken| {
                tokio::spawn(crate::webhook::run(
                    store.clone(),
                    crate::webhook::Settings {
                        guard: guard.clone(),
                        max_age_ms,
                        first_backoff_ms,
                        ..Default::default()
                    },
                    wake.clone(),
                    stop,
                ))
            }
        };
        let background = CancellationToken::new();
        let tasks = TaskTracker::new();
        // Several nodes: only the holder of the cluster's delivery lock delivers.
        let deliveries = opts
            .database
            .is_none()
            .then(|| start_webhooks(background.clone()));
        tasks.spawn(crate::retention::run(
            store.clone(),
            opts.retention_days.clamp(1, 3650),
            background.clone(),
        ));
        tasks.spawn(crate::memory::run(
            Duration::from_secs(60),
            background.clone(),
        ));
        let orgs = app.load().await.context("reading organizations")?;
        let need = datadir::descriptors_needed(orgs, http_limits.max_connections);
        match fd_limit {
        Some(limit) if limit < need => tracing::warn!(
            orgs,
            limit,
            need,
            "the open-file limit is lower than {orgs} organizations may need: orgs that cannot open their state wait in state `error` and are retried (their credentials are kept); raise the limit (LimitNOFILE=, ulimit -n)"
        ),
        limit => tracing::info!(orgs, limit = ?limit, need, "open-file limit"),
    }
        // One gateway restores every linked org; a node only those it gains.
        let node = match cluster {
            Some((view, restore_rx)) => {
                // Several nodes may share the database: this one restores only
                // the orgs its lease loop gains.
                let node =
                    crate::node::start(app.clone(), view, restore_rx, Box::new(start_webhooks))
                        .await
                        .context("joining the nodes on the database")?;
                Some(node)
            }
            _ => {
                tracing::info!(
                    orgs,
                    per_second = opts.restore_per_second,
                    "restoring linked organizations"
                );
                // The most recently active orgs come back first.
                let activity = store
                .read(crate::store::messages::last_activity)
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "cannot read when orgs were last active; restoring in id order");
                    Default::default()
                });
                // Give supervisors a moment to open their devices before restoring.
                let restorer = sessions.clone();
                let rate = opts.restore_per_second;
                let stop = shutdown.clone();
                tasks.spawn(async move {
                    tokio::select! {
                        _ = stop.cancelled() => {}
                        _ = async {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            let _ = restorer.restore_all(rate, activity).await;
                        } => {}
                    }
                });
                None
            }
        };
        if let Some(tx) = opts.ready {
            let _ = tx.send(addr);
        }
        tracing::info!(%addr, data = %opts.data.display(), "wagate listening");
        if opts.banner {
            println!(
                "wagate listening on http://{addr} (data in {})",
                opts.data.display()
            );
            println!("dashboard: http://{addr}/ui/");
        }
        let http = tokio::spawn(listener::serve(
            listener,
            compose(app.clone()),
            http_limits,
            shutdown.clone(),
        ));
        let metrics_http = match opts.metrics_listen {
            Some(at) => {
                let l = tokio::net::TcpListener::bind(at)
                    .await
                    .with_context(|| format!("cannot listen on {at} (--metrics-listen)"))?;
                tracing::info!(addr = %l.local_addr()?, "metrics listening");
                Some(tokio::spawn(listener::serve(
                    l,
                    metrics_only(app.clone()),
                    http_limits,
                    shutdown.clone(),
                )))
            }
            None => None,
        };
        let notifier = Arc::new(crate::notify::Notifier::from_env());
        notifier.send(&format!(
            "READY=1\nSTATUS=serving {orgs} organization(s) on http://{addr}"
        ));
        let watchdog_stop = CancellationToken::new();
        if let Some(every) = crate::notify::watchdog_every().filter(|_| notifier.active()) {
            tasks.spawn(feed_watchdog(
                notifier.clone(),
                every,
                sessions.clone(),
                store.clone(),
                watchdog_stop.clone(),
            ));
        }
        Ok(Gateway {
            _dir_lock: dir_lock,
            signals,
            stop_asked: opts.stop,
            shutdown,
            background,
            tasks,
            watchdog_stop,
            notifier,
            node,
            http,
            metrics_http,
            deliveries,
            sessions,
            outbox,
            store,
            devices,
        })
    }

    /// Serve until SIGTERM, SIGINT or the caller's stop token.
    pub async fn run(&mut self) {
        tokio::select! {
            _ = self.signals.recv() => {}
            _ = self.stop_asked.cancelled() => {}
        }
    }

    /// Stop in order: the listener and streams, then every link (the node's
    /// leases handed back after), then the background tasks, the outbox and
    /// the stores' writers. Within 10 s whatever clients do.
    pub async fn stop(self) {
        let begun = std::time::Instant::now();
        self.notifier.send("STOPPING=1\nSTATUS=stopping");
        self.watchdog_stop.cancel();
        tracing::info!("shutting down: closing event streams, connections and WhatsApp links");
        self.shutdown.cancel();
        let mut node = self.node;
        // Several nodes: no lease is renewed or taken while the links close.
        let held = match node.as_mut() {
            Some(n) => n.stop().await,
            None => Vec::new(),
        };
        let (dropped, stuck) = tokio::join!(self.http, self.sessions.stop_all(STOP_LINKS));
        if let Some(n) = node {
            n.leave(held).await;
        }
        if let Some(m) = self.metrics_http {
            let _ = m.await;
        }
        if stuck > 0 {
            tracing::warn!(stuck, "supervisors that did not stop in time");
        }
        if let Ok(n) = dropped {
            if n > 0 {
                tracing::info!(dropped = n, "connections dropped at the deadline");
            }
        }
        self.background.cancel();
        if let Some(d) = self.deliveries {
            let _ = d.await;
        }
        self.tasks.close();
        if tokio::time::timeout(FLUSH, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("background tasks did not end in time");
        }
        if !self.outbox.close(FLUSH).await {
            tracing::warn!("the outbox did not finish applying updates in time");
        }
        if !self.store.close(FLUSH).await {
            tracing::warn!("the database writer did not finish in time");
        }
        if !self.devices.close(FLUSH).await {
            tracing::warn!("the device store's writer did not finish in time");
        }
        tracing::info!(ms = begun.elapsed().as_millis() as u64, "stopped");
    }
}

/// Say `WATCHDOG=1` every `every` while the gateway is healthy: this task
/// runs (so the runtime turns), no supervisor has died, and the database
/// writer commits a transaction in time. When it is not, systemd restarts
/// the service once the watchdog period passes.
async fn feed_watchdog(
    notifier: Arc<crate::notify::Notifier>,
    every: Duration,
    sessions: Arc<Sessions>,
    store: Store,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let dead = sessions.stopped_supervisors();
        let db = tokio::time::timeout(every, store.write(|_| Ok(()))).await;
        match (dead, db) {
            (0, Ok(Ok(()))) => notifier.send("WATCHDOG=1"),
            (dead, db) => tracing::error!(
                dead_supervisors = dead,
                database = ?db.map(|r| r.map_err(|e| e.to_string())),
                "unhealthy: the systemd watchdog is not fed, so systemd will restart the service"
            ),
        }
    }
}

/// Carry the per-org folders of earlier versions into `devices.db` (once;
/// a data dir without them is left as it is).
async fn upgrade_org_folders(
    store: &Store,
    devices: &crate::devstore::Devices,
    data: &std::path::Path,
) -> anyhow::Result<()> {
    let orgs_dir = data.join("orgs");
    if !orgs_dir.is_dir() {
        return Ok(());
    }
    let orgs: Vec<(String, i64)> = store
        .read(crate::store::orgs::list)
        .await
        .context("reading organizations")?
        .into_iter()
        .map(|o| (o.id, o.inc))
        .collect();
    let t0 = std::time::Instant::now();
    let done =
        crate::devstore::upgrade::from_org_folders(devices, &orgs, &orgs_dir, &data.join("aside"))
            .await;
    if done != Default::default() {
        tracing::info!(
            carried = done.carried,
            linked = done.linked,
            set_aside = done.set_aside,
            ms = t0.elapsed().as_millis() as u64,
            "per-org WhatsApp files carried into devices.db; the old folders are in data/aside"
        );
    }
    // An empty `orgs` folder is what is left of the old layout.
    let _ = std::fs::remove_dir(&orgs_dir);
    Ok(())
}

/// SIGTERM and SIGINT, listened for from the start of `build`: a signal
/// that arrives while the gateway is still starting stops it as soon as it
/// runs, instead of killing it with the default action.
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Signals {
                term: signal(SignalKind::terminate()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            async fn one(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! { _ = one(&mut self.term) => {}, _ = one(&mut self.int) => {} }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(dir: &str) -> Vec<(String, String)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src")
            .join(dir);
        let mut out = Vec::new();
        let mut stack = vec![root];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    out.push((
                        p.display().to_string(),
                        std::fs::read_to_string(&p).unwrap(),
                    ));
                }
            }
        }
        out
    }

    /// The layering ARCHITECTURE.md promises: the two surfaces never import
    /// each other, the service layer knows neither, and store rows are not
    /// wire types.
    /// Whether `text` names module `m` (`crate::web`, not `crate::webhook`).
    fn names(text: &str, m: &str) -> bool {
        text.match_indices(m).any(|(i, _)| {
            !text[i + m.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
        })
    }

    #[test]
    fn layers_stay_apart() {
        assert!(names("use crate::web::x;", "crate::web"));
        assert!(!names("use crate::webhook::x;", "crate::web"));
        for (path, text) in sources("api") {
            assert!(!names(&text, "crate::web"), "{path} imports web/");
        }
        for (path, text) in sources("web") {
            assert!(!text.contains("crate::api"), "{path} imports api/");
        }
        for (path, text) in sources("app") {
            for other in ["crate::api", "crate::web", "axum", "StatusCode"] {
                assert!(!names(&text, other), "{path} uses {other}");
            }
        }
        for (path, text) in sources("store") {
            assert!(
                !text.contains("Serialize"),
                "{path}: store rows are not wire types"
            );
        }
    }

    /// The routes that act on an org's link are the ones wrapped by the
    /// forwarding layer (with the kind each is), and no other route is: a
    /// marker layer in the layer's place says which answered through it.
    #[tokio::test]
    async fn the_link_bound_routes_carry_the_forwarding_layer() {
        use crate::app::Bound;
        use axum::body::Body;
        use tower::ServiceExt;

        let dir = tempfile::tempdir().unwrap();
        let app = crate::app::test_app(dir.path());
        let marked = |r: Router<Arc<App>>, bound: Bound| {
            r.route_layer(axum::middleware::map_response(
                move |mut res: axum::response::Response| async move {
                    let v = if bound == Bound::Action {
                        "action"
                    } else {
                        "status"
                    };
                    res.headers_mut()
                        .insert("x-bound", axum::http::HeaderValue::from_static(v));
                    res
                },
            ))
        };
        let router = api::router(app.clone(), &marked).merge(web::router(app, &marked));
        let cases = [
            ("GET", "/v1/orgs/4/session", Some("status")),
            ("GET", "/ui/orgs/4", Some("status")),
            ("POST", "/v1/orgs/4/session/connect", Some("action")),
            ("GET", "/v1/orgs/4/session/qr", Some("action")),
            ("POST", "/v1/orgs/4/session/logout", Some("action")),
            ("POST", "/v1/orgs/4/session/reset", Some("action")),
            ("GET", "/v1/orgs/4/session/history", Some("action")),
            ("GET", "/v1/orgs/4/credentials", Some("action")),
            ("POST", "/v1/orgs/4/credentials/restore", Some("action")),
            ("GET", "/v1/orgs/4/debug/memory", Some("action")),
            ("GET", "/v1/orgs/4/contacts/573001112233", Some("action")),
            ("DELETE", "/v1/orgs/4", Some("action")),
            ("GET", "/ui/orgs/4/qr.svg", Some("action")),
            ("POST", "/ui/orgs/4/connect", Some("action")),
            ("POST", "/ui/orgs/4/pair-code", Some("action")),
            ("POST", "/ui/orgs/4/logout", Some("action")),
            ("POST", "/ui/orgs/4/reset", Some("action")),
            // Served from the database by any node.
            ("GET", "/v1/orgs/4", None),
            ("GET", "/v1/orgs", None),
            ("POST", "/v1/orgs/4/messages", None),
            ("GET", "/v1/orgs/4/events", None),
            ("GET", "/v1/orgs/4/webhooks", None),
            ("GET", "/v1/orgs/4/sending-policy", None),
            ("POST", "/ui/orgs/4/send", None),
            ("GET", "/ui/orgs/4/events", None),
            ("GET", "/healthz", None),
        ];
        for (method, path, want) in cases {
            let req = axum::http::Request::builder()
                .method(method)
                .uri(path)
                .body(Body::empty())
                .unwrap();
            let res = router.clone().oneshot(req).await.unwrap();
            let got = res.headers().get("x-bound").and_then(|v| v.to_str().ok());
            assert_eq!(got, want, "{method} {path} answered {}", res.status());
        }
    }

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
}

//! The engine over `whatsapp-rust`: one library client per organization, its
//! device state in the one device store for every org (`devstore`, device
//! number = the org's incarnation), its auto-reconnect switched off. Library events are translated into our own
//! `EngineEvent`s here and nowhere else.

use parking_lot::Mutex;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::inbound;
use tokio::time::Instant;
use whatsapp_rust::bot::Bot;
use whatsapp_rust::http::{HttpClient, HttpRequest, HttpResponse};
use whatsapp_rust::pair_code::PairCodeOptions;
use whatsapp_rust::types::events::{Event, EventHandler};
use whatsapp_rust::wacore::store::traits::DeviceStore as _;
use whatsapp_rust::{Client, Jid, SendOptions, TokioRuntime};

use crate::devstore::Devices;

use super::{
    diagnose, BoxFuture, CloseReason, Commit, Engine, EngineError, EngineEvent, EngineFactory,
    ReceiptKind, SendFailure, StartOptions,
};

/// Where and how engines connect.
#[derive(Debug, Clone, Default)]
pub struct WaConfig {
    /// WebSocket URL of the WhatsApp server; `None` uses WhatsApp's own.
    pub ws_url: Option<String>,
    /// Pin the client version instead of fetching WhatsApp Web's current one
    /// over HTTP (the sim build does this: no HTTP leaves the machine).
    pub version: Option<(u32, u32, u32)>,
    /// Refuse every HTTP request the library makes (sim build).
    pub no_http: bool,
    /// Never dial out: every attempt fails at once (`--offline`, tests).
    pub offline: bool,
}

pub struct WaFactory {
    cfg: WaConfig,
    layout: Layout,
    aside_dir: PathBuf,
}

/// Where device state lives.
enum Layout {
    /// Every org in `devices.db`.
    Devices(Devices),
    /// Earlier versions' layout, one library store per org in
    /// `<dir>/<org>/wa.db` (hidden `--legacy-org-files`: the upgrade test
    /// makes a data dir as an earlier version did).
    OrgFiles(PathBuf),
}

impl WaFactory {
    /// Engines whose device state lives in `devices`; copies set aside go
    /// to `aside_dir`.
    pub fn new(cfg: WaConfig, devices: Devices, aside_dir: PathBuf) -> WaFactory {
        WaFactory {
            cfg,
            layout: Layout::Devices(devices),
            aside_dir,
        }
    }

    /// Engines in earlier versions' one-file-per-org layout under `orgs_dir`.
    pub fn legacy(cfg: WaConfig, orgs_dir: PathBuf, aside_dir: PathBuf) -> WaFactory {
        WaFactory {
            cfg,
            layout: Layout::OrgFiles(orgs_dir),
            aside_dir,
        }
    }

    /// The backend for `org`/`dev`, and whether it held a device already.
    async fn backend(
        &self,
        org: &str,
        dev: i64,
    ) -> Result<(Arc<dyn whatsapp_rust::wacore::store::traits::Backend>, bool), EngineError> {
        let unavailable = |e: &dyn std::fmt::Display| {
            EngineError::Unavailable(format!("the device store cannot be read: {e}"))
        };
        match &self.layout {
            Layout::Devices(devices) => {
                let device = devices.device(dev);
                let existed = device.exists().await.map_err(|e| unavailable(&e))?;
                if existed {
                    // Rows the library cannot read are this org's corruption;
                    // the other orgs in the file are not touched.
                    if let Err(e) = device.load().await {
                        use whatsapp_rust::wacore::store::error::StoreError as E;
                        return Err(match e {
                            E::Serialization(_) | E::Validation(_) => EngineError::Corrupt(
                                format!("the stored device cannot be read: {e:#}"),
                            ),
                            other => unavailable(&other),
                        });
                    }
                }
                Ok((Arc::new(device), existed))
            }
            Layout::OrgFiles(dir) => {
                let dir = dir.join(org);
                std::fs::create_dir_all(&dir)
                    .map_err(|e| diagnose::io(&format!("cannot create {}", dir.display()), &e))?;
                let db = dir.join("wa.db");
                let existed = db.metadata().map(|m| m.len() > 0).unwrap_or(false);
                let path = db
                    .to_str()
                    .ok_or_else(|| EngineError::Unavailable("data path is not UTF-8".into()))?;
                let store = whatsapp_rust::store::SqliteStore::new(path)
                    .await
                    .map_err(|e| {
                        diagnose::library("cannot open wa.db", &format!("{e:#}"), existed)
                    })?;
                Ok((Arc::new(store), existed))
            }
        }
    }
}

impl EngineFactory for WaFactory {
    fn open<'a>(
        &'a self,
        org: &'a str,
        dev: i64,
        events: mpsc::UnboundedSender<EngineEvent>,
    ) -> BoxFuture<'a, Result<Arc<dyn Engine>, EngineError>> {
        Box::pin(async move {
            let (backend, existed) = self.backend(org, dev).await?;
            // A failure now is the library's. It is corruption only when the
            // device existed and the library says the data is bad.
            let classify = |what: &str, e: String| diagnose::library(what, &e, existed);
            let shared = Arc::new(Shared {
                org: org.to_string(),
                tx: events,
                reason: Mutex::new(None),
                close_requested: AtomicBool::new(false),
                creds: AtomicBool::new(false),
                client: std::sync::OnceLock::new(),
            });
            let transport = super::transport::NoDelayTransportFactory::new(self.cfg.ws_url.clone());
            let mut builder = Bot::builder()
                .with_backend_arc(backend)
                .with_transport_factory(transport)
                .with_http_client(GatedHttp {
                    inner: (!self.cfg.no_http).then(whatsapp_rust::http::UreqHttpClient::new),
                })
                .with_runtime(TokioRuntime)
                .with_event_handler(Forwarder(shared.clone()))
                .skip_history_sync();
            if let Some(v) = self.cfg.version {
                builder = builder.with_version(v);
            }
            let bot = builder
                .build()
                .await
                .map_err(|e| classify("cannot load the device", format!("{e:#}")))?;
            let client = bot.client();
            let _ = shared.client.set(Arc::downgrade(&client));
            client.enable_auto_reconnect.store(false, Ordering::SeqCst);
            let linked = client
                .persistence_manager()
                .get_device_snapshot()
                .pn
                .is_some();
            shared.creds.store(linked, Ordering::SeqCst);
            // Several nodes: dial only while this node holds the org's lease.
            let may_dial: Option<Box<dyn Fn() -> bool + Send + Sync>> = match &self.layout {
                Layout::Devices(devices) => {
                    let devices = devices.clone();
                    Some(Box::new(move || devices.may_act(dev)))
                }
                _ => None,
            };
            Ok(Arc::new(WaEngine {
                offline: self.cfg.offline,
                may_dial,
                client,
                bot: Mutex::new(Some(bot)),
                shared,
            }) as Arc<dyn Engine>)
        })
    }

    fn stored<'a>(&'a self, org: &'a str, dev: i64) -> BoxFuture<'a, Result<bool, EngineError>> {
        Box::pin(async move {
            match &self.layout {
                Layout::Devices(devices) => devices.linked(dev).await.map_err(|e| {
                    EngineError::Unavailable(format!("the device store cannot be read: {e}"))
                }),
                Layout::OrgFiles(dir) => Ok(dir.join(org).join("wa.db").exists()),
            }
        })
    }

    fn set_aside<'a>(
        &'a self,
        org: &'a str,
        dev: i64,
        why: &'a str,
    ) -> BoxFuture<'a, Result<Option<PathBuf>, String>> {
        Box::pin(async move {
            let devices = match &self.layout {
                Layout::Devices(d) => d,
                Layout::OrgFiles(dir) => {
                    return super::move_dir_aside(&dir.join(org), &self.aside_dir, org, why)
                        .map_err(|e| e.to_string());
                }
            };
            // No client may write the device from here on; what it queued
            // before is committed first, so the copy is whole.
            devices.retire(dev);
            devices.flush().await.map_err(|e| e.to_string())?;
            std::fs::create_dir_all(&self.aside_dir)
                .map_err(|e| format!("cannot create {}: {e}", self.aside_dir.display()))?;
            let path = self
                .aside_dir
                .join(format!("{}.db", super::aside_name(org, why)));
            let rows = crate::devstore::copy::export(devices, dev, &path).await?;
            if rows == 0 {
                let _ = std::fs::remove_file(&path);
                return Ok(None);
            }
            devices
                .delete(dev)
                .await
                .map_err(|e| format!("copied aside to {} but not cleared: {e}", path.display()))?;
            Ok(Some(path))
        })
    }

    fn reinstate<'a>(
        &'a self,
        org: &'a str,
        dev: i64,
        from: &'a std::path::Path,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            match &self.layout {
                Layout::Devices(devices) => {
                    // Whatever handle the last client had stays retired.
                    devices.retire(dev);
                    crate::devstore::copy::restore(devices, from, dev)
                        .await
                        .map(|_| ())
                }
                Layout::OrgFiles(dir) => {
                    let dir = dir.join(org);
                    if dir.exists() {
                        return Err(format!("{} is in the way", dir.display()));
                    }
                    std::fs::rename(from, &dir).map_err(|e| e.to_string())
                }
            }
        })
    }
}

/// The library's HTTP client, or a refusal when HTTP is not allowed.
struct GatedHttp {
    inner: Option<whatsapp_rust::http::UreqHttpClient>,
}

#[whatsapp_rust::async_trait]
impl HttpClient for GatedHttp {
    async fn execute(&self, request: HttpRequest) -> whatsapp_rust::anyhow::Result<HttpResponse> {
        match &self.inner {
            Some(c) => c.execute(request).await,
            None => Err(whatsapp_rust::anyhow::anyhow!(
                "HTTP is disabled in this build (refused {})",
                request.url
            )),
        }
    }
}

/// State shared between the engine and the library's event callback.
struct Shared {
    org: String,
    tx: mpsc::UnboundedSender<EngineEvent>,
    /// Why the current attempt is ending, when the library said so.
    reason: Mutex<Option<CloseReason>>,
    close_requested: AtomicBool,
    creds: AtomicBool,
    /// The client, to read the linked number when `Connected` arrives.
    client: std::sync::OnceLock<std::sync::Weak<Client>>,
}

impl Shared {
    fn emit(&self, ev: EngineEvent) {
        if self.tx.send(ev).is_err() {
            tracing::debug!(org = %self.org, "engine event after the supervisor stopped");
        }
    }

    fn note_reason(&self, r: CloseReason) {
        let mut g = self.reason.lock();
        if g.is_none() {
            *g = Some(r);
        }
    }
}

struct Forwarder(Arc<Shared>);

fn now_ms() -> i64 {
    crate::store::now_ms()
}

fn phone_of(jid: &Jid) -> String {
    jid.user.to_string()
}

impl EventHandler for Forwarder {
    fn handle_event(&self, event: Arc<Event>) {
        let s = &self.0;
        match &*event {
            Event::PairingQrCode(q) => s.emit(EngineEvent::Qr {
                code: q.code.clone(),
                ttl: q.timeout,
            }),
            Event::PairingCode(p) => s.emit(EngineEvent::PairCode {
                code: p.code.clone(),
                ttl: p.timeout,
            }),
            Event::PairingQrCodesExhausted(_) => s.emit(EngineEvent::QrExhausted),
            Event::PairSuccess(p) => {
                s.creds.store(true, Ordering::SeqCst);
                s.emit(EngineEvent::Paired {
                    phone: phone_of(&p.id),
                });
            }
            Event::Connected(_) => {
                let phone = s.client.get().and_then(|w| w.upgrade()).and_then(|c| {
                    c.persistence_manager()
                        .get_device_snapshot()
                        .pn
                        .as_ref()
                        .map(phone_of)
                });
                s.emit(EngineEvent::Connected { phone });
            }
            Event::LoggedOut(l) => {
                s.creds.store(false, Ordering::SeqCst);
                s.note_reason(CloseReason::Verdict);
                s.emit(EngineEvent::LoggedOut {
                    detail: format!("{:?}", l.reason),
                });
            }
            Event::StreamReplaced(_) => {
                s.note_reason(CloseReason::Verdict);
                s.emit(EngineEvent::Replaced);
            }
            Event::TemporaryBan(b) => {
                s.note_reason(CloseReason::Verdict);
                let secs = b.expire.num_seconds().max(0) as u64;
                s.emit(EngineEvent::Banned {
                    expires_in: Some(Duration::from_secs(secs)),
                    detail: format!("{:?}", b.code),
                });
            }
            Event::ClientOutdated(_) => {
                s.note_reason(CloseReason::Verdict);
                s.emit(EngineEvent::Outdated);
            }
            Event::ConnectFailure(f) => {
                let code = format!("{:?}", f.reason);
                if matches!(
                    f.reason,
                    whatsapp_rust::types::events::ConnectFailureReason::TempBanned
                ) {
                    s.emit(EngineEvent::Banned {
                        expires_in: None,
                        detail: f.message.clone().unwrap_or(code.clone()),
                    });
                }
                s.note_reason(CloseReason::ServerError(
                    failure_code(&f.reason),
                    f.message.clone().unwrap_or(code),
                ));
            }
            Event::StreamError(e) => {
                let code = e.code.parse().unwrap_or(0);
                s.note_reason(CloseReason::ServerError(code, "stream error".into()));
            }
            Event::Disconnected(d) => s.note_reason(CloseReason::Network(d.reason.to_string())),
            Event::UndecryptableMessage(u) if !u.is_unavailable => {
                s.emit(EngineEvent::DecryptFailure {
                    from: phone_of(&u.info.source.sender),
                })
            }
            Event::ServerAck(a) if a.class.as_deref().is_none_or(|c| c == "message") => {
                s.emit(EngineEvent::ServerAck {
                    wa_id: a.id.clone(),
                    error: a.error.clone(),
                })
            }
            Event::MexNotification(m) => {
                if let Some(notice) = super::limits::parse(&m.op_name, &m.payload, now_ms()) {
                    tracing::info!(org = %s.org, ?notice, "sending limit announced");
                    s.emit(EngineEvent::Limit(notice));
                }
            }
            Event::Receipt(r) => {
                use whatsapp_rust::types::presence::ReceiptType;
                let kind = match r.r#type {
                    ReceiptType::Delivered => ReceiptKind::Delivered,
                    ReceiptType::Read | ReceiptType::ReadSelf => ReceiptKind::Read,
                    _ => return,
                };
                let (committed, done) = Commit::new();
                s.emit(EngineEvent::Receipt {
                    wa_ids: r.message_ids.iter().map(|m| m.to_string()).collect(),
                    kind,
                    committed,
                });
                wait_committed(done);
            }
            Event::Messages(batch) => {
                for m in batch.messages.iter() {
                    if m.info.source.is_from_me {
                        continue;
                    }
                    let Some(content) = inbound::read(&m.message) else {
                        continue;
                    };
                    let (mut from, from_lid) =
                        inbound::sender(&m.info.source.sender, m.info.source.sender_alt.as_ref());
                    if from_lid.as_deref() == Some(from.as_str()) {
                        // A LID with no number beside it: the number as the
                        // client learnt it earlier (a contact look-up, an
                        // earlier message), if it did.
                        if let Some(phone) = phone_for_lid(s, &m.info.source.sender) {
                            from = phone;
                        }
                    }
                    let (committed, done) = Commit::new();
                    s.emit(EngineEvent::Message {
                        wa_id: m.info.id.to_string(),
                        from,
                        from_lid,
                        text: content.text,
                        quoted: content.quoted,
                        reaction_to: content.reaction_to,
                        committed,
                    });
                    wait_committed(done);
                }
            }
            _ => {}
        }
    }
}

/// The phone number the client's LID↔phone store holds for a LID.
fn phone_for_lid(s: &Shared, lid: &Jid) -> Option<String> {
    let client = s.client.get().and_then(|w| w.upgrade())?;
    let look = || {
        tokio::runtime::Handle::current().block_on(async {
            match client.get_lid_pn_entry(lid).await {
                Ok(e) => e.map(|e| e.phone_number.to_string()),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the LID↔phone store");
                    None
                }
            }
        })
    };
    // Only a multi-threaded runtime's worker may block on it here.
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(look),
        _ => None,
    }
}

/// Hold the library's event handler until the event is committed (or 5 s
/// pass, or the event was dropped at shutdown): the library acknowledges
/// the receipt or message to the server as soon as the handler returns.
fn wait_committed(done: std::sync::mpsc::Receiver<()>) {
    let wait = || {
        let _ = done.recv_timeout(Duration::from_secs(5));
    };
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(wait),
        // Not on a runtime worker: blocking is harmless. On a single-threaded
        // runtime it would stall the commit it waits for: don't wait.
        Err(_) => wait(),
        Ok(_) => {}
    }
}

fn failure_code(r: &whatsapp_rust::types::events::ConnectFailureReason) -> u16 {
    use whatsapp_rust::types::events::ConnectFailureReason as R;
    match r {
        R::Generic => 400,
        R::LoggedOut => 401,
        R::TempBanned => 402,
        R::AccountLocked => 403,
        R::ClientOutdated => 405,
        R::UnknownLogout => 406,
        R::BadUserAgent => 409,
        R::InternalServerError => 500,
        R::ServiceUnavailable => 503,
        R::Unknown(c) => u16::try_from(*c).unwrap_or(0),
        _ => 0,
    }
}

struct WaEngine {
    offline: bool,
    /// Whether this node may connect for the org now (several nodes).
    may_dial: Option<Box<dyn Fn() -> bool + Send + Sync>>,
    client: Arc<Client>,
    /// The built bot, until the first attempt wires its background workers.
    bot: Mutex<Option<Bot>>,
    shared: Arc<Shared>,
}

impl WaEngine {
    fn frames(&self) -> u64 {
        self.client.stats().frames_received
    }
}

impl Engine for WaEngine {
    fn has_credentials(&self) -> bool {
        self.shared.creds.load(Ordering::SeqCst)
    }

    fn start(&self, opts: StartOptions) {
        let refusal = if self.offline {
            Some("offline mode: connections to WhatsApp are disabled")
        } else if self.may_dial.as_ref().is_some_and(|may| !may()) {
            // Another node owns the org now: a login here would replace
            // its link.
            Some("this node does not hold the org's lease")
        } else {
            None
        };
        if let Some(why) = refusal {
            let tx = self.shared.tx.clone();
            tokio::spawn(async move {
                let reason = CloseReason::Network(why.into());
                let _ = tx.send(EngineEvent::Closed { reason });
            });
            return;
        }
        let client = self.client.clone();
        let shared = self.shared.clone();
        let bot = self.bot.lock().take();
        *shared.reason.lock() = None;
        shared.close_requested.store(false, Ordering::SeqCst);
        // Frames received before this attempt: none after it means "never connected".
        let base = self.frames();
        if let Some(phone) = opts.pair_phone {
            let c = client.clone();
            let s = shared.clone();
            tokio::spawn(async move {
                if c.wait_for_socket(Duration::from_secs(30)).await.is_err() || c.is_logged_in() {
                    return;
                }
                let opts = PairCodeOptions {
                    phone_number: phone,
                    ..Default::default()
                };
                if let Err(e) = c.pair_with_code(opts).await {
                    tracing::warn!(org = %s.org, error = %e, "pairing code request failed");
                }
            });
        }
        tokio::spawn(async move {
            match bot {
                // The first attempt goes through the bot so its background
                // workers (event delivery, app-state sync) are started once.
                Some(bot) => {
                    let handle = bot.spawn();
                    handle.await;
                }
                None => client.run().await,
            }
            let frames = client.stats().frames_received;
            let reached = frames > base;
            let reason = shared.reason.lock().take();
            let reason = match reason {
                _ if shared.close_requested.load(Ordering::SeqCst) => CloseReason::Requested,
                Some(r) => r,
                None if !reached => {
                    CloseReason::Network("could not connect to the WhatsApp server".into())
                }
                // The library ended the stream as expected without a verdict:
                // the 515 restart (after pairing, or a server recycle).
                None => CloseReason::RestartRequired,
            };
            if let Err(e) = shared.tx.send(EngineEvent::Closed { reason }) {
                tracing::debug!(org = %shared.org, "supervisor gone: {e}");
            }
        });
    }

    fn close(&self) {
        self.shared.close_requested.store(true, Ordering::SeqCst);
        let c = self.client.clone();
        // With auto-reconnect off, dropping the transport ends the run loop.
        tokio::spawn(async move { c.reconnect().await });
    }

    fn probe(&self) {
        let c = self.client.clone();
        let shared = self.shared.clone();
        tokio::spawn(async move {
            use whatsapp_rust::wacore::iq::spec::IqSpec;
            let iq = whatsapp_rust::wacore::iq::keepalive::KeepaliveSpec::with_timeout(
                Duration::from_secs(10),
            )
            .build_iq();
            // The answer wakes the supervisor in the same turn as the pong, so
            // it need not wake again later to find out.
            if c.send_iq(iq).await.is_ok() {
                shared.emit(EngineEvent::ProbeAnswered);
            }
        });
    }

    fn memory_report(&self) -> BoxFuture<'_, Option<String>> {
        Box::pin(async move { Some(format!("{:#?}", self.client.memory_report().await)) })
    }

    fn last_frame(&self) -> Option<Instant> {
        let ms = self.client.stats().last_data_received_ms;
        if ms == 0 {
            return None;
        }
        let now_ms = whatsapp_rust::wacore::time::now_millis().max(0) as u64;
        let ago = Duration::from_millis(now_ms.saturating_sub(ms));
        Instant::now().checked_sub(ago)
    }

    fn logout(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.shared.close_requested.store(true, Ordering::SeqCst);
            self.client.logout().await;
            self.shared.creds.store(false, Ordering::SeqCst);
        })
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.shared.close_requested.store(true, Ordering::SeqCst);
            self.client.disconnect().await;
        })
    }

    fn typing<'a>(&'a self, to: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let Ok(jid) = format!("{to}@s.whatsapp.net").parse::<Jid>() else {
                return;
            };
            if let Err(e) = self.client.chatstate().send_composing(&jid).await {
                tracing::debug!(org = %self.shared.org, error = %e, "typing indicator not sent");
            }
        })
    }

    fn lookup<'a>(&'a self, phone: &'a str) -> BoxFuture<'a, Result<Option<String>, SendFailure>> {
        Box::pin(async move {
            if !self.client.is_connected() || !self.client.is_logged_in() {
                return Err(SendFailure::NotConnected("the link is down".into()));
            }
            let jid: Jid = format!("{phone}@s.whatsapp.net")
                .parse()
                .map_err(|e| SendFailure::Rejected(format!("bad number {phone}: {e}")))?;
            let found = self
                .client
                .contacts()
                .is_on_whatsapp(std::slice::from_ref(&jid))
                .await
                .map_err(|e| SendFailure::NotConnected(format!("look-up failed: {e}")))?;
            Ok(found
                .into_iter()
                .find(|r| r.is_registered)
                .map(|r| r.jid.to_string()))
        })
    }

    fn send_text<'a>(
        &'a self,
        to: &'a str,
        text: &'a str,
        wa_id: &'a str,
    ) -> BoxFuture<'a, Result<(), SendFailure>> {
        Box::pin(async move {
            if !self.client.is_connected() || !self.client.is_logged_in() {
                return Err(SendFailure::NotConnected("the link is down".into()));
            }
            let jid: Jid = format!("{to}@s.whatsapp.net")
                .parse()
                .map_err(|e| SendFailure::Rejected(format!("bad recipient {to}: {e}")))?;
            let msg = whatsapp_rust::waproto::whatsapp::Message {
                conversation: Some(text.to_string()),
                ..Default::default()
            };
            let opts = SendOptions::default().with_message_id(wa_id);
            match self.client.send_message_with_options(jid, msg, opts).await {
                Ok(_) => Ok(()),
                Err(whatsapp_rust::SendError::InvalidRequest(why)) => {
                    Err(SendFailure::Rejected(why))
                }
                Err(e) => Err(SendFailure::NotConnected(e.to_string())),
            }
        })
    }
}

//! The simulator's shared core: persistent phones and devices, the live
//! connections, the QR references on offer, and the faults in force. Every
//! connection task and the control API go through this.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::mpsc;
use wacore_binary::Node;
use wacore_libsignal::protocol::KeyPair;

use crate::state::{keypair_from_hex, Persist};

/// Orders for one connection task.
#[derive(Debug)]
pub enum Out {
    /// Send this node.
    Node(Node),
    /// Send a pair-success and remember what it links, for the client's answer.
    PairSuccess { node: Node, pending: PendingPair },
    /// Close the socket now.
    Close,
    /// Send a stream error node, then close.
    StreamError(Node),
}

/// How often a device logged in, and how often it did so while another
/// connection was logged in as it.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct Logins {
    pub logins: u64,
    pub overlaps: u64,
}

#[derive(Debug, Clone)]
pub struct PendingPair {
    pub iq_id: String,
    pub phone: String,
    pub device: u32,
    pub identity_pub: [u8; 32],
}

/// A live client connection, as the control API sees it.
pub struct Conn {
    pub id: u64,
    /// `PHONE:DEVICE@s.whatsapp.net` once logged in; `None` while pairing.
    pub jid: Mutex<Option<String>>,
    pub tx: mpsc::Sender<Out>,
    pub last_frame_ms: AtomicI64,
    /// Frames read from the client, and how many of them were keep-alive
    /// pings (`iq xmlns="w:p"`): what a client's idle traffic costs.
    pub frames_in: AtomicU64,
    pub pings: AtomicU64,
    pub connected_ms: i64,
    pub blackholed: AtomicBool,
}

/// A receipt on its way to a device, kept until the device acks it.
#[derive(Debug, Clone)]
pub struct PendingReceipt {
    pub id: String,
    /// `None` for delivery, `Some("read")` …
    pub kind: Option<String>,
    pub node: Node,
}

/// How far a newly linked device is from its welcome.
#[derive(Debug, Default, Clone, Copy)]
pub struct Welcome {
    /// It uploaded its pre-keys (a session to it can be opened).
    pub keys: bool,
    /// It was told the offline queue is empty (it is past its login).
    pub online: bool,
}

/// Login refusal in force for a device (or all).
#[derive(Debug, Clone, Serialize)]
pub struct LoginFailure {
    pub code: u16,
    pub expire_secs: Option<u64>,
}

#[derive(Default)]
pub struct Faults {
    /// Refuse new connections (server down).
    pub down: bool,
    /// Blackhole new and existing connections for these targets ("all" or a jid).
    pub blackhole: Vec<String>,
    /// Refuse logins for these targets.
    pub login_failures: HashMap<String, LoginFailure>,
    /// Phones whose next message to a linked device carries a bad MAC.
    pub bad_mac: std::collections::HashSet<String>,
    /// Reach-out timelocks in force, by the number they hold back.
    pub reachout: HashMap<String, crate::records::Reachout>,
    /// New-chat quotas in force, by number.
    pub capping: HashMap<String, crate::records::Capping>,
}

pub struct Sim {
    pub dir: PathBuf,
    pub server_key: KeyPair,
    /// The certificate chain sent in every handshake (`certs.rs`).
    pub cert_chain: Vec<u8>,
    /// The public half of the test root that signs it.
    pub root_public: [u8; 32],
    pub persist: Mutex<Persist>,
    pub conns: Mutex<HashMap<u64, Arc<Conn>>>,
    /// Per device jid: logins, and logins that found another live
    /// connection logged in as the same device (each such older one is
    /// told `conflict type="replaced"` and closed, as WhatsApp does).
    pub logins: Mutex<HashMap<String, Logins>>,
    /// QR references on offer → the connection that offered them.
    pub refs: Mutex<HashMap<String, u64>>,
    pub faults: Mutex<Faults>,
    /// Pairing-code flows waiting for a code to be typed.
    pub codes: crate::records::Codes,
    /// Each phone's primary device as a Signal recipient, made on first use.
    pub recipients: tokio::sync::Mutex<HashMap<String, crate::signal::Recipient>>,
    /// Pre-keys each linked device uploaded, by device jid.
    pub uploads: Mutex<HashMap<String, crate::records::Uploaded>>,
    /// What phones sent, by message id, for retry receipts and for who
    /// wrote to whom.
    pub sent_log: Mutex<HashMap<String, crate::records::Sent>>,
    /// Receipts for each device jid that it has not acked yet: sent again at
    /// its next login, as WhatsApp keeps them for a device that was away.
    pub receipts: Mutex<HashMap<String, Vec<PendingReceipt>>>,
    /// Devices just linked, owed the phone's welcome (key share, history)
    /// once they are online and have uploaded their pre-keys.
    pub welcome_due: Mutex<HashMap<String, Welcome>>,
    /// Chat states ("typing…", paused) each phone was shown, in arrival order.
    pub chatstates: Mutex<HashMap<String, Vec<ChatState>>>,
    next_id: AtomicU64,
}

/// One chat state a phone was shown: who, which, and when it arrived.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChatState {
    pub from: String,
    pub state: String,
    pub t: i64,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Sim {
    pub fn open(dir: PathBuf) -> anyhow::Result<Arc<Sim>> {
        let persist = Persist::load(&dir)?;
        let server_key = keypair_from_hex(&persist.server_priv)?;
        let root = keypair_from_hex(&persist.root_priv)?;
        let intermediate = keypair_from_hex(&persist.intermediate_priv)?;
        let cert_chain = crate::certs::build(
            &root,
            &intermediate,
            &server_key,
            (now_ms() / 1000).max(0) as u64,
        )?;
        let mut root_public = [0u8; 32];
        root_public.copy_from_slice(root.public_key.public_key_bytes());
        Ok(Arc::new(Sim {
            dir,
            server_key,
            cert_chain,
            root_public,
            persist: Mutex::new(persist),
            conns: Mutex::new(HashMap::new()),
            logins: Mutex::new(HashMap::new()),
            refs: Mutex::new(HashMap::new()),
            faults: Mutex::new(Faults::default()),
            codes: Default::default(),
            recipients: Default::default(),
            uploads: Default::default(),
            sent_log: Default::default(),
            receipts: Default::default(),
            welcome_due: Default::default(),
            chatstates: Default::default(),
            next_id: AtomicU64::new(1),
        }))
    }

    pub fn persist(&self) -> std::sync::MutexGuard<'_, Persist> {
        lock(&self.persist)
    }

    pub fn save(&self, p: &Persist) {
        if let Err(e) = p.save(&self.dir) {
            tracing::error!(error = %e, "cannot save wa-sim state");
        }
    }

    pub fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        lock(&self.faults)
    }

    pub fn register(&self, tx: mpsc::Sender<Out>) -> Arc<Conn> {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let c = Arc::new(Conn {
            id,
            jid: Mutex::new(None),
            tx,
            last_frame_ms: AtomicI64::new(now_ms()),
            frames_in: AtomicU64::new(0),
            pings: AtomicU64::new(0),
            connected_ms: now_ms(),
            blackholed: AtomicBool::new(false),
        });
        lock(&self.conns).insert(id, c.clone());
        c
    }

    pub fn unregister(&self, id: u64) {
        lock(&self.conns).remove(&id);
        lock(&self.refs).retain(|_, c| *c != id);
    }

    pub fn offer_refs(&self, id: u64, refs: &[String]) {
        let mut m = lock(&self.refs);
        for r in refs {
            m.insert(r.clone(), id);
        }
    }

    pub fn conn_for_ref(&self, r: &str) -> Option<Arc<Conn>> {
        let id = *lock(&self.refs).get(r)?;
        lock(&self.conns).get(&id).cloned()
    }

    pub fn conns(&self) -> Vec<Arc<Conn>> {
        let mut v: Vec<_> = lock(&self.conns).values().cloned().collect();
        v.sort_by_key(|c| c.id);
        v
    }

    /// Record a login as `jid` on `me`; returns the other live connections
    /// already logged in as that device (to be replaced).
    pub fn login(&self, me: &Conn, jid: &str) -> Vec<Arc<Conn>> {
        let others: Vec<Arc<Conn>> = self
            .conns()
            .into_iter()
            .filter(|c| c.id != me.id && lock(&c.jid).as_deref() == Some(jid))
            .collect();
        let mut l = lock(&self.logins);
        let e = l.entry(jid.to_string()).or_default();
        e.logins += 1;
        if !others.is_empty() {
            e.overlaps += 1;
        }
        set_conn_jid(me, jid.to_string());
        others
    }

    /// Connections a fault target names: "all" or one device jid.
    pub fn targets(&self, target: &str) -> Vec<Arc<Conn>> {
        self.conns()
            .into_iter()
            .filter(|c| target == "all" || lock(&c.jid).as_deref() == Some(target))
            .collect()
    }

    pub fn is_blackholed(&self, jid: Option<&str>) -> bool {
        let f = self.faults();
        f.blackhole
            .iter()
            .any(|t| t == "all" || Some(t.as_str()) == jid)
    }

    pub fn login_failure(&self, jid: &str) -> Option<LoginFailure> {
        let f = self.faults();
        f.login_failures
            .get(jid)
            .or_else(|| f.login_failures.get("all"))
            .cloned()
    }
}

pub fn conn_jid(c: &Conn) -> Option<String> {
    lock(&c.jid).clone()
}

/// The jid a connection is logged in as (to forget it when replaced).
pub fn lock_jid(c: &Conn) -> std::sync::MutexGuard<'_, Option<String>> {
    lock(&c.jid)
}

pub fn set_conn_jid(c: &Conn, jid: String) {
    *lock(&c.jid) = Some(jid);
}

/// `PHONE[:DEVICE]@server` → (phone, device).
pub fn split_jid(jid: &str) -> (String, u32) {
    let user = jid.split('@').next().unwrap_or("");
    match user.split_once(':') {
        Some((p, d)) => (p.to_string(), d.parse().unwrap_or(0)),
        None => (user.to_string(), 0),
    }
}

impl Sim {
    pub fn phone_exists(&self, phone: &str) -> bool {
        self.persist().phones.contains_key(phone)
    }

    /// The phone a jid names: `PN[:DEVICE]@s.whatsapp.net` by number,
    /// `LID[:DEVICE]@lid` by its LID. `None` for anyone wa-sim does not know.
    pub fn phone_of(&self, jid: &str) -> Option<String> {
        let (user, _) = split_jid(jid);
        let st = self.persist();
        if jid.ends_with("@lid") {
            st.phones
                .values()
                .find(|p| p.lid == user)
                .map(|p| p.phone.clone())
        } else {
            st.phones.contains_key(&user).then_some(user)
        }
    }

    /// A phone's LID (user part).
    pub fn lid_of(&self, phone: &str) -> Option<String> {
        self.persist().phones.get(phone).map(|p| p.lid.clone())
    }

    /// Note a step of a new device's first login. True once both steps
    /// are in: the phone's welcome is due now (`messaging::welcome_new_device`).
    pub fn welcome_step(&self, jid: &str, step: impl FnOnce(&mut Welcome)) -> bool {
        let mut due = lock(&self.welcome_due);
        let Some(w) = due.get_mut(jid) else {
            return false;
        };
        step(w);
        let ready = w.keys && w.online;
        if ready {
            due.remove(jid);
        }
        ready
    }

    /// A value fixed per phone, derived from its account key (so it stays
    /// the same across restarts without being stored).
    fn phone_derived(&self, phone: &str, what: &[u8]) -> [u8; 32] {
        use sha2::Digest;
        let account = self
            .persist()
            .phones
            .get(phone)
            .map(|p| p.account_priv.clone())
            .unwrap_or_default();
        let mut h = sha2::Sha256::new();
        h.update(what);
        h.update(account.as_bytes());
        h.finalize().into()
    }

    /// The phone's app-state sync key (what its linked devices decrypt
    /// app-state patches with) and that key's id.
    pub fn app_state_key(&self, phone: &str) -> [u8; 32] {
        self.phone_derived(phone, b"wa-sim app-state key\0")
    }

    pub fn app_state_key_id(&self, phone: &str) -> [u8; 6] {
        let d = self.phone_derived(phone, b"wa-sim app-state key id\0");
        let mut id = [0u8; 6];
        id.copy_from_slice(&d[..6]);
        id
    }
}

//! wa-sim's durable state (`<dir>/state.json`): the server's static Noise key
//! (so clients with stored credentials log in with IK across restarts), and
//! the simulated phones with their account keys and linked devices.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use wacore_libsignal::protocol::{KeyPair, PrivateKey};

/// Most devices one phone may link, as WhatsApp allows.
pub const MAX_DEVICES: usize = 4;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Device {
    pub id: u32,
    /// The companion's identity public key (from the QR it showed).
    pub identity_pub: String,
    pub linked_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Phone {
    pub phone: String,
    pub name: String,
    /// The account (primary device) signing key, private half, hex.
    pub account_priv: String,
    /// The phone's LID user part.
    pub lid: String,
    pub next_device: u32,
    pub devices: BTreeMap<u32, Device>,
    /// Read every received message this long after it arrives (None: only on command).
    #[serde(default)]
    pub read_after_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Persist {
    pub server_priv: String,
    /// The test root that signs the certificate chain's intermediate (made
    /// on first use; tests pin its public half).
    #[serde(default = "new_keypair_hex")]
    pub root_priv: String,
    /// The intermediate that signs the leaf (the server's static key).
    #[serde(default = "new_keypair_hex")]
    pub intermediate_priv: String,
    pub phones: BTreeMap<String, Phone>,
}

pub fn keypair_from_hex(h: &str) -> anyhow::Result<KeyPair> {
    let bytes = hex::decode(h)?;
    let private = PrivateKey::deserialize(&bytes).map_err(|e| anyhow::anyhow!("bad key: {e}"))?;
    let public = private
        .public_key()
        .map_err(|e| anyhow::anyhow!("bad key: {e}"))?;
    Ok(KeyPair::new(public, private))
}

pub fn new_keypair_hex() -> String {
    let kp = KeyPair::generate(&mut rand::rng());
    hex::encode(kp.private_key.serialize())
}

impl Persist {
    /// Load `<dir>/state.json`, or start fresh (new server key, no phones).
    pub fn load(dir: &Path) -> anyhow::Result<Persist> {
        std::fs::create_dir_all(dir)?;
        let path = state_path(dir);
        match std::fs::read(&path) {
            Ok(b) => {
                let p: Persist = serde_json::from_slice(&b)?;
                // Keys a state file from an earlier version lacked are made now.
                p.save(dir)?;
                Ok(p)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let p = Persist {
                    server_priv: new_keypair_hex(),
                    root_priv: new_keypair_hex(),
                    intermediate_priv: new_keypair_hex(),
                    phones: BTreeMap::new(),
                };
                p.save(dir)?;
                Ok(p)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Write atomically (temp file + rename).
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        let tmp = dir.join("state.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(&tmp, state_path(dir))?;
        Ok(())
    }
}

fn state_path(dir: &Path) -> PathBuf {
    dir.join("state.json")
}

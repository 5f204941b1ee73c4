//! Simulated recipients' Signal state: each phone's primary device (device 0)
//! has a real identity key, a signed pre-key and one-time pre-keys, hands out
//! bundles as WhatsApp's server does, and decrypts what senders encrypt to it
//! into its inbox. Sessions live in memory (a wa-sim restart forgets them).

use std::collections::HashMap;

use serde::Serialize;
use wacore_binary::builder::NodeBuilder;
use wacore_binary::Node;
use wacore_libsignal::protocol::{
    message_decrypt_prekey, message_decrypt_signal, Direction, GenericSignedPreKey, IdentityChange,
    IdentityKey, IdentityKeyPair, IdentityKeyStore, KeyPair, PreKeyId, PreKeyRecord,
    PreKeySignalMessage, PreKeyStore, ProtocolAddress, SessionRecord, SessionStore, SignalMessage,
    SignalProtocolError, SignedPreKeyId, SignedPreKeyRecord, SignedPreKeyStore, Timestamp,
    UsePQRatchet,
};

type SResult<T> = Result<T, SignalProtocolError>;

#[derive(Default)]
pub struct Sessions(HashMap<String, SessionRecord>);

pub struct Identities {
    pair: IdentityKeyPair,
    registration: u32,
    known: HashMap<String, IdentityKey>,
}

#[derive(Default)]
pub struct PreKeys(HashMap<u32, PreKeyRecord>);

pub struct SignedPreKeys(SignedPreKeyRecord);

fn key(a: &ProtocolAddress) -> String {
    a.to_string()
}

#[async_trait::async_trait]
impl SessionStore for Sessions {
    async fn load_session(&self, address: &ProtocolAddress) -> SResult<Option<SessionRecord>> {
        Ok(self.0.get(&key(address)).cloned())
    }
    async fn has_session(&self, address: &ProtocolAddress) -> SResult<bool> {
        Ok(self.0.contains_key(&key(address)))
    }
    async fn store_session(
        &mut self,
        address: &ProtocolAddress,
        record: SessionRecord,
    ) -> SResult<()> {
        self.0.insert(key(address), record);
        Ok(())
    }
}

#[async_trait::async_trait]
impl IdentityKeyStore for Identities {
    async fn get_identity_key_pair(&self) -> SResult<IdentityKeyPair> {
        Ok(self.pair.clone())
    }
    async fn get_local_registration_id(&self) -> SResult<u32> {
        Ok(self.registration)
    }
    async fn save_identity(
        &mut self,
        address: &ProtocolAddress,
        identity: &IdentityKey,
    ) -> SResult<IdentityChange> {
        let old = self.known.insert(key(address), *identity);
        Ok(match old {
            Some(o) if o != *identity => IdentityChange::ReplacedExisting,
            _ => IdentityChange::NewOrUnchanged,
        })
    }
    async fn is_trusted_identity(
        &self,
        _: &ProtocolAddress,
        _: &IdentityKey,
        _: Direction,
    ) -> SResult<bool> {
        Ok(true)
    }
    async fn get_identity(&self, address: &ProtocolAddress) -> SResult<Option<IdentityKey>> {
        Ok(self.known.get(&key(address)).copied())
    }
}

#[async_trait::async_trait]
impl PreKeyStore for PreKeys {
    async fn get_pre_key(&self, id: PreKeyId) -> SResult<PreKeyRecord> {
        self.0
            .get(&u32::from(id))
            .cloned()
            .ok_or(SignalProtocolError::InvalidPreKeyId)
    }
    async fn save_pre_key(&mut self, id: PreKeyId, record: &PreKeyRecord) -> SResult<()> {
        self.0.insert(u32::from(id), record.clone());
        Ok(())
    }
    async fn remove_pre_key(&mut self, id: PreKeyId) -> SResult<()> {
        self.0.remove(&u32::from(id));
        Ok(())
    }
}

#[async_trait::async_trait]
impl SignedPreKeyStore for SignedPreKeys {
    async fn get_signed_pre_key(&self, _id: SignedPreKeyId) -> SResult<SignedPreKeyRecord> {
        Ok(self.0.clone())
    }
    async fn save_signed_pre_key(
        &mut self,
        _id: SignedPreKeyId,
        record: &SignedPreKeyRecord,
    ) -> SResult<()> {
        self.0 = record.clone();
        Ok(())
    }
}

/// A message a simulated phone received and decrypted.
#[derive(Debug, Clone, Serialize)]
pub struct InboxItem {
    pub id: String,
    pub from: String,
    pub text: Option<String>,
    pub t: i64,
    pub read: bool,
    /// How many times this id arrived (a re-send after a crash shows as 2;
    /// like a real phone, the inbox keeps one).
    pub copies: u32,
    /// How the sender addressed this phone (`PN@s.whatsapp.net` or
    /// `LID@lid`): its receipts come back from the same address.
    pub via: String,
}

pub struct Recipient {
    pub sessions: Sessions,
    pub ids: Identities,
    pub prekeys: PreKeys,
    pub signed: SignedPreKeys,
    signed_pub: [u8; 32],
    signed_sig: Vec<u8>,
    next_prekey: u32,
    pub inbox: Vec<InboxItem>,
}

const SIGNED_PREKEY_ID: u32 = 1;

impl Recipient {
    pub fn new() -> anyhow::Result<Recipient> {
        let mut rng = rand::rng();
        let identity = KeyPair::generate(&mut rng);
        let spk = KeyPair::generate(&mut rng);
        // The signature covers the 33-byte serialized key (with its 0x05 type byte).
        let sig = identity
            .private_key
            .calculate_signature(&spk.public_key.serialize(), &mut rng)
            .map_err(|e| anyhow::anyhow!("sign: {e}"))?;
        let record = SignedPreKeyRecord::new(
            SIGNED_PREKEY_ID.into(),
            Timestamp::from_epoch_millis(0),
            &spk,
            &sig,
        );
        let mut signed_pub = [0u8; 32];
        signed_pub.copy_from_slice(spk.public_key.public_key_bytes());
        let pair =
            IdentityKeyPair::new(IdentityKey::new(identity.public_key), identity.private_key);
        Ok(Recipient {
            sessions: Sessions::default(),
            ids: Identities {
                pair,
                registration: rand::random::<u32>() & 0x3fff,
                known: HashMap::new(),
            },
            prekeys: PreKeys::default(),
            signed: SignedPreKeys(record),
            signed_pub,
            signed_sig: sig.to_vec(),
            next_prekey: 1,
            inbox: vec![],
        })
    }

    /// A pre-key bundle for `jid`, with a fresh one-time pre-key.
    pub fn bundle(&mut self, jid: &str) -> Node {
        let id = self.next_prekey;
        self.next_prekey += 1;
        let kp = KeyPair::generate(&mut rand::rng());
        self.prekeys.0.insert(id, PreKeyRecord::new(id.into(), &kp));
        let id3 = |n: u32| n.to_be_bytes()[1..].to_vec();
        NodeBuilder::new("user")
            .attr("jid", jid)
            .children([
                NodeBuilder::new("registration")
                    .bytes(self.ids.registration.to_be_bytes().to_vec())
                    .build(),
                NodeBuilder::new("type").bytes(vec![5u8]).build(),
                NodeBuilder::new("identity")
                    .bytes(
                        self.ids
                            .pair
                            .identity_key()
                            .public_key()
                            .public_key_bytes()
                            .to_vec(),
                    )
                    .build(),
                NodeBuilder::new("key")
                    .children([
                        NodeBuilder::new("id").bytes(id3(id)).build(),
                        NodeBuilder::new("value")
                            .bytes(kp.public_key.public_key_bytes().to_vec())
                            .build(),
                    ])
                    .build(),
                NodeBuilder::new("skey")
                    .children([
                        NodeBuilder::new("id").bytes(id3(SIGNED_PREKEY_ID)).build(),
                        NodeBuilder::new("value")
                            .bytes(self.signed_pub.to_vec())
                            .build(),
                        NodeBuilder::new("signature")
                            .bytes(self.signed_sig.clone())
                            .build(),
                    ])
                    .build(),
            ])
            .build()
    }

    /// Decrypt one `<enc>` payload from `sender`; returns the unpadded plaintext.
    pub async fn decrypt(
        &mut self,
        sender: &ProtocolAddress,
        kind: &str,
        data: &[u8],
    ) -> anyhow::Result<Vec<u8>> {
        // A Send generator: this future crosses awaits on a multi-threaded runtime.
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        let plain = match kind {
            "pkmsg" => {
                let m = PreKeySignalMessage::try_from(data)?;
                let r = message_decrypt_prekey(
                    &m,
                    sender,
                    &mut self.sessions,
                    &mut self.ids,
                    &mut self.prekeys,
                    &self.signed,
                    &mut rng,
                    UsePQRatchet::No,
                )
                .await?;
                r.plaintext
            }
            "msg" => {
                let m = SignalMessage::try_from(data)?;
                let r =
                    message_decrypt_signal(&m, sender, &mut self.sessions, &mut self.ids, &mut rng)
                        .await?;
                r.plaintext
            }
            other => anyhow::bail!("unsupported enc type {other}"),
        };
        let unpadded = wacore::messages::MessageUtils::unpad_message_ref(&plain, 2)?;
        Ok(unpadded.to_vec())
    }
}

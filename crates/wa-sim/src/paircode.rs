//! The phone's side of linking by an 8-character pairing code. Stage 1: the
//! companion sends its ephemeral key wrapped with the code; we answer with a
//! reference. The user "types" the code (control API): the phone unwraps the
//! companion's key, wraps its own, and notifies the companion (`primary_hello`).
//! Stage 2: the companion sends a key bundle encrypted under the shared
//! secret; the phone decrypts it, derives the ADV secret, and sends the same
//! signed `pair-success` a QR scan would. A wrong code fails at stage 2.

use base64::Engine as _;
use wacore::pair_code::PairCodeUtils;
use wacore_binary::builder::NodeBuilder;
use wacore_binary::Node;
use wacore_libsignal::protocol::{KeyPair, PublicKey};

use crate::pairing::{link_device, ScanError};
pub use crate::records::{Codes, Pending};
use crate::sim::{Out, Sim};
use crate::state::keypair_from_hex;

fn bytes_of<'a>(n: &'a Node, tag: &str) -> Option<&'a [u8]> {
    crate::node::content_bytes(n.get_optional_child(tag)?)
}

/// Stage 1 from connection `conn`: remember it, answer with a reference.
pub fn companion_hello(sim: &Sim, conn: u64, reg: &Node) -> anyhow::Result<Node> {
    let jid = crate::node::attr(reg, "jid").unwrap_or_default();
    let phone = jid.split('@').next().unwrap_or("").to_string();
    let wrapped = bytes_of(reg, "link_code_pairing_wrapped_companion_ephemeral_pub")
        .ok_or_else(|| anyhow::anyhow!("companion_hello without a wrapped key"))?
        .to_vec();
    let r: [u8; 12] = rand::random();
    let reference = base64::engine::general_purpose::STANDARD.encode(r);
    sim.codes
        .0
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(
            phone,
            Pending {
                conn,
                reference: reference.clone(),
                wrapped_companion: wrapped,
                primary: None,
            },
        );
    Ok(NodeBuilder::new("link_code_companion_reg")
        .children([NodeBuilder::new("link_code_pairing_ref")
            .bytes(reference.into_bytes())
            .build()])
        .build())
}

/// The user typed `code` on `phone`: send `primary_hello` to the companion.
pub async fn type_code(sim: &Sim, phone: &str, code: &str) -> Result<(), ScanError> {
    let code = code.trim().replace('-', "").to_uppercase();
    if code.len() != 8 {
        return Err(ScanError::BadQr("a pairing code has 8 characters".into()));
    }
    let account = {
        let st = sim.persist();
        let ph = st
            .phones
            .get(phone)
            .ok_or_else(|| ScanError::UnknownPhone(phone.into()))?;
        keypair_from_hex(&ph.account_priv).map_err(|e| ScanError::Internal(e.to_string()))?
    };
    let (conn, node) = {
        let mut codes = sim.codes.0.lock().unwrap_or_else(|p| p.into_inner());
        let p = codes.get_mut(phone).ok_or(ScanError::NotOnOffer)?;
        let companion_eph =
            PairCodeUtils::decrypt_primary_ephemeral_pub(&p.wrapped_companion, &code)
                .map_err(|e| ScanError::Internal(e.to_string()))?;
        let eph = KeyPair::generate(&mut rand::rng());
        let mut eph_pub = [0u8; 32];
        eph_pub.copy_from_slice(eph.public_key.public_key_bytes());
        let wrapped = PairCodeUtils::encrypt_ephemeral_pub(&eph_pub, &code);
        p.primary = Some((eph, companion_eph));
        let node = NodeBuilder::new("notification")
            .attr("from", "s.whatsapp.net")
            .attr("type", "link_code_companion_reg")
            .attr("id", format!("lc-{}", p.conn))
            .children([NodeBuilder::new("link_code_companion_reg")
                .attr("stage", "primary_hello")
                .children([
                    NodeBuilder::new("link_code_pairing_wrapped_primary_ephemeral_pub")
                        .bytes(wrapped.to_vec())
                        .build(),
                    NodeBuilder::new("primary_identity_pub")
                        .bytes(account.public_key.public_key_bytes().to_vec())
                        .build(),
                    NodeBuilder::new("link_code_pairing_ref")
                        .bytes(p.reference.clone().into_bytes())
                        .build(),
                ])
                .build()])
            .build();
        (p.conn, node)
    };
    let c = sim
        .conns()
        .into_iter()
        .find(|c| c.id == conn)
        .ok_or(ScanError::NotOnOffer)?;
    c.tx.send(Out::Node(node))
        .await
        .map_err(|_| ScanError::NotOnOffer)?;
    Ok(())
}

/// Stage 2 from connection `conn`: open the key bundle, derive the ADV secret
/// and link the device. Errors mean a wrong code or a forged bundle.
pub async fn companion_finish(sim: &Sim, conn: u64, reg: &Node) -> anyhow::Result<()> {
    let jid = crate::node::attr(reg, "jid").unwrap_or_default();
    let phone = jid.split('@').next().unwrap_or("").to_string();
    let (eph, companion_eph) = {
        let mut codes = sim.codes.0.lock().unwrap_or_else(|p| p.into_inner());
        let p = codes
            .remove(&phone)
            .ok_or_else(|| anyhow::anyhow!("no pairing code flow for {phone}"))?;
        anyhow::ensure!(p.conn == conn, "companion_finish from another connection");
        p.primary
            .ok_or_else(|| anyhow::anyhow!("companion_finish before the code was typed"))?
    };
    let bundle = bytes_of(reg, "link_code_pairing_wrapped_key_bundle")
        .ok_or_else(|| anyhow::anyhow!("no key bundle"))?;
    let companion_identity: [u8; 32] = bytes_of(reg, "companion_identity_public")
        .ok_or_else(|| anyhow::anyhow!("no companion identity"))?
        .try_into()
        .map_err(|_| anyhow::anyhow!("companion identity is not 32 bytes"))?;
    anyhow::ensure!(bundle.len() > 44 + 16, "key bundle too short");
    let account = {
        let st = sim.persist();
        let ph = st
            .phones
            .get(&phone)
            .ok_or_else(|| anyhow::anyhow!("unknown phone"))?;
        keypair_from_hex(&ph.account_priv)?
    };
    let companion_eph_key = PublicKey::from_djb_public_key_bytes(&companion_eph)?;
    let eph_shared = eph.private_key.calculate_agreement(&companion_eph_key)?;
    let mut enc_key = [0u8; 32];
    wacore::crypto::hkdf_sha256_into(
        &eph_shared,
        Some(&bundle[..32]),
        b"link_code_pairing_key_bundle_encryption_key",
        &mut enc_key,
    )
    .map_err(|e| anyhow::anyhow!("hkdf: {e:?}"))?;
    let mut iv = [0u8; 12];
    iv.copy_from_slice(&bundle[32..44]);
    let mut plain = Vec::new();
    wacore_libsignal::crypto::aes_256_gcm_decrypt(&enc_key, &iv, b"", &bundle[44..], &mut plain)
        .map_err(|_| anyhow::anyhow!("the key bundle does not open: wrong pairing code"))?;
    anyhow::ensure!(plain.len() == 96, "key bundle has {} bytes", plain.len());
    anyhow::ensure!(
        plain[..32] == companion_identity,
        "bundle names another companion"
    );
    let identity_shared = account
        .private_key
        .calculate_agreement(&PublicKey::from_djb_public_key_bytes(&companion_identity)?)?;
    let mut ikm = Vec::with_capacity(96);
    ikm.extend_from_slice(&eph_shared);
    ikm.extend_from_slice(&identity_shared);
    ikm.extend_from_slice(&plain[64..96]);
    let mut adv_secret = [0u8; 32];
    wacore::crypto::hkdf_sha256_into(&ikm, None, b"adv_secret", &mut adv_secret)
        .map_err(|e| anyhow::anyhow!("hkdf: {e:?}"))?;
    let c = sim
        .conns()
        .into_iter()
        .find(|c| c.id == conn)
        .ok_or_else(|| anyhow::anyhow!("connection gone"))?;
    link_device(sim, &c, &phone, companion_identity, &adv_secret)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

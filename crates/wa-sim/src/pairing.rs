//! The phone's side of linking a device by QR: check the QR string, sign the
//! new device's identity with the phone's account key (as a real phone does),
//! and hand the `pair-success` to the connection that showed that QR.

use base64::Engine as _;
use buffa::Message as _;
use hmac::{KeyInit, Mac};
use wacore_binary::builder::NodeBuilder;
use waproto::whatsapp as wa;

use crate::sim::{now_ms, Conn, Out, PendingPair, Sim};
use crate::state::{keypair_from_hex, MAX_DEVICES};

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("unknown phone {0}")]
    UnknownPhone(String),
    #[error("not a WhatsApp QR string: {0}")]
    BadQr(String),
    #[error("no device is showing this QR code now (expired or already used)")]
    NotOnOffer,
    #[error("this phone already has {MAX_DEVICES} linked devices")]
    TooManyDevices,
    #[error("internal error: {0}")]
    Internal(String),
}

struct Qr {
    reference: String,
    identity_pub: [u8; 32],
    adv_secret: Vec<u8>,
}

/// The prefix clients put before the QR text so that a phone's own camera
/// app opens WhatsApp's linking screen (WhatsApp Web does; Baileys shows it;
/// wacore's phone side strips it: `pair.rs` `parse_qr_code`, constant
/// `NATIVE_CAMERA_DEEP_LINK_PREFIX` in `companion_reg.rs`).
pub const DEEP_LINK_PREFIX: &str = "https://wa.me/settings/linked_devices#";

fn parse_qr(qr: &str) -> Result<Qr, ScanError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let qr = qr.trim();
    let body = qr.strip_prefix(DEEP_LINK_PREFIX).unwrap_or(qr);
    let parts: Vec<&str> = body.split(',').collect();
    if parts.len() < 4 || parts.iter().take(4).any(|p| p.is_empty()) {
        return Err(ScanError::BadQr(
            "expected ref,noise key,identity key,secret[,type]".into(),
        ));
    }
    let key = |s: &str, what: &str| -> Result<[u8; 32], ScanError> {
        b64.decode(s)
            .map_err(|e| ScanError::BadQr(format!("{what}: {e}")))?
            .try_into()
            .map_err(|_| ScanError::BadQr(format!("{what} is not 32 bytes")))
    };
    let _noise = key(parts[1], "noise key")?;
    let identity_pub = key(parts[2], "identity key")?;
    let adv_secret = b64
        .decode(parts[3])
        .map_err(|e| ScanError::BadQr(format!("secret: {e}")))?;
    Ok(Qr {
        reference: parts[0].to_string(),
        identity_pub,
        adv_secret,
    })
}

/// A simulated phone scans `qr`.
pub async fn scan(sim: &Sim, phone: &str, qr: &str) -> Result<u32, ScanError> {
    let q = parse_qr(qr)?;
    let conn = sim
        .conn_for_ref(&q.reference)
        .ok_or(ScanError::NotOnOffer)?;
    let device = link_device(sim, &conn, phone, q.identity_pub, &q.adv_secret).await?;
    // Each QR links once.
    sim.refs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|_, c| *c != conn.id);
    Ok(device)
}

/// Sign the companion's identity with the phone's account key and send the
/// `pair-success` to `conn`; the device is recorded once the client accepts.
pub async fn link_device(
    sim: &Sim,
    conn: &Conn,
    phone: &str,
    identity_pub: [u8; 32],
    adv_secret: &[u8],
) -> Result<u32, ScanError> {
    let (account, device, lid, name) = {
        let st = sim.persist();
        let ph = st
            .phones
            .get(phone)
            .ok_or_else(|| ScanError::UnknownPhone(phone.into()))?;
        if ph.devices.len() >= MAX_DEVICES {
            return Err(ScanError::TooManyDevices);
        }
        let kp =
            keypair_from_hex(&ph.account_priv).map_err(|e| ScanError::Internal(e.to_string()))?;
        (kp, ph.next_device.max(1), ph.lid.clone(), ph.name.clone())
    };
    let inner = wa::ADVDeviceIdentity {
        raw_id: Some(rand::random()),
        timestamp: Some((now_ms() / 1000) as u64),
        key_index: Some(device),
        account_type: Some(wa::ADVEncryptionType::E2EE),
        device_type: Some(wa::ADVEncryptionType::E2EE),
    };
    let inner_bytes = inner.encode_to_vec();
    let mut msg = vec![6u8, 0];
    msg.extend_from_slice(&inner_bytes);
    msg.extend_from_slice(&identity_pub);
    let signature = account
        .private_key
        .calculate_signature(&msg, &mut rand::rng())
        .map_err(|e| ScanError::Internal(e.to_string()))?;
    let signed = wa::ADVSignedDeviceIdentity {
        details: Some(inner_bytes),
        account_signature_key: Some(account.public_key.public_key_bytes().to_vec()),
        account_signature: Some(signature.to_vec()),
        ..Default::default()
    };
    let signed_bytes = signed.encode_to_vec();
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(adv_secret)
        .map_err(|e| ScanError::Internal(e.to_string()))?;
    mac.update(&signed_bytes);
    let outer = wa::ADVSignedDeviceIdentityHMAC {
        details: Some(signed_bytes),
        hmac: Some(mac.finalize().into_bytes().to_vec()),
        account_type: Some(wa::ADVEncryptionType::E2EE),
    };
    let iq_id = format!("pair-success-{}", conn.id);
    let node = NodeBuilder::new("iq")
        .attr("from", "s.whatsapp.net")
        .attr("type", "set")
        .attr("id", iq_id.clone())
        .attr("xmlns", "md")
        .children([NodeBuilder::new("pair-success")
            .children([
                NodeBuilder::new("device-identity")
                    .bytes(outer.encode_to_vec())
                    .build(),
                NodeBuilder::new("device")
                    .attr("jid", format!("{phone}:{device}@s.whatsapp.net"))
                    .attr("lid", format!("{lid}:{device}@lid"))
                    .build(),
                NodeBuilder::new("platform").attr("name", "android").build(),
                NodeBuilder::new("biz").attr("name", name).build(),
                // The account's chats are LID-addressed, as every account's
                // are since WhatsApp's 2025 migration (WA Web
                // `parseSetRegRequestPairSuccessClientProps` →
                // `setIsLidMigrated`; wacore `pair.rs` `extract_pairing_props`):
                // clients then address one-to-one messages by LID.
                NodeBuilder::new("client-props")
                    .bytes(
                        wa::ClientPairingProps {
                            is_chat_db_lid_migrated: Some(true),
                            ..Default::default()
                        }
                        .encode_to_vec(),
                    )
                    .build(),
            ])
            .build()])
        .build();
    let pending = PendingPair {
        iq_id,
        phone: phone.to_string(),
        device,
        identity_pub,
    };
    conn.tx
        .send(Out::PairSuccess { node, pending })
        .await
        .map_err(|_| ScanError::NotOnOffer)?;
    Ok(device)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> String {
        let b64 = base64::engine::general_purpose::STANDARD;
        format!(
            "2@ref,{},{},{},1",
            b64.encode([1u8; 32]),
            b64.encode([2u8; 32]),
            b64.encode([3u8; 32])
        )
    }

    #[test]
    fn the_qr_is_read_with_or_without_the_camera_link_prefix() {
        let plain = parse_qr(&sample()).unwrap();
        let linked = parse_qr(&format!("{DEEP_LINK_PREFIX}{}", sample())).unwrap();
        assert_eq!(plain.reference, "2@ref");
        assert_eq!(linked.reference, "2@ref");
        assert_eq!(linked.identity_pub, [2u8; 32]);
        assert!(parse_qr("https://example.com/#2@ref,a,b,c").is_err());
    }
}

//! The Noise certificate chain wa-sim presents in every handshake, signed for
//! real under a test root of its own: the intermediate's details signed by
//! the root, the leaf's by the intermediate, the leaf's key = the server's
//! static key, all with XEdDSA (Signal's Curve25519 signatures). This is the
//! chain the real server sends (whatsmeow `handshake.go` and wacore-noise
//! `handshake.rs` `verify_server_cert` check these three steps; the
//! intermediate's issuer serial is 0, the leaf's issuer serial is the
//! intermediate's serial). Only the first step can never pass in a client,
//! which hard-codes WhatsApp's own root key: that is the single check the
//! sim build of wagate skips. Tests can pin `root_public` instead.

use buffa::Message as _;
use wacore_libsignal::protocol::{KeyPair, PublicKey};
use waproto::whatsapp as wa;
use waproto::whatsapp::cert_chain::noise_certificate::Details;

/// The intermediate's serial; the leaf names it as its issuer.
const INTERMEDIATE_SERIAL: u32 = 1;
const LEAF_SERIAL: u32 = 2;
/// Validity: from a day before the chain is made, for ten years.
const VALID_FOR_S: u64 = 10 * 365 * 86_400;

fn pub32(kp: &KeyPair) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(kp.public_key.public_key_bytes());
    out
}

fn signed(details: &Details, by: &KeyPair) -> anyhow::Result<wa::cert_chain::NoiseCertificate> {
    let bytes = details.encode_to_vec();
    let signature = by
        .calculate_signature(&bytes, &mut rand::rng())
        .map_err(|e| anyhow::anyhow!("signing a certificate: {e}"))?;
    Ok(wa::cert_chain::NoiseCertificate {
        details: Some(bytes),
        signature: Some(signature.to_vec()),
    })
}

/// The chain for `server` (its static Noise key), made at `now_s`.
pub fn build(
    root: &KeyPair,
    intermediate: &KeyPair,
    server: &KeyPair,
    now_s: u64,
) -> anyhow::Result<Vec<u8>> {
    let from = now_s.saturating_sub(86_400);
    let inter = Details {
        serial: Some(INTERMEDIATE_SERIAL),
        issuer_serial: Some(0),
        key: Some(pub32(intermediate).to_vec()),
        not_before: Some(from),
        not_after: Some(from + VALID_FOR_S),
    };
    let leaf = Details {
        serial: Some(LEAF_SERIAL),
        issuer_serial: Some(INTERMEDIATE_SERIAL),
        key: Some(pub32(server).to_vec()),
        not_before: Some(from),
        not_after: Some(from + VALID_FOR_S),
    };
    Ok(wa::CertChain {
        intermediate: buffa::MessageField::some(signed(&inter, root)?),
        leaf: buffa::MessageField::some(signed(&leaf, intermediate)?),
    }
    .encode_to_vec())
}

/// Why a chain does not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refused {
    #[error("the chain cannot be decoded")]
    Undecodable,
    #[error("{0} is missing")]
    Missing(&'static str),
    #[error("the intermediate's signature does not verify under the root")]
    IntermediateSignature,
    #[error("the leaf's signature does not verify under the intermediate")]
    LeafSignature,
    #[error("the leaf's issuer serial is not the intermediate's serial")]
    IssuerSerial,
    #[error("the leaf's key is not the server's static key")]
    LeafKey,
}

/// Verify `chain` step by step, as a client pinning `root` would: the
/// intermediate by the root, the leaf by the intermediate, the leaf's key
/// against `server_static`.
pub fn verify(chain: &[u8], root: &[u8; 32], server_static: &[u8; 32]) -> Result<(), Refused> {
    let chain = wa::CertChain::decode_from_slice(chain).map_err(|_| Refused::Undecodable)?;
    let inter = chain
        .intermediate
        .into_option()
        .ok_or(Refused::Missing("the intermediate"))?;
    let leaf = chain
        .leaf
        .into_option()
        .ok_or(Refused::Missing("the leaf"))?;
    let check = |issuer: &[u8], cert: &wa::cert_chain::NoiseCertificate| -> Option<bool> {
        let key = PublicKey::from_djb_public_key_bytes(issuer).ok()?;
        Some(key.verify_signature(cert.details.as_deref()?, cert.signature.as_deref()?))
    };
    if check(root, &inter) != Some(true) {
        return Err(Refused::IntermediateSignature);
    }
    let inter_details = Details::decode_from_slice(inter.details.as_deref().unwrap_or(&[]))
        .map_err(|_| Refused::Undecodable)?;
    let inter_key = inter_details
        .key
        .as_deref()
        .ok_or(Refused::Missing("the intermediate's key"))?;
    if check(inter_key, &leaf) != Some(true) {
        return Err(Refused::LeafSignature);
    }
    let leaf_details = Details::decode_from_slice(leaf.details.as_deref().unwrap_or(&[]))
        .map_err(|_| Refused::Undecodable)?;
    if leaf_details.issuer_serial != inter_details.serial {
        return Err(Refused::IssuerSerial);
    }
    if leaf_details.key.as_deref() != Some(&server_static[..]) {
        return Err(Refused::LeafKey);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> (KeyPair, KeyPair, KeyPair) {
        let mut rng = rand::rng();
        (
            KeyPair::generate(&mut rng),
            KeyPair::generate(&mut rng),
            KeyPair::generate(&mut rng),
        )
    }

    #[test]
    fn the_chain_verifies_step_by_step_under_its_root() {
        let (root, inter, server) = keys();
        let chain = build(&root, &inter, &server, 1_800_000_000).unwrap();
        assert_eq!(verify(&chain, &pub32(&root), &pub32(&server)), Ok(()));
        // The issuer serials are the real server's: 0 for the intermediate.
        let c = wa::CertChain::decode_from_slice(&chain).unwrap();
        let d = Details::decode_from_slice(c.intermediate.details.as_deref().unwrap()).unwrap();
        assert_eq!(d.issuer_serial, Some(0));
    }

    #[test]
    fn a_tampered_chain_fails() {
        let (root, inter, server) = keys();
        let chain = build(&root, &inter, &server, 1_800_000_000).unwrap();
        let (other, _, other_server) = keys();
        // Another root (e.g. WhatsApp's own, which a real client pins).
        assert_eq!(
            verify(&chain, &pub32(&other), &pub32(&server)),
            Err(Refused::IntermediateSignature)
        );
        // A leaf for another server.
        assert_eq!(
            verify(&chain, &pub32(&root), &pub32(&other_server)),
            Err(Refused::LeafKey)
        );
        // A leaf whose details were changed after signing.
        let mut c = wa::CertChain::decode_from_slice(&chain).unwrap();
        let mut leaf = c.leaf.take().unwrap();
        let mut details = Details::decode_from_slice(leaf.details.as_deref().unwrap()).unwrap();
        details.not_after = Some(details.not_after.unwrap() + 1);
        leaf.details = Some(details.encode_to_vec());
        c.leaf = buffa::MessageField::some(leaf);
        assert_eq!(
            verify(&c.encode_to_vec(), &pub32(&root), &pub32(&server)),
            Err(Refused::LeafSignature)
        );
        // An intermediate signed by someone else.
        let forged = build(&other, &inter, &server, 1_800_000_000).unwrap();
        assert_eq!(
            verify(&forged, &pub32(&root), &pub32(&server)),
            Err(Refused::IntermediateSignature)
        );
        // A flipped signature byte.
        let mut c = wa::CertChain::decode_from_slice(&chain).unwrap();
        let mut inter_cert = c.intermediate.take().unwrap();
        let mut sig = inter_cert.signature.take().unwrap();
        sig[10] ^= 1;
        inter_cert.signature = Some(sig);
        c.intermediate = buffa::MessageField::some(inter_cert);
        assert_eq!(
            verify(&c.encode_to_vec(), &pub32(&root), &pub32(&server)),
            Err(Refused::IntermediateSignature)
        );
    }
}

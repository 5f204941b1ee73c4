//! Webhook signatures: `Wagate-Signature: t=<unix seconds>,v1=<hex>` where
//! the hex is HMAC-SHA256 keyed with the endpoint's secret over
//! `"<t>.<raw body>"`. During a secret rotation a second `v1=` carries the
//! signature with the previous secret. A receiver recomputes it with its
//! secret, compares in constant time and refuses a `t` too far from its
//! clock (a replay).

use hmac::{Hmac, KeyInit, Mac};
use sha2_011::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The hex HMAC-SHA256 of `"<t>.<body>"` under `secret`.
pub fn v1(secret: &str, t: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = match HmacSha256::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The header value for `body` at `t`, signed with each of `secrets`.
pub fn header(secrets: &[&str], t: i64, body: &[u8]) -> String {
    let mut h = format!("t={t}");
    for s in secrets {
        h.push_str(",v1=");
        h.push_str(&v1(s, t, body));
    }
    h
}

/// A fresh endpoint secret: `whsec_` and 32 random bytes in hex.
pub fn new_secret() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    format!("whsec_{}", hex::encode(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        let mut mac = HmacSha256::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn the_header_signs_the_timestamp_and_body_with_each_secret() {
        let body = br#"{"id":"evt_1"}"#;
        let h = header(&["new", "old"], 1_700_000_000, body);
        let parts: Vec<&str> = h.split(',').collect();
        assert_eq!(parts[0], "t=1700000000");
        assert_eq!(parts[1], format!("v1={}", v1("new", 1_700_000_000, body)));
        assert_eq!(parts[2], format!("v1={}", v1("old", 1_700_000_000, body)));
        assert_ne!(
            v1("new", 1_700_000_000, body),
            v1("new", 1_700_000_001, body)
        );
        assert_ne!(v1("new", 1, body), v1("new", 1, br#"{"id":"evt_2"}"#));
        assert!(new_secret().starts_with("whsec_") && new_secret().len() == 70);
    }
}

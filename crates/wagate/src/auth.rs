//! Tokens: the admin token and one token per organization. Tokens are random,
//! shown once, kept only as SHA-256 hashes, compared in constant time and
//! never logged. This module decides who a bearer token is; the service layer
//! (`app`) decides what that identity may touch.

use parking_lot::RwLock;
use std::collections::HashMap;

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::link::OrgRef;

/// Who presented a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Admin,
    /// An organization's token: that incarnation of that org, nothing else.
    Org(OrgRef),
}

impl Caller {
    /// May this caller act on the org with id `org`?
    pub fn may_access(&self, org: &str) -> bool {
        match self {
            Caller::Admin => true,
            Caller::Org(own) => own.id.as_bytes().ct_eq(org.as_bytes()).into(),
        }
    }

    /// May this caller act on this incarnation of an org?
    pub fn may_act_on(&self, org: &OrgRef) -> bool {
        match self {
            Caller::Admin => true,
            Caller::Org(own) => self.may_access(&org.id) && own.inc == org.inc,
        }
    }

    pub fn is_admin(&self) -> bool {
        matches!(self, Caller::Admin)
    }
}

/// A new random token with a readable prefix (`wga_` admin, `wgo_` org).
pub fn generate(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

pub fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

pub fn hash_hex(token: &str) -> String {
    hex::encode(hash(token))
}

/// The hashes of every valid token, kept in memory.
pub struct TokenBook {
    admin: [u8; 32],
    orgs: RwLock<HashMap<[u8; 32], OrgRef>>,
}

impl TokenBook {
    pub fn new(admin_token: &str) -> TokenBook {
        TokenBook {
            admin: hash(admin_token),
            orgs: RwLock::new(HashMap::new()),
        }
    }

    /// The admin token's hash (hex), to tell whether a dashboard sign-in was
    /// made with the admin token in force now.
    pub fn admin_hash_hex(&self) -> String {
        hex::encode(self.admin)
    }

    /// Register an org by the stored hex hash of its token; bad hex is ignored.
    pub fn add_org(&self, org: &OrgRef, token_hash_hex: &str) {
        let mut key = [0u8; 32];
        if hex::decode_to_slice(token_hash_hex, &mut key).is_ok() {
            self.orgs.write().insert(key, org.clone());
        }
    }

    pub fn remove_org(&self, org: &str) {
        self.orgs.write().retain(|_, o| o.id != org);
    }

    /// Identify a presented token. The admin comparison is constant-time; org
    /// tokens are found by the hash of the presented value, so the lookup time
    /// reveals nothing about any stored secret.
    pub fn identify(&self, presented: &str) -> Option<Caller> {
        let h = hash(presented);
        if bool::from(h.ct_eq(&self.admin)) {
            return Some(Caller::Admin);
        }
        let orgs = self.orgs.read();
        orgs.iter()
            .find(|(k, _)| bool::from(k.ct_eq(&h)))
            .map(|(_, org)| Caller::Org(org.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(id: &str, inc: i64) -> OrgRef {
        OrgRef { id: id.into(), inc }
    }

    #[test]
    fn tokens_identify_their_owner_only() {
        let book = TokenBook::new("admin-secret");
        let t4 = generate("wgo_");
        let t2 = generate("wgo_");
        book.add_org(&org("4", 1), &hash_hex(&t4));
        book.add_org(&org("2", 2), &hash_hex(&t2));
        assert_eq!(book.identify("admin-secret"), Some(Caller::Admin));
        assert_eq!(book.identify(&t4), Some(Caller::Org(org("4", 1))));
        assert_eq!(book.identify(&t2), Some(Caller::Org(org("2", 2))));
        assert_eq!(book.identify("nope"), None);
        let c4 = Caller::Org(org("4", 1));
        assert!(!c4.may_access("2"));
        assert!(c4.may_access("4"));
        // The same id, another incarnation (deleted and created again): no.
        assert!(!c4.may_act_on(&org("4", 7)));
        assert!(c4.may_act_on(&org("4", 1)));
        book.remove_org("4");
        assert_eq!(book.identify(&t4), None);
    }

    #[test]
    fn generated_tokens_differ_and_carry_prefix() {
        let a = generate("wgo_");
        let b = generate("wgo_");
        assert_ne!(a, b);
        assert!(a.starts_with("wgo_") && a.len() == 4 + 64);
    }
}

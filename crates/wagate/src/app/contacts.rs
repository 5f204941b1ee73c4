//! `check_contact`: is a phone on WhatsApp, for an org. The answer comes from
//! the org's cache (`contacts`, trusted for 7 days) when it can; otherwise the
//! org's linked number asks WhatsApp — at most a few times a minute per org
//! (a token bucket), because bulk look-ups get numbers banned (Evolution
//! #2228, WAHA #619). The dispatcher's own look-up before a first message
//! fills the same cache.

use std::time::Instant;

use super::{App, AppError, ErrorCode};
use crate::auth::Caller;
use crate::engine::SendFailure;
use crate::store::{self, contacts};

/// Look-ups an org may make at once after a quiet spell.
pub const LOOKUP_BURST: f64 = 5.0;
/// One more look-up becomes available this often.
pub const LOOKUP_EVERY_S: f64 = 6.0;

/// One org's look-up allowance.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    pub fn full(now: Instant) -> Bucket {
        Bucket {
            tokens: LOOKUP_BURST,
            at: now,
        }
    }

    /// Take one look-up at `now`, or say in how many seconds one is free.
    pub fn take(&mut self, now: Instant) -> Result<(), u64> {
        let refill = now.saturating_duration_since(self.at).as_secs_f64() / LOOKUP_EVERY_S;
        self.tokens = (self.tokens + refill).min(LOOKUP_BURST);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - self.tokens) * LOOKUP_EVERY_S).ceil().max(1.0) as u64)
        }
    }
}

/// What is known of a phone.
#[derive(Debug, Clone)]
pub struct ContactCheck {
    pub phone: String,
    pub on_whatsapp: bool,
    pub jid: Option<String>,
    pub checked_ms: i64,
    /// Answered from the cache (no question to WhatsApp).
    pub cached: bool,
}

impl App {
    /// Whether `phone` is on WhatsApp, for `org`.
    pub async fn check_contact(
        &self,
        caller: &Caller,
        org: &str,
        phone: &str,
    ) -> Result<ContactCheck, AppError> {
        let a = self.authorize(caller, org)?;
        let phone = crate::phone::normalize(phone, a.row.default_country_code.as_deref())
            .map_err(|e| AppError::new(ErrorCode::InvalidPhone, e.to_string()))?;
        let inc = a.row.inc;
        let now = store::now_ms();
        let p = phone.clone();
        let known = self.store.read(move |c| contacts::get(c, inc, &p)).await?;
        if let Some(k) = known {
            if let (Some(on), Some(at)) = (k.fresh_lookup(now), k.checked_ms) {
                let jid = k
                    .jid
                    .or_else(|| on.then(|| format!("{phone}@s.whatsapp.net")));
                return Ok(ContactCheck {
                    phone,
                    on_whatsapp: on,
                    jid,
                    checked_ms: at,
                    cached: true,
                });
            }
        }
        let engine = self.outbox.engine(inc).ok_or_else(|| {
            AppError::new(
                ErrorCode::NotConnected,
                "the organization's number is not connected; a phone that was not looked up in the last 7 days can only be checked through it",
            )
        })?;
        {
            let mut buckets = self.lookups.lock();
            let now = Instant::now();
            let b = buckets.entry(inc).or_insert_with(|| Bucket::full(now));
            if let Err(secs) = b.take(now) {
                return Err(AppError::new(
                    ErrorCode::RateLimited,
                    format!("too many look-ups for this organization; ask again in {secs} s (at most {LOOKUP_BURST} at once, then one every {LOOKUP_EVERY_S} s)"),
                )
                .retry_after(secs));
            }
        }
        let jid = match engine.lookup(&phone).await {
            Ok(j) => j,
            Err(SendFailure::NotConnected(why)) => {
                return Err(AppError::new(
                    ErrorCode::NotConnected,
                    format!("WhatsApp could not be asked now: {why}"),
                ))
            }
            Err(SendFailure::Rejected(why)) => {
                return Err(AppError::new(ErrorCode::InvalidPhone, why))
            }
        };
        let (p, j, found) = (phone.clone(), jid.clone(), jid.is_some());
        self.store
            .write(move |tx| contacts::record_lookup(tx, inc, &p, found, j.as_deref(), now))
            .await?;
        Ok(ContactCheck {
            phone,
            on_whatsapp: found,
            jid,
            checked_ms: now,
            cached: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_then_one_every_few_seconds() {
        let t0 = Instant::now();
        let mut b = Bucket::full(t0);
        for _ in 0..5 {
            assert_eq!(b.take(t0), Ok(()));
        }
        assert_eq!(b.take(t0), Err(6));
        assert_eq!(b.take(t0 + Duration::from_secs(3)), Err(3));
        assert_eq!(b.take(t0 + Duration::from_secs(6)), Ok(()));
        assert!(b.take(t0 + Duration::from_secs(6)).is_err());
    }
}

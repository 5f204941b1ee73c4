//! Whether a queued message may go now, by WhatsApp's sending limits: the
//! last look before a send. A message to a contact that already talks with
//! the number (it wrote, or accepted a message) always may. A first message
//! to a new contact is looked up first (a number not on WhatsApp fails
//! `not_on_whatsapp` instead of being acked by the server and then lost),
//! and waits — held, with the reason and when it is tried again — while the
//! number is under a reach-out timelock, while new chats are capped, or
//! when the org's daily cap on new contacts is used up.

use super::pacing::{Pacing, DAY_MS};
use crate::engine::{Engine, SendFailure};
use crate::session::OrgRef;
use crate::store::contacts::{self, Contact};
use crate::store::{self, MessageRow, MessageStatus, Store, StoreError, Tx};

/// Why a message is held.
pub const REACHOUT: &str = "reachout_timelock";
pub const CAPPED: &str = "message_cap";
pub const NEW_CONTACTS: &str = "new_contact_cap";
/// The error a message to a number that is not on WhatsApp ends with.
pub const NOT_ON_WHATSAPP: &str = "not_on_whatsapp";

/// What to do with the message.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Send,
    /// Held (or failed) here; go on with the next message.
    Done,
    /// The question could not be asked now (link down): try later.
    Later,
}

/// Decide on `m` at `now_ms`, holding or failing it when it may not go.
pub async fn admit(
    org: &OrgRef,
    engine: &dyn Engine,
    store: &Store,
    pacing: &Pacing,
    m: &MessageRow,
    now_ms: i64,
) -> Result<Verdict, StoreError> {
    let (inc, to) = (org.inc, m.to.clone());
    let contact: Contact = store
        .read(move |c| contacts::get(c, inc, &to))
        .await?
        .unwrap_or_default();
    if contact.talks() {
        return Ok(Verdict::Send);
    }
    let on_whatsapp = match contact.fresh_lookup(now_ms) {
        Some(known) => known,
        None => match engine.lookup(&m.to).await {
            Ok(jid) => {
                let (to, found) = (m.to.clone(), jid.is_some());
                store
                    .write(move |tx| {
                        contacts::record_lookup(tx, inc, &to, found, jid.as_deref(), now_ms)
                    })
                    .await?;
                found
            }
            Err(SendFailure::NotConnected(why)) => {
                tracing::info!(org = %org.id, id = %m.id, reason = %why, "look-up deferred");
                return Ok(Verdict::Later);
            }
            Err(SendFailure::Rejected(why)) => {
                fail(store, org, m, &why).await?;
                return Ok(Verdict::Done);
            }
        },
    };
    if !on_whatsapp {
        tracing::info!(org = %org.id, id = %m.id, "recipient is not on WhatsApp");
        fail(store, org, m, NOT_ON_WHATSAPP).await?;
        return Ok(Verdict::Done);
    }
    let limits = store.read(move |c| store::limits::get(c, inc)).await?;
    if let Some(until) = limits.reachout_active(now_ms) {
        hold(store, org, m, REACHOUT, until, now_ms).await?;
        return Ok(Verdict::Done);
    }
    if let Some(end) = limits.capped(now_ms) {
        hold(store, org, m, CAPPED, end, now_ms).await?;
        return Ok(Verdict::Done);
    }
    let cap = pacing.new_contacts_per_day;
    if contact.first_try_ms.is_none() && cap != usize::MAX {
        let since = now_ms - DAY_MS;
        let reaches = store
            .read(move |c| contacts::first_reaches_since(c, inc, since))
            .await?;
        if reaches.len() >= cap.max(1) {
            // When the oldest of the last `cap` leaves the 24 h window.
            let until = reaches[reaches.len() - cap.max(1)] + DAY_MS;
            hold(store, org, m, NEW_CONTACTS, until, now_ms).await?;
            return Ok(Verdict::Done);
        }
    }
    Ok(Verdict::Send)
}

async fn fail(store: &Store, org: &OrgRef, m: &MessageRow, why: &str) -> Result<(), StoreError> {
    let (o, w, why) = (org.clone(), m.wa_id.clone(), why.to_string());
    store
        .write(move |tx| super::advance(tx, &o, &w, MessageStatus::Failed, Some(&why)).map(|_| ()))
        .await
}

async fn hold(
    store: &Store,
    org: &OrgRef,
    m: &MessageRow,
    reason: &'static str,
    until: i64,
    now_ms: i64,
) -> Result<(), StoreError> {
    tracing::info!(org = %org.id, id = %m.id, reason, retry_at = until, "message held");
    let (o, seq) = (org.clone(), m.seq);
    store
        .write(move |tx| hold_in(tx, &o, seq, reason, until, now_ms).map(|_| ()))
        .await
}

/// Hold queued message `seq` until `until`, with its event.
pub fn hold_in(
    tx: &mut Tx,
    org: &OrgRef,
    seq: i64,
    reason: &str,
    until: i64,
    now_ms: i64,
) -> crate::store::DbResult<Option<MessageRow>> {
    let Some(row) = store::messages::hold(tx, seq, reason, until, now_ms)? else {
        return Ok(None);
    };
    crate::events::emit_status(tx, &org.id, &row)?;
    Ok(Some(row))
}

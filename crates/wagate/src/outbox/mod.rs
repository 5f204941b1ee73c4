//! The durable send path. `accept` writes a message to SQLite (group commit)
//! before anything touches the network; a dispatcher per linked org sends
//! queued messages in acceptance order while the link is up; acks and receipts
//! move messages forward (`queued → sent → delivered → read`, or `failed`).
//!
//! Invariants: a message's WhatsApp id is fixed when it is accepted, so a
//! message whose send started but was never acked (crash, dropped link) is
//! re-sent with the same id and the recipient sees it once; a message leaves
//! `queued` only on the server's ack or a permanent refusal.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

use crate::engine::{self, Engine, EngineEvent, ReceiptKind, SendFailure};
use crate::hub::Hub;
use crate::session::LinkHooks;
use crate::store::{self, MessageRow, MessageStatus, NewMessage, Store, StoreError};

/// Messages read per dispatcher query.
const PAGE: i64 = 200;

struct Link {
    wake: Arc<Notify>,
    task: Option<JoinHandle<()>>,
}

pub struct Outbox {
    store: Store,
    hub: Hub,
    links: Mutex<HashMap<String, Link>>,
    updates: mpsc::Sender<(String, EngineEvent)>,
}

impl Outbox {
    pub fn start(store: Store, hub: Hub) -> Arc<Outbox> {
        let (updates, rx) = mpsc::channel(16_384);
        let ob = Arc::new(Outbox {
            store,
            hub,
            links: Mutex::new(HashMap::new()),
            updates,
        });
        tokio::spawn(update_loop(ob.store.clone(), ob.hub.clone(), rx));
        ob
    }

    /// Accept a message durably. Returns the row and whether it is new
    /// (`false`: the idempotency key was used before; this is the first message).
    pub async fn accept(
        &self,
        org: &str,
        phone: String,
        text: String,
        idem_key: Option<String>,
    ) -> Result<(MessageRow, bool), StoreError> {
        let m = NewMessage {
            id: format!("msg_{}", uuid::Uuid::new_v4().simple()),
            org: org.to_string(),
            phone,
            text,
            wa_id: engine::new_wa_id(),
            idem_key,
            now_ms: store::now_ms(),
        };
        let (row, created) = self
            .store
            .write(move |c| store::messages::insert(c, &m))
            .await?;
        if created {
            self.hub.publish(
                org,
                "message.status",
                json!({"id": row.id, "status": row.status, "to": row.to}),
            );
            self.wake(org);
        }
        Ok((row, created))
    }

    fn wake(&self, org: &str) {
        if let Some(l) = self
            .links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(org)
        {
            l.wake.notify_one();
        }
    }
}

impl LinkHooks for Outbox {
    fn link_up(&self, org: &str, engine: Arc<dyn Engine>) {
        let mut links = self.links.lock().unwrap_or_else(|p| p.into_inner());
        let link = links.entry(org.to_string()).or_insert_with(|| Link {
            wake: Arc::new(Notify::new()),
            task: None,
        });
        if let Some(t) = link.task.take() {
            t.abort();
        }
        link.task = Some(tokio::spawn(dispatch(
            org.to_string(),
            engine,
            self.store.clone(),
            self.hub.clone(),
            link.wake.clone(),
        )));
    }

    fn link_down(&self, org: &str) {
        if let Some(l) = self
            .links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(org)
        {
            if let Some(t) = l.task.take() {
                t.abort();
            }
        }
    }

    fn engine_event(&self, org: &str, event: EngineEvent) {
        if self.updates.try_send((org.to_string(), event)).is_err() {
            tracing::warn!(%org, "outbox update queue full; an ack or receipt was dropped (the message will be re-sent with the same id)");
        }
    }
}

/// Send an org's queued messages in order while its link is up. Aborted by
/// `link_down`; a new one starts from the oldest unacked message on `link_up`.
async fn dispatch(org: String, engine: Arc<dyn Engine>, store: Store, hub: Hub, wake: Arc<Notify>) {
    let mut cursor = 0i64;
    loop {
        let o = org.clone();
        let page = match store
            .read(move |c| store::messages::unacked(c, &o, cursor, PAGE))
            .await
        {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(%org, error = %e, "outbox read failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if page.is_empty() {
            wake.notified().await;
            continue;
        }
        for m in page {
            let id = m.id.clone();
            let now = store::now_ms();
            if let Err(e) = store
                .write(move |c| store::messages::mark_attempt(c, &id, now))
                .await
            {
                tracing::error!(%org, error = %e, "cannot record send attempt");
                tokio::time::sleep(Duration::from_secs(1)).await;
                break;
            }
            match engine.send_text(&m.to, &m.text, &m.wa_id).await {
                Ok(()) => {
                    tracing::debug!(%org, id = %m.id, wa_id = %m.wa_id, "message handed to WhatsApp");
                    cursor = m.seq;
                }
                Err(SendFailure::NotConnected(why)) => {
                    tracing::info!(%org, id = %m.id, reason = %why, "send deferred; link not ready");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    break;
                }
                Err(SendFailure::Rejected(why)) => {
                    tracing::warn!(%org, id = %m.id, reason = %why, "message failed");
                    let (o, w, now) = (org.clone(), m.wa_id.clone(), store::now_ms());
                    let why2 = why.clone();
                    if let Ok(Some(row)) = store
                        .write(move |c| {
                            store::messages::advance(
                                c,
                                &o,
                                &w,
                                MessageStatus::Failed,
                                Some(&why2),
                                now,
                            )
                        })
                        .await
                    {
                        hub.publish(
                            &org,
                            "message.status",
                            json!({"id": row.id, "status": row.status, "error": why}),
                        );
                    }
                    cursor = m.seq;
                }
            }
        }
    }
}

/// Apply acks and receipts (for every org) and publish inbound messages.
async fn update_loop(store: Store, hub: Hub, mut rx: mpsc::Receiver<(String, EngineEvent)>) {
    while let Some((org, ev)) = rx.recv().await {
        let moves: Vec<(String, MessageStatus, Option<String>)> = match ev {
            EngineEvent::ServerAck { wa_id, error: None } => {
                vec![(wa_id, MessageStatus::Sent, None)]
            }
            EngineEvent::ServerAck {
                wa_id,
                error: Some(e),
            } => {
                vec![(wa_id, MessageStatus::Failed, Some(e))]
            }
            EngineEvent::Receipt { wa_ids, kind } => {
                let to = match kind {
                    ReceiptKind::Delivered => MessageStatus::Delivered,
                    ReceiptKind::Read => MessageStatus::Read,
                };
                wa_ids.into_iter().map(|w| (w, to, None)).collect()
            }
            EngineEvent::Message { wa_id, from, text } => {
                let (o, now) = (org.clone(), store::now_ms());
                match store
                    .write(move |c| store::inbound::insert(c, &o, &wa_id, &from, &text, now))
                    .await
                {
                    Ok(Some(row)) => {
                        tracing::info!(%org, from = %row.from, "message received");
                        hub.publish(&org, "message.received", json!(row));
                    }
                    Ok(None) => {}
                    Err(e) => tracing::error!(%org, error = %e, "cannot store a received message"),
                }
                vec![]
            }
            _ => vec![],
        };
        for (wa_id, to, err) in moves {
            let (o, now) = (org.clone(), store::now_ms());
            match store
                .write(move |c| store::messages::advance(c, &o, &wa_id, to, err.as_deref(), now))
                .await
            {
                Ok(Some(row)) => {
                    tracing::info!(%org, id = %row.id, status = row.status.as_str(), "message {}", row.status.as_str());
                    hub.publish(
                        &org,
                        "message.status",
                        json!({"id": row.id, "status": row.status, "error": row.error}),
                    );
                }
                Ok(None) => {}
                Err(e) => tracing::error!(%org, error = %e, "cannot record message status"),
            }
        }
    }
}

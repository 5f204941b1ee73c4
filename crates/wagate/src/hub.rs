//! The event hub: state changes, QR codes and message status changes fan out
//! from here to SSE subscribers, after being written to the `events` table so a
//! reconnecting subscriber can replay what it missed (`Last-Event-ID`).
//! Publishing never blocks the caller: a single hub task does the writing.

use serde_json::Value;
use tokio::sync::{broadcast, mpsc};

use crate::store::{self, Store};

#[derive(Debug, Clone)]
pub struct HubEvent {
    pub seq: i64,
    pub org: String,
    pub kind: String,
    pub data: Value,
    pub ts_ms: i64,
}

#[derive(Clone)]
pub struct Hub {
    live: broadcast::Sender<HubEvent>,
    intake: mpsc::Sender<(String, String, Value)>,
}

/// Events waiting to be written before publishers start dropping them.
const INTAKE: usize = 8192;

impl Hub {
    /// A hub that persists to `store` (or, with `None`, only broadcasts).
    pub fn start(store: Option<Store>) -> Hub {
        let (live, _) = broadcast::channel(1024);
        let (intake, mut rx) = mpsc::channel::<(String, String, Value)>(INTAKE);
        let out = live.clone();
        tokio::spawn(async move {
            let mut counter = 0i64;
            while let Some((org, kind, data)) = rx.recv().await {
                let ts_ms = store::now_ms();
                let seq = match &store {
                    Some(st) => {
                        let (o, k, d) = (org.clone(), kind.clone(), data.clone());
                        match st
                            .write(move |c| store::events::insert(c, &o, &k, &d, ts_ms))
                            .await
                        {
                            Ok(seq) => seq,
                            Err(e) => {
                                tracing::warn!(%org, error = %e, "event not persisted");
                                continue;
                            }
                        }
                    }
                    None => {
                        counter += 1;
                        counter
                    }
                };
                let _ = out.send(HubEvent {
                    seq,
                    org,
                    kind,
                    data,
                    ts_ms,
                });
            }
        });
        Hub { live, intake }
    }

    /// Queue an event; dropped (with a warning) only if the hub is far behind.
    pub fn publish(&self, org: &str, kind: &str, data: Value) {
        if self
            .intake
            .try_send((org.to_string(), kind.to_string(), data))
            .is_err()
        {
            tracing::warn!(%org, kind, "event hub is full; event dropped");
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<HubEvent> {
        self.live.subscribe()
    }
}

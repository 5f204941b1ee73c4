//! WhatsApp's sending limits, as the real server applies them to a number
//! that starts chats (see the gateway's ARCHITECTURE.md for the sources):
//! - the **reach-out timelock**: while it lasts, a message from any device
//!   of the number to a contact that never wrote to it and was never sent
//!   a message by it is refused — an `<ack class="message" error="463">`
//!   instead of a delivery — and the number's devices are told with a
//!   `<notification type="mex">` carrying `NotificationUserReachoutTimelockUpdate`
//!   (`is_active`, `time_enforcement_ends` in Unix seconds), again with
//!   `is_active: false` when it ends;
//! - **message capping**: a quota of new chats per cycle; each new chat
//!   uses one and the devices get a `MessageCappingInfoNotification`
//!   (`used_quota`, `total_quota`, `cycle_end_timestamp`, `capping_status`);
//!   past the quota new chats are refused with 463 as well.
//!
//! Messages to contacts that already talk with the number are never limited.

use std::sync::Arc;

use serde_json::json;
use wacore_binary::builder::NodeBuilder;

pub use crate::records::{Capping, Reachout};
use crate::sim::{conn_jid, now_ms, split_jid, Out, Sim};

/// Whether a limit is in force for `sender` (the rest of the checks cost a
/// scan of the recipient's inbox, so they run only then).
pub fn limited(sim: &Sim, sender: &str) -> bool {
    let f = sim.faults();
    f.reachout.contains_key(sender) || f.capping.contains_key(sender)
}

/// Whether `recipient` already talks with `sender`: it wrote to the number,
/// or the number's message reached it before.
pub async fn talks(sim: &Sim, sender: &str, recipient: &str) -> bool {
    let wrote = sim
        .sent_log
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .any(|s| s.from == recipient && s.to == sender);
    if wrote {
        return true;
    }
    sim.recipients
        .lock()
        .await
        .get(recipient)
        .is_some_and(|r| r.inbox.iter().any(|m| m.from == sender))
}

/// Decide on a message from `sender` to the new contact `recipient`:
/// `true` when the server refuses it (463). Announces what changed.
pub async fn refuses_new_chat(sim: &Arc<Sim>, sender: &str, recipient: &str) -> bool {
    let now = now_ms();
    let (lock, cap) = {
        let mut f = sim.faults();
        f.reachout.retain(|_, r| r.until_ms > now);
        let lock = f.reachout.get_mut(sender).map(|r| {
            let first = r.announce && !r.announced;
            r.announced = true;
            (r.until_ms, first)
        });
        let cap = match (&lock, f.capping.get_mut(sender)) {
            (None, Some(c)) if c.cycle_end_ms > now => {
                let refused = c.used >= c.total;
                if !refused {
                    c.used += 1;
                }
                Some((c.clone(), refused))
            }
            _ => None,
        };
        (lock, cap)
    };
    if let Some((until, first)) = lock {
        tracing::info!(%sender, %recipient, until, "reach-out timelock: first message refused (463)");
        if first {
            announce_reachout(sim, sender, Some(until)).await;
        }
        return true;
    }
    if let Some((c, refused)) = cap {
        tracing::info!(%sender, %recipient, used = c.used, total = c.total, refused, "new chat counted against the cap");
        announce_capping(sim, sender, &c).await;
        return refused;
    }
    false
}

/// Start a timelock on `phone` for `duration_ms`; its end is announced.
pub fn start_reachout(sim: &Arc<Sim>, phone: &str, duration_ms: u64, announce: bool) {
    let until_ms = now_ms() + duration_ms as i64;
    sim.faults().reachout.insert(
        phone.to_string(),
        Reachout {
            until_ms,
            announce,
            announced: false,
        },
    );
    let (sim, phone) = (sim.clone(), phone.to_string());
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(duration_ms)).await;
        let ended = {
            let mut f = sim.faults();
            match f.reachout.get(&phone) {
                Some(r) if r.until_ms == until_ms => f.reachout.remove(&phone),
                _ => None,
            }
        };
        if let Some(r) = ended {
            tracing::info!(%phone, "reach-out timelock over");
            if r.announce && r.announced {
                announce_reachout(&sim, &phone, None).await;
            }
        }
    });
}

/// `<notification type="mex">` with one GraphQL update, to every connected
/// device of `phone`.
async fn notify(sim: &Sim, phone: &str, op_name: &str, body: serde_json::Value) {
    let id = format!("{}", rand::random::<u32>());
    let t = (now_ms() / 1000).to_string();
    for c in sim.conns() {
        let Some(jid) = conn_jid(&c) else { continue };
        if split_jid(&jid).0 != phone {
            continue;
        }
        let node = NodeBuilder::new("notification")
            .attr("from", "s.whatsapp.net")
            .attr("type", "mex")
            .attr("id", id.clone())
            .attr("t", t.clone())
            .children([NodeBuilder::new("update")
                .attr("op_name", op_name)
                .bytes(body.to_string().into_bytes())
                .build()])
            .build();
        let _ = c.tx.send(Out::Node(node)).await;
    }
}

async fn announce_reachout(sim: &Sim, phone: &str, until_ms: Option<i64>) {
    let state = match until_ms {
        Some(u) => {
            json!({"is_active": true, "time_enforcement_ends": (u / 1000).to_string(), "enforcement_type": "DEFAULT"})
        }
        None => {
            json!({"is_active": false, "time_enforcement_ends": "0", "enforcement_type": "DEFAULT"})
        }
    };
    notify(
        sim,
        phone,
        "NotificationUserReachoutTimelockUpdate",
        json!({"data": {"xwa2_notify_account_reachout_timelock": state}}),
    )
    .await;
}

async fn announce_capping(sim: &Sim, phone: &str, c: &Capping) {
    let info = json!({
        "total_quota": c.total,
        "used_quota": c.used.to_string(),
        "cycle_end_timestamp": (c.cycle_end_ms / 1000).to_string(),
        "capping_status": c.status(),
    });
    notify(
        sim,
        phone,
        "MessageCappingInfoNotification",
        json!({"data": {"xwa2_notify_new_chat_messages_capping_info_update": info}}),
    )
    .await;
}

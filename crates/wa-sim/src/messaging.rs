//! Messages between the gateway and simulated phones: pre-key bundles on
//! request, the server ack for every `<message>`, decryption by each
//! recipient phone into its inbox, then delivery (and, on command, read)
//! receipts back to the sending device.

use std::sync::Arc;

use buffa::Message as _;
use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Node, NodeContent};
use wacore_libsignal::protocol::{DeviceId, ProtocolAddress};
use waproto::whatsapp as wa;

use crate::conn::{attr, child, children};
use crate::signal::{InboxItem, Recipient};
use crate::sim::{conn_jid, now_ms, split_jid, Conn, Out, Sim};

/// `<list>` of bundles for the `<user jid>` children of a `<key>` request.
pub async fn bundles(sim: &Sim, users: &[Node]) -> Node {
    let mut out = vec![];
    for u in users {
        let Some(jid) = attr(u, "jid") else { continue };
        let (phone, device) = split_jid(&jid);
        if device != 0 || !sim.phone_exists(&phone) {
            out.push(
                NodeBuilder::new("user")
                    .attr("jid", jid)
                    .children([NodeBuilder::new("error")
                        .attr("code", "404")
                        .attr("text", "item-not-found")
                        .build()])
                    .build(),
            );
            continue;
        }
        let mut rs = sim.recipients.lock().await;
        let r = match rs.get_mut(&phone) {
            Some(r) => r,
            None => match Recipient::new() {
                Ok(r) => rs.entry(phone.clone()).or_insert(r),
                Err(e) => {
                    tracing::error!(error = %e, "cannot make Signal keys");
                    continue;
                }
            },
        };
        out.push(r.bundle(&jid));
    }
    NodeBuilder::new("list").children(out).build()
}

fn bytes(n: &Node) -> Option<&[u8]> {
    match &n.content {
        Some(NodeContent::Bytes(b)) => Some(b),
        _ => None,
    }
}

fn text_of(plain: &[u8]) -> Option<String> {
    let m = wa::Message::decode_from_slice(plain).ok()?;
    m.conversation.clone().or_else(|| {
        m.extended_text_message
            .as_option()
            .and_then(|t| t.text.clone())
    })
}

/// A `<message>` from a linked device: ack it, decrypt for each recipient
/// phone, store in inboxes, send delivery receipts.
pub async fn on_message(sim: &Arc<Sim>, conn: &Arc<Conn>, node: &Node) -> anyhow::Result<()> {
    let id = attr(node, "id").unwrap_or_default();
    let to = attr(node, "to").unwrap_or_default();
    let Some(sender_jid) = conn_jid(conn) else {
        return Ok(());
    };
    let (sender_phone, sender_device) = split_jid(&sender_jid);
    let t = (now_ms() / 1000).to_string();
    let ack = NodeBuilder::new("ack")
        .attr("class", "message")
        .attr("id", id.clone())
        .attr("from", to.clone())
        .attr("t", t.clone())
        .build();
    let _ = conn.tx.send(Out::Node(ack)).await;

    // (recipient jid, enc node) pairs: fanned out under <participants>, or one <enc>.
    let mut encs: Vec<(String, &Node)> = vec![];
    if let Some(parts) = child(node, "participants") {
        for p in children(parts).iter().filter(|p| p.tag == "to") {
            if let (Some(j), Some(e)) = (attr(p, "jid"), child(p, "enc")) {
                encs.push((j, e));
            }
        }
    } else if let Some(e) = child(node, "enc") {
        encs.push((to.clone(), e));
    }
    let sender = ProtocolAddress::new(&sender_phone, DeviceId::from(sender_device));
    let mut delivered = vec![];
    for (jid, enc) in encs {
        let (phone, device) = split_jid(&jid);
        if device != 0 || phone == sender_phone {
            // Our own phone's copy (device-sent) is not an inbox message.
            continue;
        }
        let kind = attr(enc, "type").unwrap_or_default();
        let Some(data) = bytes(enc) else { continue };
        let mut rs = sim.recipients.lock().await;
        let Some(r) = rs.get_mut(&phone) else {
            tracing::warn!(%phone, "message for a phone with no Signal session");
            continue;
        };
        match r.decrypt(&sender, &kind, data).await {
            Ok(plain) => {
                let text = text_of(&plain);
                tracing::info!(%phone, %id, "message decrypted");
                match r.inbox.iter_mut().find(|m| m.id == id) {
                    Some(m) => m.copies += 1,
                    None => r.inbox.push(InboxItem {
                        id: id.clone(),
                        from: sender_phone.clone(),
                        text,
                        t: now_ms(),
                        read: false,
                        copies: 1,
                    }),
                }
                delivered.push(phone);
            }
            Err(e) => tracing::warn!(%phone, %id, error = %e, "decryption failed"),
        }
    }
    for phone in delivered {
        let receipt = NodeBuilder::new("receipt")
            .attr("id", id.clone())
            .attr("from", format!("{phone}@s.whatsapp.net"))
            .attr("t", t.clone())
            .build();
        let _ = conn.tx.send(Out::Node(receipt)).await;
    }
    Ok(())
}

/// The phone reads messages: mark them and send read receipts to every
/// connected device of each sender.
pub async fn read(sim: &Sim, phone: &str, ids: &[String]) -> usize {
    let mut by_sender: Vec<(String, String)> = vec![];
    {
        let mut rs = sim.recipients.lock().await;
        let Some(r) = rs.get_mut(phone) else { return 0 };
        for m in r
            .inbox
            .iter_mut()
            .filter(|m| ids.contains(&m.id) && !m.read)
        {
            m.read = true;
            by_sender.push((m.from.clone(), m.id.clone()));
        }
    }
    let t = (now_ms() / 1000).to_string();
    for (sender, id) in &by_sender {
        for c in sim.conns() {
            let Some(j) = conn_jid(&c) else { continue };
            if split_jid(&j).0 != *sender {
                continue;
            }
            let receipt = NodeBuilder::new("receipt")
                .attr("id", id.clone())
                .attr("from", format!("{phone}@s.whatsapp.net"))
                .attr("type", "read")
                .attr("t", t.clone())
                .build();
            let _ = c.tx.send(Out::Node(receipt)).await;
        }
    }
    by_sender.len()
}

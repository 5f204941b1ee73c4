//! Messages between the gateway and simulated phones: pre-key bundles on
//! request, the server ack for every `<message>`, decryption by each
//! recipient phone into its inbox, then delivery (and, on command, read)
//! receipts back to the sending device.

use std::sync::Arc;

use buffa::Message as _;
use wacore_binary::builder::NodeBuilder;
use wacore_binary::Node;
use wacore_libsignal::protocol::{DeviceId, ProtocolAddress};
use waproto::whatsapp as wa;

use crate::node::{attr, child, children};
pub use crate::records::{Addressed, Compose, Sent, Uploaded};
use crate::signal::{InboxItem, Recipient};
use crate::sim::{conn_jid, now_ms, split_jid, Conn, Out, PendingReceipt, Sim};

/// `<list>` of bundles for the `<user jid>` children of a `<key>` request.
/// A user may be named by number or by LID (Baileys 7 asks by LID, also for
/// its own account); only primary devices (0) have bundles here.
pub async fn bundles(sim: &Sim, users: &[Node]) -> Node {
    let mut out = vec![];
    for u in users {
        let Some(jid) = attr(u, "jid") else { continue };
        let (_, device) = split_jid(&jid);
        let phone = if device == 0 {
            sim.phone_of(&jid)
        } else {
            None
        };
        let Some(phone) = phone else {
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
        };
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
    crate::node::content_bytes(n)
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
/// A device shows a phone "typing…" (or stops): recorded on the phone, with
/// when it arrived, so tests can check it came before the message.
pub fn on_chatstate(sim: &Arc<Sim>, conn: &Arc<Conn>, node: &Node) {
    let (Some(sender_jid), Some(to)) = (conn_jid(conn), attr(node, "to")) else {
        return;
    };
    let Some(phone) = sim.phone_of(&to) else {
        return;
    };
    let state = children(node)
        .first()
        .map(|c| c.tag.to_string())
        .unwrap_or_default();
    let (from, _) = split_jid(&sender_jid);
    tracing::debug!(%phone, %from, %state, "chat state");
    sim.chatstates
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(phone)
        .or_default()
        .push(crate::sim::ChatState {
            from,
            state,
            t: now_ms(),
        });
}

pub async fn on_message(sim: &Arc<Sim>, conn: &Arc<Conn>, node: &Node) -> anyhow::Result<()> {
    let id = attr(node, "id").unwrap_or_default();
    let to = attr(node, "to").unwrap_or_default();
    let Some(sender_jid) = conn_jid(conn) else {
        return Ok(());
    };
    let (sender_phone, sender_device) = split_jid(&sender_jid);
    let t = (now_ms() / 1000).to_string();
    // A first message to a new contact meets the number's limits.
    let recipient = (!to.ends_with("@g.us"))
        .then(|| sim.phone_of(&to))
        .flatten()
        .filter(|r| *r != sender_phone);
    if let Some(r) = recipient.filter(|_| crate::limits::limited(sim, &sender_phone)) {
        if !crate::limits::talks(sim, &sender_phone, &r).await
            && crate::limits::refuses_new_chat(sim, &sender_phone, &r).await
        {
            let nack = NodeBuilder::new("ack")
                .attr("class", "message")
                .attr("id", id.clone())
                .attr("from", to.clone())
                .attr("t", t.clone())
                .attr("error", "463")
                .build();
            let _ = conn.tx.send(Out::Node(nack)).await;
            return Ok(());
        }
    }
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
    // Receipts come back from the address the sender used for the chat.
    let chat_is_lid = to.ends_with("@lid");
    let mut delivered = vec![];
    for (jid, enc) in encs {
        let (_, device) = split_jid(&jid);
        let Some(phone) = sim.phone_of(&jid) else {
            tracing::warn!(%jid, "message for someone wa-sim does not know");
            continue;
        };
        if device != 0 || phone == sender_phone {
            // Our own phone's copy (device-sent) is not an inbox message.
            continue;
        }
        let via = match (chat_is_lid, sim.lid_of(&phone)) {
            (true, Some(lid)) => format!("{lid}@lid"),
            _ => format!("{phone}@s.whatsapp.net"),
        };
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
                        via: via.clone(),
                    }),
                }
                delivered.push((phone, via));
            }
            Err(e) => tracing::warn!(%phone, %id, error = %e, "decryption failed"),
        }
    }
    for (phone, via) in delivered {
        let read_after = sim
            .persist()
            .phones
            .get(&phone)
            .and_then(|p| p.read_after_ms);
        if let Some(ms) = read_after {
            let (sim, phone, id) = (sim.clone(), phone.clone(), id.clone());
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                read(&sim, &phone, &[id]).await;
            });
        }
        let receipt = NodeBuilder::new("receipt")
            .attr("id", id.clone())
            .attr("from", via)
            .attr("t", t.clone())
            .build();
        send_receipt(sim, &sender_jid, &id, None, receipt).await;
    }
    Ok(())
}

/// Send a receipt to one device: now, to its live connections, and again at
/// its next login until it acks it. A sender killed between its server ack
/// and the delivery receipt still learns of the delivery, as with WhatsApp.
pub async fn send_receipt(sim: &Sim, device: &str, id: &str, kind: Option<&str>, node: Node) {
    {
        let mut all = sim.receipts.lock().unwrap_or_else(|p| p.into_inner());
        let list = all.entry(device.to_string()).or_default();
        if !list.iter().any(|r| r.id == id && r.kind.as_deref() == kind) {
            list.push(PendingReceipt {
                id: id.to_string(),
                kind: kind.map(String::from),
                node: node.clone(),
            });
        }
    }
    for c in sim.conns() {
        if conn_jid(&c).as_deref() == Some(device) {
            let _ = c.tx.send(Out::Node(node.clone())).await;
        }
    }
}

/// The device acked a receipt (`<ack class="receipt" id [type]>`): forget it.
pub fn on_ack(sim: &Sim, conn: &Conn, node: &Node) {
    if attr(node, "class").as_deref() != Some("receipt") {
        return;
    }
    let (Some(device), Some(id)) = (conn_jid(conn), attr(node, "id")) else {
        return;
    };
    let kind = attr(node, "type");
    let mut all = sim.receipts.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(list) = all.get_mut(&device) {
        list.retain(|r| !(r.id == id && r.kind == kind));
    }
}

/// Receipts the device has not acked, in the order they were made: sent
/// right after it logs in, before the offline marker.
pub fn unacked_receipts(sim: &Sim, device: &str) -> Vec<Node> {
    sim.receipts
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(device)
        .map(|l| l.iter().map(|r| r.node.clone()).collect())
        .unwrap_or_default()
}

/// The phone reads messages: mark them and send read receipts to every
/// connected device of each sender.
pub async fn read(sim: &Sim, phone: &str, ids: &[String]) -> usize {
    let mut by_sender: Vec<(String, String, String)> = vec![];
    {
        let mut rs = sim.recipients.lock().await;
        let Some(r) = rs.get_mut(phone) else { return 0 };
        for m in r
            .inbox
            .iter_mut()
            .filter(|m| ids.contains(&m.id) && !m.read)
        {
            m.read = true;
            by_sender.push((m.from.clone(), m.id.clone(), m.via.clone()));
        }
    }
    let t = (now_ms() / 1000).to_string();
    for (sender, id, via) in &by_sender {
        // Every device linked to the sender's account, connected or not.
        let devices: Vec<String> = sim
            .persist()
            .phones
            .get(sender)
            .map(|p| {
                p.devices
                    .keys()
                    .map(|d| format!("{sender}:{d}@s.whatsapp.net"))
                    .collect()
            })
            .unwrap_or_default();
        for device in devices {
            let from = if via.is_empty() {
                format!("{phone}@s.whatsapp.net")
            } else {
                via.clone()
            };
            let receipt = NodeBuilder::new("receipt")
                .attr("id", id.clone())
                .attr("from", from)
                .attr("type", "read")
                .attr("t", t.clone())
                .build();
            send_receipt(sim, &device, id, Some("read"), receipt).await;
        }
    }
    by_sender.len()
}

/// Record an upload from device `jid`, adding to what it uploaded before.
pub fn take_upload(sim: &Sim, jid: &str, up: Uploaded) -> usize {
    let mut all = sim.uploads.lock().unwrap_or_else(|p| p.into_inner());
    match all.get_mut(jid) {
        Some(held) => held.merge(up),
        None => {
            all.insert(jid.to_string(), up);
        }
    }
    all.get(jid).map(|u| u.prekeys.len()).unwrap_or(0)
}

/// How many one-time pre-keys the server holds for `jid` (0 before its
/// first upload: the client then uploads a full batch).
pub fn prekey_count(sim: &Sim, jid: &str) -> usize {
    sim.uploads
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(jid)
        .map(|u| u.prekeys.len())
        .unwrap_or(0)
}

fn id_of(n: &Node) -> Option<u32> {
    let b = bytes(child(n, "id")?)?;
    Some(b.iter().fold(0u32, |acc, x| (acc << 8) | u32::from(*x)))
}

fn key32(n: &Node, tag: &str) -> Option<[u8; 32]> {
    bytes(child(n, tag)?)?.try_into().ok()
}

/// Parse a pre-key upload; `None` when it is not one.
pub fn parse_upload(iq: &Node) -> Option<Uploaded> {
    let reg = bytes(child(iq, "registration")?)?;
    let registration = reg.iter().fold(0u32, |acc, x| (acc << 8) | u32::from(*x));
    let identity = key32(iq, "identity")?;
    let prekeys = children(child(iq, "list")?)
        .iter()
        .filter_map(|k| Some((id_of(k)?, key32(k, "value")?)))
        .collect();
    let sk = child(iq, "skey")?;
    let signed = (
        id_of(sk)?,
        key32(sk, "value")?,
        bytes(child(sk, "signature")?)?.to_vec(),
    );
    Some(Uploaded {
        registration,
        identity,
        prekeys,
        signed,
    })
}

/// A phone sends `what` to every connected device of the number `to`,
/// its sender named as `by` says.
pub async fn send_from_phone(
    sim: &Sim,
    phone: &str,
    to: &str,
    what: Compose,
    by: Addressed,
) -> anyhow::Result<(String, Vec<String>)> {
    let id = format!("3EB0{:016X}", rand::random::<u64>());
    let sent = Sent {
        from: phone.to_string(),
        to: to.to_string(),
        what,
        by,
    };
    send_with_id(sim, &sent, &id).await.map(|d| (id, d))
}

/// The gateway's device could not decrypt message `id` and asked for it
/// again (`<receipt type="retry">`): the phone encrypts and sends it anew.
pub async fn on_retry_receipt(sim: &Sim, id: &str) {
    let entry = sim
        .sent_log
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(id)
        .cloned();
    if let Some(sent) = entry {
        tracing::info!(phone = %sent.from, %id, "retry receipt: sending the message again");
        if let Err(e) = send_with_id(sim, &sent, id).await {
            tracing::warn!(phone = %sent.from, %id, error = %e, "re-send failed");
        }
    }
}

/// The protobuf of what a phone writes to the number `to`.
fn body_of(what: &Compose, to: &str) -> wa::Message {
    match what {
        Compose::Text(text) => wa::Message {
            conversation: Some(text.clone()),
            ..Default::default()
        },
        Compose::Quote { text, quoted } => wa::Message {
            extended_text_message: buffa::MessageField::some(wa::message::ExtendedTextMessage {
                text: Some(text.clone()),
                context_info: buffa::MessageField::some(wa::ContextInfo {
                    stanza_id: Some(quoted.clone()),
                    participant: Some(format!("{to}@s.whatsapp.net")),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
        Compose::React { emoji, target } => wa::Message {
            reaction_message: buffa::MessageField::some(wa::message::ReactionMessage {
                key: buffa::MessageField::some(wa::MessageKey {
                    remote_jid: Some(format!("{to}@s.whatsapp.net")),
                    from_me: Some(false),
                    id: Some(target.clone()),
                    ..Default::default()
                }),
                text: Some(emoji.clone()),
                sender_timestamp_ms: Some(now_ms()),
                ..Default::default()
            }),
            ..Default::default()
        },
    }
}

async fn send_with_id(sim: &Sim, sent: &Sent, id: &str) -> anyhow::Result<Vec<String>> {
    let (phone, to) = (sent.from.as_str(), sent.to.as_str());
    let targets: Vec<(Arc<Conn>, String)> = sim
        .conns()
        .into_iter()
        .filter_map(|c| conn_jid(&c).map(|j| (c, j)))
        .filter(|(_, j)| split_jid(j).0 == to)
        .collect();
    anyhow::ensure!(!targets.is_empty(), "no device of {to} is connected");
    sim.sent_log
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(id.to_string(), sent.clone());
    let corrupt = sim.faults().bad_mac.remove(phone);
    let body = body_of(&sent.what, to);
    let peer = match sent.by {
        Addressed::Phone => Peer::No,
        Addressed::Lid => Peer::ByLid { with_pn: true },
        Addressed::LidOnly => Peer::ByLid { with_pn: false },
    };
    encrypt_to(sim, phone, targets, &body, id, peer, corrupt).await
}

/// Whether a phone's message goes to another account or to its own devices.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Peer {
    No,
    /// To another account, the sender named by its LID (`from="LID@lid"`),
    /// with its number beside it (`sender_pn`) or not.
    ByLid {
        with_pn: bool,
    },
    /// To the phone's own linked devices (`category="peer"`: key shares,
    /// history-sync notifications).
    Yes,
}

/// What a phone sends its newly linked device once the device is online
/// and has uploaded its pre-keys: the app-state key share, then the
/// history-sync notification. Both ended a client's first-login wait
/// (whatsapp-rust 10 s for the key, Baileys 20 s for the notification).
pub async fn welcome_new_device(sim: &Sim, phone: &str, device_jid: &str) {
    if let Err(e) = share_app_state_key(sim, phone, device_jid).await {
        tracing::warn!(jid = %device_jid, error = %e, "app-state key share failed");
    }
    if let Err(e) = send_history_bootstrap(sim, phone, device_jid).await {
        tracing::warn!(jid = %device_jid, error = %e, "history-sync notification failed");
    }
}

/// The initial history sync, as a phone sends it after linking: a
/// `HISTORY_SYNC_NOTIFICATION` of type `INITIAL_BOOTSTRAP` whose history
/// travels inline (`initialHistBootstrapInlinePayload`, a zlib-deflated
/// `HistorySync`), so no media download is needed (Baileys `history.js`
/// `downloadAndProcessHistorySyncNotification` reads it; whatsapp-rust, told
/// to skip history, acknowledges it). wa-sim's phones have no past chats to
/// share: the history is empty and complete.
async fn send_history_bootstrap(sim: &Sim, phone: &str, device_jid: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let history = wa::HistorySync {
        sync_type: wa::history_sync::HistorySyncType::INITIAL_BOOTSTRAP,
        chunk_order: Some(0),
        progress: Some(100),
        ..Default::default()
    };
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&history.encode_to_vec())?;
    let inline = z.finish()?;
    let body = wa::Message {
        protocol_message: buffa::MessageField::some(wa::message::ProtocolMessage {
            r#type: Some(wa::message::protocol_message::Type::HISTORY_SYNC_NOTIFICATION),
            history_sync_notification: buffa::MessageField::some(
                wa::message::HistorySyncNotification {
                    sync_type: Some(wa::message::HistorySyncType::INITIAL_BOOTSTRAP),
                    chunk_order: Some(0),
                    progress: Some(100),
                    initial_hist_bootstrap_inline_payload: Some(inline),
                    ..Default::default()
                },
            ),
            ..Default::default()
        }),
        ..Default::default()
    };
    let targets = device_target(sim, device_jid)?;
    let id = format!("3EB0{:016X}", rand::random::<u64>());
    encrypt_to(sim, phone, targets, &body, &id, Peer::Yes, false).await?;
    tracing::info!(%phone, device = %device_jid, "history-sync notification sent to the new device");
    Ok(())
}

/// The live connection of one device, as a send target.
fn device_target(sim: &Sim, device_jid: &str) -> anyhow::Result<Vec<(Arc<Conn>, String)>> {
    let targets: Vec<(Arc<Conn>, String)> = sim
        .conns()
        .into_iter()
        .filter_map(|c| conn_jid(&c).map(|j| (c, j)))
        .filter(|(_, j)| j == device_jid)
        .collect();
    anyhow::ensure!(!targets.is_empty(), "{device_jid} is not connected");
    Ok(targets)
}

/// After linking, the phone shares its app-state sync key with the new
/// device, as a real primary does (whatsmeow `appstate/keys.go`, whatsapp-rust
/// `message/special.rs` `handle_app_state_sync_key_share`: a share from the
/// own account ends the client's 10 s first-login wait for it).
async fn share_app_state_key(sim: &Sim, phone: &str, device_jid: &str) -> anyhow::Result<()> {
    let targets = device_target(sim, device_jid)?;
    let key = wa::message::AppStateSyncKey {
        key_id: buffa::MessageField::some(wa::message::AppStateSyncKeyId {
            key_id: Some(sim.app_state_key_id(phone).to_vec()),
        }),
        key_data: buffa::MessageField::some(wa::message::AppStateSyncKeyData {
            key_data: Some(sim.app_state_key(phone).to_vec()),
            fingerprint: buffa::MessageField::some(wa::message::AppStateSyncKeyFingerprint {
                raw_id: Some(1),
                current_index: Some(0),
                device_indexes: vec![0],
            }),
            timestamp: Some(now_ms()),
        }),
    };
    let body = wa::Message {
        protocol_message: buffa::MessageField::some(wa::message::ProtocolMessage {
            r#type: Some(wa::message::protocol_message::Type::APP_STATE_SYNC_KEY_SHARE),
            app_state_sync_key_share: buffa::MessageField::some(
                wa::message::AppStateSyncKeyShare { keys: vec![key] },
            ),
            ..Default::default()
        }),
        ..Default::default()
    };
    let id = format!("3EB0{:016X}", rand::random::<u64>());
    encrypt_to(sim, phone, targets, &body, &id, Peer::Yes, false).await?;
    tracing::info!(%phone, device = %device_jid, "app-state key shared with the new device");
    Ok(())
}

/// Encrypt `body` from `phone`'s primary device to each target device (a
/// Signal session is opened from the device's uploaded pre-keys when there
/// is none) and send it.
async fn encrypt_to(
    sim: &Sim,
    phone: &str,
    targets: Vec<(Arc<Conn>, String)>,
    body: &wa::Message,
    id: &str,
    peer: Peer,
    corrupt: bool,
) -> anyhow::Result<Vec<String>> {
    // A reaction goes as `type="reaction"`, everything else as text.
    let sent_kind = body.reaction_message.is_set();
    use wacore_libsignal::protocol::{
        message_encrypt, process_prekey_bundle, CiphertextMessage, IdentityKey, PreKeyBundle,
        PublicKey, UsePQRatchet,
    };
    let name = sim
        .persist()
        .phones
        .get(phone)
        .map(|p| p.name.clone())
        .ok_or_else(|| anyhow::anyhow!("unknown phone {phone}"))?;
    let padded = wacore::messages::MessageUtils::pad_message_v2(body.encode_to_vec());
    let mut rs = sim.recipients.lock().await;
    if !rs.contains_key(phone) {
        rs.insert(phone.to_string(), Recipient::new()?);
    }
    let r = rs
        .get_mut(phone)
        .ok_or_else(|| anyhow::anyhow!("no Signal state"))?;
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut sent = vec![];
    for (c, jid) in targets {
        let (user, device) = split_jid(&jid);
        let addr = ProtocolAddress::new(&user, DeviceId::from(device));
        if !wacore_libsignal::protocol::SessionStore::has_session(&r.sessions, &addr).await? {
            let up = sim
                .uploads
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_mut(&jid)
                .map(|u| {
                    // The oldest held pre-key goes, as the server hands it out.
                    let pk = (!u.prekeys.is_empty()).then(|| u.prekeys.remove(0));
                    (u.clone(), pk)
                });
            let Some((up, pk)) = up else {
                tracing::warn!(%jid, "device uploaded no pre-keys; skipping");
                continue;
            };
            let bundle = PreKeyBundle::new(
                up.registration,
                DeviceId::from(device),
                pk.map(|(i, k)| anyhow::Ok((i.into(), PublicKey::from_djb_public_key_bytes(&k)?)))
                    .transpose()?,
                up.signed.0.into(),
                PublicKey::from_djb_public_key_bytes(&up.signed.1)?,
                up.signed.2.clone(),
                IdentityKey::new(PublicKey::from_djb_public_key_bytes(&up.identity)?),
            )?;
            process_prekey_bundle(
                &addr,
                &mut r.sessions,
                &mut r.ids,
                &bundle,
                &mut rng,
                UsePQRatchet::No,
            )
            .await?;
        }
        let ct = message_encrypt(&padded, &addr, &mut r.sessions, &mut r.ids).await?;
        let kind = match ct {
            CiphertextMessage::PreKeySignalMessage(_) => "pkmsg",
            _ => "msg",
        };
        let mut wire = ct.serialize().to_vec();
        if corrupt {
            corrupt_mac(&ct, &mut wire);
            tracing::info!(%phone, %id, "bad MAC injected");
        }
        let from = match (peer, sim.lid_of(phone)) {
            (Peer::ByLid { .. }, Some(lid)) => format!("{lid}@lid"),
            _ => format!("{phone}@s.whatsapp.net"),
        };
        let kind_attr = match sent_kind {
            true => "reaction",
            false => "text",
        };
        let mut node = NodeBuilder::new("message")
            .attr("from", from)
            .attr("id", id.to_string())
            .attr("type", kind_attr)
            .attr("t", (now_ms() / 1000).to_string());
        node = match peer {
            Peer::No => node.attr("notify", name.clone()),
            Peer::ByLid { with_pn: true } => node
                .attr("notify", name.clone())
                .attr("sender_pn", format!("{phone}@s.whatsapp.net")),
            Peer::ByLid { with_pn: false } => node.attr("notify", name.clone()),
            Peer::Yes => node.attr("category", "peer"),
        };
        let node = node
            .children([NodeBuilder::new("enc")
                .attr("v", "2")
                .attr("type", kind)
                .bytes(wire)
                .build()])
            .build();
        let _ = c.tx.send(Out::Node(node)).await;
        sent.push(jid);
    }
    Ok(sent)
}

/// Flip the last byte of the Signal message's MAC (its last 8 bytes). In a
/// PreKeySignalMessage the inner message is one protobuf field among others,
/// so it is located inside the serialized blob first.
fn corrupt_mac(ct: &wacore_libsignal::protocol::CiphertextMessage, wire: &mut [u8]) {
    use wacore_libsignal::protocol::CiphertextMessage;
    let end = match ct {
        CiphertextMessage::PreKeySignalMessage(pm) => {
            let inner = pm.message().serialized();
            wire.windows(inner.len())
                .position(|w| w == inner)
                .map(|at| at + inner.len())
        }
        _ => Some(wire.len()),
    };
    if let Some(b) = end
        .and_then(|e| e.checked_sub(1))
        .and_then(|i| wire.get_mut(i))
    {
        *b ^= 0x5a;
    }
}

impl Uploaded {
    /// Take in a new upload: identity, registration and signed pre-key are
    /// replaced, one-time pre-keys are added to those held (the real server
    /// keeps what was not used yet; WA Web and whatsapp-rust upload more only
    /// when the count it reports runs low).
    pub fn merge(&mut self, new: Uploaded) {
        self.registration = new.registration;
        self.identity = new.identity;
        self.signed = new.signed;
        for (id, key) in new.prekeys {
            if let Some(held) = self.prekeys.iter_mut().find(|(i, _)| *i == id) {
                held.1 = key;
            } else {
                self.prekeys.push((id, key));
            }
        }
    }

    /// The `<digest>` answer: the bundle and a SHA-1 over identity, signed
    /// pre-key and its signature and each held pre-key (the material of WA
    /// Web's `validateLocalKeyBundle`; wacore `prekeys.rs`
    /// `compute_key_bundle_digest`, `iq/prekeys.rs` `DigestKeyBundleSpec`).
    pub fn digest(&self) -> Node {
        use sha1::Digest;
        let mut h = sha1::Sha1::new();
        h.update(self.identity);
        h.update(self.signed.1);
        h.update(&self.signed.2);
        for (_, k) in &self.prekeys {
            h.update(k);
        }
        let id3 = |i: u32| i.to_be_bytes()[1..].to_vec();
        NodeBuilder::new("digest")
            .children([
                NodeBuilder::new("registration")
                    .bytes(self.registration.to_be_bytes().to_vec())
                    .build(),
                NodeBuilder::new("type").bytes(vec![5u8]).build(),
                NodeBuilder::new("identity")
                    .bytes(self.identity.to_vec())
                    .build(),
                NodeBuilder::new("skey")
                    .children([
                        NodeBuilder::new("id").bytes(id3(self.signed.0)).build(),
                        NodeBuilder::new("value")
                            .bytes(self.signed.1.to_vec())
                            .build(),
                        NodeBuilder::new("signature")
                            .bytes(self.signed.2.clone())
                            .build(),
                    ])
                    .build(),
                NodeBuilder::new("list")
                    .children(
                        self.prekeys
                            .iter()
                            .map(|(i, _)| NodeBuilder::new("id").bytes(id3(*i)).build()),
                    )
                    .build(),
                NodeBuilder::new("hash")
                    .bytes(h.finalize().to_vec())
                    .build(),
            ])
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload(ids: &[u32]) -> Uploaded {
        Uploaded {
            registration: 4242,
            identity: [7u8; 32],
            prekeys: ids.iter().map(|i| (*i, [*i as u8; 32])).collect(),
            signed: (9, [8u8; 32], vec![6u8; 64]),
        }
    }

    #[test]
    fn uploads_add_to_the_held_pre_keys() {
        let mut held = upload(&[1, 2, 3]);
        held.merge(upload(&[3, 4]));
        let ids: Vec<u32> = held.prekeys.iter().map(|(i, _)| *i).collect();
        assert_eq!(ids, vec![1, 2, 3, 4]);
    }

    /// The digest's hash is the one the client computes from its own keys.
    #[test]
    fn the_digest_hash_matches_the_clients() {
        let held = upload(&[5, 6]);
        let d = held.digest();
        let hash = crate::node::content_bytes(child(&d, "hash").unwrap())
            .unwrap()
            .to_vec();
        let keys: Vec<&[u8]> = held.prekeys.iter().map(|(_, k)| &k[..]).collect();
        let expected = wacore::prekeys::compute_key_bundle_digest(
            &held.identity,
            &held.signed.1,
            &held.signed.2,
            &keys,
        );
        assert_eq!(hash, expected);
        let ids: Vec<Vec<u8>> = children(child(&d, "list").unwrap())
            .iter()
            .map(|n| crate::node::content_bytes(n).unwrap().to_vec())
            .collect();
        assert_eq!(ids, vec![vec![0, 0, 5], vec![0, 0, 6]]);
    }
}

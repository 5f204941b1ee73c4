//! One client connection from accept to close: handshake, then either the
//! pairing exchange (unregistered client) or login (`<success>`) and the
//! post-login IQs the client needs before it reports `Connected`; keep-alive
//! pings; faults applied as they come.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use base64::Engine as _;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use wacore_binary::builder::NodeBuilder;
use wacore_binary::Node;

use crate::node::{attr, child, children, iq_error, iq_result, stream_error};
use crate::sim::{now_ms, Conn, Out, PendingPair, Sim};
use crate::wire::{handshake, Incoming, Session, Wire};

struct Link {
    wire: Wire,
    sess: Session,
    conn: Arc<Conn>,
    sim: Arc<Sim>,
    pending: Option<PendingPair>,
}

impl Link {
    async fn send(&mut self, node: &Node) -> anyhow::Result<()> {
        if self.conn.blackholed.load(Ordering::SeqCst) {
            return Ok(());
        }
        let bytes = self.sess.seal(node)?;
        self.wire.send_frame(&bytes).await
    }
}

/// Serve one TCP connection until it closes.
pub async fn serve(sim: Arc<Sim>, tcp: TcpStream) {
    if sim.faults().down {
        return;
    }
    let (req, ws) = match tokio_websockets::ServerBuilder::new().accept(tcp).await {
        Ok(x) => x,
        Err(e) => {
            tracing::debug!(error = %e, "websocket upgrade failed");
            return;
        }
    };
    if req.uri().path() != "/ws/chat" {
        tracing::debug!(path = %req.uri().path(), "unknown websocket path");
        return;
    }
    let mut wire = Wire::new(ws);
    if sim.is_blackholed(None) {
        // Say nothing, read nothing useful: hold the socket until the client gives up.
        while let Ok(Incoming::Frame(_)) = wire.recv().await {}
        return;
    }
    let (sess, payload, ik) = match handshake(&mut wire, &sim.server_key, &sim.cert_chain).await {
        Ok(x) => x,
        Err(e) => {
            tracing::info!(error = %e, "handshake failed");
            return;
        }
    };
    let (tx, rx) = mpsc::channel(256);
    let conn = sim.register(tx);
    let mut link = Link {
        wire,
        sess,
        conn: conn.clone(),
        sim: sim.clone(),
        pending: None,
    };
    let result = run(&mut link, payload, ik, rx).await;
    if let Err(e) = result {
        tracing::debug!(conn = conn.id, error = %e, "connection ended");
    }
    link.wire.close().await;
    sim.unregister(conn.id);
}

async fn run(
    link: &mut Link,
    payload: waproto::whatsapp::ClientPayload,
    ik: bool,
    mut rx: mpsc::Receiver<Out>,
) -> anyhow::Result<()> {
    match (payload.username, payload.device) {
        (Some(user), device) => {
            let phone = user.to_string();
            let device = device.unwrap_or(0);
            let jid = format!("{phone}:{device}@s.whatsapp.net");
            tracing::info!(%jid, ik, "login");
            if let Some(f) = link.sim.login_failure(&jid) {
                let mut b = NodeBuilder::new("failure").attr("reason", f.code.to_string());
                if let Some(exp) = f.expire_secs {
                    b = b.attr("expire", exp.to_string()).attr("code", "101");
                }
                link.send(&b.build()).await?;
                return Ok(());
            }
            let lid = {
                let p = link.sim.persist();
                p.phones
                    .get(&phone)
                    .filter(|ph| ph.devices.contains_key(&device))
                    .map(|ph| ph.lid.clone())
            };
            let Some(lid) = lid else {
                tracing::info!(%jid, "unknown device: refusing login (401)");
                let n = NodeBuilder::new("failure").attr("reason", "401").build();
                link.send(&n).await?;
                return Ok(());
            };
            for old in link.sim.login(&link.conn, &jid) {
                tracing::info!(%jid, old = old.id, "a second login for one device: the older connection is replaced");
                let _ = old
                    .tx
                    .send(Out::StreamError(crate::node::conflict("replaced")))
                    .await;
                *crate::sim::lock_jid(&old) = None;
            }
            if link.sim.is_blackholed(Some(&jid)) {
                link.conn.blackholed.store(true, Ordering::SeqCst);
            }
            let success = NodeBuilder::new("success")
                .attr("t", (now_ms() / 1000).to_string())
                .attr("lid", format!("{lid}:{device}@lid"))
                .attr("platform", "web")
                .attr("props", "1")
                .build();
            link.send(&success).await?;
        }
        (None, _) => {
            let refs: Vec<String> = (0..6)
                .map(|_| {
                    let b: [u8; 16] = rand::random();
                    format!("2@{}", base64::engine::general_purpose::STANDARD.encode(b))
                })
                .collect();
            link.sim.offer_refs(link.conn.id, &refs);
            let iq = NodeBuilder::new("iq")
                .attr("from", "s.whatsapp.net")
                .attr("type", "set")
                .attr("id", format!("pair-{}", link.conn.id))
                .attr("xmlns", "md")
                .children([NodeBuilder::new("pair-device")
                    .children(
                        refs.iter()
                            .map(|r| NodeBuilder::new("ref").bytes(r.as_bytes().to_vec()).build()),
                    )
                    .build()])
                .build();
            link.send(&iq).await?;
        }
    }
    loop {
        tokio::select! {
            inc = link.wire.recv() => match inc? {
                Incoming::Closed => return Ok(()),
                Incoming::Frame(f) => {
                    if link.conn.blackholed.load(Ordering::SeqCst) {
                        continue;
                    }
                    link.conn.last_frame_ms.store(now_ms(), Ordering::SeqCst);
                    link.conn.frames_in.fetch_add(1, Ordering::Relaxed);
                    let node = link.sess.open(f)?;
                    if !handle(link, node).await? {
                        return Ok(());
                    }
                }
            },
            out = rx.recv() => match out {
                None | Some(Out::Close) => return Ok(()),
                Some(Out::Node(n)) => link.send(&n).await?,
                Some(Out::PairSuccess { node, pending }) => {
                    link.pending = Some(pending);
                    link.send(&node).await?;
                }
                Some(Out::StreamError(n)) => {
                    let was = link.conn.blackholed.swap(false, Ordering::SeqCst);
                    link.send(&n).await?;
                    link.conn.blackholed.store(was, Ordering::SeqCst);
                    return Ok(());
                }
            }
        }
    }
}

/// Answer one node from the client; `false` ends the connection.
async fn handle(link: &mut Link, node: Node) -> anyhow::Result<bool> {
    if node.tag == "message" {
        crate::messaging::on_message(link_sim(link), &link.conn, &node).await?;
        return Ok(true);
    }
    if node.tag == "receipt" && attr(&node, "type").as_deref() == Some("retry") {
        if let Some(id) = attr(&node, "id") {
            crate::messaging::on_retry_receipt(&link.sim, &id).await;
        }
        return Ok(true);
    }
    if node.tag == "ack" {
        crate::messaging::on_ack(&link.sim, &link.conn, &node);
        return Ok(true);
    }
    if node.tag == "chatstate" {
        crate::messaging::on_chatstate(&link.sim, &link.conn, &node);
        return Ok(true);
    }
    if node.tag != "iq" {
        // ib, receipt, presence …: nothing to answer for now.
        return Ok(true);
    }
    let ty = attr(&node, "type").unwrap_or_default();
    if ty == "result" || ty == "error" {
        let id = attr(&node, "id").unwrap_or_default();
        // Only the answer to the pair-success settles it: an answer to any other
        // IQ (a late one to `pair-device`, say) must not drop the pairing.
        if let Some(p) = link.pending.take_if(|p| p.iq_id == id) {
            if ty == "result" {
                finish_pairing(link, &p).await?;
                return Ok(false);
            }
            tracing::warn!(phone = %p.phone, "client refused the pairing");
        }
        return Ok(true);
    }
    let xmlns = attr(&node, "xmlns").unwrap_or_default();
    if xmlns == "w:p" {
        link.conn.pings.fetch_add(1, Ordering::Relaxed);
    }
    if let Some(reg) = child(&node, "link_code_companion_reg") {
        let stage = attr(reg, "stage").unwrap_or_default();
        let sim = link.sim.clone();
        let id = link.conn.id;
        match stage.as_str() {
            "companion_hello" => {
                let answer = crate::paircode::companion_hello(&sim, id, reg)?;
                link.send(&iq_result(&node, vec![answer])).await?;
            }
            "companion_finish" => {
                link.send(&iq_result(&node, vec![])).await?;
                if let Err(e) = crate::paircode::companion_finish(&sim, id, reg).await {
                    tracing::warn!(error = %e, "pairing by code failed");
                }
            }
            _ => link.send(&iq_result(&node, vec![])).await?,
        }
        return Ok(true);
    }
    let reply = match xmlns.as_str() {
        "passive" => {
            link.send(&iq_result(&node, vec![])).await?;
            // What arrived for this device while it was away, then the marker.
            if let Some(device) = crate::sim::conn_jid(&link.conn) {
                for r in crate::messaging::unacked_receipts(&link.sim, &device) {
                    link.send(&r).await?;
                }
            }
            let ib = NodeBuilder::new("ib")
                .attr("from", "s.whatsapp.net")
                .children([NodeBuilder::new("offline").attr("count", "0").build()])
                .build();
            link.send(&ib).await?;
            if let Some(device) = crate::sim::conn_jid(&link.conn) {
                welcome_step(&link.sim, &device, |w| w.online = true);
            }
            return Ok(true);
        }
        "w:sync:app:state" => {
            let cols: Vec<Node> = child(&node, "sync")
                .map(children)
                .unwrap_or(&[])
                .iter()
                .filter(|c| c.tag == "collection")
                .map(|c| {
                    NodeBuilder::new("collection")
                        .attr("name", attr(c, "name").unwrap_or_default())
                        .attr("version", "0")
                        .build()
                })
                .collect();
            iq_result(&node, vec![NodeBuilder::new("sync").children(cols).build()])
        }
        "abt" => iq_result(
            &node,
            vec![NodeBuilder::new("props")
                .attr("protocol", "1")
                .attr("hash", "sim")
                .build()],
        ),
        "blocklist" => iq_result(&node, vec![NodeBuilder::new("list").build()]),
        "privacy" if ty == "get" => iq_result(&node, vec![NodeBuilder::new("privacy").build()]),
        "usync" => iq_result(&node, vec![crate::usync::answer(&link.sim, &node)]),
        "encrypt" if ty == "get" && child(&node, "key").is_some() => {
            let list = crate::messaging::bundles(
                &link.sim,
                child(&node, "key").map(children).unwrap_or(&[]),
            )
            .await;
            iq_result(&node, vec![list])
        }
        "encrypt" if ty == "set" && child(&node, "list").is_some() => {
            match (
                crate::messaging::parse_upload(&node),
                crate::sim::conn_jid(&link.conn),
            ) {
                (Some(up), Some(jid)) => {
                    let held = crate::messaging::take_upload(&link.sim, &jid, up);
                    tracing::debug!(%jid, held, "pre-keys uploaded");
                    welcome_step(&link.sim, &jid, |w| w.keys = true);
                }
                _ => tracing::warn!("unreadable pre-key upload"),
            }
            iq_result(&node, vec![])
        }
        "encrypt" if ty == "get" && child(&node, "count").is_some() => {
            let held = crate::sim::conn_jid(&link.conn)
                .map(|jid| crate::messaging::prekey_count(&link.sim, &jid))
                .unwrap_or(0);
            iq_result(
                &node,
                vec![NodeBuilder::new("count")
                    .attr("value", held.to_string())
                    .build()],
            )
        }
        "encrypt" if ty == "get" && child(&node, "digest").is_some() => {
            let held = crate::sim::conn_jid(&link.conn).and_then(|jid| {
                link.sim
                    .uploads
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&jid)
                    .map(|u| u.digest())
            });
            match held {
                Some(d) => iq_result(&node, vec![d]),
                // No record: the client re-uploads (WA Web `digestKey`).
                None => iq_error(&node, 404, "item-not-found"),
            }
        }
        _ => iq_result(&node, vec![]),
    };
    link.send(&reply).await?;
    Ok(true)
}

fn link_sim(link: &Link) -> &Arc<Sim> {
    &link.sim
}

/// The client accepted the pair-success: record the device, then the 515 restart.
async fn finish_pairing(link: &mut Link, p: &PendingPair) -> anyhow::Result<()> {
    {
        let mut st = link.sim.persist();
        if let Some(ph) = st.phones.get_mut(&p.phone) {
            ph.devices.insert(
                p.device,
                crate::state::Device {
                    id: p.device,
                    identity_pub: hex::encode(p.identity_pub),
                    linked_ms: now_ms(),
                },
            );
            ph.next_device = ph.next_device.max(p.device + 1);
        }
        let snapshot = st.clone();
        drop(st);
        link.sim.save(&snapshot);
    }
    link.sim
        .welcome_due
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(
            format!("{}:{}@s.whatsapp.net", p.phone, p.device),
            crate::sim::Welcome::default(),
        );
    tracing::info!(phone = %p.phone, device = p.device, "device linked; sending 515");
    link.send(&stream_error("515")).await?;
    Ok(())
}

/// Note a step of a new device's first login; once both are in, the phone
/// sends its welcome, off this task.
fn welcome_step(sim: &Arc<Sim>, jid: &str, step: impl FnOnce(&mut crate::sim::Welcome)) {
    if sim.welcome_step(jid, step) {
        let (sim, jid) = (sim.clone(), jid.to_string());
        tokio::spawn(async move {
            let phone = crate::sim::split_jid(&jid).0;
            crate::messaging::welcome_new_device(&sim, &phone, &jid).await;
        });
    }
}

//! The control API (HTTP JSON on its own port): create phones, scan QR codes,
//! unlink devices, inject and heal faults, list live connections.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::node::{conflict, stream_error};
use crate::pairing::{scan, ScanError};
use crate::sim::{conn_jid, now_ms, LoginFailure, Out, Sim};
use crate::state::{new_keypair_hex, Phone};

type Res = Result<Response, (StatusCode, Json<Value>)>;

fn err(status: StatusCode, msg: impl Into<String>) -> (StatusCode, Json<Value>) {
    (status, Json(json!({"error": msg.into()})))
}

pub fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/control/phones", post(create_phone))
        .route("/control/phones/{phone}", get(get_phone))
        .route("/control/phones/{phone}/scan", post(scan_qr))
        .route("/control/phones/{phone}/pair-code", post(pair_code))
        .route("/control/phones/{phone}/unlink", post(unlink))
        .route("/control/phones/{phone}/inbox", get(inbox))
        .route("/control/phones/{phone}/chatstates", get(chatstates))
        .route("/control/phones/{phone}/read", post(read))
        .route("/control/phones/{phone}/send", post(send))
        .route("/control/faults", post(add_fault).delete(heal))
        .route("/control/devices", get(devices))
        .route("/control/certs", get(certs))
        .with_state(sim)
}

/// The test root that signs the certificate chain (hex), for clients that
/// pin it instead of WhatsApp's.
async fn certs(State(sim): State<Arc<Sim>>) -> Json<Value> {
    Json(json!({
        "root": hex::encode(sim.root_public),
        "chain": hex::encode(&sim.cert_chain),
    }))
}

#[derive(Deserialize)]
struct NewPhone {
    phone: String,
    name: Option<String>,
    /// Read received messages automatically after this delay.
    read_after_ms: Option<u64>,
}

async fn create_phone(State(sim): State<Arc<Sim>>, Json(b): Json<NewPhone>) -> Res {
    if b.phone.is_empty() || b.phone.len() > 15 || !b.phone.bytes().all(|c| c.is_ascii_digit()) {
        return Err(err(
            StatusCode::UNPROCESSABLE_ENTITY,
            "phone must be 1-15 digits with country code",
        ));
    }
    let mut st = sim.persist();
    if st.phones.contains_key(&b.phone) {
        return Err(err(StatusCode::CONFLICT, "phone exists"));
    }
    let lid: u64 = 100_000_000_000_000 + rand::random::<u64>() % 800_000_000_000_000;
    st.phones.insert(
        b.phone.clone(),
        Phone {
            phone: b.phone.clone(),
            name: b.name.unwrap_or_else(|| format!("Phone {}", b.phone)),
            account_priv: new_keypair_hex(),
            lid: lid.to_string(),
            next_device: 1,
            devices: Default::default(),
            read_after_ms: b.read_after_ms,
        },
    );
    let snap = st.clone();
    drop(st);
    sim.save(&snap);
    Ok((
        StatusCode::CREATED,
        Json(json!({"phone": b.phone, "lid": lid.to_string()})),
    )
        .into_response())
}

async fn get_phone(State(sim): State<Arc<Sim>>, Path(phone): Path<String>) -> Res {
    let st = sim.persist();
    let ph = st
        .phones
        .get(&phone)
        .ok_or_else(|| err(StatusCode::NOT_FOUND, "unknown phone"))?;
    let live: Vec<String> = sim.conns().iter().filter_map(|c| conn_jid(c)).collect();
    let devices: Vec<Value> = ph
        .devices
        .values()
        .map(|d| {
            let jid = format!("{}:{}@s.whatsapp.net", ph.phone, d.id);
            json!({"id": d.id, "jid": jid, "linked_ms": d.linked_ms, "connected": live.contains(&jid)})
        })
        .collect();
    Ok(
        Json(json!({"phone": ph.phone, "name": ph.name, "lid": ph.lid, "devices": devices}))
            .into_response(),
    )
}

#[derive(Deserialize)]
struct ScanBody {
    qr: String,
}

async fn scan_qr(
    State(sim): State<Arc<Sim>>,
    Path(phone): Path<String>,
    Json(b): Json<ScanBody>,
) -> Res {
    match scan(&sim, &phone, &b.qr).await {
        Ok(device) => {
            Ok(Json(json!({"device": format!("{phone}:{device}@s.whatsapp.net")})).into_response())
        }
        Err(e @ ScanError::UnknownPhone(_)) => Err(err(StatusCode::NOT_FOUND, e.to_string())),
        Err(e @ ScanError::BadQr(_)) => Err(err(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())),
        Err(e @ (ScanError::NotOnOffer | ScanError::TooManyDevices)) => {
            Err(err(StatusCode::CONFLICT, e.to_string()))
        }
        Err(e) => Err(err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

#[derive(Deserialize)]
struct CodeBody {
    code: String,
}

async fn pair_code(
    State(sim): State<Arc<Sim>>,
    Path(phone): Path<String>,
    Json(b): Json<CodeBody>,
) -> Res {
    match crate::paircode::type_code(&sim, &phone, &b.code).await {
        Ok(()) => Ok(Json(json!({"ok": true})).into_response()),
        Err(e @ ScanError::UnknownPhone(_)) => Err(err(StatusCode::NOT_FOUND, e.to_string())),
        Err(e @ ScanError::BadQr(_)) => Err(err(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())),
        Err(ScanError::NotOnOffer) => Err(err(
            StatusCode::CONFLICT,
            "no device is waiting for a pairing code for this phone",
        )),
        Err(e) => Err(err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

#[derive(Deserialize)]
struct UnlinkBody {
    device: Option<String>,
}

async fn unlink(
    State(sim): State<Arc<Sim>>,
    Path(phone): Path<String>,
    body: Option<Json<UnlinkBody>>,
) -> Res {
    let target = body.and_then(|b| b.0.device).filter(|d| d != "all");
    let removed: Vec<String> = {
        let mut st = sim.persist();
        let ph = st
            .phones
            .get_mut(&phone)
            .ok_or_else(|| err(StatusCode::NOT_FOUND, "unknown phone"))?;
        let ids: Vec<u32> = ph
            .devices
            .keys()
            .copied()
            .filter(|id| {
                target
                    .as_deref()
                    .is_none_or(|t| *t == format!("{phone}:{id}@s.whatsapp.net"))
            })
            .collect();
        for id in &ids {
            ph.devices.remove(id);
        }
        let snap = st.clone();
        drop(st);
        sim.save(&snap);
        ids.iter()
            .map(|id| format!("{phone}:{id}@s.whatsapp.net"))
            .collect()
    };
    for jid in &removed {
        for c in sim.targets(jid) {
            let _ =
                c.tx.send(Out::StreamError(conflict("device_removed")))
                    .await;
        }
    }
    Ok(Json(json!({"unlinked": removed})).into_response())
}

#[derive(Deserialize)]
struct FaultBody {
    kind: String,
    code: Option<u16>,
    conflict: Option<String>,
    device: Option<String>,
    duration_ms: Option<u64>,
    expire_secs: Option<u64>,
    phone: Option<String>,
    /// `reachout_timelock`: tell the devices (default true).
    announce: Option<bool>,
    /// `message_capping`: new chats allowed in the cycle.
    total: Option<i64>,
}

async fn add_fault(State(sim): State<Arc<Sim>>, Json(f): Json<FaultBody>) -> Res {
    let target = f.device.clone().unwrap_or_else(|| "all".into());
    match f.kind.as_str() {
        "drop" => {
            for c in sim.targets(&target) {
                let _ = c.tx.send(Out::Close).await;
            }
        }
        "blackhole" => {
            sim.faults().blackhole.push(target.clone());
            for c in sim.targets(&target) {
                c.blackholed.store(true, Ordering::SeqCst);
            }
            if let Some(ms) = f.duration_ms {
                let (sim2, t) = (sim.clone(), target.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    sim2.faults().blackhole.retain(|x| *x != t);
                });
            }
        }
        "stream_error" => {
            let node = match (f.conflict.as_deref(), f.code) {
                (Some(kind), _) => conflict(kind),
                (None, Some(code)) => stream_error(&code.to_string()),
                (None, None) => {
                    return Err(err(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "stream_error needs code or conflict",
                    ))
                }
            };
            for c in sim.targets(&target) {
                let _ = c.tx.send(Out::StreamError(node.clone())).await;
            }
        }
        "login_failure" => {
            let code = f
                .code
                .ok_or_else(|| err(StatusCode::UNPROCESSABLE_ENTITY, "login_failure needs code"))?;
            sim.faults().login_failures.insert(
                target.clone(),
                LoginFailure {
                    code,
                    expire_secs: f.expire_secs,
                },
            );
        }
        "down" => {
            sim.faults().down = true;
            for c in sim.conns() {
                let _ = c.tx.send(Out::Close).await;
            }
            if let Some(ms) = f.duration_ms {
                let sim2 = sim.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    sim2.faults().down = false;
                });
            }
        }
        "up" => sim.faults().down = false,
        "bad_mac" => {
            let phone = f.phone.clone().ok_or_else(|| {
                err(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "bad_mac needs the sending phone",
                )
            })?;
            sim.faults().bad_mac.insert(phone);
        }
        "reachout_timelock" => {
            let (Some(phone), Some(ms)) = (f.phone.clone(), f.duration_ms) else {
                return Err(err(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "reachout_timelock needs the sending phone and duration_ms",
                ));
            };
            crate::limits::start_reachout(&sim, &phone, ms, f.announce.unwrap_or(true));
        }
        "message_capping" => {
            let (Some(phone), Some(total), Some(ms)) = (f.phone.clone(), f.total, f.duration_ms)
            else {
                return Err(err(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "message_capping needs the sending phone, total and duration_ms (the cycle)",
                ));
            };
            sim.faults().capping.insert(
                phone,
                crate::limits::Capping {
                    total,
                    used: 0,
                    cycle_end_ms: crate::sim::now_ms() + ms as i64,
                },
            );
        }
        other => {
            return Err(err(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("unknown fault kind '{other}'"),
            ))
        }
    }
    tracing::info!(kind = %f.kind, %target, "fault injected");
    Ok(Json(json!({"ok": true, "kind": f.kind, "device": target})).into_response())
}

async fn heal(State(sim): State<Arc<Sim>>) -> Res {
    {
        let mut f = sim.faults();
        f.down = false;
        f.blackhole.clear();
        f.login_failures.clear();
        f.bad_mac.clear();
        f.reachout.clear();
        f.capping.clear();
    }
    // A real server would have timed out sockets that stayed silent this
    // long: close them so clients reconnect instead of waiting on replies
    // that were swallowed.
    for c in sim.conns() {
        if c.blackholed.swap(false, Ordering::SeqCst) {
            let _ = c.tx.send(Out::Close).await;
        }
    }
    Ok(Json(json!({"ok": true})).into_response())
}

async fn devices(State(sim): State<Arc<Sim>>) -> Res {
    let now = now_ms();
    let list: Vec<Value> = sim
        .conns()
        .iter()
        .map(|c| {
            let last = c.last_frame_ms.load(Ordering::SeqCst);
            json!({
                "conn": c.id,
                "jid": conn_jid(c),
                "connected_ms": c.connected_ms,
                "last_frame_ms": last,
                "last_frame_ago_ms": now - last,
                "frames_in": c.frames_in.load(Ordering::Relaxed),
                "pings": c.pings.load(Ordering::Relaxed),
                "blackholed": c.blackholed.load(Ordering::SeqCst),
                "unacked_receipts": conn_jid(c)
                    .map(|j| crate::messaging::unacked_receipts(&sim, &j).len())
                    .unwrap_or(0),
            })
        })
        .collect();
    let logins = sim.logins.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok(Json(json!({"devices": list, "logins": logins})).into_response())
}

async fn inbox(State(sim): State<Arc<Sim>>, Path(phone): Path<String>) -> Res {
    if !sim.phone_exists(&phone) {
        return Err(err(StatusCode::NOT_FOUND, "unknown phone"));
    }
    let rs = sim.recipients.lock().await;
    let items = rs.get(&phone).map(|r| r.inbox.clone()).unwrap_or_default();
    Ok(Json(json!({"phone": phone, "messages": items})).into_response())
}

/// The chat states ("typing…") a phone was shown, in arrival order (`t`: ms).
async fn chatstates(State(sim): State<Arc<Sim>>, Path(phone): Path<String>) -> Res {
    if !sim.phone_exists(&phone) {
        return Err(err(StatusCode::NOT_FOUND, "unknown phone"));
    }
    let items = sim
        .chatstates
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&phone)
        .cloned()
        .unwrap_or_default();
    Ok(Json(json!({"phone": phone, "chatstates": items})).into_response())
}

#[derive(Deserialize)]
struct ReadBody {
    ids: Vec<String>,
}

async fn read(
    State(sim): State<Arc<Sim>>,
    Path(phone): Path<String>,
    Json(b): Json<ReadBody>,
) -> Res {
    if !sim.phone_exists(&phone) {
        return Err(err(StatusCode::NOT_FOUND, "unknown phone"));
    }
    let n = crate::messaging::read(&sim, &phone, &b.ids).await;
    Ok(Json(json!({"read": n})).into_response())
}

#[derive(Deserialize)]
struct SendBody {
    to: String,
    /// The text, or a reaction's emoji.
    #[serde(default)]
    text: String,
    /// Address the message by the phone's LID (with its number beside it).
    #[serde(default)]
    as_lid: bool,
    /// With `as_lid`: leave the number out (`sender_pn`), so the receiver
    /// must know it from earlier.
    #[serde(default)]
    without_pn: bool,
    /// Quote this message (a WhatsApp id) of the number `to`.
    quote: Option<String>,
    /// React with `text` to this message (a WhatsApp id) instead of writing.
    react_to: Option<String>,
}

async fn send(
    State(sim): State<Arc<Sim>>,
    Path(phone): Path<String>,
    Json(b): Json<SendBody>,
) -> Res {
    if !sim.phone_exists(&phone) {
        return Err(err(StatusCode::NOT_FOUND, "unknown phone"));
    }
    use crate::messaging::Compose;
    if b.react_to.is_none() && b.text.is_empty() {
        return Err(err(StatusCode::UNPROCESSABLE_ENTITY, "text is required"));
    }
    let what = match (b.react_to, b.quote) {
        (Some(target), _) => Compose::React {
            emoji: b.text,
            target,
        },
        (None, Some(quoted)) => Compose::Quote {
            text: b.text,
            quoted,
        },
        (None, None) => Compose::Text(b.text),
    };
    use crate::messaging::Addressed;
    let by = match (b.as_lid, b.without_pn) {
        (false, false) => Addressed::Phone,
        (true, false) => Addressed::Lid,
        (true, true) => Addressed::LidOnly,
        (false, true) => {
            return Err(err(
                StatusCode::UNPROCESSABLE_ENTITY,
                "without_pn needs as_lid: a message by phone number always carries it",
            ))
        }
    };
    match crate::messaging::send_from_phone(&sim, &phone, &b.to, what, by).await {
        Ok((id, devices)) => Ok(Json(json!({"id": id, "devices": devices})).into_response()),
        Err(e) => Err(err(StatusCode::CONFLICT, e.to_string())),
    }
}

//! wa-sim on its own: state survives a restart, it refuses non-loopback
//! addresses, and its control API rejects bad input clearly.

use std::time::Duration;

fn call(
    base: &str,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("{base}{path}");
    let resp = match (method, body) {
        ("GET", _) => agent.get(&url).call(),
        (_, Some(b)) => agent.post(&url).send_json(&b),
        (_, None) => agent.post(&url).send_empty(),
    }
    .unwrap();
    let status = resp.status().as_u16();
    let text = resp.into_body().read_to_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn state_survives_a_restart_and_input_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let any = "127.0.0.1:0".parse().unwrap();
    let r = wa_sim::start(dir.path().to_path_buf(), any, any)
        .await
        .unwrap();
    let key1 = r.sim.server_key.public_key.public_key_bytes().to_vec();
    let base = r.control_url();
    let (st, _) = tokio::task::spawn_blocking({
        let b = base.clone();
        move || {
            call(
                &b,
                "POST",
                "/control/phones",
                Some(serde_json::json!({"phone": "573001112233", "name": "A"})),
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(st, 201);
    let checks = tokio::task::spawn_blocking({
        let b = base.clone();
        move || {
            vec![
                call(
                    &b,
                    "POST",
                    "/control/phones",
                    Some(serde_json::json!({"phone": "573001112233"})),
                )
                .0,
                call(
                    &b,
                    "POST",
                    "/control/phones",
                    Some(serde_json::json!({"phone": "57-300"})),
                )
                .0,
                call(&b, "GET", "/control/phones/999", None).0,
                call(
                    &b,
                    "POST",
                    "/control/phones/573001112233/scan",
                    Some(serde_json::json!({"qr": "nonsense"})),
                )
                .0,
                call(
                    &b,
                    "POST",
                    "/control/phones/573001112233/scan",
                    Some(serde_json::json!({"qr": "2@x,AAAA,BBBB,CCCC"})),
                )
                .0,
                call(
                    &b,
                    "POST",
                    "/control/phones/573001112233/pair-code",
                    Some(serde_json::json!({"code": "ABCD1234"})),
                )
                .0,
                call(
                    &b,
                    "POST",
                    "/control/faults",
                    Some(serde_json::json!({"kind": "meteor"})),
                )
                .0,
                call(
                    &b,
                    "POST",
                    "/control/faults",
                    Some(serde_json::json!({"kind": "stream_error"})),
                )
                .0,
            ]
        }
    })
    .await
    .unwrap();
    assert_eq!(checks, vec![409, 422, 404, 422, 422, 409, 422, 422]);
    r.stop().await;
    tokio::time::sleep(Duration::from_millis(50)).await;

    let r2 = wa_sim::start(dir.path().to_path_buf(), any, any)
        .await
        .unwrap();
    assert_eq!(
        r2.sim.server_key.public_key.public_key_bytes(),
        &key1[..],
        "server key persisted"
    );
    let (st, v) = tokio::task::spawn_blocking({
        let b = r2.control_url();
        move || call(&b, "GET", "/control/phones/573001112233", None)
    })
    .await
    .unwrap();
    assert_eq!(st, 200);
    assert_eq!(v["name"], "A");
}

#[tokio::test]
async fn refuses_non_loopback_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let err = wa_sim::start(
        dir.path().to_path_buf(),
        "0.0.0.0:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .err()
    .expect("must refuse");
    assert!(err.to_string().contains("loopback"));
}

/// A client speaking another protocol version (Baileys 6.x sends `WA 06 02`)
/// is refused at once, not left waiting for a 5.7 MB "frame".
#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_connection_header_is_refused_at_once() {
    use futures::{SinkExt, StreamExt};
    let dir = tempfile::tempdir().unwrap();
    let any = "127.0.0.1:0".parse().unwrap();
    let r = wa_sim::start(dir.path().to_path_buf(), any, any)
        .await
        .unwrap();
    let uri: http::Uri = r.ws_url().parse().unwrap();
    let (mut ws, _) = tokio_websockets::ClientBuilder::from_uri(uri)
        .connect()
        .await
        .unwrap();
    let mut first = vec![b'W', b'A', 6, 2];
    first.extend_from_slice(&[0, 0, 5, 1, 2, 3, 4, 5]);
    ws.send(tokio_websockets::Message::binary(first))
        .await
        .unwrap();
    let t0 = std::time::Instant::now();
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(m)) = ws.next().await {
            if m.is_close() {
                break;
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the connection was held open");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
}

/// The chain wa-sim hands out verifies under the root it publishes.
#[tokio::test(flavor = "multi_thread")]
async fn the_served_certificate_chain_verifies_under_the_published_root() {
    let dir = tempfile::tempdir().unwrap();
    let any = "127.0.0.1:0".parse().unwrap();
    let r = wa_sim::start(dir.path().to_path_buf(), any, any)
        .await
        .unwrap();
    let base = r.control_url();
    let (st, v) = tokio::task::spawn_blocking(move || call(&base, "GET", "/control/certs", None))
        .await
        .unwrap();
    assert_eq!(st, 200);
    let root: [u8; 32] = hex::decode(v["root"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let chain = hex::decode(v["chain"].as_str().unwrap()).unwrap();
    let mut server = [0u8; 32];
    server.copy_from_slice(r.sim.server_key.public_key.public_key_bytes());
    assert_eq!(wa_sim::certs::verify(&chain, &root, &server), Ok(()));
    // The same root after a restart: clients that pinned it keep trusting it.
    drop(r);
    let r2 = wa_sim::start(dir.path().to_path_buf(), any, any)
        .await
        .unwrap();
    assert_eq!(r2.sim.root_public, root);
}

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

//! The HTTP API through the real server binary: token confinement between
//! organizations, and a clear 4xx for every kind of bad input.

use crate::common::{Server, ADMIN};

#[test]
fn each_org_token_is_confined_to_its_org() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(tmp.path());
    let t4 = s.create_org("4", Some("57"));
    let t2 = s.create_org("2", Some("57"));
    assert_ne!(t4, t2);

    // Own org: allowed.
    let (st, v) = s.call("GET", "/v1/orgs/4/session", Some(&t4), None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["state"], "new");
    let (st, v) = s.call(
        "POST",
        "/v1/orgs/4/messages",
        Some(&t4),
        Some(r#"{"to":"3001112233","text":"hola"}"#),
    );
    assert_eq!(st, 202, "{v}");
    let m4 = v["id"].as_str().unwrap().to_string();

    // Other org, every route: 403, and the same answer whether the org exists or not.
    let paths = [
        ("GET", "/v1/orgs/2/session"),
        ("GET", "/v1/orgs/2"),
        ("POST", "/v1/orgs/2/session/connect"),
        ("GET", "/v1/orgs/2/session/qr"),
        ("POST", "/v1/orgs/2/session/logout"),
        ("POST", "/v1/orgs/2/session/reset"),
        ("GET", "/v1/orgs/2/session/history"),
        ("GET", "/v1/orgs/2/messages"),
        ("POST", "/v1/orgs/2/messages"),
        ("GET", "/v1/orgs/2/events"),
        ("GET", "/api/status?org_id=2"),
    ];
    for (m, p) in paths {
        let (st, v) = s.call(m, p, Some(&t4), Some(r#"{"to":"3001112233","text":"x"}"#));
        assert_eq!(st, 403, "{m} {p}: {v}");
        assert_eq!(v["error"]["code"], "forbidden");
        let ghost = p.replace("/2", "/999").replace("org_id=2", "org_id=999");
        let (st2, v2) = s.call(
            m,
            &ghost,
            Some(&t4),
            Some(r#"{"to":"3001112233","text":"x"}"#),
        );
        assert_eq!(
            (st2, &v2),
            (st, &v),
            "{m} {ghost} must not reveal existence"
        );
    }
    let (st, _) = s.call(
        "POST",
        "/api/send-message",
        Some(&t4),
        Some(r#"{"org_id":2,"phone":"3001112233","message":"x"}"#),
    );
    assert_eq!(st, 403);
    // Org 2 cannot read org 4's message by id.
    let (st, _) = s.call("GET", &format!("/v1/orgs/4/messages/{m4}"), Some(&t2), None);
    assert_eq!(st, 403);
    let (st, v) = s.call("GET", "/v1/orgs/2/messages", Some(&t2), None);
    assert_eq!(st, 200);
    assert_eq!(
        v["messages"].as_array().unwrap().len(),
        0,
        "org 2 sees none of org 4's messages"
    );

    // Listing orgs with an org token shows only its own; admin-only actions refuse it.
    let (st, v) = s.call("GET", "/v1/orgs", Some(&t4), None);
    assert_eq!(st, 200);
    let ids: Vec<&str> = v["orgs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["4"]);
    assert_eq!(
        s.call("POST", "/v1/orgs", Some(&t4), Some(r#"{"id":"x"}"#))
            .0,
        403
    );
    assert_eq!(s.call("DELETE", "/v1/orgs/2", Some(&t4), None).0, 403);
    assert_eq!(s.call("DELETE", "/v1/orgs/4", Some(&t4), None).0, 403);

    // Admin reaches both; unknown org is a 404 for the admin.
    assert_eq!(
        s.call("GET", "/v1/orgs/2/session", Some(ADMIN), None).0,
        200
    );
    assert_eq!(
        s.call(
            "GET",
            &format!("/v1/orgs/4/messages/{m4}"),
            Some(ADMIN),
            None
        )
        .0,
        200
    );
    let (st, v) = s.call("GET", "/v1/orgs/999/session", Some(ADMIN), None);
    assert_eq!(st, 404);
    assert_eq!(v["error"]["code"], "org_not_found");

    // Missing or wrong token: 401, whether or not the org exists.
    for p in ["/v1/orgs/4/session", "/v1/orgs/999/session", "/v1/orgs"] {
        let (st, v) = s.call("GET", p, None, None);
        assert_eq!(st, 401, "{p}");
        assert_eq!(v["error"]["code"], "unauthorized");
        assert_eq!(s.call("GET", p, Some("wgo_wrong"), None).0, 401);
    }

    // Deleting org 2 revokes its token.
    assert_eq!(s.call("DELETE", "/v1/orgs/2", Some(ADMIN), None).0, 200);
    assert_eq!(s.call("GET", "/v1/orgs/2/session", Some(&t2), None).0, 401);
}

#[test]
fn bad_input_gets_a_clear_4xx() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(tmp.path());
    let t = s.create_org("4", Some("57"));
    let send = |body: &str| s.call("POST", "/v1/orgs/4/messages", Some(&t), Some(body));

    let cases: Vec<(&str, u16, &str)> = vec![
        ("{not json", 400, "malformed_json"),
        ("[1,2]", 422, "invalid_body"),
        ("\"hola\"", 422, "invalid_body"),
        // `null` carries no fields: the first missing one is named.
        ("null", 422, "invalid_phone"),
        (r#"{"to":"3001112233"}"#, 422, "empty_text"),
        (r#"{"to":"3001112233","text":"   "}"#, 422, "empty_text"),
        (r#"{"to":"3001112233","text":5}"#, 422, "invalid_field"),
        (r#"{"text":"hola"}"#, 422, "invalid_phone"),
        (r#"{"to":"abc","text":"hola"}"#, 422, "invalid_phone"),
        (r#"{"to":"12","text":"hola"}"#, 422, "invalid_phone"),
        (
            r#"{"to":"+1234567890123456","text":"hola"}"#,
            422,
            "invalid_phone",
        ),
        (
            r#"{"to":"3001112233@s.whatsapp.net","text":"hola"}"#,
            422,
            "invalid_phone",
        ),
    ];
    for (body, status, code) in cases {
        let (st, v) = send(body);
        assert_eq!(st, status, "{body}: {v}");
        assert_eq!(v["error"]["code"], code, "{body}");
        assert!(v["error"]["message"].as_str().unwrap().len() > 5);
    }
    // Over 64 KiB: 413.
    let big = format!(
        r#"{{"to":"3001112233","text":"{}"}}"#,
        "a".repeat(70 * 1024)
    );
    let (st, v) = send(&big);
    assert_eq!(st, 413, "{v}");
    assert_eq!(v["error"]["code"], "payload_too_large");

    // Phone normalization: decorations stripped, default country code added.
    let (st, v) = send(r#"{"to":"+57 300-111-2233","text":"hola"}"#);
    assert_eq!((st, v["to"].as_str()), (202, Some("573001112233")));
    let (_, v) = send(r#"{"to":"300 111 2233","text":"hola"}"#);
    assert_eq!(v["to"], "573001112233");

    // Org creation checks.
    let (st, v) = s.call("POST", "/v1/orgs", Some(ADMIN), Some(r#"{"id":"bad id!"}"#));
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (422, Some("invalid_org_id"))
    );
    let (st, v) = s.call("POST", "/v1/orgs", Some(ADMIN), Some(r#"{"id":"4"}"#));
    assert_eq!((st, v["error"]["code"].as_str()), (409, Some("org_exists")));
    let (st, v) = s.call(
        "POST",
        "/v1/orgs",
        Some(ADMIN),
        Some(r#"{"id":"9","default_country_code":"+5x"}"#),
    );
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (422, Some("invalid_country_code"))
    );
    let (st, v) = s.call("POST", "/v1/orgs", Some(ADMIN), Some(r#"{}"#));
    assert_eq!((st, v["error"]["code"].as_str()), (422, Some("missing_id")));

    // Listing parameters.
    for (q, code) in [
        ("limit=0", "invalid_limit"),
        ("limit=1001", "invalid_limit"),
        ("limit=x", "invalid_limit"),
        ("status=nope", "invalid_status"),
        ("cursor=-1", "invalid_cursor"),
    ] {
        let (st, v) = s.call("GET", &format!("/v1/orgs/4/messages?{q}"), Some(&t), None);
        assert_eq!((st, v["error"]["code"].as_str()), (422, Some(code)), "{q}");
    }
    // Unknown message, no QR on offer, bad QR format, unknown route, wrong method.
    assert_eq!(
        s.call("GET", "/v1/orgs/4/messages/msg_nope", Some(&t), None)
            .1["error"]["code"],
        "message_not_found"
    );
    let (st, v) = s.call("GET", "/v1/orgs/4/session/qr", Some(&t), None);
    assert_eq!((st, v["error"]["code"].as_str()), (409, Some("no_qr")));
    let (st, v) = s.call("GET", "/v1/nope", Some(&t), None);
    assert_eq!((st, v["error"]["code"].as_str()), (404, Some("not_found")));
    let (st, v) = s.call("DELETE", "/v1/orgs/4/session", Some(&t), None);
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
    // Pairing code for a bad number.
    let (st, v) = s.call(
        "POST",
        "/v1/orgs/4/session/connect",
        Some(&t),
        Some(r#"{"phone_number":"xyz"}"#),
    );
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (422, Some("invalid_phone"))
    );
    // The server is still fine.
    assert_eq!(s.call("GET", "/healthz", None, None).0, 200);
    assert_eq!(s.call("GET", "/readyz", None, None).0, 200);
}

#[test]
fn idempotency_key_returns_the_first_message_and_refuses_another() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(tmp.path());
    let t = s.create_org("4", Some("57"));
    let body = r#"{"to":"3001112233","text":"recordatorio"}"#;
    let send = |body: &str, key: &str| {
        s.call_h(
            "POST",
            "/v1/orgs/4/messages",
            Some(&t),
            Some(body),
            &[("Idempotency-Key", key)],
        )
    };
    let (st1, a) = send(body, "appt-77");
    // The same request again (a retry): the first message, nothing new.
    let (st2, b) = send(
        r#"{"to":"+57 300 111 2233","text":"recordatorio"}"#,
        "appt-77",
    );
    assert_eq!((st1, st2), (202, 202), "{a} {b}");
    assert_eq!(a["id"], b["id"]);
    // The same key with another message: refused, not silently the first.
    for other in [
        r#"{"to":"3009999999","text":"recordatorio"}"#,
        r#"{"to":"3001112233","text":"otro"}"#,
    ] {
        let (st, v) = send(other, "appt-77");
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (422, Some("idempotency_key_reused")),
            "{v}"
        );
    }
    // Same key as a body field, through the compat endpoint.
    let (_, c) = s.call(
        "POST",
        "/api/send-message",
        Some(&t),
        Some(r#"{"org_id":4,"phone":"3001112233","message":"recordatorio","idempotency_key":"appt-77"}"#),
    );
    assert_eq!(c["message_id"], a["id"]);
    assert_eq!(c["success"], true);
    let (_, list) = s.call("GET", "/v1/orgs/4/messages", Some(&t), None);
    assert_eq!(list["messages"].as_array().unwrap().len(), 1);
    // Keys are counted in characters: 200 two-byte characters are fine.
    let with_key = |n: usize| {
        let body = serde_json::json!({"to": "3001112233", "text": "largo", "idempotency_key": "ñ".repeat(n)});
        s.call(
            "POST",
            "/v1/orgs/4/messages",
            Some(&t),
            Some(&body.to_string()),
        )
    };
    let (st, v) = with_key(200);
    assert_eq!(st, 202, "{v}");
    let (st, v) = with_key(201);
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (422, Some("invalid_idempotency_key"))
    );
}

#[test]
fn compat_status_and_paging() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(tmp.path());
    let t = s.create_org("4", Some("57"));
    let (st, v) = s.call("GET", "/api/status?org_id=4", Some(&t), None);
    assert_eq!(st, 200);
    assert_eq!(v["connected"], false);
    assert_eq!(v["status"], "new");
    assert!(v.get("phone_number").is_some() && v.get("phone").is_some());
    let (st, v) = s.call("GET", "/api/status", Some(&t), None);
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (422, Some("missing_org_id"))
    );

    for i in 0..25 {
        let (st, _) = s.call(
            "POST",
            "/v1/orgs/4/messages",
            Some(&t),
            Some(&format!(r#"{{"to":"3001112233","text":"m{i}"}}"#)),
        );
        assert_eq!(st, 202);
    }
    let mut seen = vec![];
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("?limit=10&cursor={c}"),
            None => "?limit=10".into(),
        };
        let (_, v) = s.call("GET", &format!("/v1/orgs/4/messages{q}"), Some(&t), None);
        for m in v["messages"].as_array().unwrap() {
            seen.push(m["text"].as_str().unwrap().to_string());
        }
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let want: Vec<String> = (0..25).map(|i| format!("m{i}")).collect();
    assert_eq!(seen, want, "paged in acceptance order, each once");
    let (_, v) = s.call(
        "GET",
        "/v1/orgs/4/messages?status=queued&limit=1000",
        Some(&t),
        None,
    );
    assert_eq!(v["messages"].as_array().unwrap().len(), 25);
    let (_, v) = s.call("GET", "/v1/orgs/4/session", Some(&t), None);
    assert_eq!(v["queued_messages"], 25);
}

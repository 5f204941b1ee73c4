//! Requests a hostile reviewer sent: each gets a clear 4xx in the right
//! shape (JSON envelope under `/v1`, a page with the security headers under
//! `/ui`), never a 500, never a hang.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::common::web::get;
use crate::common::{raw, read_until_close, Server, ADMIN};

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into()
}

fn server() -> (tempfile::TempDir, Server, String) {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(tmp.path());
    let t = s.create_org("4", Some("57"));
    (tmp, s, t)
}

#[test]
fn undecodable_paths_and_queries_get_the_json_envelope() {
    let (_d, s, t) = server();
    for path in [
        "/v1/orgs/%ff",
        "/v1/orgs/%ff/session",
        "/v1/orgs/4/messages/%fe%ff",
    ] {
        let (st, v) = s.call("GET", path, Some(ADMIN), None);
        assert_eq!(st, 400, "{path}: {v}");
        assert_eq!(v["error"]["code"], "invalid_path", "{path}: {v}");
    }
    let (st, v) = s.call("GET", "/v1/orgs/4/messages?limit=%ff", Some(&t), None);
    assert!(st == 400 || st == 422, "{st} {v}");
    assert!(v["error"]["code"].is_string(), "{v}");
}

#[test]
fn a_redirect_target_with_a_newline_is_not_a_500() {
    let (_d, s, _) = server();
    for back in [
        "/ui/%0a",
        "/ui/%0d%0aSet-Cookie:%20x=1",
        "/ui/%7f",
        "//evil.example/",
    ] {
        let p = get(
            &format!("{}/ui/lang/es?back={}", s.base, back.replace(' ', "%20")),
            None,
            &[],
        );
        assert_eq!(p.status, 303, "{back}: {}", p.body);
        let to = p.header("location").unwrap_or("");
        assert!(to.starts_with("/ui/"), "{back} → {to}");
        assert!(!to.contains('\n') && !to.contains('\r'));
        assert!(p
            .headers_named("set-cookie")
            .iter()
            .all(|c| !c.starts_with("x=")));
    }
    let p = get(&format!("{}/ui/lang/%ff", s.base), None, &[]);
    assert_eq!(p.status, 404);
}

#[test]
fn every_dashboard_answer_carries_the_security_headers() {
    let (_d, s, _) = server();
    let agent = agent();
    let answers = [
        agent.delete(&format!("{}/ui/login", s.base)).call(),
        agent.put(&format!("{}/ui/orgs/4", s.base)).send_empty(),
        agent.get(&format!("{}/ui/orgs/%ff", s.base)).call(),
        agent.get(&format!("{}/ui/nope", s.base)).call(),
        agent.get(&format!("{}/ui", s.base)).call(),
    ];
    for (i, r) in answers.into_iter().enumerate() {
        let r = r.unwrap();
        let csp = r
            .headers()
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(
            csp.contains("default-src 'none'"),
            "answer {i} ({}) has no CSP",
            r.status()
        );
        assert_eq!(
            r.headers()
                .get("x-frame-options")
                .and_then(|v| v.to_str().ok()),
            Some("DENY"),
            "answer {i}"
        );
    }
}

#[test]
fn a_huge_declared_body_is_refused_before_it_is_read() {
    let (_d, s, t) = server();
    let mut c = raw(&s.addr());
    c.write_all(
        format!(
            "POST /v1/orgs/4/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\nContent-Type: application/json\r\nContent-Length: 99999999999\r\n\r\n{{}}"
        )
        .as_bytes(),
    )
    .unwrap();
    let t0 = Instant::now();
    let (answer, _) = read_until_close(&mut c, Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:?}");
    assert!(answer.contains("payload_too_large"), "{answer}");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    // The dashboard's forms too.
    let mut c = raw(&s.addr());
    c.write_all(b"POST /ui/login HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\ntoken=")
        .unwrap();
    let (answer, _) = read_until_close(&mut c, Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:?}");
}

#[test]
fn the_bearer_scheme_is_case_insensitive() {
    let (_d, s, t) = server();
    let with = |auth: &str| {
        agent()
            .get(&format!("{}/v1/orgs/4/session", s.base))
            .header("Authorization", auth)
            .call()
            .unwrap()
            .status()
            .as_u16()
    };
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        assert_eq!(with(&format!("{scheme} {t}")), 200, "{scheme}");
    }
    for bad in ["Basic abc", "Bearer", "Bearer    ", "Token x"] {
        assert_eq!(with(bad), 401, "{bad}");
    }
}

#[test]
fn json_numbers_are_not_phone_numbers() {
    let (_d, s, t) = server();
    let cases = [
        ("/v1/orgs/4/messages", r#"{"to":-3001112233,"text":"hola"}"#),
        ("/v1/orgs/4/messages", r#"{"to":3001112233,"text":"hola"}"#),
        ("/v1/orgs/4/messages", r#"{"to":3.5e9,"text":"hola"}"#),
        (
            "/api/send-message",
            r#"{"org_id":4,"phone":-3001112233,"message":"hola"}"#,
        ),
        (
            "/v1/orgs/4/session/connect",
            r#"{"phone_number":573001112233}"#,
        ),
    ];
    for (path, body) in cases {
        let (st, v) = s.call("POST", path, Some(&t), Some(body));
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (422, Some("invalid_phone")),
            "{path} {body}: {v}"
        );
    }
    let (_, list) = s.call("GET", "/v1/orgs/4/messages", Some(&t), None);
    assert_eq!(list["messages"].as_array().unwrap().len(), 0);
}

#[test]
fn org_ids_start_with_a_letter_or_digit() {
    let (_d, s, _) = server();
    for id in ["-4", "_x", "--help", "-"] {
        let (st, v) = s.call(
            "POST",
            "/v1/orgs",
            Some(ADMIN),
            Some(&format!(r#"{{"id":"{id}"}}"#)),
        );
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (422, Some("invalid_org_id")),
            "{id}: {v}"
        );
    }
    let (st, _) = s.call("POST", "/v1/orgs", Some(ADMIN), Some(r#"{"id":"a-_1"}"#));
    assert_eq!(st, 201);
}

/// Made-up request methods, without a token, cannot grow `/metrics`: every
/// method outside the standard ones is counted as `other`.
#[test]
fn made_up_methods_do_not_make_metric_series() {
    let (_d, s, _t) = server();
    for i in 0..200 {
        let mut c = raw(&s.addr());
        write!(
            c,
            "MADEUP{i} /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let _ = read_until_close(&mut c, Duration::from_secs(5));
    }
    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
    let text = agent
        .get(&format!("{}/metrics", s.base))
        .header("Authorization", &format!("Bearer {ADMIN}"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let methods: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("wagate_http_requests"))
        .filter_map(|l| l.split("method=\"").nth(1)?.split('"').next())
        .collect();
    assert!(methods.contains("other"), "{methods:?}");
    assert!(
        !methods.iter().any(|m| m.starts_with("MADEUP")),
        "{methods:?}"
    );
    assert!(methods.len() <= 8, "{methods:?}");
    println!("/metrics is {} bytes after 200 made-up methods", text.len());
}

/// Control characters in a text or a name are refused (422, naming the
/// field); tab, newline and carriage return are not. A body that names a
/// field twice is refused too, instead of silently taking the last.
#[test]
fn control_characters_and_repeated_fields_are_refused() {
    let (_d, s, t) = server();
    for (path, body, field) in [
        (
            "/v1/orgs/4/messages",
            r#"{"to": "3001112233", "text": "hola\u0000"}"#,
            "text",
        ),
        (
            "/v1/orgs/4/messages",
            r#"{"to": "3001112233", "text": "a\u001bb"}"#,
            "text",
        ),
        ("/v1/orgs", r#"{"id": "5", "name": "Óptica\u0007"}"#, "name"),
    ] {
        let token = if path == "/v1/orgs" { ADMIN } else { &t };
        let (st, v) = s.call("POST", path, Some(token), Some(body));
        assert_eq!(st, 422, "{body}: {v}");
        assert_eq!(v["error"]["code"], "invalid_field", "{v}");
        let msg = v["error"]["message"].as_str().unwrap_or("");
        assert!(msg.contains(&format!("'{field}'")), "{msg}");
    }
    let (st, v) = s.call(
        "POST",
        "/v1/orgs/4/messages",
        Some(&t),
        Some(r#"{"to": "3001112233", "text": "Línea 1\r\nLínea 2\tfin"}"#),
    );
    assert_eq!(st, 202, "{v}");
    let (st, v) = s.call(
        "POST",
        "/v1/orgs/4/messages",
        Some(&t),
        Some(r#"{"to": "3001112233", "to": "3009999999", "text": "x"}"#),
    );
    assert_eq!(st, 422, "{v}");
    assert_eq!(v["error"]["code"], "invalid_body", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("'to' appears twice"),
        "{v}"
    );
    // The org was not made, nor the messages sent.
    let (st, _) = s.call("GET", "/v1/orgs/5", Some(ADMIN), None);
    assert_eq!(st, 404);
    let (_, list) = s.call("GET", "/v1/orgs/4/messages", Some(&t), None);
    assert_eq!(list["messages"].as_array().map(Vec::len), Some(1), "{list}");
}

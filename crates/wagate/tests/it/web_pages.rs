//! The dashboard over plain HTTP against the real binary (offline): sign-in
//! and its cookie, expiry, CSRF, one org's token against another org's page,
//! language choice, security headers, and that no page carries a token.

use crate::common::web::{get, post_form, post_raw, sign_in};
use crate::common::{Server, ADMIN};

fn server() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    (dir, s)
}

#[test]
fn sign_in_sets_an_httponly_strict_cookie_and_pages_never_carry_the_token() {
    let (_d, s) = server();
    let token = s.create_org("clinic", Some("57"));
    let p = post_form(
        &format!("{}/ui/login", s.base),
        None,
        &[("token", &token)],
        &[],
    );
    assert_eq!(p.status, 303);
    assert_eq!(p.header("location"), Some("/ui/"));
    let set = p
        .headers_named("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("wagate_session="))
        .expect("session cookie")
        .to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(set.contains(attr), "{attr} missing in {set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP must still work: {set}");
    let cookie = p.cookie("wagate_session").unwrap();

    // An org token lands on its own page.
    let home = get(&format!("{}/ui/", s.base), Some(&cookie), &[]);
    assert_eq!(home.status, 303);
    assert_eq!(home.header("location"), Some("/ui/orgs/clinic"));
    let org = get(&format!("{}/ui/orgs/clinic", s.base), Some(&cookie), &[]);
    assert_eq!(org.status, 200);
    assert!(org.body.contains("data-state=\"new\""), "{}", org.body);
    assert!(!org.body.contains(&token), "the page shows the token");
    assert!(!org.body.contains(&token[4..20]));

    // Behind an HTTPS proxy the cookie is Secure.
    let p = post_form(
        &format!("{}/ui/login", s.base),
        None,
        &[("token", &token)],
        &[("X-Forwarded-Proto", "https")],
    );
    assert!(p
        .headers_named("set-cookie")
        .iter()
        .any(|c| c.contains("; Secure")));
}

#[test]
fn a_bad_token_shows_the_sign_in_page_with_a_clear_message() {
    let (_d, s) = server();
    let wrong = "wgo_0123456789abcdef_wrong";
    let p = post_form(
        &format!("{}/ui/login", s.base),
        None,
        &[("token", wrong)],
        &[],
    );
    assert_eq!(p.status, 401);
    assert!(p.body.contains("That token is not valid"), "{}", p.body);
    assert!(!p.body.contains(wrong), "the page echoes the token");
    assert!(p.cookie("wagate_session").is_none());

    let p = post_form(
        &format!("{}/ui/login", s.base),
        None,
        &[("token", "  ")],
        &[],
    );
    assert_eq!(p.status, 422);
    assert!(p.body.contains("Paste a token"));

    // Garbage bodies: still the sign-in page, never a crash or a trace.
    for body in [&b"%%%"[..], &b"token=%FF%FE"[..], &[0xff, 0x00, 0x10][..]] {
        let p = post_raw(&format!("{}/ui/login", s.base), None, body, &[]);
        assert!(
            p.status == 422 || p.status == 401,
            "{} {}",
            p.status,
            p.body
        );
        assert!(p.body.contains("<form"), "{}", p.body);
        assert!(!p.body.to_lowercase().contains("panicked"));
    }
}

#[test]
fn an_expired_or_invalid_session_goes_back_to_sign_in_with_a_message() {
    let (_d, s) = server();
    let token = s.create_org("clinic", Some("57"));
    let now = chrono_now();
    let cases = [
        format!("wagate_session={}.{token}", now - 13 * 3600), // older than 12 h
        format!("wagate_session={now}.wgo_no_such_token"),     // revoked / wrong
        "wagate_session=garbage".to_string(),
        format!("wagate_session=.{token}"),
    ];
    for c in &cases {
        let p = get(&format!("{}/ui/orgs/clinic", s.base), Some(c), &[]);
        assert_eq!(p.status, 303, "{c}");
        assert_eq!(p.header("location"), Some("/ui/login?m=expired"), "{c}");
        assert!(p
            .headers_named("set-cookie")
            .iter()
            .any(|v| v.starts_with("wagate_session=;") && v.contains("Max-Age=0")));
    }
    let login = get(&format!("{}/ui/login?m=expired", s.base), None, &[]);
    assert_eq!(login.status, 200);
    assert!(
        login.body.contains("Your session has expired"),
        "{}",
        login.body
    );

    // The org is deleted while signed in: its token stops working.
    let cookie = sign_in(&s.base, &token);
    let (st, _) = s.call("DELETE", "/v1/orgs/clinic", Some(ADMIN), None);
    assert_eq!(st, 200);
    let p = get(&format!("{}/ui/orgs/clinic", s.base), Some(&cookie), &[]);
    assert_eq!(p.header("location"), Some("/ui/login?m=expired"));
}

#[test]
fn the_cookie_holds_a_sign_in_kept_on_the_server_never_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let token = s.create_org("clinic", Some("57"));
    let cookie = sign_in(&s.base, &token);
    let value = cookie.trim_start_matches("wagate_session=");
    assert!(
        !value.contains(&token) && !value.contains(&token[4..]),
        "{cookie}"
    );
    assert!(!value.contains('.'), "no date to re-write: {cookie}");
    let page = get(&format!("{}/ui/orgs/clinic", s.base), Some(&cookie), &[]);
    assert_eq!(page.status, 200);

    // The old format (a date and the token) is no way in, whatever the date.
    let forged = format!("wagate_session={}.{token}", chrono_now() + 3600);
    let p = get(&format!("{}/ui/orgs/clinic", s.base), Some(&forged), &[]);
    assert_eq!(p.header("location"), Some("/ui/login?m=expired"));

    // Signing out ends the sign-in on the server: a copy of the cookie is dead.
    let out = post_form(
        &format!("{}/ui/logout", s.base),
        Some(&cookie),
        &[("csrf", &page.csrf().unwrap())],
        &[],
    );
    assert_eq!(out.status, 303);
    let p = get(&format!("{}/ui/orgs/clinic", s.base), Some(&cookie), &[]);
    assert_eq!(p.header("location"), Some("/ui/login?m=expired"));

    // Expiry is the server's: past it, the cookie opens nothing.
    let cookie = sign_in(&s.base, &token);
    crate::common::db(dir.path())
        .execute("UPDATE signins SET expires_ms = 1", [])
        .unwrap();
    let p = get(&format!("{}/ui/orgs/clinic", s.base), Some(&cookie), &[]);
    assert_eq!(p.header("location"), Some("/ui/login?m=expired"));
    // The admin's sign-in, too, lives on the server.
    let admin = sign_in(&s.base, ADMIN);
    assert!(!admin.contains(ADMIN));
    assert_eq!(
        get(&format!("{}/ui/", s.base), Some(&admin), &[]).status,
        200
    );
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn another_orgs_token_cannot_see_or_act_on_this_orgs_page() {
    let (_d, s) = server();
    let _a = s.create_org("alpha", Some("57"));
    let b = s.create_org("beta", Some("57"));
    let cookie = sign_in(&s.base, &b);
    let own = get(&format!("{}/ui/orgs/beta", s.base), Some(&cookie), &[]);
    let csrf = own.csrf().expect("csrf field");

    for path in ["/ui/orgs/alpha", "/ui/orgs/nobody"] {
        let p = get(&format!("{}{path}", s.base), Some(&cookie), &[]);
        assert_eq!(p.status, 403, "{path}");
        assert!(p.body.contains("This token cannot open that organization"));
        assert!(!p.body.contains("Org alpha"), "leaks the other org's name");
    }
    for path in ["/ui/orgs/alpha/events", "/ui/orgs/alpha/qr.svg"] {
        assert_eq!(
            get(&format!("{}{path}", s.base), Some(&cookie), &[]).status,
            403,
            "{path}"
        );
    }
    assert_eq!(
        get(&format!("{}/ui/overview.json", s.base), Some(&cookie), &[]).status,
        403
    );
    for (action, fields) in [
        ("send", vec![("to", "3001112233"), ("text", "hola")]),
        ("connect", vec![]),
        ("pair-code", vec![("phone", "573001112233")]),
        ("logout", vec![("confirm", "yes")]),
        ("reset", vec![("confirm", "yes")]),
    ] {
        let mut f = fields.clone();
        f.push(("csrf", &csrf));
        let p = post_form(
            &format!("{}/ui/orgs/alpha/{action}", s.base),
            Some(&cookie),
            &f,
            &[],
        );
        assert_eq!(p.status, 403, "{action}: {}", p.body);
    }
    let (_, msgs) = s.call("GET", "/v1/orgs/alpha/messages", Some(ADMIN), None);
    assert_eq!(msgs["messages"].as_array().unwrap().len(), 0);
    let (_, st) = s.call("GET", "/v1/orgs/alpha/session", Some(ADMIN), None);
    assert_eq!(st["state"], "new", "the other org was not touched");
}

#[test]
fn forms_need_the_csrf_field_and_a_same_origin_post() {
    let (_d, s) = server();
    let token = s.create_org("clinic", Some("57"));
    let cookie = sign_in(&s.base, &token);
    let page = get(&format!("{}/ui/orgs/clinic", s.base), Some(&cookie), &[]);
    let csrf = page.csrf().unwrap();
    let url = format!("{}/ui/orgs/clinic/send", s.base);
    let fields = [("to", "3001112233"), ("text", "hola")];

    let p = post_form(&url, Some(&cookie), &fields, &[]);
    assert_eq!(p.status, 403, "no csrf field");
    assert!(p.body.contains("Reload the page"));
    let mut with_bad = fields.to_vec();
    with_bad.push(("csrf", "0000"));
    assert_eq!(post_form(&url, Some(&cookie), &with_bad, &[]).status, 403);
    let mut good = fields.to_vec();
    good.push(("csrf", &csrf));
    let host = s.base.trim_start_matches("http://").to_string();
    let p = post_form(
        &url,
        Some(&cookie),
        &good,
        &[("Origin", "http://evil.example")],
    );
    assert_eq!(p.status, 403, "cross-site post");
    let (_, msgs) = s.call("GET", "/v1/orgs/clinic/messages", Some(ADMIN), None);
    assert_eq!(msgs["messages"].as_array().unwrap().len(), 0);

    let p = post_form(
        &url,
        Some(&cookie),
        &good,
        &[("Origin", &format!("http://{host}"))],
    );
    assert_eq!(p.status, 303, "{}", p.body);
    let loc = p.header("location").unwrap().to_string();
    assert!(
        loc.starts_with("/ui/orgs/clinic?ok=sent&sent=msg_"),
        "{loc}"
    );
    let (_, msgs) = s.call("GET", "/v1/orgs/clinic/messages", Some(ADMIN), None);
    assert_eq!(msgs["messages"][0]["to"], "573001112233");
    let back = get(&format!("{}{loc}", s.base), Some(&cookie), &[]);
    assert!(back.body.contains("Message queued."));
    assert!(back.body.contains("class=\"highlight\""));

    // A bad number comes back as a sentence on the page, not a JSON error.
    let mut bad = vec![("to", "12ab"), ("text", "hola")];
    bad.push(("csrf", &csrf));
    let p = post_form(&url, Some(&cookie), &bad, &[]);
    assert_eq!(
        p.header("location"),
        Some("/ui/orgs/clinic?e=invalid_phone")
    );
    let shown = get(
        &format!("{}/ui/orgs/clinic?e=invalid_phone", s.base),
        Some(&cookie),
        &[],
    );
    assert!(shown.body.contains("That phone number is not valid"));
    // An error code that is not ours shows the generic sentence.
    let odd = get(
        &format!("{}/ui/orgs/clinic?e=%3Cscript%3E", s.base),
        Some(&cookie),
        &[],
    );
    assert!(!odd.body.contains("<script>"));
}

#[test]
fn logout_and_reset_ask_for_confirmation_first() {
    let (_d, s) = server();
    let token = s.create_org("clinic", Some("57"));
    let cookie = sign_in(&s.base, &token);
    let page = get(&format!("{}/ui/orgs/clinic", s.base), Some(&cookie), &[]);
    let csrf = page.csrf().unwrap();
    for what in ["logout", "reset"] {
        let url = format!("{}/ui/orgs/clinic/{what}", s.base);
        let p = post_form(&url, Some(&cookie), &[("csrf", &csrf)], &[]);
        assert_eq!(p.status, 303);
        let loc = p.header("location").unwrap().to_string();
        assert_eq!(loc, format!("/ui/orgs/clinic?confirm={what}#danger-card"));
        let ask = get(
            &format!("{}/ui/orgs/clinic?confirm={what}", s.base),
            Some(&cookie),
            &[],
        );
        assert!(ask.body.contains("id=\"confirm-question\""));
        assert!(ask.body.contains("name=\"confirm\" value=\"yes\""));
        let p = post_form(
            &url,
            Some(&cookie),
            &[("csrf", &csrf), ("confirm", "yes")],
            &[],
        );
        assert_eq!(
            p.header("location"),
            Some(format!("/ui/orgs/clinic?ok={what}").as_str())
        );
    }
    // Both were carried out: the logout and the fresh pairing show in the
    // history (written by the event log a moment later).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (_, hist) = s.call("GET", "/v1/orgs/clinic/session/history", Some(ADMIN), None);
        let states: Vec<&str> = hist["changes"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["state"].as_str())
            .collect();
        if states.contains(&"logged_out") && states.contains(&"connecting") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{hist}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn language_follows_accept_language_and_the_switch() {
    let (_d, s) = server();
    let token = s.create_org("clinic", Some("57"));
    s.wait_status("clinic", &token, std::time::Duration::from_secs(20), |v| {
        v["reason"]["code"] == "not_linked"
    });
    let cookie = sign_in(&s.base, &token);
    let url = format!("{}/ui/orgs/clinic", s.base);
    let es = get(
        &url,
        Some(&cookie),
        &[("Accept-Language", "es-CO,es;q=0.9,en;q=0.5")],
    );
    assert!(es.body.contains("<html lang=\"es\">"));
    assert!(es.body.contains("Sin vincular"), "Spanish badge");
    // Why the link is where it is: worded in Spanish from the state's reason,
    // never the API's English sentence.
    assert!(
        es.body.contains("id=\"detail\">Aún no vinculado.</p>"),
        "{}",
        es.body
    );
    assert!(
        !es.body.contains("Not linked yet"),
        "English detail on a Spanish page"
    );
    assert!(es.body.contains("Enviar un mensaje de prueba"));
    let en = get(
        &url,
        Some(&cookie),
        &[("Accept-Language", "en-US,en;q=0.9")],
    );
    assert!(en.body.contains("<html lang=\"en\">"));
    assert!(en.body.contains("Not linked"));

    let sw = get(
        &format!("{}/ui/lang/en?back=/ui/orgs/clinic", s.base),
        None,
        &[],
    );
    assert_eq!(sw.status, 303);
    assert_eq!(sw.header("location"), Some("/ui/orgs/clinic"));
    let lang = sw.cookie("wagate_lang").unwrap();
    assert_eq!(lang, "wagate_lang=en");
    let both = format!("{cookie}; {lang}");
    let p = get(&url, Some(&both), &[("Accept-Language", "es-CO")]);
    assert!(
        p.body.contains("<html lang=\"en\">"),
        "the switch wins over the browser"
    );

    // Never an open redirect.
    for back in [
        "//evil.example/x",
        "https://evil.example/",
        "/v1/orgs",
        "/ui/\\evil",
    ] {
        let p = get(&format!("{}/ui/lang/es?back={back}", s.base), None, &[]);
        assert_eq!(p.header("location"), Some("/ui/"), "{back}");
    }
    assert_eq!(
        get(&format!("{}/ui/lang/fr", s.base), None, &[]).status,
        404
    );
}

#[test]
fn every_page_has_a_strict_csp_and_no_inline_script_or_style() {
    let (_d, s) = server();
    s.create_org("clinic", Some("57"));
    let admin = sign_in(&s.base, ADMIN);
    for (path, cookie) in [
        ("/ui/login", None),
        ("/ui/", Some(admin.as_str())),
        ("/ui/orgs/clinic", Some(admin.as_str())),
        ("/ui/orgs/clinic?confirm=reset", Some(admin.as_str())),
    ] {
        let p = get(&format!("{}{path}", s.base), cookie, &[]);
        assert_eq!(p.status, 200, "{path}");
        let csp = p.header("content-security-policy").expect("CSP");
        for d in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(d), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(p.header("x-frame-options"), Some("DENY"));
        assert_eq!(p.header("cache-control"), Some("no-store"));
        // Scripts only by src, plus the words block (JSON, never run).
        let scripts = p.body.matches("<script").count();
        let allowed = p.body.matches("<script src=\"/ui/assets/app.js\"").count()
            + p.body
                .matches("<script id=\"words\" type=\"application/json\">")
                .count();
        assert_eq!(scripts, allowed, "{path}");
        assert!(!p.body.contains(" style="), "{path}: inline style");
        assert!(!p.body.contains(" onclick="), "{path}");
        assert!(
            !p.body.contains("http://") && !p.body.contains("https://"),
            "{path}: an outside URL"
        );
    }
    let missing = get(&format!("{}/ui/no/such/page", s.base), None, &[]);
    assert_eq!(missing.status, 404);
    assert!(missing.body.contains("There is no such page."));
    assert!(missing.header("content-security-policy").is_some());
    let js = get(&format!("{}/ui/assets/app.js", s.base), None, &[]);
    assert_eq!(js.status, 200);
    assert!(js
        .header("content-type")
        .unwrap()
        .starts_with("text/javascript"));
    let css = get(&format!("{}/ui/assets/app.css", s.base), None, &[]);
    assert!(css.header("content-type").unwrap().starts_with("text/css"));
}

#[test]
fn the_admin_overview_lists_every_org_with_its_state_and_queue() {
    let (_d, s) = server();
    let a = s.create_org("alpha", Some("57"));
    s.create_org("beta", Some("57"));
    let (st, _) = s.call(
        "POST",
        "/v1/orgs/alpha/messages",
        Some(&a),
        Some(r#"{"to":"3001112233","text":"hola"}"#),
    );
    assert_eq!(st, 202);
    let admin = sign_in(&s.base, ADMIN);
    let p = get(&format!("{}/ui/", s.base), Some(&admin), &[]);
    assert_eq!(p.status, 200);
    assert!(p.body.contains("data-org=\"alpha\"") && p.body.contains("data-org=\"beta\""));
    let alpha_row = &p.body[p.body.find("data-org=\"alpha\"").unwrap()..];
    let alpha_row = &alpha_row[..alpha_row.find("</tr>").unwrap()];
    assert!(alpha_row.contains("data-state=\"new\""), "{alpha_row}");
    assert!(
        alpha_row.contains("<td class=\"num queued\">1</td>"),
        "{alpha_row}"
    );
    let j = get(&format!("{}/ui/overview.json", s.base), Some(&admin), &[]);
    assert_eq!(j.status, 200);
    let v: serde_json::Value = serde_json::from_str(&j.body).unwrap();
    assert_eq!(v["orgs"].as_array().unwrap().len(), 2);
    // An org token may not see the overview.
    let org_cookie = sign_in(&s.base, &a);
    assert_eq!(
        get(
            &format!("{}/ui/overview.json", s.base),
            Some(&org_cookie),
            &[]
        )
        .status,
        403
    );
    // Signing out clears the cookie.
    let page = get(&format!("{}/ui/orgs/alpha", s.base), Some(&org_cookie), &[]);
    let out = post_form(
        &format!("{}/ui/logout", s.base),
        Some(&org_cookie),
        &[("csrf", &page.csrf().unwrap())],
        &[],
    );
    assert_eq!(out.header("location"), Some("/ui/login?m=out"));
    assert!(out
        .headers_named("set-cookie")
        .iter()
        .any(|c| c.contains("Max-Age=0")));
}

#[test]
fn a_scheduled_message_shows_its_due_time_and_can_be_canceled_from_the_page() {
    let (_d, s) = server();
    let token = s.create_org("clinic", Some("57"));
    let at = crate::common::now_ms() + 3_600_000;
    let (st, m) = s.call(
        "POST",
        "/v1/orgs/clinic/messages",
        Some(&token),
        Some(&serde_json::json!({"to": "3001112233", "text": "cita", "send_at": at}).to_string()),
    );
    assert_eq!(st, 202, "{m}");
    let id = m["id"].as_str().unwrap().to_string();
    let cookie = sign_in(&s.base, &token);
    let page = get(
        &format!("{}/ui/orgs/clinic", s.base),
        Some(&cookie),
        &[("Accept-Language", "es")],
    );
    assert!(
        page.body.contains("data-status=\"scheduled\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("programado"));
    assert!(page.body.contains("class=\"due\""), "the due time is shown");
    assert!(page.body.contains(&format!("name=\"id\" value=\"{id}\"")));
    let csrf = page.csrf().unwrap();
    let url = format!("{}/ui/orgs/clinic/cancel", s.base);
    let p = post_form(&url, Some(&cookie), &[("csrf", &csrf), ("id", &id)], &[]);
    assert_eq!(p.status, 303);
    assert_eq!(
        p.header("location"),
        Some(format!("/ui/orgs/clinic?ok=cancel#m-{id}").as_str())
    );
    let (_, m) = s.call(
        "GET",
        &format!("/v1/orgs/clinic/messages/{id}"),
        Some(&token),
        None,
    );
    assert_eq!(m["status"], "canceled");
    // A second cancel: the page says why, in Spanish.
    let p = post_form(&url, Some(&cookie), &[("csrf", &csrf), ("id", &id)], &[]);
    let loc = p.header("location").unwrap().to_string();
    assert_eq!(loc, "/ui/orgs/clinic?e=not_cancelable");
    let shown = get(
        &format!("{}{loc}", s.base),
        Some(&cookie),
        &[("Accept-Language", "es")],
    );
    assert!(
        shown.body.contains("ya no se puede cancelar"),
        "{}",
        shown.body
    );
    // Without the CSRF field nothing happens.
    let p = post_form(&url, Some(&cookie), &[("id", &id)], &[]);
    assert_ne!(p.status, 303);
}

#[test]
fn the_sending_policy_is_edited_from_the_org_page_and_a_bad_value_is_named() {
    let (_d, s) = server();
    let token = s.create_org("clinic", Some("57"));
    let cookie = sign_in(&s.base, &token);
    let page = get(
        &format!("{}/ui/orgs/clinic", s.base),
        Some(&cookie),
        &[("Accept-Language", "es")],
    );
    assert!(page.body.contains("id=\"policy-card\""), "{}", page.body);
    assert!(page.body.contains("Política de envío"));
    assert!(page.body.contains("id=\"scheduled\"") || page.body.contains("id=\"no-waiting\""));
    let csrf = page.csrf().unwrap();
    let url = format!("{}/ui/orgs/clinic/policy", s.base);
    let form = |min: &'static str, tz: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("min_gap_s", min.to_string()),
            ("max_gap_s", "90".to_string()),
            ("hourly_cap", "".to_string()),
            ("daily_cap", "300".to_string()),
            ("new_contacts_per_day", "20".to_string()),
            ("quiet_start", "20:30".to_string()),
            ("quiet_end", "07:45".to_string()),
            ("timezone", tz.to_string()),
        ]
    };
    let fields = form("45", "America/Bogota");
    let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let p = post_form(&url, Some(&cookie), &pairs, &[]);
    assert_eq!(p.status, 303);
    assert_eq!(
        p.header("location"),
        Some("/ui/orgs/clinic?ok=policy#policy-card")
    );
    let (_, pol) = s.call("GET", "/v1/orgs/clinic/sending-policy", Some(&token), None);
    assert_eq!(pol["min_gap_ms"], 45_000, "{pol}");
    assert_eq!(pol["max_gap_ms"], 90_000, "{pol}");
    assert!(pol["hourly_cap"].is_null(), "empty is no cap: {pol}");
    assert_eq!(pol["daily_cap"], 300);
    assert_eq!(pol["new_contacts_per_day"], 20);
    assert_eq!(pol["quiet_hours"]["start"], "20:30");
    assert_eq!(pol["typing"], false, "an unticked box turns typing off");
    // The page shows what was saved.
    let page = get(&format!("{}/ui/orgs/clinic", s.base), Some(&cookie), &[]);
    assert!(page.body.contains("value=\"45\""), "{}", page.body);
    assert!(page.body.contains("value=\"20:30\""));
    // A minimum over the maximum and an unknown zone are refused, by name,
    // and nothing changes.
    for (min, tz, field) in [
        ("120", "America/Bogota", "min_gap_ms"),
        ("45", "Mars/Olympus", "timezone"),
        ("-3", "UTC", "min_gap_ms"),
    ] {
        let fields = form(min, tz);
        let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let p = post_form(&url, Some(&cookie), &pairs, &[]);
        assert_eq!(p.status, 303);
        let loc = p.header("location").unwrap().to_string();
        assert_eq!(
            loc,
            format!("/ui/orgs/clinic?e=invalid_policy&f={field}#policy-card")
        );
        let shown = get(
            &format!("{}{loc}", s.base),
            Some(&cookie),
            &[("Accept-Language", "es")],
        );
        assert!(shown.body.contains("no se guardó"), "{}", shown.body);
        assert!(shown.body.contains(&format!("({field})")));
    }
    let (_, after) = s.call("GET", "/v1/orgs/clinic/sending-policy", Some(&token), None);
    assert_eq!(after, pol, "refused changes leave the policy as it was");
}

#[test]
fn the_org_page_lists_webhooks_with_their_deliveries_and_retries_one() {
    let d = tempfile::tempdir().unwrap();
    let s = Server::start_args(d.path(), &["--offline", "--webhook-allow", "127.0.0.1"]);
    let token = s.create_org("clinic", Some("57"));
    let cookie = sign_in(&s.base, &token);
    let page = get(&format!("{}/ui/orgs/clinic", s.base), Some(&cookie), &[]);
    assert!(page.body.contains("id=\"no-webhooks\""), "{}", page.body);
    // A receiver that is not there: every delivery fails and waits.
    let (st, hook) = s.call(
        "POST",
        "/v1/orgs/clinic/webhooks",
        Some(&token),
        Some(
            &serde_json::json!({"url": "http://127.0.0.1:9/hook", "events": ["message.status"]})
                .to_string(),
        ),
    );
    assert_eq!(st, 201, "{hook}");
    let id = hook["id"].as_str().unwrap().to_string();
    let (st, _) = s.call(
        "POST",
        "/v1/orgs/clinic/messages",
        Some(&token),
        Some(&serde_json::json!({"to": "3001112233", "text": "cita"}).to_string()),
    );
    assert_eq!(st, 202);
    let t0 = std::time::Instant::now();
    let page = loop {
        let page = get(
            &format!("{}/ui/orgs/clinic", s.base),
            Some(&cookie),
            &[("Accept-Language", "es")],
        );
        if page.body.contains("data-status=\"pending\"") && page.body.contains("127.0.0.1:9") {
            break page;
        }
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(10),
            "{}",
            page.body
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(page.body.contains(&format!("id=\"w-{id}\"")));
    assert!(
        page.body.contains("Enviar de nuevo"),
        "a retry button in Spanish"
    );
    assert!(
        !page.body.contains("whsec_"),
        "the secret is never on the page"
    );
    let csrf = page.csrf().unwrap();
    let seq = page
        .body
        .split("name=\"delivery\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a delivery to retry")
        .to_string();
    let url = format!("{}/ui/orgs/clinic/webhooks/{id}/retry", s.base);
    let p = post_form(
        &url,
        Some(&cookie),
        &[("csrf", &csrf), ("delivery", &seq)],
        &[],
    );
    assert_eq!(p.status, 303);
    assert_eq!(
        p.header("location"),
        Some("/ui/orgs/clinic?ok=retry#webhooks-card")
    );
    let p = post_form(
        &url,
        Some(&cookie),
        &[("csrf", &csrf), ("delivery", "999999")],
        &[],
    );
    assert_eq!(
        p.header("location"),
        Some("/ui/orgs/clinic?e=delivery_not_found")
    );
    // Without the CSRF field nothing happens.
    let p = post_form(&url, Some(&cookie), &[("delivery", &seq)], &[]);
    assert_ne!(p.status, 303);
}

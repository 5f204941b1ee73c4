//! The dashboard in a real browser (headless Chromium through chromedriver)
//! against the real gateway and wa-sim: sign in, see a QR code, have a
//! simulated phone scan the QR read off the page's pixels, watch the page turn
//! to "connected" by itself, send a test message and watch it reach
//! "delivered", then blackhole the link and watch the badge leave
//! "connected". Screenshots of each step go to
//! `<target>/tmp/e2e-artifacts/dashboard*/`.

use std::time::{Duration, Instant};

use crate::common::sim::start_sim;
use crate::common::webdriver::{decode_qr, Artifacts, Browser};
use crate::common::{control, Server};
use serde_json::json;

struct World {
    _rt: tokio::runtime::Runtime,
    wa: wa_sim::Running,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
    s: Server,
}

fn world() -> World {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sim_dir = tempfile::tempdir().unwrap();
    let wa = start_sim(&rt, sim_dir.path());
    let data = tempfile::tempdir().unwrap();
    let s = Server::start_sim(data.path(), &wa.ws_url());
    World {
        _rt: rt,
        wa,
        _dirs: (sim_dir, data),
        s,
    }
}

impl World {
    fn ctl(&self) -> String {
        self.wa.control_url()
    }

    fn add_phone(&self, phone: &str) {
        let (st, v) = control(
            &self.ctl(),
            "POST",
            "/control/phones",
            Some(json!({"phone": phone, "name": format!("Phone {phone}")})),
        );
        assert_eq!(st, 201, "{v}");
    }
}

fn state(b: &Browser) -> String {
    b.attr("#status-card .badge", "data-state")
        .unwrap_or_default()
}

/// The QR the page shows, read from its pixels once the image has loaded.
fn qr_on_page(b: &Browser) -> String {
    let mut last = None;
    b.wait_until(Duration::from_secs(20), "a readable QR image", |b| {
        let loaded = b.exec(
            "const i = document.getElementById('qr'); \
             return !!i && i.complete && i.naturalWidth > 0 && !document.getElementById('qr-box').hidden;",
        );
        if loaded != true {
            return false;
        }
        last = decode_qr(&b.element_png("#qr"));
        last.is_some()
    });
    last.expect("decoded")
}

#[test]
fn link_by_qr_send_and_see_the_truth_in_a_real_browser() {
    let w = world();
    let clinic_phone = "573005550001";
    let patient = "573005550002";
    w.add_phone(clinic_phone);
    w.add_phone(patient);
    let token = w.s.create_org("optica", Some("57"));
    let shots = Artifacts::new("dashboard");
    let b = Browser::start("en-US,en");

    // 1. Sign in.
    b.goto(&format!("{}/ui/", w.s.base));
    assert!(
        b.current_url().ends_with("/ui/login"),
        "{}",
        b.current_url()
    );
    shots.shot(&b, "sign-in");
    b.type_into("#token", &token);
    b.click("#signin");
    b.wait_until(Duration::from_secs(10), "the org page", |b| {
        b.current_url().ends_with("/ui/orgs/optica")
    });
    assert_eq!(state(&b), "new");
    assert!(!b.source().contains(&token), "the page carries the token");
    shots.shot(&b, "org-not-linked");

    // 2. Ask for a QR code; it appears without reloading the page.
    b.click("#connect");
    b.wait_until(Duration::from_secs(10), "the page after the click", |b| {
        b.current_url().contains("ok=connect")
            && b.exec("return document.readyState;") == "complete"
    });
    // From here on the page must change by itself: mark it, and check the
    // mark is still there (no reload) at each step.
    b.exec("window.__samePage = 'yes'; return null;");
    let qr = qr_on_page(&b);
    assert_eq!(
        b.exec("return window.__samePage || null;"),
        "yes",
        "the page reloaded"
    );
    assert!(b.displayed("#qr-countdown"));
    assert!(
        b.text("#qr-countdown").contains("This code changes in"),
        "{}",
        b.text("#qr-countdown")
    );
    shots.shot(&b, "qr-on-offer");

    // 3. The simulated phone scans the QR read off the screen.
    let scanned = Instant::now();
    let (st, v) = control(
        &w.ctl(),
        "POST",
        &format!("/control/phones/{clinic_phone}/scan"),
        Some(json!({ "qr": qr })),
    );
    assert_eq!(st, 200, "{v}");
    let took = b.wait_until(Duration::from_secs(60), "the badge to say connected", |b| {
        state(b) == "connected"
    });
    println!("page showed connected {took:?} after the scan");
    assert_eq!(b.text("#phone"), format!("+{clinic_phone}"));
    assert!(b
        .text("#sentence")
        .contains(&format!("WhatsApp connected, +{clinic_phone}")));
    assert!(!b.displayed("#qr-box"), "the QR is gone once linked");
    assert_eq!(
        b.exec("return window.__samePage || null;"),
        "yes",
        "the page reloaded"
    );
    println!("scan → connected on the page: {:?}", scanned.elapsed());
    shots.shot(&b, "connected");

    // 4. A test message; its status moves on the page.
    b.type_into("#to", patient);
    b.type_into("#text", "Recordatorio: cita mañana 10:00");
    b.click("#send");
    b.wait_until(Duration::from_secs(10), "the message row", |b| {
        b.try_find("tr.highlight .msg").is_some()
    });
    let t = Instant::now();
    b.wait_until(
        Duration::from_secs(30),
        "the message to reach delivered",
        |b| b.attr("tr.highlight .msg", "data-status").as_deref() == Some("delivered"),
    );
    println!(
        "test message delivered on the page {:?} after the send",
        t.elapsed()
    );
    assert_eq!(b.text("tr.highlight .msg"), "delivered");
    let (_, inbox) = control(
        &w.ctl(),
        "GET",
        &format!("/control/phones/{patient}/inbox"),
        None,
    );
    assert_eq!(
        inbox["messages"][0]["text"],
        "Recordatorio: cita mañana 10:00"
    );
    shots.shot_at(&b, "message-delivered", "#messages-card");

    // 5. A silent network death: the badge must leave "connected" within 30 s.
    let (st, v) = control(
        &w.ctl(),
        "POST",
        "/control/faults",
        Some(json!({"kind": "blackhole", "device": format!("{clinic_phone}:1@s.whatsapp.net")})),
    );
    assert_eq!(st, 200, "{v}");
    let gone = b.wait_until(
        Duration::from_secs(40),
        "the badge to leave connected",
        |b| state(b) != "connected",
    );
    println!(
        "blackhole: badge left connected after {gone:?} ({})",
        state(&b)
    );
    assert!(
        gone <= Duration::from_secs(30),
        "the page said connected for {gone:?}"
    );
    assert!(!b.text("#sentence").contains("WhatsApp connected"));
    shots.shot(&b, "blackholed");
    let (st, _) = control(&w.ctl(), "DELETE", "/control/faults", None);
    assert_eq!(st, 200);
    let back = b.wait_until(Duration::from_secs(90), "connected again", |b| {
        state(b) == "connected"
    });
    println!("healed: connected again on the page {back:?} later");
    assert!(b.source().contains("Last state changes"));
    let history_rows = b.exec("return document.querySelectorAll('#history tbody tr').length;");
    assert!(history_rows.as_u64().unwrap_or(0) >= 4, "{history_rows}");
    shots.shot_at(&b, "connected-again", "#history-card");

    // 6. A phone-sized screen: nothing wider than the screen.
    b.set_size(390, 844);
    b.goto(&format!("{}/ui/orgs/optica", w.s.base));
    let overflow = b.exec("return document.documentElement.scrollWidth - window.innerWidth;");
    let wide = b.exec(
        "const w = window.innerWidth; return [w, [...document.querySelectorAll('body *')]\
         .filter(e => e.getBoundingClientRect().right > w + 1)\
         .map(e => e.tagName + '#' + e.id + '.' + e.className + ':' + Math.round(e.getBoundingClientRect().right))\
         .slice(0, 8)];",
    );
    assert!(
        overflow.as_i64().unwrap_or(1) <= 0,
        "page wider than a phone by {overflow} px: {wide}"
    );
    shots.shot(&b, "phone-screen");

    // 7. Switch to Spanish.
    b.set_size(1280, 1000);
    b.click("#lang-switch");
    b.wait_until(Duration::from_secs(10), "the Spanish page", |b| {
        b.exec("return document.documentElement.lang;") == "es"
    });
    assert_eq!(b.text("#status-card .badge"), "Conectado");
    assert!(b
        .text("#sentence")
        .contains(&format!("WhatsApp conectado, +{clinic_phone}")));
    shots.shot(&b, "spanish");
}

#[test]
fn spanish_browser_bad_token_and_another_orgs_page() {
    let w = world();
    let mine = w.s.create_org("norte", Some("57"));
    let _theirs = w.s.create_org("sur", Some("57"));
    let shots = Artifacts::new("dashboard-access");
    let b = Browser::start("es-CO,es;q=0.9");

    b.goto(&format!("{}/ui/login", w.s.base));
    assert_eq!(b.exec("return document.documentElement.lang;"), "es");
    b.type_into("#token", "wgo_not_a_real_token_at_all");
    b.click("#signin");
    b.wait_until(Duration::from_secs(10), "the refusal", |b| {
        b.try_find("#login-note").is_some()
    });
    assert!(
        b.text("#login-note").contains("Ese token no es válido"),
        "{}",
        b.text("#login-note")
    );
    assert!(!b.source().contains("wgo_not_a_real_token_at_all"));
    shots.shot(&b, "bad-token");

    b.type_into("#token", &mine);
    b.click("#signin");
    b.wait_until(Duration::from_secs(10), "own page", |b| {
        b.current_url().ends_with("/ui/orgs/norte")
    });
    assert_eq!(b.text("#status-card .badge"), "Sin vincular");
    // The session cookie is invisible to scripts (HttpOnly).
    assert_eq!(
        b.exec("return document.cookie.includes('wagate_session');"),
        false
    );

    b.goto(&format!("{}/ui/orgs/sur", w.s.base));
    assert!(b
        .text("#message")
        .contains("Este token no puede abrir esa organización"));
    assert!(b.try_find("#status-card").is_none());
    shots.shot(&b, "other-org-refused");
}

#[test]
fn the_qr_is_redrawn_when_the_code_rotates() {
    let w = world();
    w.s.create_org("rota", Some("57"));
    let b = Browser::start("en-US,en");
    b.goto(&format!("{}/ui/login", w.s.base));
    b.type_into("#token", crate::common::ADMIN);
    b.click("#signin");
    b.wait_until(Duration::from_secs(10), "the overview", |b| {
        b.try_find("#orgs").is_some()
    });
    b.goto(&format!("{}/ui/orgs/rota", w.s.base));
    b.click("#connect");
    b.wait_until(Duration::from_secs(10), "the page after the click", |b| {
        b.current_url().contains("ok=connect")
            && b.exec("return document.readyState;") == "complete"
    });
    b.exec("window.__samePage = 'yes'; return null;");
    let first = qr_on_page(&b);
    let src = b.attr("#qr", "src").unwrap_or_default();
    // The library offers the first code for 60 s, then a new one.
    let t = Instant::now();
    let mut second = String::new();
    b.wait_until(Duration::from_secs(90), "a new QR on the page", |b| {
        if b.attr("#qr", "src").unwrap_or_default() == src {
            return false;
        }
        second = qr_on_page(b);
        second != first
    });
    println!("QR redrawn after {:?}", t.elapsed());
    assert_ne!(first, second);
    assert_eq!(
        b.exec("return window.__samePage || null;"),
        "yes",
        "the page reloaded"
    );
    let (st, q) = w.s.call(
        "GET",
        "/v1/orgs/rota/session/qr",
        Some(crate::common::ADMIN),
        None,
    );
    assert_eq!(st, 200);
    assert_eq!(q["qr"], second, "the page shows the code on offer");
}

#[test]
fn link_with_a_pairing_code_shown_on_the_page() {
    let w = world();
    let phone = "573005550009";
    w.add_phone(phone);
    let token = w.s.create_org("codigo", Some("57"));
    let shots = Artifacts::new("dashboard-pair-code");
    let b = Browser::start("en-US,en");
    b.goto(&format!("{}/ui/login", w.s.base));
    b.type_into("#token", &token);
    b.click("#signin");
    b.wait_until(Duration::from_secs(10), "own page", |b| {
        b.current_url().ends_with("/ui/orgs/codigo")
    });
    b.click("#use-code summary");
    b.type_into("#code-phone", "+57 300 555 0009");
    b.click("#get-code");
    b.wait_until(Duration::from_secs(40), "a pairing code", |b| {
        b.displayed("#pair-code")
    });
    let code = b.text("#pair-code");
    let bare: String = code.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    assert_eq!(bare.len(), 8, "{code:?}");
    let size = b.exec(
        "return parseFloat(getComputedStyle(document.getElementById('pair-code')).fontSize);",
    );
    assert!(
        size.as_f64().unwrap_or(0.0) >= 30.0,
        "the code is shown large: {size}"
    );
    shots.shot_at(&b, "pair-code", "#code-box");
    let (st, v) = control(
        &w.ctl(),
        "POST",
        &format!("/control/phones/{phone}/pair-code"),
        Some(json!({ "code": bare })),
    );
    assert_eq!(st, 200, "{v}");
    let took = b.wait_until(Duration::from_secs(60), "connected", |b| {
        state(b) == "connected"
    });
    println!("pairing code typed → page connected in {took:?}");
    assert_eq!(b.text("#phone"), format!("+{phone}"));
    assert!(!b.displayed("#code-box"));
    shots.shot(&b, "connected");
}

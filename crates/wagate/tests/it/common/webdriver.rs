//! A real browser for tests: Debian's headless Chromium driven through
//! chromedriver over the W3C WebDriver protocol (plain JSON over HTTP on
//! loopback; no browser is downloaded). Each `Browser` has its own
//! chromedriver process and empty profile, ended on drop.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (`apt-get install
//! chromium chromium-driver`; `.ci/run` does it), or `CHROME_BIN` /
//! `CHROMEDRIVER_BIN`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    url: String,
    session: String,
    agent: ureq::Agent,
    _profile: tempfile::TempDir,
}

fn bin(env: &str, default: &str) -> String {
    let b = std::env::var(env).unwrap_or_else(|_| default.to_string());
    assert!(
        Path::new(&b).exists(),
        "{b} not found: install Debian's chromium and chromium-driver \
         (apt-get install chromium chromium-driver) or set {env}"
    );
    b
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Browser {
    /// A headless Chromium whose `Accept-Language` is `accept_language`.
    pub fn start(accept_language: &str) -> Browser {
        let chrome = bin("CHROME_BIN", "/usr/bin/chromium");
        let driver_bin = bin("CHROMEDRIVER_BIN", "/usr/bin/chromedriver");
        let port = free_port();
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = agent
                .get(&format!("{url}/status"))
                .call()
                .ok()
                .and_then(|r| r.into_body().read_json::<Value>().ok())
                .is_some_and(|v| v["value"]["ready"] == true);
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().expect("profile dir");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "goog:chromeOptions": {
                "binary": chrome,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-extensions",
                    "--disable-features=Translate,MediaRouter,OptimizationHints",
                    "--window-size=1280,1000", "--force-device-scale-factor=1",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
                "prefs": {"intl.accept_languages": accept_language},
            }
        }}});
        let mut r = agent
            .post(&format!("{url}/session"))
            .send_json(&caps)
            .expect("new session");
        let v: Value = r.body_mut().read_json().expect("session json");
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {v}"))
            .to_string();
        Browser {
            driver,
            url,
            session,
            agent,
            _profile: profile,
        }
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.send(method, path, body)
            .unwrap_or_else(|v| panic!("WebDriver {method} {path}: {v}"))
    }

    /// One WebDriver command: its value, or the error object it answered.
    fn send(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, Value> {
        let url = format!("{}/session/{}{}", self.url, self.session, path);
        let resp = match method {
            "GET" => self.agent.get(&url).call(),
            "DELETE" => self.agent.delete(&url).call(),
            _ => self.agent.post(&url).send_json(body.unwrap_or(json!({}))),
        };
        let mut resp = resp.unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let ok = resp.status().is_success();
        let v: Value = resp.body_mut().read_json().unwrap_or(Value::Null);
        if ok {
            Ok(v["value"].clone())
        } else {
            Err(v)
        }
    }

    /// Find `css` and run one command on it. Pages redraw parts of themselves
    /// from their event stream, so an element found a moment ago may have been
    /// replaced: a stale reference is looked up again (a few times) rather
    /// than failing the test. `None` when no element matches.
    fn on_element(
        &self,
        css: &str,
        method: &str,
        what: &str,
        body: Option<Value>,
    ) -> Option<Value> {
        let mut tries = 0;
        loop {
            let id = self.try_find(css)?;
            let path = format!("/element/{id}{what}");
            match self.send(method, &path, body.clone()) {
                Ok(v) => return Some(v),
                Err(v) if v["value"]["error"] == "stale element reference" && tries < 5 => {
                    tries += 1;
                }
                Err(v) => panic!("WebDriver {method} {path} ({css}): {v}"),
            }
        }
    }

    fn must(&self, css: &str, method: &str, what: &str, body: Option<Value>) -> Value {
        self.on_element(css, method, what, body)
            .unwrap_or_else(|| panic!("no element {css} on {}", self.current_url()))
    }

    pub fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    pub fn current_url(&self) -> String {
        self.cmd("GET", "/url", None)
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    pub fn source(&self) -> String {
        self.cmd("GET", "/source", None)
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    pub fn try_find(&self, css: &str) -> Option<String> {
        let url = format!("{}/session/{}/element", self.url, self.session);
        let mut r = self
            .agent
            .post(&url)
            .send_json(json!({"using": "css selector", "value": css}))
            .ok()?;
        if !r.status().is_success() {
            return None;
        }
        let v: Value = r.body_mut().read_json().ok()?;
        v["value"][ELEMENT].as_str().map(String::from)
    }

    pub fn click(&self, css: &str) {
        self.must(css, "POST", "/click", None);
    }

    pub fn type_into(&self, css: &str, text: &str) {
        self.must(css, "POST", "/clear", None);
        self.must(css, "POST", "/value", Some(json!({ "text": text })));
    }

    pub fn text(&self, css: &str) -> String {
        self.must(css, "GET", "/text", None)
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    pub fn attr(&self, css: &str, name: &str) -> Option<String> {
        self.on_element(css, "GET", &format!("/attribute/{name}"), None)?
            .as_str()
            .map(String::from)
    }

    pub fn displayed(&self, css: &str) -> bool {
        self.on_element(css, "GET", "/displayed", None) == Some(Value::Bool(true))
    }

    /// Run `script` (a function body) in the page and return its value.
    pub fn exec(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    pub fn set_size(&self, w: u32, h: u32) {
        self.cmd(
            "POST",
            "/window/rect",
            Some(json!({"width": w, "height": h})),
        );
    }

    pub fn screenshot(&self) -> Vec<u8> {
        let b64 = self.cmd("GET", "/screenshot", None);
        base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or(""))
            .expect("screenshot base64")
    }

    pub fn element_png(&self, css: &str) -> Vec<u8> {
        let b64 = self.must(css, "GET", "/screenshot", None);
        base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or(""))
            .expect("element screenshot base64")
    }

    /// Poll `check` every 100 ms until it holds; how long that took.
    pub fn wait_until(
        &self,
        within: Duration,
        what: &str,
        mut check: impl FnMut(&Browser) -> bool,
    ) -> Duration {
        let t = Instant::now();
        loop {
            if check(self) {
                return t.elapsed();
            }
            assert!(
                t.elapsed() < within,
                "waited {within:?} for {what}; page at {}",
                self.current_url()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self
            .agent
            .delete(&format!("{}/session/{}", self.url, self.session))
            .call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Where a test's screenshots go: `<target>/tmp/e2e-artifacts/<name>/`.
pub struct Artifacts {
    dir: PathBuf,
    n: std::cell::Cell<u32>,
}

impl Artifacts {
    pub fn new(name: &str) -> Artifacts {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("e2e-artifacts")
            .join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("artifact dir");
        println!("screenshots: {}", dir.display());
        Artifacts {
            dir,
            n: std::cell::Cell::new(0),
        }
    }

    /// Save the browser's window, scrolled to the top, as `NN-step.png`.
    pub fn shot(&self, b: &Browser, step: &str) {
        b.exec("window.scrollTo(0, 0); return null;");
        self.save(b, step);
    }

    /// Save the window with the element `css` scrolled into view.
    pub fn shot_at(&self, b: &Browser, step: &str, css: &str) {
        let found = b.cmd(
            "POST",
            "/execute/sync",
            Some(json!({
                "script": "const e = document.querySelector(arguments[0]); \
                           if (e) e.scrollIntoView({block: 'center'}); return !!e;",
                "args": [css],
            })),
        );
        assert_eq!(found, true, "no element {css} to scroll to");
        self.save(b, step);
    }

    fn save(&self, b: &Browser, step: &str) {
        let n = self.n.get() + 1;
        self.n.set(n);
        let path = self.dir.join(format!("{n:02}-{step}.png"));
        std::fs::write(&path, b.screenshot()).expect("write screenshot");
    }
}

/// The text of the QR code in a PNG image, read the way a phone's camera
/// would: greyscale, then rqrr's detector and decoder.
pub fn decode_qr(png_bytes: &[u8]) -> Option<String> {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().ok()?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).ok()?;
    let (w, h) = (info.width as usize, info.height as usize);
    let channels = match info.color_type {
        png::ColorType::Rgba => 4,
        png::ColorType::Rgb => 3,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Grayscale => 1,
        png::ColorType::Indexed => return None,
    };
    let luma = |x: usize, y: usize| -> u8 {
        let i = (y * w + x) * channels;
        let px = &buf[i..i + channels];
        let (v, alpha) = match channels {
            1 => (px[0] as u32, 255),
            2 => (px[0] as u32, px[1] as u32),
            3 => (
                (px[0] as u32 * 299 + px[1] as u32 * 587 + px[2] as u32 * 114) / 1000,
                255,
            ),
            _ => (
                (px[0] as u32 * 299 + px[1] as u32 * 587 + px[2] as u32 * 114) / 1000,
                px[3] as u32,
            ),
        };
        // Transparent reads as white paper.
        ((v * alpha + 255 * (255 - alpha)) / 255) as u8
    };
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, luma);
    let grids = img.detect_grids();
    grids.first().and_then(|g| g.decode().ok()).map(|(_, s)| s)
}

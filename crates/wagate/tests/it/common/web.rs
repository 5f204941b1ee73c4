//! A bare HTTP client for the dashboard's pages: no redirects followed, so
//! tests see each `303`, `Set-Cookie` and status as a browser would get them.

use std::time::Duration;

pub struct Page {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Page {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// `name=value` of the first `Set-Cookie` for `name`.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.headers_named("set-cookie")
            .into_iter()
            .find(|c| c.starts_with(&format!("{name}=")))
            .map(|c| c.split(';').next().unwrap_or("").to_string())
    }

    /// The value of the first hidden `csrf` field.
    pub fn csrf(&self) -> Option<String> {
        let i = self.body.find("name=\"csrf\" value=\"")?;
        let rest = &self.body[i + "name=\"csrf\" value=\"".len()..];
        Some(rest.split('"').next()?.to_string())
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

fn page(r: Result<http::Response<ureq::Body>, ureq::Error>) -> Page {
    let r = r.expect("request");
    let status = r.status().as_u16();
    let headers = r
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = r.into_body().read_to_string().unwrap_or_default();
    Page {
        status,
        headers,
        body,
    }
}

pub fn get(url: &str, cookie: Option<&str>, headers: &[(&str, &str)]) -> Page {
    let mut r = agent().get(url);
    if let Some(c) = cookie {
        r = r.header("Cookie", c);
    }
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    page(r.call())
}

pub fn post_form(
    url: &str,
    cookie: Option<&str>,
    fields: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> Page {
    let body: String = fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&");
    post_raw(url, cookie, body.as_bytes(), headers)
}

pub fn post_raw(url: &str, cookie: Option<&str>, body: &[u8], headers: &[(&str, &str)]) -> Page {
    let mut r = agent()
        .post(url)
        .header("Content-Type", "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        r = r.header("Cookie", c);
    }
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    page(r.send(body))
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Sign in with `token`; the session cookie (`name=value`).
pub fn sign_in(base: &str, token: &str) -> String {
    let p = post_form(&format!("{base}/ui/login"), None, &[("token", token)], &[]);
    assert_eq!(p.status, 303, "{}", p.body);
    p.cookie("wagate_session").expect("session cookie")
}

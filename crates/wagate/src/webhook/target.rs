//! Where a webhook may be sent, and sending it there. A URL is `http` or
//! `https` with a host; its name is resolved at every try and only the
//! addresses that pass the guard are dialled — the check is on the address
//! actually connected to, so a name that resolves to a public address when
//! the endpoint is created and to 127.0.0.1 later (DNS rebinding) is still
//! refused. By default loopback, private, link-local (cloud metadata at
//! 169.254.169.254), shared, multicast and unspecified addresses are
//! refused; `--webhook-allow` names hosts and networks that may be reached
//! anyway (a Django app on the same host or LAN).

use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use tokio::net::TcpStream;

/// The longest a URL may be.
pub const MAX_URL: usize = 2048;

/// Hosts and networks that may be reached though not public.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    hosts: Vec<String>,
    nets: Vec<(IpAddr, u8)>,
}

impl Guard {
    /// A comma-separated list of host names, addresses and CIDR networks
    /// (`app.internal, 127.0.0.1, 10.0.0.0/8, ::1`).
    pub fn parse(list: &str) -> Result<Guard, String> {
        let mut g = Guard::default();
        for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (addr, bits) = match item.split_once('/') {
                Some((a, b)) => (a, Some(b)),
                None => (item, None),
            };
            match addr
                .trim_matches(|c| c == '[' || c == ']')
                .parse::<IpAddr>()
            {
                Ok(ip) => {
                    let max = if ip.is_ipv4() { 32 } else { 128 };
                    let bits = match bits {
                        None => max,
                        Some(b) => b.parse::<u8>().ok().filter(|b| *b <= max).ok_or_else(|| {
                            format!("'{item}': the prefix length must be 0–{max}")
                        })?,
                    };
                    g.nets.push((ip, bits));
                }
                Err(_) if bits.is_none() && valid_host(item) => {
                    g.hosts.push(item.to_ascii_lowercase())
                }
                Err(_) => {
                    return Err(format!(
                        "'{item}' is not a host name, an address or a network"
                    ))
                }
            }
        }
        Ok(g)
    }

    /// May `ip` (what `host` resolved to) be dialled?
    pub fn allows(&self, host: &str, ip: IpAddr) -> bool {
        is_public(ip)
            || self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
            || self
                .nets
                .iter()
                .any(|(net, bits)| contains(*net, *bits, ip))
    }
}

fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn contains(net: IpAddr, bits: u8, ip: IpAddr) -> bool {
    let ip = unmap(ip);
    match (unmap(net), ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

/// An IPv4 address written as IPv6 (`::ffff:127.0.0.1`) is that IPv4 address.
fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Whether an address is on the public internet (not loopback, private,
/// link-local, shared, documentation, multicast, broadcast or unspecified).
pub fn is_public(ip: IpAddr) -> bool {
    match unmap(ip) {
        IpAddr::V4(a) => public_v4(a),
        IpAddr::V6(a) => public_v6(a),
    }
}

fn public_v4(a: Ipv4Addr) -> bool {
    let o = a.octets();
    !(a.is_loopback()
        || a.is_private()
        || a.is_link_local()
        || a.is_multicast()
        || a.is_broadcast()
        || a.is_unspecified()
        || a.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (64..128).contains(&o[1])) // shared (CGNAT) 100.64/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 198 && (18..20).contains(&o[1])) // benchmarking 198.18/15
        || o[0] >= 240) // reserved
}

fn public_v6(a: Ipv6Addr) -> bool {
    let s = a.segments();
    !(a.is_loopback()
        || a.is_unspecified()
        || a.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64, maps to IPv4 behind it
        || (s[0] & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated, still routed inside)
        || s[0] == 0x2002 // 6to4: an IPv4 address behind it (2002:7f00:1:: is 127.0.0.1)
        || (s[0] == 0x2001 && s[1] == 0) // Teredo 2001::/32: likewise
        || (s[..4] == [0, 0, 0, 0] && s[4] == 0xffff && s[5] == 0) // IPv4-translated ::ffff:0:a.b.c.d
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // discard-only 100::/64
        || a.to_ipv4().is_some_and(|v4| !public_v4(v4)))
}

/// A webhook URL, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// Path and query, at least `/`.
    pub path: String,
}

/// Read a webhook URL: `http(s)://host[:port][/path][?query]`, no user
/// info, no fragment.
pub fn parse_url(url: &str) -> Result<Target, String> {
    if url.len() > MAX_URL {
        return Err(format!("the URL is longer than {MAX_URL} characters"));
    }
    let uri: http::Uri = url.parse().map_err(|_| {
        "the URL cannot be read (e.g. https://app.example.com/hooks/wagate)".to_string()
    })?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err("the URL must start with http:// or https://".into()),
    };
    let auth = uri.authority().ok_or("the URL has no host")?;
    if auth.as_str().contains('@') {
        return Err("the URL must not carry a user or password".into());
    }
    if url.contains('#') {
        return Err("the URL must not have a #fragment".into());
    }
    let host = auth
        .host()
        .trim_matches(|c| c == '[' || c == ']')
        .to_string();
    if host.is_empty() {
        return Err("the URL has no host".into());
    }
    let port =
        crate::http_client::written_port(auth.as_str())?.unwrap_or(if https { 443 } else { 80 });
    Ok(Target {
        https,
        port,
        path: uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/".into()),
        host,
    })
}

/// The addresses of `t` the guard lets us dial; an error says why none.
pub async fn resolve(guard: &Guard, t: &Target) -> Result<Vec<SocketAddr>, String> {
    let found: Vec<SocketAddr> = match t.host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, t.port)],
        Err(_) => tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::lookup_host((t.host.as_str(), t.port)),
        )
        .await
        .map_err(|_| format!("resolving {} took over 5 s", t.host))?
        .map_err(|e| format!("cannot resolve {}: {e}", t.host))?
        .collect(),
    };
    let ok: Vec<SocketAddr> = found
        .iter()
        .copied()
        .filter(|a| guard.allows(&t.host, a.ip()))
        .collect();
    if ok.is_empty() {
        let shown: Vec<String> = found.iter().map(|a| a.ip().to_string()).collect();
        return Err(format!(
            "{} resolves to {} — loopback, private, link-local or otherwise non-public addresses are refused unless listed in --webhook-allow",
            t.host,
            if shown.is_empty() { "nothing".into() } else { shown.join(", ") }
        ));
    }
    Ok(ok)
}

/// What the receiver answered.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// The start of its body, for the delivery's `last_error`.
    pub body: String,
}

/// Idle keep-alive connections by endpoint (scheme, host, port), so a
/// burst of deliveries to one receiver reuses a few connections instead of
/// dialling one each. Only connections dialled through the guard go in,
/// and an idle one is dropped after `IDLE_FOR`, so a name that now resolves
/// elsewhere is looked up again within that time.
#[derive(Clone, Default)]
pub struct Pool {
    idle: Arc<Mutex<HashMap<Endpoint, Vec<Idle>>>>,
}

/// (https, host, port).
type Endpoint = (bool, String, u16);

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pool")
    }
}

struct Idle {
    sender: http1::SendRequest<Full<Bytes>>,
    since: Instant,
}

/// How long an idle connection is kept.
pub const IDLE_FOR: Duration = Duration::from_secs(30);
/// Most idle connections kept to one endpoint.
const IDLE_MAX: usize = 8;
/// The most of an answer's body read to keep its connection; a longer
/// body closes it.
const DRAIN_MAX: usize = 64 * 1024;

impl Pool {
    fn key(t: &Target) -> Endpoint {
        (t.https, t.host.to_ascii_lowercase(), t.port)
    }

    /// A live idle connection to `t`, if one is kept.
    fn take(&self, t: &Target) -> Option<http1::SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock();
        let list = idle.get_mut(&Pool::key(t))?;
        while let Some(c) = list.pop() {
            if c.since.elapsed() < IDLE_FOR && c.sender.is_ready() {
                return Some(c.sender);
            }
        }
        None
    }

    fn put(&self, t: &Target, sender: http1::SendRequest<Full<Bytes>>) {
        let mut idle = self.idle.lock();
        // Forget what went stale anywhere, so the map does not grow with
        // endpoints that were deleted.
        idle.retain(|_, l| {
            l.retain(|c| c.since.elapsed() < IDLE_FOR && !c.sender.is_closed());
            !l.is_empty()
        });
        let list = idle.entry(Pool::key(t)).or_default();
        if list.len() < IDLE_MAX {
            list.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    /// Idle connections kept.
    #[cfg(test)]
    fn idle(&self) -> usize {
        self.idle.lock().values().map(Vec::len).sum()
    }
}

/// POST `body` to `t` (through the guard), with `headers`, within `timeout`,
/// on a kept connection when there is one.
pub async fn post(
    guard: &Guard,
    pool: &Pool,
    t: &Target,
    headers: &[(&str, String)],
    body: Vec<u8>,
    timeout: Duration,
) -> Result<Answer, String> {
    tokio::time::timeout(timeout, post_inner(guard, pool, t, headers, body))
        .await
        .map_err(|_| format!("no answer within {} s", timeout.as_secs()))?
}

async fn post_inner(
    guard: &Guard,
    pool: &Pool,
    t: &Target,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> Result<Answer, String> {
    let body = Bytes::from(body);
    if let Some(sender) = pool.take(t) {
        // A kept connection the receiver closed meanwhile fails at once;
        // then the request goes on a new one (the receiver may, rarely, get
        // it twice: deliveries are at-least-once, with the event id).
        if let Ok(a) = exchange(pool, t, sender, headers, body.clone()).await {
            return Ok(a);
        }
    }
    let sender = dial(guard, t).await?;
    exchange(pool, t, sender, headers, body).await
}

/// A new connection to `t`, to an address the guard allows.
async fn dial(guard: &Guard, t: &Target) -> Result<http1::SendRequest<Full<Bytes>>, String> {
    let addrs = resolve(guard, t).await?;
    let mut last = String::new();
    let mut tcp = None;
    for a in addrs {
        match TcpStream::connect(a).await {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last = format!("cannot connect to {a}: {e}"),
        }
    }
    let tcp = tcp.ok_or(last)?;
    crate::http_client::open(tcp, &t.host, t.https).await
}

/// One request on `sender`; the connection goes back to the pool when the
/// answer was read whole and the receiver keeps it open.
async fn exchange(
    pool: &Pool,
    t: &Target,
    mut sender: http1::SendRequest<Full<Bytes>>,
    headers: &[(&str, String)],
    body: Bytes,
) -> Result<Answer, String> {
    sender
        .ready()
        .await
        .map_err(|e| format!("the connection to {} closed: {e}", t.host))?;
    let host = if (t.https && t.port == 443) || (!t.https && t.port == 80) {
        t.host.clone()
    } else if t.host.contains(':') {
        format!("[{}]:{}", t.host, t.port)
    } else {
        format!("{}:{}", t.host, t.port)
    };
    let mut req = hyper::Request::post(t.path.as_str())
        .header(hyper::header::HOST, host)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(
            hyper::header::USER_AGENT,
            concat!("wagate/", env!("CARGO_PKG_VERSION")),
        );
    for (k, v) in headers {
        req = req.header(*k, v.as_str());
    }
    let req = req
        .body(Full::new(body))
        .map_err(|e| format!("cannot build the request: {e}"))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("the request to {} failed: {e}", t.host))?;
    let status = resp.status().as_u16();
    // Keep a little of the body for the record; read the rest (up to a
    // limit) so that the connection can carry the next request.
    let mut text = Vec::new();
    let (mut read, mut whole) = (0usize, false);
    let mut b = resp.into_body();
    while read <= DRAIN_MAX {
        match b.frame().await {
            Some(Ok(f)) => {
                if let Some(d) = f.data_ref() {
                    read += d.len();
                    if text.len() < 512 {
                        text.extend_from_slice(&d[..d.len().min(512 - text.len())]);
                    }
                }
            }
            Some(Err(_)) => break,
            None => {
                whole = true;
                break;
            }
        }
    }
    if whole && !sender.is_closed() {
        pool.put(t, sender);
    }
    Ok(Answer {
        status,
        body: String::from_utf8_lossy(&text).chars().take(300).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_public_addresses_pass_by_default() {
        for bad in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "64:ff9b::7f00:1",
            "::ffff:0:127.0.0.1",
            "2002:7f00:1::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "fec0::1",
            "100::1",
        ] {
            assert!(!Guard::default().allows("h", ip(bad)), "{bad} passed");
        }
        for good in ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"] {
            assert!(Guard::default().allows("h", ip(good)), "{good} refused");
        }
    }

    #[test]
    fn the_allow_list_opens_hosts_and_networks() {
        let g = Guard::parse("app.internal, 127.0.0.1, 10.0.0.0/8, [::1]").unwrap();
        assert!(g.allows("x", ip("127.0.0.1")));
        assert!(!g.allows("x", ip("127.0.0.2")), "a single address is /32");
        assert!(g.allows("x", ip("10.200.3.4")));
        assert!(g.allows("x", ip("::1")));
        assert!(
            g.allows("APP.internal", ip("192.168.7.7")),
            "a named host, any address"
        );
        assert!(!g.allows("other", ip("192.168.7.7")));
        assert!(Guard::parse("10.0.0.0/33").is_err());
        assert!(Guard::parse("not a host!").is_err());
        assert!(Guard::parse("").unwrap().hosts.is_empty());
    }

    #[test]
    fn urls_are_read_strictly() {
        let t = parse_url("https://app.example.com/hooks/wagate?x=1").unwrap();
        assert_eq!(
            (t.https, t.host.as_str(), t.port, t.path.as_str()),
            (true, "app.example.com", 443, "/hooks/wagate?x=1")
        );
        let t = parse_url("http://[::1]:8000").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("::1", 8000, "/")
        );
        for bad in [
            "http://x:99999/",
            "http://x:65536/",
            "http://x:-1/",
            "http://x:0/",
            "http://[::1]:70000/",
            "ftp://x/",
            "https://user:pw@x/",
            "x.com/hook",
            "https://x/#frag",
            "",
            "http://",
        ] {
            assert!(parse_url(bad).is_err(), "{bad} read");
        }
        assert!(parse_url(&format!("https://x/{}", "a".repeat(MAX_URL))).is_err());
    }

    /// A loopback receiver that answers every request 200 and keeps the
    /// connection open unless `close` is set; counts connections accepted.
    async fn receiver(close: bool) -> (Target, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let n = accepted.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                n.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut r = BufReader::new(s);
                    loop {
                        let mut len = 0usize;
                        let mut line = String::new();
                        loop {
                            line.clear();
                            if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            let l = line.trim_end().to_ascii_lowercase();
                            if l.is_empty() {
                                break;
                            }
                            if let Some(v) = l.strip_prefix("content-length:") {
                                len = v.trim().parse().unwrap();
                            }
                        }
                        let mut body = vec![0; len];
                        r.read_exact(&mut body).await.unwrap();
                        let conn = if close { "connection: close\r\n" } else { "" };
                        let answer =
                            format!("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n{conn}\r\nok");
                        r.get_mut().write_all(answer.as_bytes()).await.unwrap();
                        if close {
                            return;
                        }
                    }
                });
            }
        });
        let t = parse_url(&format!("http://127.0.0.1:{port}/hook")).unwrap();
        (t, accepted)
    }

    fn loopback() -> Guard {
        Guard::parse("127.0.0.1").unwrap()
    }

    #[tokio::test]
    async fn requests_to_one_receiver_reuse_a_kept_connection() {
        let (t, accepted) = receiver(false).await;
        let pool = Pool::default();
        for i in 0..5 {
            let a = post(
                &loopback(),
                &pool,
                &t,
                &[],
                format!("{i}").into_bytes(),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
            assert_eq!((a.status, a.body.as_str()), (200, "ok"));
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(pool.idle(), 1);
    }

    #[tokio::test]
    async fn a_receiver_that_closes_gets_a_new_connection_each_time() {
        let (t, accepted) = receiver(true).await;
        let pool = Pool::default();
        for _ in 0..3 {
            let a = post(
                &loopback(),
                &pool,
                &t,
                &[],
                b"{}".to_vec(),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
            assert_eq!(a.status, 200);
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 3);
        assert_eq!(pool.idle(), 0);
    }

    #[tokio::test]
    async fn a_connection_idle_past_its_time_is_not_reused() {
        let (t, accepted) = receiver(false).await;
        let pool = Pool::default();
        post(
            &loopback(),
            &pool,
            &t,
            &[],
            b"{}".to_vec(),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(pool.idle(), 1);
        if let Some(l) = pool.idle.lock().values_mut().next() {
            l[0].since = Instant::now() - IDLE_FOR;
        }
        post(
            &loopback(),
            &pool,
            &t,
            &[],
            b"{}".to_vec(),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}

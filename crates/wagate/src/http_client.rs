//! The gateway's one outgoing HTTP/1.1 client stack (hyper): a connection
//! to a host, over TLS when asked (the WhatsApp client's roots and settings,
//! through `engine::transport`), and reading an answer's body with a limit.
//! Webhooks (with their pool and address guard), forwarding between nodes
//! and the CLI all open their connections here.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Body;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// HTTP/1.1 over `tcp` to `host` (TLS when `https`); the connection lives
/// until its sender is dropped or the peer closes it.
pub async fn open<B>(tcp: TcpStream, host: &str, https: bool) -> Result<SendRequest<B>, String>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let _ = tcp.set_nodelay(true);
    let connector = if https {
        crate::engine::transport::tls_connector()
    } else {
        tokio_websockets::Connector::Plain
    };
    let io = connector
        .wrap(host, tcp)
        .await
        .map_err(|e| format!("TLS with {host} failed: {e}"))?;
    let (sender, conn) = http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP with {host} failed: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// A connection to `host:port`, given up after `within`.
pub async fn dial<B>(
    host: &str,
    port: u16,
    https: bool,
    within: Duration,
) -> Result<SendRequest<B>, String>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let tcp = tokio::time::timeout(within, TcpStream::connect(&authority))
        .await
        .map_err(|_| format!("no connection to {authority} within {} s", within.as_secs()))?
        .map_err(|e| format!("cannot connect to {authority}: {e}"))?;
    open(tcp, host, https).await
}

/// An answer's whole body, refused past `limit` bytes.
pub async fn read_body<B>(body: B, limit: usize) -> Result<Bytes, String>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let limited = http_body_util::Limited::new(body, limit);
    limited
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| format!("reading the answer: {e}"))
}

/// The port written in an authority (`host:port`, `[v6]:port`), checked:
/// `None` when none is written; an error for one that is not 1–65535
/// (`:99999`, `:-1`, `:0` would otherwise fall back to the default port).
pub fn written_port(authority: &str) -> Result<Option<u16>, String> {
    let written = match authority.strip_prefix('[') {
        Some(rest) => rest.split_once("]:").map(|(_, p)| p),
        None => authority.rsplit_once(':').map(|(_, p)| p),
    };
    written
        .map(|p| {
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| "the port must be a number from 1 to 65535".to_string())
        })
        .transpose()
}

/// Where an `http://` or `https://` base URL points: scheme, host, port and
/// the path prefix (no trailing slash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base {
    pub https: bool,
    pub host: String,
    pub port: u16,
    pub prefix: String,
}

impl Base {
    pub fn parse(url: &str) -> Result<Base, String> {
        let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!("{url} is not an http:// or https:// address"));
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let uri: hyper::http::uri::Authority = authority
            .parse()
            .map_err(|e| format!("{url}: the host is not valid ({e})"))?;
        if authority.contains('@') || uri.host().is_empty() {
            return Err(format!("{url}: give a host (and port), no user name"));
        }
        let host = uri
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = written_port(authority).map_err(|e| format!("{url}: {e}"))?;
        Ok(Base {
            https,
            port: port.unwrap_or(if https { 443 } else { 80 }),
            host,
            prefix: format!("/{}", path.trim_end_matches('/'))
                .trim_end_matches('/')
                .to_string(),
        })
    }

    /// The `Host` header for this base.
    pub fn host_header(&self) -> String {
        let default = if self.https { 443 } else { 80 };
        match (self.port == default, self.host.contains(':')) {
            (true, false) => self.host.clone(),
            (true, true) => format!("[{}]", self.host),
            (false, false) => format!("{}:{}", self.host, self.port),
            (false, true) => format!("[{}]:{}", self.host, self.port),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bases_read_as_scheme_host_port_and_prefix() {
        let b = Base::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            (b.https, b.host.as_str(), b.port, b.prefix.as_str()),
            (false, "127.0.0.1", 8080, "")
        );
        let b = Base::parse("https://gw.example.org/wagate/").unwrap();
        assert_eq!(
            (b.https, b.host.as_str(), b.port, b.prefix.as_str()),
            (true, "gw.example.org", 443, "/wagate")
        );
        assert_eq!(b.host_header(), "gw.example.org");
        let b = Base::parse("http://[::1]:9000").unwrap();
        assert_eq!((b.host.as_str(), b.port), ("::1", 9000));
        assert_eq!(b.host_header(), "[::1]:9000");
        assert!(Base::parse("ftp://x").is_err());
        assert!(Base::parse("http://user@host").is_err());
        assert!(Base::parse("http://").is_err());
    }
}

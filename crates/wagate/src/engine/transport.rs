//! The WebSocket transport for the library: the same WebSocket + TLS stack as
//! the library's default transport, but the TCP socket is opened with
//! `TCP_NODELAY`. The default dials without it, so a small frame written
//! while an earlier one is unacknowledged waits for the peer's delayed ACK
//! (Nagle's algorithm): about 40 ms per send on Linux.
//!
//! It also holds on to each write until the next one (`HoldLastWrite`), so
//! that one big write does not pin a big buffer for the rest of the link: see
//! there.

use parking_lot::Mutex;
use std::sync::Arc;

use bytes::Bytes;

use tokio::net::TcpStream;
use whatsapp_rust::transport::{
    default_tls_connector, from_websocket, Connector, Transport, TransportEvent, TransportFactory,
};
use whatsapp_rust::wacore::net::{WHATSAPP_WEB_ORIGIN, WHATSAPP_WEB_WS_URL};

pub struct NoDelayTransportFactory {
    url: String,
}

impl NoDelayTransportFactory {
    /// `url`: a `ws://` or `wss://` URL; `None` is WhatsApp's own.
    pub fn new(url: Option<String>) -> NoDelayTransportFactory {
        NoDelayTransportFactory {
            url: url.unwrap_or_else(|| WHATSAPP_WEB_WS_URL.to_string()),
        }
    }
}

#[whatsapp_rust::async_trait]
impl TransportFactory for NoDelayTransportFactory {
    async fn create_transport(
        &self,
    ) -> Result<(Arc<dyn Transport>, async_channel::Receiver<TransportEvent>), anyhow::Error> {
        let uri: http::Uri = self
            .url
            .parse()
            .map_err(|e| anyhow::anyhow!("bad WhatsApp URL {}: {e}", self.url))?;
        let tls = match uri.scheme_str() {
            Some("wss") => true,
            Some("ws") => false,
            _ => anyhow::bail!("WhatsApp URL must be ws:// or wss://: {}", self.url),
        };
        let host = uri
            .host()
            .ok_or_else(|| anyhow::anyhow!("no host in {}", self.url))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let tcp = TcpStream::connect((host.as_str(), port)).await?;
        tcp.set_nodelay(true)?;
        let stream = if tls {
            default_tls_connector().wrap(&host, tcp).await?
        } else {
            Connector::Plain.wrap(&host, tcp).await?
        };
        let mut builder = tokio_websockets::ClientBuilder::from_uri(uri);
        if tls {
            builder = builder.add_header(
                http::header::ORIGIN,
                http::HeaderValue::from_static(WHATSAPP_WEB_ORIGIN),
            )?;
        }
        let (ws, _) = builder.connect_on(stream).await?;
        let (inner, events) = from_websocket(ws);
        Ok((Arc::new(HoldLastWrite::new(inner)), events))
    }
}

/// Keeps a reference to the last write until the next one has been handed
/// over.
///
/// The library encrypts outgoing frames into one `BytesMut` per connection and
/// hands each batch over as a `Bytes` split off it. When the write is done and
/// that `Bytes` dropped, the next `reserve` finds the allocation unshared and
/// takes the whole of it back, whatever its size, so the one big batch of a
/// link's life (the ~50 KB pre-key upload right after pairing) stays pinned
/// per connection: about 43 KB per freshly linked org, measured with heaptrack
/// at 200 orgs. While the previous write is still referenced here the next
/// `reserve` cannot take it back; it allocates a buffer of the initial 4 KiB
/// instead, and the big one is freed once this lets go of it.
pub(crate) struct HoldLastWrite {
    inner: Arc<dyn Transport>,
    last: Mutex<Option<Bytes>>,
}

impl HoldLastWrite {
    pub(crate) fn new(inner: Arc<dyn Transport>) -> HoldLastWrite {
        HoldLastWrite {
            inner,
            last: Mutex::new(None),
        }
    }

    fn keep(&self, data: Option<Bytes>) {
        // A poisoned lock only means a panic elsewhere mid-swap; the slot
        // holds a plain value either way.
        let mut last = self.last.lock();
        *last = data;
    }
}

#[whatsapp_rust::async_trait]
impl Transport for HoldLastWrite {
    async fn send(&self, data: Bytes) -> Result<(), anyhow::Error> {
        let held = data.clone();
        let r = self.inner.send(data).await;
        self.keep(Some(held));
        r
    }

    async fn disconnect(&self) {
        self.keep(None);
        self.inner.disconnect().await;
    }

    fn resource_report(&self) -> Option<whatsapp_rust::wacore::stats::TransportResourceReport> {
        self.inner.resource_report()
    }
}

/// The TLS connector the WhatsApp client uses (its roots and settings), for
/// the gateway's other outgoing HTTPS (webhooks), so the library is named
/// only here.
pub fn tls_connector() -> tokio_websockets::Connector {
    whatsapp_rust::transport::default_tls_connector()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    /// Records what it was asked to write, and drops it, as a socket does.
    struct Sink(Mutex<Vec<(usize, usize)>>);

    #[whatsapp_rust::async_trait]
    impl Transport for Sink {
        async fn send(&self, data: Bytes) -> Result<(), anyhow::Error> {
            let mut w = self.0.lock();
            w.push((data.as_ptr() as usize, data.len()));
            Ok(())
        }
        async fn disconnect(&self) {}
    }

    /// The library's sender loop in small: a 4 KiB buffer, batches split off
    /// it, one big batch among small ones. Whether a small batch after the
    /// big one is written inside the big allocation (pinned) or elsewhere.
    async fn small_write_lands_in_big_allocation(t: &dyn Transport) -> bool {
        let mut buf = BytesMut::with_capacity(4096);
        let mut sends = vec![];
        for len in [100, 50_000, 100, 100] {
            buf.reserve(len);
            buf.extend_from_slice(&vec![7u8; len]);
            let wire = buf.split().freeze();
            sends.push((wire.as_ptr() as usize, wire.len()));
            t.send(wire).await.unwrap();
        }
        let (big, big_len) = sends[1];
        sends[2..]
            .iter()
            .any(|(p, _)| (big..big + big_len).contains(p))
    }

    #[tokio::test]
    async fn a_big_write_does_not_pin_its_buffer_for_later_ones() {
        let bare = Sink(Mutex::new(vec![]));
        assert!(
            small_write_lands_in_big_allocation(&bare).await,
            "without the hold, the big allocation is taken back (what this guards against)"
        );
        let held = HoldLastWrite::new(Arc::new(Sink(Mutex::new(vec![]))));
        assert!(
            !small_write_lands_in_big_allocation(&held).await,
            "with the hold, later writes use a fresh small buffer"
        );
    }
}

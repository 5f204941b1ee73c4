//! The WebSocket transport for the library: the same WebSocket + TLS stack as
//! the library's default transport, but the TCP socket is opened with
//! `TCP_NODELAY`. The default dials without it, so a small frame written
//! while an earlier one is unacknowledged waits for the peer's delayed ACK
//! (Nagle's algorithm): about 40 ms per send on Linux.

use std::sync::Arc;

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
        Ok(from_websocket(ws))
    }
}

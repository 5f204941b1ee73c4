//! The HTTP listener: accepts connections and serves the router on each,
//! with the limits a public-facing server needs and a shutdown that always
//! finishes.
//!
//! - **Header-read timeout** (`header_timeout`): a connection must send a
//!   whole request head this long after it opens, or after its previous
//!   answer (so it is also how long an idle keep-alive connection lives).
//! - **Idle timeout** (`idle_timeout`): a connection on which no byte moved
//!   either way for this long is closed (a stalled upload, a silent client).
//!   Event streams send a keep-alive comment every 15 s, so they stay.
//! - **Connection cap** (`max_connections`): at the cap, the oldest
//!   connection with no request in flight is closed to make room; when every
//!   connection is busy, the newcomer gets a 503 and is closed.
//! - **Shutdown**: no new connections; every connection is told to finish
//!   its answer and close (event streams end by themselves); whatever is
//!   still open after `drain` — a half-sent request, a client that never
//!   reads — is dropped. axum's own graceful shutdown waits for those
//!   forever (tokio-rs/axum#2673), which is why this file exists.

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use futures::FutureExt;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::app::ErrorCode;

/// The listener's limits (see the module comment).
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    /// How long connections may take to finish after shutdown begins.
    pub drain: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            drain: Duration::from_secs(3),
        }
    }
}

/// The body length a request declares (`Content-Length`), if it is a number.
/// The surfaces refuse a declared body over their limit before reading it.
pub fn declared_length(headers: &axum::http::HeaderMap) -> Option<u64> {
    headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// One open connection, as the cap sees it.
struct Conn {
    /// Requests whose answer is not finished (event streams included).
    busy: Arc<AtomicUsize>,
    kill: CancellationToken,
}

#[derive(Default)]
struct Registry {
    next: AtomicU64,
    open: Mutex<BTreeMap<u64, Conn>>,
}

impl Registry {
    fn len(&self) -> usize {
        self.open.lock().len()
    }

    fn add(self: &Arc<Self>) -> (Entry, Arc<AtomicUsize>, CancellationToken) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let busy = Arc::new(AtomicUsize::new(0));
        let kill = CancellationToken::new();
        self.open.lock().insert(
            id,
            Conn {
                busy: busy.clone(),
                kill: kill.clone(),
            },
        );
        (
            Entry {
                id,
                registry: self.clone(),
            },
            busy,
            kill,
        )
    }

    /// Close the oldest connection with no request in flight; `false` if
    /// every connection is busy.
    fn evict_idle(&self) -> bool {
        let open = self.open.lock();
        for c in open.values() {
            if c.busy.load(Ordering::SeqCst) == 0 && !c.kill.is_cancelled() {
                c.kill.cancel();
                return true;
            }
        }
        false
    }
}

/// Removes its connection from the registry when the connection ends.
struct Entry {
    id: u64,
    registry: Arc<Registry>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.registry.open.lock().remove(&self.id);
    }
}

/// Counts a request as in flight until its answer's body is dropped.
struct Busy(Arc<AtomicUsize>);

impl Busy {
    fn start(n: &Arc<AtomicUsize>) -> Busy {
        n.fetch_add(1, Ordering::SeqCst);
        Busy(n.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A socket that notes when a byte last moved either way.
struct Watched {
    tcp: TcpStream,
    epoch: Instant,
    last: Arc<AtomicU64>,
}

impl Watched {
    fn touch(&self) {
        self.last
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.tcp).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.tcp).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// Serve `router` on `listener` until `shutdown`, then drain (see the module
/// comment). Returns how many connections had to be dropped at the end.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: CancellationToken,
) -> usize {
    let registry = Arc::new(Registry::default());
    let mut tasks = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => r,
        };
        while tasks.try_join_next().is_some() {}
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                // Out of descriptors (EMFILE) or a connection reset before
                // it was accepted: try again shortly.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if registry.len() >= limits.max_connections && !registry.evict_idle() {
            tasks.spawn(refuse(tcp));
            continue;
        }
        let _ = tcp.set_nodelay(true);
        let (entry, busy, kill) = registry.add();
        tasks.spawn(connection(
            tcp,
            router.clone(),
            limits,
            entry,
            busy,
            kill,
            shutdown.clone(),
        ));
    }
    drop(listener);
    let open = tasks.len();
    let drained = tokio::time::timeout(limits.drain, async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_ok();
    let dropped = if drained { 0 } else { tasks.len() };
    tasks.abort_all();
    tracing::info!(open, dropped, "HTTP connections closed");
    dropped
}

/// The answer for a request whose handler panicked (a bug: logged loudly).
fn panicked() -> axum::response::Response {
    tracing::error!("a request handler panicked; answered 500");
    let body = format!(
        r#"{{"error":{{"code":"{}","message":"the gateway hit a fault; see the server log"}}}}"#,
        ErrorCode::Internal.as_str()
    );
    let mut r = axum::response::Response::new(axum::body::Body::from(body));
    *r.status_mut() = axum::http::StatusCode::INTERNAL_SERVER_ERROR;
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    r
}

/// At the cap with every connection busy: a 503 in the API's envelope.
async fn refuse(mut tcp: TcpStream) {
    let body = format!(
        r#"{{"error":{{"code":"{}","message":"the gateway has too many open connections; try again shortly"}}}}"#,
        ErrorCode::TooManyConnections.as_str()
    );
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = tcp.write_all(head.as_bytes()).await;
        let _ = tcp.write_all(body.as_bytes()).await;
        let _ = tcp.shutdown().await;
    })
    .await;
}

async fn connection(
    tcp: TcpStream,
    router: Router,
    limits: HttpLimits,
    _entry: Entry,
    busy: Arc<AtomicUsize>,
    kill: CancellationToken,
    shutdown: CancellationToken,
) {
    let epoch = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let io = TokioIo::new(Watched {
        tcp,
        epoch,
        last: last.clone(),
    });
    let in_flight = busy.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let router = router.clone();
        let guard = Busy::start(&in_flight);
        async move {
            // A handler that panics answers 500 in the envelope; the
            // connection and the server go on.
            let resp = match std::panic::AssertUnwindSafe(router.oneshot(req))
                .catch_unwind()
                .await
            {
                Ok(Ok(r)) => r,
                Ok(Err(never)) => match never {},
                Err(_) => panicked(),
            };
            // The request stays in flight until its body is done (or dropped).
            Ok::<_, Infallible>(resp.map(|b| {
                axum::body::Body::new(b.map_frame(move |f| {
                    let _ = &guard;
                    f
                }))
            }))
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut closing = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended");
                }
                return;
            }
            _ = shutdown.cancelled(), if !closing => {
                // Nothing in flight (idle, or a head still arriving): close
                // now. Otherwise let the answer finish (until the drain ends).
                if busy.load(Ordering::SeqCst) == 0 {
                    return;
                }
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = kill.cancelled() => {
                tracing::debug!("idle connection closed to make room");
                return;
            }
            _ = tick.tick() => {
                let quiet = epoch.elapsed().saturating_sub(Duration::from_millis(last.load(Ordering::Relaxed)));
                if quiet >= limits.idle_timeout {
                    tracing::debug!(quiet_ms = quiet.as_millis() as u64, "connection idle; closed");
                    return;
                }
            }
        }
    }
}

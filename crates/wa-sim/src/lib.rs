//! wa-sim: a local server speaking WhatsApp's multi-device wire protocol on
//! loopback, so the unmodified `whatsapp-rust` client (built with
//! `danger-skip-cert-chain-verify`) can pair, log in and be failed on command.
//! Tests and the demo only; it never listens beyond loopback.

pub mod certs;
pub mod conn;
pub mod control;
pub mod limits;
pub mod messaging;
pub mod node;
pub mod paircode;
pub mod pairing;
pub mod records;
pub mod signal;
pub mod sim;
pub mod state;
pub mod usync;
pub mod wire;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use tokio::net::TcpListener;

pub use sim::Sim;

/// A running simulator.
pub struct Running {
    pub ws_addr: SocketAddr,
    pub control_addr: SocketAddr,
    pub sim: Arc<Sim>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stop listening and close every connection (state stays on disk).
    pub async fn stop(self) {
        for t in &self.tasks {
            t.abort();
        }
        for c in self.sim.conns() {
            let _ = c.tx.send(sim::Out::Close).await;
        }
        for t in self.tasks {
            let _ = t.await;
        }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws/chat", self.ws_addr)
    }
    pub fn control_url(&self) -> String {
        format!("http://{}", self.control_addr)
    }
}

/// Start wa-sim with its state in `dir`, WebSocket on `listen`, control API on `control`.
pub async fn start(
    dir: PathBuf,
    listen: SocketAddr,
    control: SocketAddr,
) -> anyhow::Result<Running> {
    if !listen.ip().is_loopback() || !control.ip().is_loopback() {
        bail!("wa-sim listens only on loopback addresses");
    }
    let sim = Sim::open(dir).context("opening wa-sim state")?;
    let ws = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let ctl = TcpListener::bind(control)
        .await
        .with_context(|| format!("binding {control}"))?;
    let ws_addr = ws.local_addr()?;
    let control_addr = ctl.local_addr()?;
    let s = sim.clone();
    let accept = tokio::spawn(async move {
        loop {
            match ws.accept().await {
                Ok((tcp, _)) => {
                    let _ = tcp.set_nodelay(true);
                    tokio::spawn(conn::serve(s.clone(), tcp));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    });
    let app = control::router(sim.clone());
    let api = tokio::spawn(async move {
        if let Err(e) = axum::serve(ctl, app).await {
            tracing::error!(error = %e, "control API stopped");
        }
    });
    Ok(Running {
        ws_addr,
        control_addr,
        sim,
        tasks: vec![accept, api],
    })
}

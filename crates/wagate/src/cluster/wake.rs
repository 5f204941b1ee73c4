//! Waking the node that owns an org, from any node: PostgreSQL's
//! LISTEN/NOTIFY on one channel (`wagate_wake`), the org's id as payload.
//! A node accepting a send for an org it does not own writes the message,
//! then notifies; the owner's listener hands the org to its outbox at once
//! instead of at its next poll. A notification is a hint, never the only
//! path: it is lost if no listener is connected, so owners still look at
//! their queues on their own.

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, NoTls};
use tokio_util::sync::CancellationToken;

use super::ClusterError;

/// The channel every node listens on.
pub const CHANNEL: &str = "wagate_wake";

/// Tell whoever owns `org` to look at it now (delivered after the
/// surrounding transaction commits, if there is one).
pub async fn wake(db: &Client, org: &str) -> Result<(), ClusterError> {
    db.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &org])
        .await?;
    Ok(())
}

/// Listen on a connection of its own, sending each woken org's id to
/// `orgs` until `stop` or until the connection breaks (the caller
/// reconnects; what was sent meanwhile is not replayed).
pub async fn listen(
    url: &str,
    orgs: mpsc::Sender<String>,
    stop: CancellationToken,
) -> Result<(), ClusterError> {
    listen_on(url, CHANNEL, orgs, stop).await
}

/// Listen on `channel` (an identifier of ours, never a caller's text),
/// sending each notification's payload to `out`, as `listen` does.
pub async fn listen_on(
    url: &str,
    channel: &'static str,
    orgs: mpsc::Sender<String>,
    stop: CancellationToken,
) -> Result<(), ClusterError> {
    let (client, mut conn) = crate::db::pg::settings(url)
        .map_err(ClusterError::Config)?
        .connect(NoTls)
        .await?;
    let (tx, mut messages) = mpsc::unbounded_channel();
    // The connection's driver ends with the connection, or once this
    // listener is done (`done`, not `stop`: a driver that saw the stop first
    // would end the messages, and the stop would read as a disconnect).
    let done = CancellationToken::new();
    let driven = done.clone();
    let driver = tokio::spawn(async move {
        let mut stream = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
        loop {
            let m = tokio::select! {
                _ = driven.cancelled() => break,
                m = stream.next() => match m {
                    Some(m) => m,
                    None => break,
                },
            };
            match m {
                Ok(m) => {
                    if tx.send(m).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cluster: wake listener connection closed");
                    break;
                }
            }
        }
    });
    client.batch_execute(&format!("LISTEN {channel}")).await?;
    let out = loop {
        tokio::select! {
            _ = stop.cancelled() => break Ok(()),
            m = messages.recv() => match m {
                Some(AsyncMessage::Notification(n)) if n.channel() == channel => {
                    if orgs.send(n.payload().to_string()).await.is_err() {
                        break Ok(());
                    }
                }
                Some(_) => {}
                None => break Err(ClusterError::Disconnected),
            }
        }
    };
    drop(client);
    done.cancel();
    let _ = driver.await;
    out
}

/// `listen_on` until `stop`, connecting again a second after each break;
/// `reconnected` runs before every attempt (what was sent while no
/// listener was connected is not replayed: the caller catches up).
pub async fn listen_forever(
    url: &str,
    channel: &'static str,
    out: mpsc::Sender<String>,
    stop: CancellationToken,
    reconnected: impl Fn(),
) {
    while !stop.is_cancelled() {
        reconnected();
        if let Err(e) = listen_on(url, channel, out.clone(), stop.clone()).await {
            tracing::warn!(channel, error = %e, "cluster: listener down; again in 1 s");
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

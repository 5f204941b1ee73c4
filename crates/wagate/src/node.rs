//! One gateway as a node of several on one PostgreSQL, composed above the
//! service layer (it drives `App`): it runs the lease loop
//! (`cluster::owner`) and carries out what it says (a gained org's link is
//! restored at the paced rate, a lost or handed-over org's link is closed
//! at once), fences the stores' writes by its leases, wakes an org's owner
//! when work for it was written here, reads back every node's events in
//! the database's order for its streams and status (`Feed`), keeps its
//! org directory in line with the database, and runs webhook deliveries
//! while it holds the cluster's one delivery lock.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::App;
use crate::cluster::lease::{Held, Leases};
use crate::cluster::owner::{Change, Owner};
use crate::cluster::ownership::Ownership;
use crate::cluster::view::ClusterView;
use crate::cluster::{connect, Membership};
use crate::session::{Command, Reason, State};
use crate::store::events;

/// How long a node keeps an org it gained before the balancing passes may
/// move it: a connect right after creating an org is not cut off.
const SETTLE: Duration = Duration::from_secs(10);
/// Key of the advisory lock whose holder delivers webhooks.
const WEBHOOK_LOCK: i64 = 0x0077_6167_6174_6501;

/// A running node: its tasks, and what shutdown needs.
pub struct Node {
    pub view: Arc<ClusterView>,
    owner: JoinHandle<Vec<Held>>,
    /// The node's other tasks; each ends on `stop`.
    tasks: TaskTracker,
    stop: CancellationToken,
}

/// Starts webhook deliveries, which run until the token is cancelled.
pub type Deliveries = Box<dyn Fn(CancellationToken) -> JoinHandle<()> + Send + Sync>;

/// How long the node's tasks may take to end once stopped.
const TASKS_WAIT: Duration = Duration::from_secs(2);

impl Node {
    /// Stop the loop: no lease is renewed or taken from now on. Returns
    /// the leases held, to hand back once every link is closed.
    pub async fn stop(&mut self) -> Vec<Held> {
        self.stop.cancel();
        (&mut self.owner).await.unwrap_or_default()
    }

    /// After every link is closed: hand the leases back so the other nodes
    /// take the orgs at once, and mark this node gone.
    pub async fn leave(self, held: Vec<Held>) {
        self.tasks.close();
        if tokio::time::timeout(TASKS_WAIT, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("cluster: the node's tasks did not end in time");
        }
        let s = &self.view.settings;
        let Ok(leases) = Leases::new(s.node.clone(), s.timing) else {
            return;
        };
        let released = async {
            let db = connect(&s.db_url).await?;
            let mut n = 0;
            for h in &held {
                if leases.release(&db, h).await? {
                    n += 1;
                }
            }
            db.execute(
                "UPDATE nodes SET heartbeat_at = '-infinity' WHERE id = $1",
                &[&s.node],
            )
            .await?;
            Ok::<_, crate::cluster::ClusterError>(n)
        };
        match tokio::time::timeout(Duration::from_secs(3), released).await {
            Ok(Ok(n)) => tracing::info!(released = n, "cluster: leases handed back"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cluster: leases not handed back; they lapse by themselves")
            }
            Err(_) => {
                tracing::warn!("cluster: handing leases back timed out; they lapse by themselves")
            }
        }
    }
}

/// Before any supervisor exists: fence both stores by what this node
/// will hold (nothing yet), and leave announcing events to the feed. A
/// supervisor's first state event on a node that does not own its org is
/// then refused like any other write.
pub fn fence_stores(
    node: &str,
    store: &crate::store::Store,
    devices: &crate::devstore::Devices,
) -> Arc<Ownership> {
    let ownership = Arc::new(Ownership::new(node.to_string()));
    store.set_fences(ownership.clone());
    devices.set_fences(ownership.clone());
    store.announce_externally();
    ownership
}

/// Join the cluster: wait out an earlier process under this node's id,
/// then start the loop and the tasks around it (`fence_stores` first).
pub async fn start(
    app: Arc<App>,
    view: Arc<ClusterView>,
    restore_rx: mpsc::UnboundedReceiver<(String, bool)>,
    webhooks: Deliveries,
) -> anyhow::Result<Node> {
    let settings = view.settings.clone();
    let ownership = view.ownership.clone();
    settings
        .timing
        .check()
        .map_err(|e| anyhow::anyhow!("lease timing: {e}"))?;
    let store = app.store().clone();
    let node_ttl = crate::cluster::owner::node_ttl(&settings.timing);
    wait_out_namesake(&settings, node_ttl).await?;
    view.load_states().await;
    view.refresh().await;
    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();

    // Wake-ups for orgs owned elsewhere go out through the database.
    let (wake_tx, wake_rx) = mpsc::unbounded_channel::<i64>();
    app.outbox().set_remote_wake(Arc::new(move |inc| {
        let _ = wake_tx.send(inc);
    }));
    tasks.spawn(send_wakes(settings.db_url.clone(), wake_rx, stop.clone()));
    tasks.spawn(hear_wakes(
        settings.db_url.clone(),
        app.clone(),
        stop.clone(),
    ));
    let last = store.read(events::max_seq).await.unwrap_or(0);
    tasks.spawn(feed(
        settings.db_url.clone(),
        view.clone(),
        store.clone(),
        last,
        stop.clone(),
    ));
    tasks.spawn(keep_in_line(
        app.clone(),
        view.clone(),
        settings.timing.renew_every,
        stop.clone(),
    ));
    tasks.spawn(deliver_while_locked(
        settings.db_url.clone(),
        webhooks,
        stop.clone(),
    ));

    let (changes_tx, changes) = mpsc::channel(1024);
    let recycling = Arc::new(parking_lot::Mutex::new(HashSet::new()));
    tasks.spawn(carry_out(
        app.clone(),
        ownership.clone(),
        changes,
        view.clone(),
        recycling.clone(),
    ));
    tasks.spawn(until(
        stop.clone(),
        restore(
            app.clone(),
            ownership.clone(),
            restore_rx,
            recycling,
            settings.restore_per_second,
        ),
    ));
    let dir = app.clone();
    let busy_app = app.clone();
    let renewing = ownership.clone();
    let settling = ownership.clone();
    let owner = Owner {
        url: settings.db_url.clone(),
        membership: Membership {
            node: settings.node.clone(),
            node_ttl,
            url: Some(settings.advertise.clone()),
        },
        timing: settings.timing,
        draining: Arc::default(),
        renewed: Some(Arc::new(move |h: &Held| renewing.renew(h))),
        busy: Some(Arc::new(move |org: &str| {
            !settling.settled(org, SETTLE)
                || busy_app.sessions().get(org).is_some_and(|h| {
                    matches!(
                        h.snapshot().state,
                        State::Pairing | State::Starting | State::Connecting
                    )
                })
        })),
    };
    let loop_stop = stop.clone();
    let owner = tokio::spawn(async move {
        owner
            .run(move || dir.org_ids(), changes_tx, loop_stop)
            .await
    });
    tracing::info!(node = %settings.node, advertise = %settings.advertise, "cluster: node joined");
    Ok(Node {
        view,
        owner,
        tasks,
        stop,
    })
}

/// An earlier process under this node's id that heartbeated within
/// `node_ttl` may still be alive (or was just killed): its leases would be
/// taken as this process's own. Wait until its heartbeat is stale; fail
/// when it goes on heartbeating for two liveness windows (another gateway
/// running under the same id).
async fn wait_out_namesake(
    settings: &crate::cluster::view::NodeSettings,
    node_ttl: Duration,
) -> anyhow::Result<()> {
    let db = connect(&settings.db_url)
        .await
        .context("connecting to PostgreSQL")?;
    let mut told = false;
    // Since when a live process under this id has been seen heartbeating.
    let mut alive_since: Option<std::time::Instant> = None;
    loop {
        let row = db
            .query_opt(
                // A node that left cleanly has its heartbeat at '-infinity'
                // (PostgreSQL before 17 cannot subtract that): no age.
                "SELECT CASE WHEN heartbeat_at = '-infinity' THEN NULL
                        ELSE (EXTRACT(EPOCH FROM (now() - heartbeat_at)) * 1000)::float8 END
                 FROM nodes WHERE id = $1",
                &[&settings.node],
            )
            .await?;
        let age_ms: Option<f64> = row.and_then(|r| r.try_get::<_, Option<f64>>(0).ok().flatten());
        // A process under this id that still has a connection open is alive
        // (a killed one's connections end with it): where they come from,
        // for the operator.
        let others: Option<String> = match crate::db::pg::application_name() {
            Some(me) => db
                .query_one(
                    "SELECT string_agg(DISTINCT COALESCE(host(client_addr), 'a local socket'), ', ')
                     FROM pg_stat_activity
                     WHERE application_name LIKE $1 AND application_name <> $2",
                    &[&format!("wagate/{}/%", like_literal(&settings.node)), &me],
                )
                .await
                .map(|r| r.get::<_, Option<String>>(0))
                .unwrap_or_else(|_| Some("an unknown address".into())),
            None => Some("an unknown address".into()),
        };
        match age_ms {
            Some(age)
                if others.is_some()
                    && age.is_finite()
                    && age >= 0.0
                    && age < node_ttl.as_millis() as f64 =>
            {
                // An earlier process that is stopping stops heartbeating; one
                // that goes on for two liveness windows is another gateway
                // running under this id.
                let since = *alive_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() > node_ttl * 2 {
                    anyhow::bail!(
                        "node id '{}' is in use: another running gateway (connected from {}) has heartbeated under it for {} s, the last time {:.1} s ago; give each gateway its own --node-id",
                        settings.node,
                        others.unwrap_or_default(),
                        since.elapsed().as_secs(),
                        age / 1000.0
                    );
                }
                if !told {
                    tracing::warn!(
                        node = %settings.node,
                        seconds_ago = age / 1000.0,
                        "cluster: a process with this node id heartbeated recently; waiting until it is gone (two processes under one --node-id would both act for its orgs)"
                    );
                    told = true;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            _ => {
                // A node that starts is not draining (a drain is for the
                // maintenance it was stopped for).
                db.execute(
                    "UPDATE nodes SET draining = false WHERE id = $1",
                    &[&settings.node],
                )
                .await?;
                return Ok(());
            }
        }
    }
}

/// `s` matching itself only in a `LIKE` pattern (backslash escapes).
fn like_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Carry out the loop's changes: a gain is queued for a paced restore; a
/// loss fences at once, then the link is closed; a hand-over answers once
/// the link is closed.
async fn carry_out(
    app: Arc<App>,
    ownership: Arc<Ownership>,
    mut changes: mpsc::Receiver<Change>,
    view: Arc<ClusterView>,
    recycling: Arc<parking_lot::Mutex<HashSet<String>>>,
) {
    while let Some(c) = changes.recv().await {
        match c {
            Change::Gained(held) => {
                let mut row = app.org_row(&held.org);
                if row.is_none() {
                    let _ = app.sync_orgs().await;
                    row = app.org_row(&held.org);
                }
                let Some(row) = row else {
                    tracing::debug!(org = %held.org, "cluster: lease for an org not in the directory");
                    continue;
                };
                // Taken on a request already (same epoch): only renewed.
                let known =
                    ownership.owns_inc(row.inc) && ownership.epoch(row.inc) == Some(held.epoch);
                ownership.insert(row.inc, held.clone());
                if !known {
                    tracing::info!(org = %held.org, epoch = held.epoch, "cluster: org gained");
                    view.restore(&held.org, true);
                }
            }
            Change::Lost { org, why } => {
                ownership.remove(&org);
                tracing::warn!(org = %org, why = ?why, "cluster: org lost; closing its link");
                let (app, recycling) = (app.clone(), recycling.clone());
                tokio::spawn(async move { recycle(&app, &org, &recycling).await });
            }
            Change::Give { org, done } => {
                ownership.remove(&org);
                tracing::info!(org = %org, "cluster: handing org over");
                let (app, recycling) = (app.clone(), recycling.clone());
                tokio::spawn(async move {
                    recycle(&app, &org, &recycling).await;
                    let _ = done.send(());
                });
            }
        }
    }
}

/// Close an org's link: its supervisor stops (credentials kept) and an
/// idle one takes its place.
async fn recycle(app: &App, org: &str, recycling: &parking_lot::Mutex<HashSet<String>>) {
    recycling.lock().insert(org.to_string());
    app.sessions().recycle(org, Duration::from_secs(5)).await;
    recycling.lock().remove(org);
}

/// Restore gained orgs at the paced rate (never while the org's previous
/// link here is still closing, never once the lease is gone again).
async fn restore(
    app: Arc<App>,
    ownership: Arc<Ownership>,
    mut gained: mpsc::UnboundedReceiver<(String, bool)>,
    recycling: Arc<parking_lot::Mutex<HashSet<String>>>,
    per_second: u32,
) {
    let gap = Duration::from_secs_f64(1.0 / f64::from(per_second.max(1)));
    let mut tick = tokio::time::interval(gap);
    while let Some((org, may_recycle)) = gained.recv().await {
        while recycling.lock().contains(&org) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if !ownership.owns(&org) {
            continue;
        }
        // The idle supervisor kept here while another node owned the org
        // opened the device when it was made: what it holds in memory (the
        // credentials, the key counters, whether it was linked at all) is
        // as old as that, and the owner has written since. A fresh one
        // reads the device as it is now. One linking the org on a request
        // (pairing) is left alone.
        let stale = may_recycle
            && app
                .sessions()
                .get(&org)
                .is_some_and(|h| !linking_on_request(&h.snapshot()));
        if stale {
            app.sessions().recycle(&org, Duration::from_secs(5)).await;
        }
        let Some(h) = app.sessions().get(&org) else {
            continue;
        };
        let mut rx = h.status.clone();
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            rx.wait_for(|s| s.state != State::Starting),
        )
        .await;
        if !ownership.owns(&org) {
            continue;
        }
        let s = h.snapshot();
        if !(s.state == State::New && s.reason == Reason::NotLinked) {
            tick.tick().await;
        }
        let _ = h.send(Command::Restore).await;
    }
}

/// Whether a supervisor is linking its org on a request: a QR or a pairing
/// code on offer, or the login right after the phone linked it.
fn linking_on_request(s: &crate::session::Snapshot) -> bool {
    s.state == State::Pairing
        || matches!(
            s.reason,
            Reason::Connecting {
                purpose: crate::session::Purpose::Qr | crate::session::Purpose::PairCode,
                ..
            } | Reason::ScanQr
                | Reason::TypePairCode
                | Reason::Paired { .. }
        )
}

/// Send each wake-up for an org owned elsewhere as a notification.
async fn send_wakes(url: String, mut incs: mpsc::UnboundedReceiver<i64>, stop: CancellationToken) {
    let mut db = None;
    loop {
        let inc = tokio::select! {
            _ = stop.cancelled() => return,
            inc = incs.recv() => match inc {
                Some(inc) => inc,
                None => return,
            },
        };
        for _ in 0..2 {
            if db.as_ref().is_none_or(tokio_postgres::Client::is_closed) {
                db = connect(&url).await.ok();
            }
            let Some(c) = db.as_ref() else { break };
            if crate::cluster::wake::wake(c, &inc.to_string())
                .await
                .is_ok()
            {
                break;
            }
            db = None;
        }
    }
}

/// Hear wake-ups meant for this node's dispatchers; after the listening
/// connection was down, every dispatcher looks at its queue once.
async fn hear_wakes(url: String, app: Arc<App>, stop: CancellationToken) {
    let (tx, mut rx) = mpsc::channel::<String>(1024);
    let outbox = app.outbox().clone();
    let waker = tokio::spawn(async move {
        while let Some(inc) = rx.recv().await {
            if let Ok(inc) = inc.parse::<i64>() {
                outbox.wake_local(inc);
            }
        }
    });
    crate::cluster::wake::listen_forever(&url, crate::cluster::wake::CHANNEL, tx, stop, || {
        app.outbox().wake_all_local()
    })
    .await;
    // The listener is gone with its sender: the waker ends on its own.
    let _ = waker.await;
}

/// Announce every node's committed events, in the database's order: on
/// each notification, and every second in case one was missed.
async fn feed(
    url: String,
    view: Arc<ClusterView>,
    store: crate::store::Store,
    mut last: i64,
    stop: CancellationToken,
) {
    let (tx, mut rx) = mpsc::channel::<String>(64);
    let listener = {
        let stop = stop.clone();
        tokio::spawn(async move {
            crate::cluster::wake::listen_forever(
                &url,
                crate::store::EVENTS_CHANNEL,
                tx,
                stop,
                || {},
            )
            .await
        })
    };
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = rx.recv() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        while rx.try_recv().is_ok() {}
        loop {
            let after = last;
            match store.read(move |c| events::since(c, after, 500)).await {
                Ok(rows) => {
                    let n = rows.len();
                    for e in rows {
                        last = e.seq;
                        view.note_state(&e);
                        store.announce(e);
                    }
                    if n < 500 {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cluster: cannot read new events");
                    break;
                }
            }
        }
    }
    let _ = listener.await;
}

/// Keep the directory in line with the database (orgs created or deleted
/// through other nodes) and the owners' map fresh.
async fn keep_in_line(
    app: Arc<App>,
    view: Arc<ClusterView>,
    every: Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = app.sync_orgs().await {
            tracing::warn!(error = %e.message, "cluster: cannot read the organizations");
        }
        // Leases of orgs deleted meanwhile (a node with an older directory
        // may have made one again).
        let swept = app
            .store()
            .write(|tx| {
                tx.execute(
                    "DELETE FROM org_leases l WHERE NOT EXISTS (SELECT 1 FROM orgs o WHERE o.id = l.org)",
                    crate::args![],
                )
            })
            .await;
        if let Err(e) = swept {
            tracing::warn!(error = %e, "cluster: cannot sweep the leases of deleted orgs");
        }
        view.refresh().await;
    }
}

/// Run webhook deliveries while this node holds the cluster's delivery
/// lock (a session-level advisory lock: released when the holder's
/// connection ends, so a dead node's turn passes on at once).
async fn deliver_while_locked(url: String, webhooks: Deliveries, stop: CancellationToken) {
    while !stop.is_cancelled() {
        let Ok(db) = connect(&url).await else {
            tokio::time::sleep(Duration::from_secs(2)).await;
            continue;
        };
        let locked = db
            .query_one("SELECT pg_try_advisory_lock($1)", &[&WEBHOOK_LOCK])
            .await
            .map(|r| r.get::<_, bool>(0))
            .unwrap_or(false);
        if !locked {
            tokio::time::sleep(Duration::from_secs(2)).await;
            continue;
        }
        tracing::info!("cluster: this node delivers webhooks");
        let turn = stop.child_token();
        let task = webhooks(turn.clone());
        // Hold the lock while the connection lives.
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
            if db.is_closed() || db.simple_query("SELECT 1").await.is_err() {
                tracing::warn!("cluster: the delivery lock's connection broke; webhooks stop here");
                break;
            }
        }
        turn.cancel();
        let _ = task.await;
    }
}

/// Run `work` until it ends or `stop` is cancelled (then it is dropped at
/// its next await point).
async fn until(stop: CancellationToken, work: impl std::future::Future<Output = ()>) {
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = work => {}
    }
}

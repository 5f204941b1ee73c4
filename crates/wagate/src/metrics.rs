//! Prometheus metrics (text format, through `prometheus-client`): counters
//! and histograms the code bumps as things happen (HTTP requests,
//! reconnects, decryption failures, send → ack, webhook attempts), and
//! gauges read at scrape time (orgs per link state, messages per status,
//! webhook deliveries per status, time since each connected org's last
//! frame). No label carries an org id: every label set is bounded.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Http {
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Route {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateL {
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusL {
    pub status: String,
}

fn seconds_buckets() -> [f64; 13] {
    [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ]
}

/// Every metric of the process.
pub struct Metrics {
    pub http_requests: Family<Http, Counter>,
    pub http_seconds: Family<Route, Histogram>,
    pub reconnects: Family<Reason, Counter>,
    pub decrypt_failures: Counter,
    pub send_ack_seconds: Histogram,
    pub webhook_attempts: Family<Outcome, Counter>,
    orgs: Family<StateL, Gauge>,
    messages: Family<StatusL, Gauge>,
    deliveries: Family<StatusL, Gauge>,
    last_frame_age: Family<StatusL, Histogram>,
    registry: Registry,
}

impl Metrics {
    fn new() -> Metrics {
        let http_requests = Family::<Http, Counter>::default();
        let http_seconds =
            Family::<Route, Histogram>::new_with_constructor(|| Histogram::new(seconds_buckets()));
        let reconnects = Family::<Reason, Counter>::default();
        let decrypt_failures = Counter::default();
        let send_ack_seconds = Histogram::new(seconds_buckets());
        let webhook_attempts = Family::<Outcome, Counter>::default();
        let orgs = Family::<StateL, Gauge>::default();
        let messages = Family::<StatusL, Gauge>::default();
        let deliveries = Family::<StatusL, Gauge>::default();
        let last_frame_age = Family::<StatusL, Histogram>::new_with_constructor(|| {
            Histogram::new([1.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 60.0])
        });
        let mut r = Registry::with_prefix("wagate");
        r.register(
            "http_requests",
            "HTTP requests by route (the pattern, not the path), method and status",
            http_requests.clone(),
        );
        r.register(
            "http_request_duration_seconds",
            "Time to answer HTTP requests, by route (event streams count until their head)",
            http_seconds.clone(),
        );
        r.register(
            "reconnects",
            "Link attempts that ended and were scheduled again, by cause",
            reconnects.clone(),
        );
        r.register(
            "decrypt_failures",
            "Inbound messages that could not be decrypted (the sender was asked to resend)",
            decrypt_failures.clone(),
        );
        r.register(
            "send_ack_duration_seconds",
            "From handing a message to WhatsApp to the server's ack",
            send_ack_seconds.clone(),
        );
        r.register(
            "webhook_attempts",
            "Webhook delivery attempts by outcome",
            webhook_attempts.clone(),
        );
        r.register(
            "orgs",
            "Organizations by link state (read at scrape time)",
            orgs.clone(),
        );
        r.register(
            "messages",
            "Messages by status: queued and scheduled are the outbox's depth, held ones wait for a limit to lift (read at scrape time)",
            messages.clone(),
        );
        r.register(
            "webhook_deliveries",
            "Webhook deliveries by status (read at scrape time)",
            deliveries.clone(),
        );
        r.register(
            "last_frame_age_seconds",
            "Over connected orgs, seconds since each one's last frame from WhatsApp (read at scrape time)",
            last_frame_age.clone(),
        );
        Metrics {
            http_requests,
            http_seconds,
            reconnects,
            decrypt_failures,
            send_ack_seconds,
            webhook_attempts,
            orgs,
            messages,
            deliveries,
            last_frame_age,
            registry: r,
        }
    }

    /// The text exposition, after setting the scrape-time gauges.
    pub fn render(&self, now: &Snapshot) -> String {
        let state = |s: &String| StateL { state: s.clone() };
        let status = |s: &String| StatusL { status: s.clone() };
        set_all(&self.orgs, &now.orgs, state);
        set_all(&self.messages, &now.messages, status);
        set_all(&self.deliveries, &now.deliveries, status);
        self.last_frame_age.clear();
        let h = self.last_frame_age.get_or_create(&StatusL {
            status: "connected".into(),
        });
        for age in &now.frame_ages {
            h.observe(age.as_secs_f64());
        }
        drop(h);
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        out
    }
}

/// Replace `family`'s series by one per row.
fn set_all<L>(family: &Family<L, Gauge>, rows: &[(String, i64)], label: impl Fn(&String) -> L)
where
    L: Clone + std::hash::Hash + Eq + EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static,
{
    family.clear();
    for (name, n) in rows {
        family.get_or_create(&label(name)).set(*n);
    }
}

/// What is read at scrape time.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub orgs: Vec<(String, i64)>,
    pub messages: Vec<(String, i64)>,
    pub deliveries: Vec<(String, i64)>,
    pub frame_ages: Vec<Duration>,
}

/// The process's metrics.
pub fn get() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(Metrics::new)
}

/// Count one HTTP answer.
pub fn http(route: &str, method: &str, status: u16, took: Duration) {
    let m = get();
    m.http_requests
        .get_or_create(&Http {
            route: route.to_string(),
            method: method.to_string(),
            status,
        })
        .inc();
    m.http_seconds
        .get_or_create(&Route {
            route: route.to_string(),
        })
        .observe(took.as_secs_f64());
}

/// Count one reconnect, by the cause's kind.
pub fn reconnect(cause: &str) {
    get()
        .reconnects
        .get_or_create(&Reason {
            reason: cause.to_string(),
        })
        .inc();
}

/// Count one webhook attempt.
pub fn webhook_attempt(outcome: &str) {
    get()
        .webhook_attempts
        .get_or_create(&Outcome {
            outcome: outcome.to_string(),
        })
        .inc();
}

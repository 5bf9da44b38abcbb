//! What an operator watches on a running node, in the Prometheus text
//! format at `GET /v1/metrics`: peers, gossip verdicts, blocked peers,
//! durable commits, event-loop lag, bulk jobs waiting, the outbox, the gallery and active
//! alerts, and gossipsub's own metrics (mesh, scores, messages per topic).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Verdict {
    pub verdict: &'static str,
}

/// The node's own metrics (handles: cheap to update from the event loop).
#[derive(Debug, Clone)]
pub struct Metrics {
    pub peers: Gauge,
    pub gossip: Family<Verdict, Counter>,
    pub blocked: Counter,
    pub commit_seconds: Histogram,
    pub loop_lag_seconds: Histogram,
    pub alert_jobs: Gauge,
    /// Set when scraped, from the node's status.
    pub outbox: Gauge,
    pub records: Gauge,
    pub alerts: Gauge,
    pub hits: Gauge,
}

impl Metrics {
    /// Registers them in `registry` (prefix `vigil_`).
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            peers: Gauge::default(),
            gossip: Family::default(),
            blocked: Counter::default(),
            // 50 µs to about 1.6 s.
            commit_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            loop_lag_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            alert_jobs: Gauge::default(),
            outbox: Gauge::default(),
            records: Gauge::default(),
            alerts: Gauge::default(),
            hits: Gauge::default(),
        };
        registry.register("peers_connected", "Roster members connected now", m.peers.clone());
        for verdict in ["accept", "ignore", "reject"] {
            let _ = m.gossip.get_or_create(&Verdict { verdict });
        }
        registry.register("gossip_messages", "Gossiped alerts and withdrawals by verdict", m.gossip.clone());
        registry.register("peers_blocked", "Peers blocked after repeated violations", m.blocked.clone());
        registry.register(
            "commit_seconds",
            "Durable commits (writes and audit entries, flushed before anything they acknowledge)",
            m.commit_seconds.clone(),
        );
        registry.register(
            "event_loop_lag_seconds",
            "How late the event loop serves a timer (sampled every 200 ms)",
            m.loop_lag_seconds.clone(),
        );
        registry.register("alert_jobs_waiting", "Answers to encrypted alerts queued or running", m.alert_jobs.clone());
        registry.register("outbox_messages", "Messages waiting in the outbox for a peer", m.outbox.clone());
        registry.register("gallery_records", "Records enrolled", m.records.clone());
        registry.register("alerts_held", "Alerts held (own and others', active or closed)", m.alerts.clone());
        registry.register("hits_held", "Hits held (as holder and as issuer)", m.hits.clone());
        m
    }

    /// The gauges read from the node's status.
    pub fn set_status(&self, s: &crate::views::Status) {
        let n = |x: usize| i64::try_from(x).unwrap_or(i64::MAX);
        self.peers.set(n(s.connected.len()));
        self.outbox.set(n(s.outbox));
        self.records.set(n(s.gallery));
        self.alerts.set(n(s.alerts));
        self.hits.set(n(s.hits));
    }
}

/// A node's registry (its own metrics and gossipsub's) and its own handles.
#[derive(Debug)]
pub struct NodeMetrics {
    pub registry: Registry,
    pub own: Metrics,
}

/// A registry in the Prometheus text format.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

/// The value of the sample `name` (with its labels, as encoded) in `text`,
/// the Prometheus text format; 0 when absent.
pub fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .filter_map(|v| v.split(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_read_back_by_name_and_labels() {
        let mut registry = Registry::with_prefix("vigil");
        let m = Metrics::register(&mut registry);
        m.gossip.get_or_create(&Verdict { verdict: "reject" }).inc_by(3);
        m.commit_seconds.observe(0.25);
        m.commit_seconds.observe(0.5);
        let text = encode(&registry);
        assert_eq!(sample(&text, "vigil_gossip_messages_total{verdict=\"reject\"}"), 3.0);
        assert_eq!(sample(&text, "vigil_gossip_messages_total{verdict=\"accept\"}"), 0.0);
        assert_eq!(sample(&text, "vigil_commit_seconds_count"), 2.0);
        assert_eq!(sample(&text, "vigil_commit_seconds_sum"), 0.75);
        assert_eq!(sample(&text, "vigil_no_such_metric"), 0.0);
    }
}

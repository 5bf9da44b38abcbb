//! Vigil's test kit: a local federation of real nodes in one process, and
//! the helpers the end-to-end tests, the demo, the drills and the
//! benchmarks share (waiting on nodes, reading audit logs, a wire tap,
//! peak memory). With the `drill` feature it also reaches the node's drill
//! hooks (taps, latency, partitions, crashes, raw frames).

mod federation;
#[cfg(feature = "drill")]
mod wire;

pub use federation::{ConfigTweak, FederationOptions, LocalFederation, LocalNode, OrgSpec};
#[cfg(feature = "drill")]
pub use wire::{Tapped, WireLog, MAX_TAPPED};

use std::time::{Duration, Instant};
use vigil_engine::audit::AuditEvent;
use vigil_engine::model::{HitRole, StoredHit};
use vigil_node::NodeHandle;

/// How long a test waits for something that takes milliseconds.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Polls `f` until it returns `Some` or `timeout` passes.
pub async fn wait_for<T, F, Fut>(timeout: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Audit events of a node.
pub async fn audit_events(h: &NodeHandle) -> Vec<AuditEvent> {
    h.audit_export().await.unwrap().into_iter().map(|r| r.entry.event).collect()
}

/// Waits until `pred` holds for one of the node's audit events.
pub async fn wait_audit(h: &NodeHandle, pred: impl Fn(&AuditEvent) -> bool) -> Option<AuditEvent> {
    let pred = &pred;
    wait_for(PATIENCE, || async move { audit_events(h).await.into_iter().find(|e| pred(e)) }).await
}

/// Waits until the node has at least `n` hits in `role`.
pub async fn wait_hits(h: &NodeHandle, role: HitRole, n: usize) -> Option<Vec<StoredHit>> {
    wait_for(PATIENCE, || async move {
        let hits: Vec<StoredHit> = h.hits().await.ok()?.into_iter().filter(|x| x.role == role).collect();
        (hits.len() >= n).then_some(hits)
    })
    .await
}

/// Whether `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// An enrolment of `template` as a found person under case `case_ref`,
/// kept for a long while: what the end-to-end tests enrol.
pub fn found(template: vigil_matcher::Template, case_ref: String) -> vigil_engine::Enrolment {
    vigil_engine::Enrolment {
        pad: None,
        template,
        category: vigil_protocol::Category::Found,
        case_ref,
        consent: "intake form".into(),
        retain_until_ms: vigil_node::now_ms() + 1_000_000_000,
        regime: None,
    }
}

/// Peak resident memory of this process, from /proc (Linux), in MiB.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| l.to_string()))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|k| k.parse::<f64>().ok()))
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

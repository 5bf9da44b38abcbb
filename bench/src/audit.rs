//! `vigil bench audit`: verifying the audit chain, at N and 4N entries in
//! one run, through the same streaming verification the node runs off its
//! event loop: time per entry should not grow with the chain (linear), and
//! memory stays flat (entries are checked one at a time).

use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;
use vigil_crypto::{Identity, SealKey};
use vigil_engine::audit::AuditEvent;
use vigil_node::store::{db_path, Store};

#[derive(Debug, Serialize)]
pub struct AuditBench {
    pub sizes: Vec<VerifyRun>,
    /// Microseconds per entry at 4N over those at N (1.0: linear).
    pub per_entry_ratio: f64,
}

#[derive(Debug, Serialize)]
pub struct VerifyRun {
    pub entries: usize,
    pub verify_ms: f64,
    pub us_per_entry: f64,
    /// Growth of the process's peak resident memory during the
    /// verification (0: it stayed below what building the chain took).
    pub peak_rss_growth_mb: f64,
}

fn chain(entries: usize) -> anyhow::Result<(tempfile::TempDir, Store)> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(&db_path(dir.path()), SealKey::random(), Arc::new(Identity::generate()))?;
    let mut left = entries;
    while left > 0 {
        let n = left.min(1000);
        let events = (0..n).map(|i| AuditEvent::PeerBlocked { peer: format!("peer-{i}") }).collect();
        store.commit(&[], 1, events)?;
        left -= n;
    }
    Ok((dir, store))
}

pub fn run(entries: usize) -> anyhow::Result<AuditBench> {
    anyhow::ensure!(entries >= 1, "need at least one entry");
    let mut sizes = Vec::new();
    for n in [entries, 4 * entries] {
        let (_dir, store) = chain(n)?;
        let before = vigil_testkit::peak_rss_mb();
        let t = Instant::now();
        let verified = store.audit_reader().verify()?;
        let verify_ms = t.elapsed().as_secs_f64() * 1e3;
        anyhow::ensure!(verified == n, "verified {verified} of {n}");
        let peak_rss_growth_mb = (vigil_testkit::peak_rss_mb() - before).max(0.0);
        sizes.push(VerifyRun { entries: n, verify_ms, us_per_entry: verify_ms * 1e3 / n as f64, peak_rss_growth_mb });
    }
    let per_entry_ratio = sizes[1].us_per_entry / sizes[0].us_per_entry;
    Ok(AuditBench { sizes, per_entry_ratio })
}

//! `vigil drill`: a federation of many real nodes in one process over
//! libp2p's in-memory transport, with a seeded synthetic population and a
//! known ground truth: every alert's person is held by exactly one other
//! member. Measures alert delivery to every member and time to hit, counts
//! expected, found and false hits, and checks named invariants. The first
//! piece of the drill harness: scenario files, faults and reports come next.

use crate::bench::peak_rss_mb;
use crate::federation::{wait_for, FederationOptions, LocalFederation, OrgSpec};
use crate::services::Enrolment;
use crate::store::HitRole;
use serde::Serialize;
use std::time::{Duration, Instant};
use vigil_matcher::synth::Population;
use vigil_protocol::{Category, OrgKind};

/// How long a drill waits for delivery and hits before it reports failure.
const PATIENCE: Duration = Duration::from_secs(60);

/// A named check, pass or fail.
#[derive(Debug, Serialize)]
pub struct Invariant {
    pub name: &'static str,
    pub passed: bool,
    pub detail: String,
}

/// The drill's figures (`vigil drill --json`).
#[derive(Debug, Serialize)]
pub struct DrillReport {
    pub nodes: usize,
    pub records: usize,
    pub alerts: usize,
    pub seed: u64,
    pub deliveries: usize,
    pub delivery_p50_ms: u64,
    pub delivery_p95_ms: u64,
    pub delivery_p99_ms: u64,
    pub delivery_max_ms: u64,
    pub time_to_hit_p50_ms: u64,
    pub time_to_hit_max_ms: u64,
    pub hits_expected: usize,
    pub hits_found: usize,
    pub false_hits: usize,
    pub invariants: Vec<Invariant>,
    pub invariants_failed: usize,
    pub wall_s: f64,
    pub peak_rss_mb: f64,
}

fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Runs a drill of `nodes` organisations holding `records` records each and
/// `alerts` alerts, seeded by `seed`.
pub async fn run(nodes: usize, records: usize, alerts: usize, seed: u64) -> anyhow::Result<DrillReport> {
    anyhow::ensure!(nodes >= 2, "a drill needs at least two organisations");
    anyhow::ensure!(records >= 1 && alerts >= 1, "a drill needs records and alerts");
    let t0 = Instant::now();
    let kinds = [OrgKind::Ngo, OrgKind::Police, OrgKind::Border];
    let specs: Vec<OrgSpec> = (0..nodes).map(|i| OrgSpec::new(&format!("Org {i:03}"), kinds[i % 3])).collect();
    let fed = LocalFederation::start(&specs, FederationOptions { memory: true, ..Default::default() }).await?;
    let all: Vec<usize> = (0..nodes).collect();
    fed.wait_connected(&all, PATIENCE).await?;

    // Persons 0..alerts are missing; each is held by one member (not its issuer).
    // Fillers are other persons, so any other hit is a false one.
    let fillers = nodes * records;
    let pop = Population::new(seed, "vigil-synth-128", alerts + fillers);
    let issuer = |k: usize| k % nodes;
    let holder = |k: usize| (k % nodes + 1 + (k / nodes) % (nodes - 1)) % nodes;
    let mut enrolled = 0;
    for (n, node) in fed.nodes.iter().enumerate() {
        let batch: Vec<Enrolment> = (0..records).map(|r| enrolment(&pop, alerts + n * records + r)).collect();
        enrolled += node.handle.enrol_many(batch).await?.len();
    }
    for k in 0..alerts {
        fed.nodes[holder(k)].handle.enrol(enrolment(&pop, k)).await?;
        enrolled += 1;
    }
    let mut ids = Vec::new();
    for k in 0..alerts {
        let h = &fed.nodes[issuer(k)].handle;
        let expires = crate::runtime::now_ms() + 7 * 24 * 3600 * 1000;
        ids.push(h.publish_alert(pop.sample(k, 0), Category::Missing, format!("DRILL-{k}"), expires).await?);
    }

    // Delivery: every member other than the issuer, measured by its own receipt time.
    let mut delays = Vec::new();
    let mut undelivered = 0;
    for (k, id) in ids.iter().enumerate() {
        for (n, node) in fed.nodes.iter().enumerate().filter(|(n, _)| *n != issuer(k)) {
            let h = node.handle.clone();
            let got = wait_for(PATIENCE, || {
                let h = h.clone();
                async move { h.alerts().await.ok()?.into_iter().find(|a| a.id == *id) }
            })
            .await;
            match got {
                Some(a) => delays.push(a.received_at_ms.saturating_sub(a.created_at_ms)),
                None => {
                    undelivered += 1;
                    tracing::warn!("alert {k} never reached node {n}");
                }
            }
        }
    }
    delays.sort_unstable();

    // Hits: at each issuer, for its alerts; the holder is known.
    let mut found = 0;
    let mut false_hits = 0;
    let mut to_hit = Vec::new();
    for (k, id) in ids.iter().enumerate() {
        let h = fed.nodes[issuer(k)].handle.clone();
        let want = fed.nodes[holder(k)].handle.org;
        let created = h.alerts().await?.into_iter().find(|a| a.id == *id).map_or(0, |a| a.created_at_ms);
        let hit = wait_for(PATIENCE, || {
            let h = h.clone();
            async move {
                let hits = h.hits().await.ok()?;
                hits.into_iter().find(|x| x.role == HitRole::Issuer && x.peer == want && matches_alert(&x.source, id))
            }
        })
        .await;
        if let Some(x) = hit {
            found += 1;
            to_hit.push(x.at_ms.saturating_sub(created));
        }
    }
    // Let late answers land, then count every issuer hit that is not the expected one.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (k, id) in ids.iter().enumerate() {
        let want = fed.nodes[holder(k)].handle.org;
        for x in fed.nodes[issuer(k)].handle.hits().await? {
            if x.role == HitRole::Issuer && matches_alert(&x.source, id) && x.peer != want {
                false_hits += 1;
            }
        }
    }
    to_hit.sort_unstable();

    let mut chains_ok = 0;
    for n in &fed.nodes {
        chains_ok += usize::from(n.handle.audit_verify().await?.is_ok());
    }
    let invariants = vec![
        Invariant {
            name: "every alert reaches every member",
            passed: undelivered == 0,
            detail: format!("{undelivered} of {} deliveries missing", ids.len() * (nodes - 1)),
        },
        Invariant {
            name: "every expected hit is found",
            passed: found == alerts,
            detail: format!("{found} of {alerts}"),
        },
        Invariant {
            name: "every audit chain verifies",
            passed: chains_ok == nodes,
            detail: format!("{chains_ok} of {nodes}"),
        },
    ];
    fed.shutdown().await;
    Ok(DrillReport {
        nodes,
        records: enrolled,
        alerts,
        seed,
        deliveries: delays.len(),
        delivery_p50_ms: percentile(&delays, 0.5),
        delivery_p95_ms: percentile(&delays, 0.95),
        delivery_p99_ms: percentile(&delays, 0.99),
        delivery_max_ms: delays.last().copied().unwrap_or(0),
        time_to_hit_p50_ms: percentile(&to_hit, 0.5),
        time_to_hit_max_ms: to_hit.last().copied().unwrap_or(0),
        hits_expected: alerts,
        hits_found: found,
        false_hits,
        invariants_failed: invariants.iter().filter(|i| !i.passed).count(),
        invariants,
        wall_s: t0.elapsed().as_secs_f64(),
        peak_rss_mb: peak_rss_mb(),
    })
}

fn matches_alert(source: &crate::store::HitSource, id: &vigil_protocol::AlertId) -> bool {
    match source {
        crate::store::HitSource::Alert(a) | crate::store::HitSource::EncryptedAlert { alert: a, .. } => a == id,
        crate::store::HitSource::Query(_) => false,
    }
}

fn enrolment(pop: &Population, person: usize) -> Enrolment {
    Enrolment {
        template: pop.sample(person, 1),
        category: Category::Found,
        case_ref: format!("P-{person}"),
        consent: "drill".into(),
        retain_until_ms: crate::runtime::now_ms() + 365 * 24 * 3600 * 1000,
        regime: None,
    }
}

//! `vigil bench enrol`: acknowledged enrolments per second and their
//! latency at a real node (its actor, its store on disk: every
//! acknowledgement waits for a durable commit), from one client and from
//! eight at once (what group commit is for), then with standing encrypted
//! alerts that every new record is answered against.

use serde::Serialize;
use std::time::{Duration, Instant};
use vigil_engine::Enrolment;
use vigil_matcher::synth::Population;
use vigil_protocol::{Category, OrgKind};
use vigil_testkit::{FederationOptions, LocalFederation, OrgSpec};

#[derive(Debug, Serialize)]
pub struct EnrolBench {
    pub records: usize,
    pub runs: Vec<EnrolRun>,
}

#[derive(Debug, Serialize)]
pub struct EnrolRun {
    pub clients: usize,
    pub standing_alerts: usize,
    pub enrolments: usize,
    pub per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

fn enrolment(pop: &Population, person: usize) -> Enrolment {
    Enrolment {
        pad: None,
        template: pop.sample(person % pop.len(), 1),
        category: Category::Found,
        case_ref: format!("B-{person}"),
        consent: "intake form".into(),
        retain_until_ms: vigil_node::now_ms() + 30 * 24 * 3600 * 1000,
        regime: None,
    }
}

async fn timed(
    node: &vigil_node::NodeHandle,
    pop: &Population,
    clients: usize,
    total: usize,
    first: usize,
) -> anyhow::Result<(f64, Vec<f64>)> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (node, pop) = (node.clone(), pop.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            for i in (c..total).step_by(clients) {
                let t = Instant::now();
                node.enrol(enrolment(&pop, first + i)).await?;
                lat.push(t.elapsed().as_secs_f64() * 1e3);
            }
            anyhow::Ok(lat)
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await??);
    }
    let per_s = total as f64 / start.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    Ok((per_s, lat))
}

fn run_of(clients: usize, standing_alerts: usize, per_s: f64, lat: &[f64]) -> EnrolRun {
    let at = |p: f64| lat[((lat.len() - 1) as f64 * p).round() as usize];
    EnrolRun { clients, standing_alerts, enrolments: lat.len(), per_s, p50_ms: at(0.5), p99_ms: at(0.99) }
}

pub async fn run(records: usize, alerts: usize) -> anyhow::Result<EnrolBench> {
    anyhow::ensure!(records >= 8, "need at least 8 records per run");
    let specs = [OrgSpec::new("Shelter North", OrgKind::Ngo), OrgSpec::new("Metro Police", OrgKind::Police)];
    let fed = LocalFederation::start(&specs, FederationOptions::default()).await?;
    fed.wait_connected(&[0, 1], Duration::from_secs(30)).await?;
    let (issuer, holder) = (&fed.nodes[0].handle, &fed.nodes[1].handle);
    let pop = Population::new(11, "vigil-synth-128", 1000);
    let mut runs = Vec::new();
    let mut next = 0;
    for clients in [1, 8] {
        let (per_s, lat) = timed(holder, &pop, clients, records, next).await?;
        next += records;
        runs.push(run_of(clients, 0, per_s, &lat));
    }
    if alerts > 0 {
        for a in 0..alerts {
            let expires = vigil_node::now_ms() + 24 * 3600 * 1000;
            issuer.publish_alert(pop.sample(900 + a % 100, 0), Category::Missing, format!("A-{a}"), expires).await?;
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while holder.alerts().await?.len() < alerts {
            anyhow::ensure!(Instant::now() < deadline, "the holder did not receive the alerts");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for clients in [1, 8] {
            let (per_s, lat) = timed(holder, &pop, clients, records / 4, next).await?;
            next += records / 4;
            runs.push(run_of(clients, alerts, per_s, &lat));
        }
    }
    fed.shutdown().await;
    Ok(EnrolBench { records, runs })
}

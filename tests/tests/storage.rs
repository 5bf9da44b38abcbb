//! A full disk with a real node: the write that fails is not acknowledged,
//! the node stops itself (memory would otherwise hold what the disk does
//! not), and it restarts from its files with every acknowledged record,
//! a verifying audit chain, and record ids that never repeat.

use vigil_engine::Enrolment;
use vigil_matcher::synth::Population;
use vigil_node::{now_ms, NodeError};
use vigil_protocol::{Category, OrgKind};
use vigil_testkit::*;

fn enrolment(pop: &Population, person: usize) -> Enrolment {
    Enrolment {
        pad: None,
        template: pop.sample(person, 1),
        category: Category::Found,
        case_ref: format!("F-{person}"),
        consent: "intake form".into(),
        retain_until_ms: now_ms() + 30 * 24 * 3600 * 1000,
        regime: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_node_and_loses_nothing_acknowledged() {
    let specs = [OrgSpec::new("Metro Police", OrgKind::Police)];
    let mut fed = LocalFederation::start(&specs, FederationOptions::default()).await.unwrap();
    let pop = Population::new(9, "vigil-synth-128", 10);
    let h = fed.nodes[0].handle.clone();
    let mut ids = Vec::new();
    for p in 0..5 {
        ids.push(h.enrol(enrolment(&pop, p)).await.unwrap());
    }
    h.fill_disk_after(0).await.unwrap();
    let failed = h.enrol(enrolment(&pop, 5)).await;
    assert!(failed.is_err(), "a write that did not reach the disk was acknowledged");
    tokio::time::timeout(PATIENCE, h.stopped()).await.expect("the node did not stop after a failed write");
    assert!(matches!(h.enrol(enrolment(&pop, 6)).await, Err(NodeError::Stopped)));

    // Restarted from its files (the disk has room again).
    fed.start_again(0).await.unwrap();
    let h = fed.nodes[0].handle.clone();
    let held: Vec<u64> = h.records().await.unwrap().iter().map(|r| r.id).collect();
    assert_eq!(held, ids, "exactly the acknowledged records");
    assert!(h.audit_verify().await.unwrap().is_ok());
    let next = h.enrol(enrolment(&pop, 7)).await.unwrap();
    assert!(next > *ids.last().unwrap(), "record ids never repeat");
    fed.shutdown().await;
}

/// Group commit: enrolments that arrive together share durable commits;
/// every caller gets its own id, only after the commit, and all of them
/// are there after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_enrolments_share_commits_and_all_survive_a_restart() {
    let specs = [OrgSpec::new("Metro Police", OrgKind::Police)];
    let mut fed = LocalFederation::start(&specs, FederationOptions::default()).await.unwrap();
    let pop = Population::new(9, "vigil-synth-128", 200);
    let h = fed.nodes[0].handle.clone();
    let commits = |h: &vigil_node::NodeHandle| {
        vigil_node::metrics::sample(&vigil_node::metrics::encode(&h.metrics.registry), "vigil_commit_seconds_count")
    };
    let before = commits(&h);
    let tasks: Vec<_> = (0..200)
        .map(|p| {
            let (h, e) = (h.clone(), enrolment(&pop, p));
            tokio::spawn(async move { h.enrol(e).await.unwrap() })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    let used = commits(&h) - before;
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 200, "every enrolment got an id of its own");
    assert!(used < 200.0, "200 concurrent enrolments took {used} commits: none shared");
    fed.restart(0).await.unwrap();
    let kept: Vec<u64> = fed.nodes[0].handle.records().await.unwrap().iter().map(|r| r.id).collect();
    assert!(ids.iter().all(|id| kept.contains(id)), "an acknowledged record is missing after restart");
    fed.shutdown().await;
}

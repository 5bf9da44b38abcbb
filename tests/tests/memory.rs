//! Many real nodes in one process over libp2p's in-memory transport (the
//! base of drills): twelve organisations form a federation without a
//! socket, an alert reaches every member, and the one holder's answer
//! reaches the issuer.

use vigil_engine::model::HitRole;
use vigil_engine::Enrolment;
use vigil_matcher::synth::Population;
use vigil_node::now_ms;
use vigil_protocol::{Category, OrgKind};
use vigil_testkit::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twelve_nodes_over_the_in_memory_transport() {
    let specs: Vec<OrgSpec> = (0..12).map(|i| OrgSpec::new(&format!("Org {i}"), OrgKind::Ngo)).collect();
    let opts = FederationOptions { memory: true, ..Default::default() };
    let fed = LocalFederation::start(&specs, opts).await.unwrap();
    assert!(fed.nodes[0].handle.listen[0].to_string().starts_with("/memory/"));
    let all: Vec<usize> = (0..12).collect();
    fed.wait_connected(&all, PATIENCE).await.unwrap();
    let pop = Population::new(61, "vigil-synth-128", 20);
    fed.nodes[7]
        .handle
        .enrol(Enrolment {
            pad: None,
            template: pop.sample(3, 1),
            category: Category::Found,
            case_ref: "C-3".into(),
            consent: "intake".into(),
            retain_until_ms: now_ms() + 1_000_000_000,
            regime: None,
        })
        .await
        .unwrap();
    let alert = fed.nodes[0]
        .handle
        .publish_alert(pop.sample(3, 0), Category::Missing, "SN-3".into(), now_ms() + 1_000_000_000)
        .await
        .unwrap();
    let mut delays = Vec::new();
    for n in &fed.nodes[1..] {
        let h = n.handle.clone();
        let got = wait_for(PATIENCE, || {
            let h = h.clone();
            async move { h.alerts().await.ok()?.into_iter().find(|a| a.id == alert) }
        })
        .await
        .unwrap_or_else(|| panic!("{} did not get the alert", n.name));
        delays.push(got.received_at_ms.saturating_sub(got.created_at_ms));
    }
    delays.sort_unstable();
    eprintln!("delivery to 11 members over the memory transport: max {} ms", delays[delays.len() - 1]);
    let hits = wait_hits(&fed.nodes[0].handle, HitRole::Issuer, 1).await.expect("no hit");
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].peer, fed.nodes[7].handle.org);
    fed.shutdown().await;
}

/// A node over the memory transport stops (cleanly, or as a crash) and
/// starts again from its data directory at the same address; its peers
/// reconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarts_after_a_stop_and_after_a_crash_over_the_memory_transport() {
    let specs: Vec<OrgSpec> = (0..3).map(|i| OrgSpec::new(&format!("Org {i}"), OrgKind::Ngo)).collect();
    let mut fed =
        LocalFederation::start(&specs, FederationOptions { memory: true, ..Default::default() }).await.unwrap();
    fed.wait_connected(&[0, 1, 2], PATIENCE).await.unwrap();
    fed.stop(1).await;
    fed.start_again(1).await.expect("restart after a clean stop");
    fed.wait_connected(&[0, 1, 2], PATIENCE).await.unwrap();
    fed.nodes[2].handle.crash().await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    fed.start_again(2).await.expect("restart after a crash");
    fed.wait_connected(&[0, 1, 2], PATIENCE).await.unwrap();
    let verified = fed.nodes[2].handle.audit_verify().await.unwrap();
    assert!(verified.is_ok(), "{verified:?}");
    fed.shutdown().await;
}

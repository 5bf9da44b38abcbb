//! A node's database put back to an older copy (finding 22): alone, the
//! manifest beside it refuses the start; with the manifest of that time
//! too, its own alert log is still anchored at its peers. On the first catch-up the node sees that
//! members hold its log further than it does, audits the rollback, takes
//! its own signed entries back from them, and publishes after them: no
//! fork, no alert lost for the federation.

use std::time::Duration;
use vigil_engine::audit::AuditEvent;
use vigil_matcher::synth::Population;
use vigil_protocol::{Category, OrgKind};
use vigil_testkit::*;

const DAY: u64 = 24 * 3600 * 1000;

async fn publish(h: vigil_node::NodeHandle, i: usize) {
    let pop = Population::new(3, "vigil-synth-128", 20);
    let expires = vigil_node::now_ms() + DAY;
    h.publish_alert(pop.sample(i, 0), Category::Missing, format!("SN-{i}"), expires).await.unwrap();
}

/// Whether `h` comes to hold at least `n` alerts.
async fn held_at(h: vigil_node::NodeHandle, n: usize) -> bool {
    let h = &h;
    wait_for(PATIENCE, || async move { (h.alerts().await.ok()?.len() >= n).then_some(()) }).await.is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolled_back_node_takes_its_own_log_back_from_peers_and_does_not_fork() {
    let specs = [OrgSpec::new("Shelter North", OrgKind::Ngo), OrgSpec::new("Metro Police", OrgKind::Police)];
    let mut fed = LocalFederation::start(&specs, FederationOptions::default()).await.unwrap();
    fed.wait_connected(&[0, 1], PATIENCE).await.unwrap();
    publish(fed.nodes[0].handle.clone(), 0).await;
    assert!(held_at(fed.nodes[1].handle.clone(), 1).await);
    // The copy someone keeps, then two more alerts the police receive.
    fed.stop(0).await;
    let db = vigil_node::store::db_path(&fed.nodes[0].dir);
    let manifest = db.with_extension("redb.manifest");
    let (old, old_manifest) = (std::fs::read(&db).unwrap(), std::fs::read(&manifest).unwrap());
    fed.start_again(0).await.unwrap();
    fed.wait_connected(&[0, 1], PATIENCE).await.unwrap();
    publish(fed.nodes[0].handle.clone(), 1).await;
    publish(fed.nodes[0].handle.clone(), 2).await;
    assert!(held_at(fed.nodes[1].handle.clone(), 3).await);
    // The old database alone put back: its manifest knows better.
    fed.stop(0).await;
    std::fs::write(&db, &old).unwrap();
    let refused = fed.start_again(0).await.unwrap_err().to_string();
    assert!(refused.contains("older copy"), "{refused}");
    // The whole directory's old copy (its manifest too): its peers know better.
    std::fs::write(&manifest, &old_manifest).unwrap();
    fed.start_again(0).await.unwrap();
    let node = fed.nodes[0].handle.clone();
    assert!(held_at(node.clone(), 3).await, "its own alerts come back from the peer");
    let seen = wait_audit(&node, |e| matches!(e, AuditEvent::OwnLogBehindPeers { .. })).await;
    assert!(matches!(seen, Some(AuditEvent::OwnLogBehindPeers { held: 1, peers: 3, .. })), "{seen:?}");
    // The next alert follows the log's real head: the police accept it.
    publish(node.clone(), 3).await;
    assert!(held_at(fed.nodes[1].handle.clone(), 4).await, "no fork: the fourth alert arrives");
    let police = audit_events(&fed.nodes[1].handle).await;
    assert!(!police.iter().any(|e| format!("{e:?}").contains("ork")), "no fork audited at the police");
    tokio::time::sleep(Duration::from_millis(200)).await;
    fed.shutdown().await;
}

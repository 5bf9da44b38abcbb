//! Right to erasure with real nodes and real database files: an erased record
//! is gone from the node, from every reference (its hit handle no longer
//! resolves for disclosure), from the audit-listed records, and its sealed
//! bytes are gone from the files on disk; another record's are still there.

use vigil_engine::audit::AuditEvent;
use vigil_engine::model::{AlertStatus, DisclosureStatus, HitRole};
use vigil_matcher::synth::Population;
use vigil_node::now_ms;
use vigil_protocol::{Category, OrgKind};
use vigil_testkit::*;

/// The sealed value of record `id`, read from the stopped node's file.
fn sealed_record(dir: &std::path::Path, id: u64) -> Vec<u8> {
    sealed_value(dir, "records", &id.to_be_bytes())
}

fn files_contain(dir: &std::path::Path, needle: &[u8]) -> bool {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if contains(&std::fs::read(&p).unwrap(), needle) {
                return true;
            }
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_record_is_gone_from_the_node_its_references_and_its_files() {
    let specs = [OrgSpec::new("Shelter North", OrgKind::Ngo), OrgSpec::new("Eastgate Border", OrgKind::Border)];
    let mut fed = LocalFederation::start(&specs, FederationOptions::default()).await.unwrap();
    fed.wait_connected(&[0, 1], PATIENCE).await.unwrap();
    let pop = Population::new(41, "vigil-synth-128", 20);
    let enrol = |person: usize| found(pop.sample(person, 1), format!("EG-{person}"));
    let holder = fed.nodes[1].handle.clone();
    let erased = holder.enrol(enrol(5)).await.unwrap();
    let kept = holder.enrol(enrol(9)).await.unwrap();
    fed.nodes[0]
        .handle
        .publish_alert(pop.sample(5, 0), Category::Missing, "SN-5".into(), now_ms() + 1_000_000_000)
        .await
        .unwrap();
    let hit = wait_hits(&fed.nodes[0].handle, HitRole::Issuer, 1).await.expect("no hit")[0].handle;

    // The sealed bytes of both records are in the files before erasure.
    fed.stop(1).await;
    let dir = fed.nodes[1].dir.clone();
    let (gone, stays) = (sealed_record(&dir, erased), sealed_record(&dir, kept));
    assert!(files_contain(&dir, &gone) && files_contain(&dir, &stays), "the scanner finds sealed records");
    fed.start_again(1).await.unwrap();
    fed.wait_connected(&[0, 1], PATIENCE).await.unwrap();
    let holder = fed.nodes[1].handle.clone();

    holder.erase(erased, "erasure request of the data subject".into()).await.unwrap();
    let records = holder.records().await.unwrap();
    assert_eq!(records.iter().map(|r| r.id).collect::<Vec<_>>(), vec![kept]);
    assert!(wait_audit(&holder, |e| matches!(e, AuditEvent::RecordErased { record, .. } if *record == erased))
        .await
        .is_some());
    assert!(holder.erase(erased, "again".into()).await.is_err(), "erasing twice is an error");
    // Its hit no longer resolves: the issuer's disclosure request is refused.
    let id = fed.nodes[0].handle.request_disclosure(hit, "family asks".into()).await.unwrap();
    assert!(wait_audit(&holder, |e| matches!(e, AuditEvent::DisclosureUnresolved { id: x, .. } if *x == id))
        .await
        .is_some());
    let d = fed.nodes[0].handle.disclosures().await.unwrap();
    assert!(d.iter().all(|d| d.status != DisclosureStatus::Approved && d.contact.is_none()));

    // After a restart the record is still gone, and its bytes are gone from the files.
    fed.restart(1).await.unwrap();
    assert_eq!(fed.nodes[1].handle.status().await.unwrap().gallery, 1);
    assert!(fed.nodes[1].handle.audit_verify().await.unwrap().is_ok());
    fed.stop(1).await;
    assert!(!files_contain(&dir, &gone), "the erased record's sealed bytes are still on disk");
    assert!(files_contain(&dir, &stays), "the other record's sealed bytes must remain");
    fed.nodes[0].handle.shutdown().await;
}

/// The sealed value at `key` of `tree`, read from the stopped node's files.
fn sealed_value(dir: &std::path::Path, tree: &str, key: &[u8]) -> Vec<u8> {
    let db = redb::Database::open(vigil_node::store::db_path(dir)).unwrap();
    let read = db.begin_read().unwrap();
    let t = read.open_table(redb::TableDefinition::<&[u8], &[u8]>::new(tree)).unwrap();
    let v = t.get(key).unwrap().expect("value present").value().to_vec();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawn_alert_loses_its_payload_on_schedule_and_its_sealed_bytes_leave_the_files() {
    let opts = FederationOptions {
        tweak: Box::new(|_, cfg| cfg.alerts.purge_closed_after = std::time::Duration::ZERO),
        ..Default::default()
    };
    let specs = [OrgSpec::new("Shelter North", OrgKind::Ngo), OrgSpec::new("Eastgate Border", OrgKind::Border)];
    let mut fed = LocalFederation::start(&specs, opts).await.unwrap();
    fed.wait_connected(&[0, 1], PATIENCE).await.unwrap();
    let pop = Population::new(43, "vigil-synth-128", 10);
    let issuer = fed.nodes[0].handle.clone();
    let id = issuer
        .publish_alert(pop.sample(5, 0), Category::Missing, "SN-5".into(), now_ms() + 1_000_000_000)
        .await
        .unwrap();
    let border = fed.nodes[1].handle.clone();
    let status = |h: vigil_node::NodeHandle| async move {
        h.alerts().await.ok()?.into_iter().find(|a| a.id == id).map(|a| a.status)
    };
    wait_for(PATIENCE, || async { status(border.clone()).await.filter(|s| *s == AlertStatus::Active) })
        .await
        .expect("the alert did not arrive");
    issuer.withdraw(id).await.unwrap();
    wait_for(PATIENCE, || async { status(border.clone()).await.filter(|s| *s == AlertStatus::Withdrawn) })
        .await
        .expect("the withdrawal did not arrive");

    // The withdrawn alert's sealed value (with its template) is on disk.
    fed.stop(1).await;
    let dir = fed.nodes[1].dir.clone();
    let before = sealed_value(&dir, "alerts", &id.0);
    assert!(files_contain(&dir, &before));
    // The purge runs at start (then hourly): the payload goes, audited,
    // and the store is compacted.
    fed.start_again(1).await.unwrap();
    let border = fed.nodes[1].handle.clone();
    assert!(wait_audit(
        &border,
        |e| matches!(e, AuditEvent::AlertPurged { alert, reason, .. } if *alert == id && reason == "withdrawn")
    )
    .await
    .is_some());
    assert!(matches!(status(border.clone()).await, Some(AlertStatus::Purged { .. })), "kept as its header");
    assert!(border.audit_verify().await.unwrap().is_ok());
    fed.stop(1).await;
    assert!(!files_contain(&dir, &before), "the purged alert's old sealed bytes are still on disk");
    let after = sealed_value(&dir, "alerts", &id.0);
    assert!(after.len() < before.len(), "the kept header is smaller than the alert with its template");
    issuer.shutdown().await;
}

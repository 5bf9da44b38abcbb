//! Backup and restore with real nodes: a border post's data directory is
//! backed up while it runs, the node is stopped, and the backup restored
//! into a fresh directory starts a node with the same identity, records,
//! alerts, answers and audit chain, which goes on matching for the
//! federation. A wrong secret, a tampered or truncated file, and a
//! non-empty target are refused with precise errors.

use vigil_engine::model::HitRole;
use vigil_engine::Enrolment;
use vigil_matcher::synth::Population;
use vigil_node::backup::{restore, BackupError};
use vigil_node::datadir::{self, Secret};
use vigil_node::now_ms;
use vigil_node::runtime;
use vigil_protocol::{Category, OrgKind};
use vigil_testkit::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_restores_into_a_fresh_directory_and_the_node_carries_on() {
    let specs = [OrgSpec::new("Shelter North", OrgKind::Ngo), OrgSpec::new("Eastgate Border", OrgKind::Border)];
    let mut fed = LocalFederation::start(&specs, FederationOptions::default()).await.unwrap();
    fed.wait_connected(&[0, 1], PATIENCE).await.unwrap();
    let pop = Population::new(51, "vigil-synth-128", 20);
    let enrol = |person: usize, capture: u64| Enrolment {
        pad: None,
        template: pop.sample(person, capture),
        category: Category::Found,
        case_ref: format!("EG-{person}-{capture}"),
        consent: "intake".into(),
        retain_until_ms: now_ms() + 1_000_000_000,
        regime: None,
    };
    let border = fed.nodes[1].handle.clone();
    for p in [5, 10, 11] {
        border.enrol(enrol(p, 1)).await.unwrap();
    }
    fed.nodes[0]
        .handle
        .publish_alert(pop.sample(5, 0), Category::Missing, "SN-5".into(), now_ms() + 1_000_000_000)
        .await
        .unwrap();
    wait_hits(&fed.nodes[0].handle, HitRole::Issuer, 1).await.expect("no hit");

    let audit_before = border.audit_export().await.unwrap();
    let (out, size) = border.backup("border.vgbak".into()).await.unwrap();
    assert_eq!(out, fed.nodes[1].dir.join("backups").join("border.vgbak"), "in the node's backups directory");
    // Never over an existing file, never outside the backups directory.
    for name in ["border.vgbak", "../identity.sealed", "/etc/passwd", ".hidden", ""] {
        let e = border.backup(name.into()).await.unwrap_err().to_string();
        assert!(e.contains("exists already") || e.contains("backup name"), "{name}: {e}");
    }
    assert!(fed.nodes[1].dir.join("identity.sealed").exists());
    assert_eq!(std::fs::metadata(&out).unwrap().len(), size);
    let before = (border.records().await.unwrap().len(), border.alerts().await.unwrap().len());
    // Nothing in the backup is readable without the key.
    let bytes = std::fs::read(&out).unwrap();
    for c in ["EG-5-1", "EG-10-1", "intake"] {
        assert!(!contains(&bytes, c.as_bytes()), "case detail {c} in the clear in the backup");
    }
    fed.stop(1).await;

    // Refusals: wrong secret, tampering, truncation, an occupied directory.
    let fresh = fed.root.path().join("restored");
    let wrong = Secret::KeyFile("11".repeat(32));
    assert!(matches!(restore(&out, &fresh, &wrong), Err(BackupError::WrongKeyOrTampered)));
    let mut tampered = bytes.clone();
    let at = tampered.len() - 100;
    tampered[at] ^= 1;
    let t = fed.root.path().join("tampered.vgbak");
    std::fs::write(&t, &tampered).unwrap();
    let secret = fed.nodes[1].secret.clone();
    assert!(matches!(restore(&t, &fresh, &secret), Err(BackupError::WrongKeyOrTampered)));
    std::fs::write(&t, &bytes[..8]).unwrap();
    assert!(matches!(restore(&t, &fresh, &secret), Err(BackupError::NotABackup(_))));
    assert!(matches!(restore(&out, &fed.nodes[0].dir, &secret), Err(BackupError::Exists(_))));

    // The real restore: same identity, same state, and it keeps working.
    restore(&out, &fresh, &secret).unwrap();
    // Its owner's only: the directory 0700, every file 0600 (the engine made
    // its files 0644 in a 0755 directory).
    let mut stack = vec![fresh.clone()];
    while let Some(d) = stack.pop() {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&d).unwrap().permissions().mode() & 0o777, 0o700, "{}", d.display());
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600, "{}", p.display());
            }
        }
    }
    let opened = datadir::open(&fresh, &secret).unwrap();
    assert_eq!(opened.identity.org_id(), fed.nodes[1].handle.org);
    let node = runtime::start(vigil_node::NodeOptions::from(&opened)).await.unwrap();
    assert_eq!((node.records().await.unwrap().len(), node.alerts().await.unwrap().len()), before);
    assert!(node.audit_verify().await.unwrap().is_ok());
    let restored = node.audit_export().await.unwrap();
    assert_eq!(restored[..audit_before.len()], audit_before[..], "the restored chain is the backed-up one");
    assert!(restored.len() > audit_before.len(), "and it goes on");
    // It still answers the standing alert for a new record.
    node.enrol(enrol(5, 2)).await.unwrap();
    let hits = wait_hits(&fed.nodes[0].handle, HitRole::Issuer, 2).await.expect("the restored node does not answer");
    assert_eq!(hits.len(), 2);
    node.shutdown().await;
    fed.nodes[0].handle.shutdown().await;
}

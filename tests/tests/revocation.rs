//! Revocation with real nodes: stewards sign roster v2 without a member and
//! apply it at one node only; it reaches the other members by catch-up
//! within one exchange, every node cuts the revoked member off, and the
//! revoked member can no longer connect or publish to anyone.

use vigil_crypto::sign_roster;
use vigil_engine::audit::AuditEvent;
use vigil_protocol::OrgKind;
use vigil_testkit::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_member_is_cut_off_by_every_node_from_one_roster_update() {
    let specs = [
        OrgSpec::new("Shelter North", OrgKind::Ngo),
        OrgSpec::new("Metro Police", OrgKind::Police),
        OrgSpec::new("Compromised Member", OrgKind::Ngo),
    ];
    let opts = FederationOptions {
        tweak: Box::new(|_, c| c.network.refusals_audit_interval = std::time::Duration::from_millis(300)),
        ..Default::default()
    };
    let fed = LocalFederation::start(&specs, opts).await.unwrap();
    fed.wait_connected(&[0, 1, 2], PATIENCE).await.unwrap();
    let revoked = fed.nodes[2].handle.org;
    let mut v2 = fed.roster.clone();
    v2.body.version = 2;
    v2.body.members.retain(|m| m.org != revoked);
    v2.signatures.clear();
    sign_roster(&mut v2, &fed.stewards[0]).unwrap();
    sign_roster(&mut v2, &fed.stewards[1]).unwrap();

    // Only the shelter's operator applies it.
    fed.nodes[0].handle.apply_roster(v2).await.unwrap();
    for i in [0, 1] {
        let h = fed.nodes[i].handle.clone();
        let cut_off = wait_for(PATIENCE, || {
            let h = h.clone();
            async move {
                let s = h.status().await.ok()?;
                (s.roster_version == Some(2) && !s.connected.contains(&revoked)).then_some(())
            }
        })
        .await;
        assert!(cut_off.is_some(), "node {i} did not apply roster v2 and cut the revoked member off");
    }
    // The police node got it by catch-up, not from an operator.
    assert!(wait_audit(&fed.nodes[1].handle, |e| matches!(e, AuditEvent::RosterApplied { version: 2, .. }))
        .await
        .is_some());
    // The revoked member keeps trying (redial): it is refused, and audited as such.
    for i in [0, 1] {
        assert!(
            wait_audit(&fed.nodes[i].handle, |e| matches!(e, AuditEvent::ConnectionsRefused { sources, .. }
                if sources.iter().any(|s| s.reason.contains("not a roster member"))))
            .await
            .is_some(),
            "node {i} did not refuse the revoked member"
        );
    }
    let c = fed.nodes[2].handle.clone();
    let alone = wait_for(PATIENCE, || {
        let c = c.clone();
        async move { c.status().await.ok()?.connected.is_empty().then_some(()) }
    })
    .await;
    assert!(alone.is_some(), "the revoked member stays connected");
    fed.shutdown().await;
}

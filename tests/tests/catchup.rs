//! Catch-up with real nodes: a border post is offline while a shelter
//! publishes and withdraws alerts; it comes back while the shelter is
//! offline, pulls the alert log from the police unit, answers the alert it
//! missed, and its answer waits until the shelter is back to deliver a hit.

use vigil_engine::audit::AuditEvent;
use vigil_engine::model::{AlertStatus, HitRole};
use vigil_engine::Enrolment;
use vigil_matcher::synth::Population;
use vigil_node::now_ms;
use vigil_protocol::{Category, OrgKind};
use vigil_testkit::*;

const DAY: u64 = 24 * 3600 * 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_member_catches_up_from_another_member_and_its_answer_waits_for_the_issuer() {
    let specs = [
        OrgSpec::new("Shelter North", OrgKind::Ngo),
        OrgSpec::new("Metro Police", OrgKind::Police),
        OrgSpec::new("Eastgate Border", OrgKind::Border),
    ];
    let mut fed = LocalFederation::start(&specs, FederationOptions::default()).await.unwrap();
    let (ngo, police, border) = (0, 1, 2);
    fed.wait_connected(&[ngo, police, border], PATIENCE).await.unwrap();
    let pop = Population::new(31, "vigil-synth-128", 30);
    let e = |person: usize| Enrolment {
        pad: None,
        template: pop.sample(person, 1),
        category: Category::Found,
        case_ref: format!("EG-{person}"),
        consent: "intake".into(),
        retain_until_ms: now_ms() + 30 * DAY,
        regime: None,
    };
    for p in [5, 10, 11, 12] {
        fed.nodes[border].handle.enrol(e(p)).await.unwrap();
    }

    // The border post goes offline; the shelter publishes two alerts and withdraws one.
    fed.stop(border).await;
    let h = fed.nodes[ngo].handle.clone();
    let wanted = h.publish_alert(pop.sample(5, 0), Category::Missing, "SN-5".into(), now_ms() + 7 * DAY).await.unwrap();
    let other =
        h.publish_alert(pop.sample(20, 0), Category::Missing, "SN-20".into(), now_ms() + 7 * DAY).await.unwrap();
    h.withdraw(other).await.unwrap();
    let p = fed.nodes[police].handle.clone();
    let police_has_all = || {
        let p = p.clone();
        async move {
            let a = p.alerts().await.ok()?;
            (a.len() == 2 && a.iter().any(|x| x.id == other && x.status == AlertStatus::Withdrawn)).then_some(())
        }
    };
    assert!(wait_for(PATIENCE, police_has_all).await.is_some(), "the police did not get the log");

    // The shelter goes offline; the border post comes back and syncs from the police.
    fed.stop(ngo).await;
    fed.start_again(border).await.unwrap();
    let b = fed.nodes[border].handle.clone();
    let caught_up = || {
        let b = b.clone();
        async move {
            let a = b.alerts().await.ok()?;
            (a.len() == 2 && a.iter().any(|x| x.id == other && x.status == AlertStatus::Withdrawn)).then_some(())
        }
    };
    assert!(wait_for(PATIENCE, caught_up).await.is_some(), "the border post did not catch up");
    let pulled = wait_audit(&b, |e| matches!(e, AuditEvent::SyncPulled { .. })).await.expect("no sync audited");
    let police_org = fed.nodes[police].handle.org;
    assert!(matches!(pulled, AuditEvent::SyncPulled { peer, .. } if peer == police_org), "pulled from the police");
    // It answered the live alert (not the withdrawn one), for its 4 records.
    let sent = wait_audit(&b, |e| matches!(e, AuditEvent::AlertAnswerSent { .. })).await.expect("no answer");
    assert!(matches!(sent, AuditEvent::AlertAnswerSent { alert, records: 4, .. } if alert == wanted), "{sent:?}");

    // The shelter comes back: the waiting answer is delivered and decrypted.
    fed.start_again(ngo).await.unwrap();
    let hits = wait_hits(&fed.nodes[ngo].handle, HitRole::Issuer, 1).await.expect("the answer never arrived");
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].peer, fed.nodes[border].handle.org);
    assert!(wait_audit(&b, |e| matches!(e, AuditEvent::AlertAnswerDelivered { accepted: true, .. })).await.is_some());
    for n in &fed.nodes {
        assert!(n.handle.audit_verify().await.unwrap().is_ok());
    }
    fed.shutdown().await;
}

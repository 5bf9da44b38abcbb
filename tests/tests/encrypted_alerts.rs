//! Alerts with encrypted probes, end to end with real nodes: the alert
//! reaches every member, holders answer without learning anything, only
//! the issuer decrypts the hit; standing matching for records enrolled
//! later; answers and hits survive restarts; no false hits.

use vigil_engine::audit::AuditEvent;
use vigil_engine::model::{HitRole, HitSource};
use vigil_engine::Enrolment;
use vigil_matcher::synth::Population;
use vigil_node::now_ms;
use vigil_node::NodeHandle;
use vigil_protocol::{Category, OrgKind};
use vigil_testkit::*;

const DAY: u64 = 24 * 3600 * 1000;

async fn enrol(h: &NodeHandle, pop: &Population, person: usize, capture: u64) -> u64 {
    let e = Enrolment {
        pad: None,
        template: pop.sample(person, capture),
        category: Category::Found,
        case_ref: format!("C-{person}-{capture}"),
        consent: "intake form".into(),
        retain_until_ms: now_ms() + 30 * DAY,
        regime: None,
    };
    h.enrol(e).await.unwrap()
}

async fn answers_delivered(h: &NodeHandle) -> usize {
    audit_events(h)
        .await
        .iter()
        .filter(|e| matches!(e, AuditEvent::AlertAnswerDelivered { accepted: true, .. }))
        .count()
}

/// Records a holder answered for: whole-gallery pages (audited one by
/// one) and standing-matching pages (audited as counts per interval).
async fn records_answered(h: &NodeHandle) -> (usize, u64) {
    let events = audit_events(h).await;
    let whole = events
        .iter()
        .filter_map(|e| match e {
            AuditEvent::AlertAnswerSent { records, .. } => Some(*records),
            _ => None,
        })
        .sum();
    let standing = events
        .iter()
        .filter_map(|e| match e {
            AuditEvent::AlertAnswersCounted { issuers, .. } => {
                Some(issuers.iter().map(|c| c.records_sent).sum::<u64>())
            }
            _ => None,
        })
        .sum();
    (whole, standing)
}

/// Counts are audited every 200 ms here (60 s by default).
fn quick_counts() -> FederationOptions {
    FederationOptions {
        tweak: Box::new(|_, c| c.network.refusals_audit_interval = std::time::Duration::from_millis(200)),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_alert_hits_reach_only_the_issuer_and_survive_restart() {
    let specs = [
        OrgSpec::new("Shelter North", OrgKind::Ngo),
        OrgSpec::new("Metro Police", OrgKind::Police),
        OrgSpec::new("Eastgate Border", OrgKind::Border),
    ];
    let mut fed = LocalFederation::start(&specs, quick_counts()).await.unwrap();
    fed.wait_connected(&[0, 1, 2], PATIENCE).await.unwrap();
    let (ngo, police, border) = (0, 1, 2);
    let pop = Population::new(17, "vigil-synth-128", 60);
    for p in 10..40 {
        enrol(&fed.nodes[border].handle, &pop, p, 1).await;
        enrol(&fed.nodes[police].handle, &pop, p + 20, 1).await;
    }
    enrol(&fed.nodes[border].handle, &pop, 5, 1).await;
    let alert = fed.nodes[ngo]
        .handle
        .publish_alert(pop.sample(5, 0), Category::Missing, "SN-5".into(), now_ms() + 7 * DAY)
        .await
        .unwrap();

    // Both members answer; only the border post's answer holds a match.
    let hits = wait_hits(&fed.nodes[ngo].handle, HitRole::Issuer, 1).await.expect("issuer got no hit");
    assert_eq!(hits[0].peer, fed.nodes[border].handle.org);
    assert!(matches!(hits[0].source, HitSource::EncryptedAlert { alert: a, .. } if a == alert));
    for i in [police, border] {
        let h = &fed.nodes[i].handle;
        assert!(wait_audit(h, |e| matches!(e, AuditEvent::AlertAnswerDelivered { accepted: true, .. }))
            .await
            .is_some());
        assert!(h.hits().await.unwrap().is_empty(), "a holder learnt an outcome");
    }
    let received = audit_events(&fed.nodes[ngo].handle).await;
    let positions: usize = received
        .iter()
        .filter_map(|e| match e {
            AuditEvent::AlertAnswerReceived { positions, alert: a, .. } if *a == alert => Some(*positions),
            _ => None,
        })
        .sum();
    assert!(positions >= 61, "the issuer decrypted answers over both galleries ({positions} positions)");

    // Standing matching: the police enrol person 5 later; only the issuer learns it.
    enrol(&fed.nodes[police].handle, &pop, 5, 2).await;
    let hits = wait_hits(&fed.nodes[ngo].handle, HitRole::Issuer, 2).await.expect("standing alert did not match");
    assert!(hits.iter().any(|h| h.peer == fed.nodes[police].handle.org));

    // Restart the issuer and a holder: hits, answers and audit chains survive.
    let before =
        (fed.nodes[ngo].handle.hits().await.unwrap().len(), answers_delivered(&fed.nodes[border].handle).await);
    fed.restart(ngo).await.unwrap();
    fed.restart(border).await.unwrap();
    let after = (fed.nodes[ngo].handle.hits().await.unwrap().len(), answers_delivered(&fed.nodes[border].handle).await);
    assert_eq!(before, after);
    for n in &fed.nodes {
        assert!(n.handle.audit_verify().await.unwrap().is_ok());
    }
    // The restarted holder does not answer the same records again, and
    // still answers new ones: another capture of person 5 at the border.
    fed.wait_connected(&[0, 1, 2], PATIENCE).await.unwrap();
    enrol(&fed.nodes[border].handle, &pop, 5, 3).await;
    enrol(&fed.nodes[border].handle, &pop, 50, 1).await;
    let hits = wait_hits(&fed.nodes[ngo].handle, HitRole::Issuer, 3).await.expect("no hit after restart");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let hits_now = fed.nodes[ngo].handle.hits().await.unwrap();
    assert_eq!(hits_now.len(), 3, "exactly the three records of person 5 matched: {hits:?}");
    // The two later records were answered alone (standing matching):
    // counted, one entry per interval, not two entries per page.
    let h = &fed.nodes[border].handle;
    let counted = wait_for(PATIENCE, || async { Some(records_answered(h).await).filter(|(_, s)| *s >= 2) }).await;
    assert_eq!(counted, Some((31, 2)), "each border record answered exactly once");
    fed.shutdown().await;
}

/// A shelter (node 0) and a border post (node 1) that enrols the persons
/// of `background` and person 4; then the shelter alerts for person 4.
async fn border_holds_person_4(
    opts: FederationOptions,
    pop: &Population,
    background: std::ops::Range<usize>,
) -> LocalFederation {
    let specs = [OrgSpec::new("Shelter North", OrgKind::Ngo), OrgSpec::new("Eastgate Border", OrgKind::Border)];
    let fed = LocalFederation::start(&specs, opts).await.unwrap();
    fed.wait_connected(&[0, 1], PATIENCE).await.unwrap();
    for p in background {
        enrol(&fed.nodes[1].handle, pop, p, 1).await;
    }
    enrol(&fed.nodes[1].handle, pop, 4, 1).await;
    fed.nodes[0]
        .handle
        .publish_alert(pop.sample(4, 0), Category::Missing, "SN-4".into(), now_ms() + 7 * DAY)
        .await
        .unwrap();
    fed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_gallery_fetches_the_column_form_over_the_identify_protocol() {
    // The border post answers in column form above 8 records (by default, above ~200,000).
    let opts = FederationOptions {
        tweak: Box::new(|i, c| {
            c.alerts.column_above = (i == 1).then_some(8);
            c.network.refusals_audit_interval = std::time::Duration::from_millis(200);
        }),
        ..Default::default()
    };
    let pop = Population::new(23, "vigil-synth-128", 40);
    let fed = border_holds_person_4(opts, &pop, 10..30).await;
    let hits = wait_hits(&fed.nodes[0].handle, HitRole::Issuer, 1).await.expect("no hit from the column form");
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].peer, fed.nodes[1].handle.org);
    let sent = wait_audit(&fed.nodes[1].handle, |e| matches!(e, AuditEvent::AlertAnswerSent { .. })).await.unwrap();
    assert!(matches!(sent, AuditEvent::AlertAnswerSent { column: true, records: 21, .. }), "{sent:?}");
    // A later record is answered alone, in row form, against the standing alert.
    enrol(&fed.nodes[1].handle, &pop, 4, 2).await;
    let hits = wait_hits(&fed.nodes[0].handle, HitRole::Issuer, 2).await.expect("no standing hit");
    assert_eq!(hits.len(), 2);
    let h = &fed.nodes[1].handle;
    let counted = wait_for(PATIENCE, || async { Some(records_answered(h).await).filter(|(_, s)| *s >= 1) }).await;
    assert_eq!(counted, Some((21, 1)), "the later record answered alone, and counted");
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mid_sized_gallery_fetches_a_split_probe_over_the_identify_protocol() {
    // 300 records at d = 128: a 4-chunk split moves the fewest bytes.
    let pop = Population::new(24, "vigil-synth-128", 320);
    let fed = border_holds_person_4(FederationOptions::default(), &pop, 10..309).await;
    let hits = wait_hits(&fed.nodes[0].handle, HitRole::Issuer, 1).await.expect("no hit from the split form");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let hits_now = fed.nodes[0].handle.hits().await.unwrap();
    assert_eq!((hits.len(), hits_now.len()), (1, 1), "exactly the record of person 4");
    assert_eq!(hits[0].peer, fed.nodes[1].handle.org);
    let sent: Vec<AuditEvent> = audit_events(&fed.nodes[1].handle)
        .await
        .into_iter()
        .filter(|e| matches!(e, AuditEvent::AlertAnswerSent { .. }))
        .collect();
    let records: usize =
        sent.iter().map(|e| if let AuditEvent::AlertAnswerSent { records, .. } = e { *records } else { 0 }).sum();
    assert_eq!(records, 300, "every record answered once: {sent:?}");
    assert!(sent.iter().all(|e| matches!(e, AuditEvent::AlertAnswerSent { column: false, .. })));
    // Answered at the 4-chunk split's stride (32: 64 positions a group, so
    // 320 positions), not the alert's own (128: 16 a group, 304 positions).
    let positions: usize = audit_events(&fed.nodes[0].handle)
        .await
        .iter()
        .map(|e| if let AuditEvent::AlertAnswerReceived { positions, .. } = e { *positions } else { 0 })
        .sum();
    assert_eq!(positions, 320);
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_over_its_alert_budget_tells_the_issuer_and_the_issuer_shows_it() {
    use vigil_node::views::MemberState;
    // The police unit answers one encrypted alert per issuer and hour.
    let opts = FederationOptions {
        tweak: Box::new(|i, cfg| {
            if i == 1 {
                cfg.alerts.answers_per_hour = 1;
            }
        }),
        ..Default::default()
    };
    let specs = [OrgSpec::new("Shelter North", OrgKind::Ngo), OrgSpec::new("Metro Police", OrgKind::Police)];
    let fed = LocalFederation::start(&specs, opts).await.unwrap();
    fed.wait_connected(&[0, 1], PATIENCE).await.unwrap();
    let (ngo, police) = (&fed.nodes[0].handle, &fed.nodes[1].handle);
    let pop = Population::new(18, "vigil-synth-128", 20);
    for p in 10..15 {
        enrol(police, &pop, p, 1).await;
    }
    let mut alerts = Vec::new();
    for p in [1, 2] {
        let a = ngo.publish_alert(pop.sample(p, 0), Category::Missing, format!("SN-{p}"), now_ms() + DAY).await;
        alerts.push(a.unwrap());
    }
    // The second is refused, and the issuer hears why, signed, over the wire.
    let refused = wait_audit(ngo, |e| matches!(e, AuditEvent::AlertRefusedBy { .. })).await.expect("no refusal");
    let AuditEvent::AlertRefusedBy { alert, holder, reason } = refused else { unreachable!() };
    assert_eq!((alert, holder), (alerts[1], police.org));
    assert_eq!(reason, "encrypted alert budget spent: 1 per hour");
    let state = |members: Vec<vigil_node::views::MemberStatus>| members[0].clone();
    let answered = wait_for(PATIENCE, || async {
        let m = state(ngo.alert_members(alerts[0]).await.unwrap());
        (m.state == MemberState::Answered).then_some(m)
    })
    .await
    .expect("the first alert shows as answered with no match");
    assert!(answered.pages >= 1 && answered.hits == 0);
    let refused = state(ngo.alert_members(alerts[1]).await.unwrap());
    assert_eq!((refused.state, refused.name.as_str()), (MemberState::Refused, "Metro Police"));
    assert_eq!(refused.reason.as_deref(), Some("encrypted alert budget spent: 1 per hour"));
    // The list shows the counts; the holder has no such view of another's alert.
    let listed = ngo.alerts().await.unwrap();
    let counts = listed.iter().find(|a| a.id == alerts[1]).and_then(|a| a.members.clone()).unwrap();
    assert_eq!((counts.refused, counts.answered, counts.pending), (1, 0, 0));
    assert!(police.alert_members(alerts[1]).await.is_err());
}

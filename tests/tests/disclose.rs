//! Disclosure after a hit, with real nodes: nothing is disclosed until a
//! person at the holder approves (two, at a border post: four eyes, each
//! named in the audit log); a refusal sends no contact; handles of
//! alert hits and of encrypted-query hits both resolve at the holder; a
//! member that was not told of a hit cannot use its handle; pending
//! requests survive a restart.

use vigil_engine::audit::AuditEvent;
use vigil_engine::model::{DisclosureRole, DisclosureStatus, HitRole, StoredDisclosure};
use vigil_matcher::synth::Population;
use vigil_node::now_ms;
use vigil_node::NodeHandle;
use vigil_protocol::{encode, Category, DisclosureRequest, Handle, OrgKind, Request, Tag};
use vigil_testkit::*;

const CONTACT: &str = "Sgt. R. Moreau, Eastgate duty desk, +00 555 0101";

async fn disclosure(h: &NodeHandle, id: Handle, status: DisclosureStatus) -> Option<StoredDisclosure> {
    wait_for(
        PATIENCE,
        || async move { h.disclosures().await.ok()?.into_iter().find(|d| d.id == id && d.status == status) },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disclosure_needs_approval_and_refusal_discloses_nothing() {
    let logs: Vec<WireLog> = (0..3).map(|_| WireLog::default()).collect();
    let taps = logs.clone();
    let opts = FederationOptions { tap: Box::new(move |i| Some(taps[i].tap())), ..Default::default() };
    let specs = [
        OrgSpec::new("Shelter North", OrgKind::Ngo),
        OrgSpec::new("Eastgate Border", OrgKind::Border),
        OrgSpec::new("Metro Police", OrgKind::Police),
    ];
    let mut fed = LocalFederation::start(&specs, opts).await.unwrap();
    fed.wait_connected(&[0, 1, 2], PATIENCE).await.unwrap();
    let pop = Population::new(5, "vigil-synth-128", 40);
    let enrolment = |person: usize| found(pop.sample(person, 1), format!("EG-{person}"));
    for p in 10..30 {
        fed.nodes[1].handle.enrol(enrolment(p)).await.unwrap();
    }
    let held = fed.nodes[1].handle.enrol(enrolment(3)).await.unwrap();
    let (ngo, border) = (fed.nodes[0].handle.clone(), fed.nodes[1].handle.clone());

    // 1. Alert hit -> request -> pending at the holder -> approve -> contact arrives.
    ngo.publish_alert(pop.sample(3, 0), Category::Missing, "SN-3".into(), now_ms() + 86_400_000).await.unwrap();
    let hit = wait_hits(&ngo, HitRole::Issuer, 1).await.expect("no alert hit")[0].handle;
    let id = ngo.request_disclosure(hit, "family of SN-3 asks for contact".into()).await.unwrap();
    let pending = disclosure(&border, id, DisclosureStatus::Pending).await.expect("not pending at the holder");
    assert_eq!(pending.role, DisclosureRole::Holder);
    assert_eq!(pending.record, Some(held), "the handle resolved to the matching record");
    assert_eq!(pending.reason, "family of SN-3 asks for contact");
    let before = ngo.disclosures().await.unwrap().into_iter().find(|d| d.id == id).unwrap();
    assert_eq!(before.status, DisclosureStatus::Requested);
    assert!(before.contact.is_none(), "nothing disclosed before approval");
    let contact_sent =
        |logs: &[WireLog]| logs.iter().any(|l| l.payloads().iter().any(|(_, b)| contains(b, CONTACT.as_bytes())));
    assert!(!contact_sent(&logs), "the contact crossed the wire before approval");
    // A border post: two operators approve (four eyes). Without an
    // operator, or by one operator twice, nothing is approved or sent.
    let err = border.decide_disclosure(id, Some(CONTACT.into())).await.unwrap_err();
    assert!(err.to_string().contains("need two operators"), "{err}");
    border.acting("desk-officer").decide_disclosure(id, Some(CONTACT.into())).await.unwrap();
    let first = disclosure(&border, id, DisclosureStatus::Pending).await.unwrap();
    assert_eq!(first.first_approval.as_ref().map(|a| a.operator.as_str()), Some("desk-officer"));
    let again = border.acting("desk-officer").decide_disclosure(id, Some(CONTACT.into())).await.unwrap_err();
    assert!(again.to_string().contains("another person"), "{again}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!contact_sent(&logs), "the contact left on one approval");
    border.acting("duty-supervisor").decide_disclosure(id, Some(CONTACT.into())).await.unwrap();
    let done = disclosure(&ngo, id, DisclosureStatus::Approved).await.expect("approval did not arrive");
    assert_eq!(done.contact.as_deref(), Some(CONTACT));
    assert!(contact_sent(&logs[1..2]), "the tap must see the approved contact leave the holder");
    // The audit names who approved first and who confirmed.
    let by = |who: &'static str, inner: fn(&AuditEvent) -> bool| move |e: &AuditEvent| matches!(e, AuditEvent::ByOperator { operator, event } if operator == who && inner(event));
    let pending_by = by("desk-officer", |e| matches!(e, AuditEvent::DisclosureApprovalPending { .. }));
    assert!(wait_audit(&border, pending_by).await.is_some(), "first approval audited under its operator");
    let decided_by = by("duty-supervisor", |e| matches!(e, AuditEvent::DisclosureDecided { approved: true, .. }));
    assert!(wait_audit(&border, decided_by).await.is_some(), "confirmation audited under its operator");
    // Deciding twice is refused.
    assert!(border.decide_disclosure(id, None).await.is_err());

    // 2. Encrypted-query hit -> request -> the holder resolves the answer position -> refuse.
    let report = ngo.identify(pop.sample(3, 2), "second sighting".into(), "GDPR 6(1)(d)".into()).await.unwrap();
    let q_hit = report.peers.iter().find(|p| p.peer == border.org).unwrap().hits[0];
    let id2 = ngo.request_disclosure(q_hit, "confirm identity".into()).await.unwrap();
    let pending = disclosure(&border, id2, DisclosureStatus::Pending).await.expect("query hit did not resolve");
    assert_eq!(pending.record, Some(held));
    // Pending requests survive a restart of the holder.
    fed.restart(1).await.unwrap();
    let border = fed.nodes[1].handle.clone();
    assert!(disclosure(&border, id2, DisclosureStatus::Pending).await.is_some());
    fed.wait_connected(&[0, 1, 2], PATIENCE).await.unwrap();
    // A refusal needs no second person.
    border.acting("desk-officer").decide_disclosure(id2, None).await.unwrap();
    let refused = disclosure(&ngo, id2, DisclosureStatus::Refused).await.expect("refusal did not arrive");
    assert!(refused.contact.is_none());

    // 2b. The next query to the border post goes in row form (its last
    // answer showed a small gallery), and a row-form handle resolves too.
    let report = ngo.identify(pop.sample(3, 3), "third sighting".into(), "GDPR 6(1)(d)".into()).await.unwrap();
    let at_border = report.peers.iter().find(|p| p.peer == border.org).unwrap();
    assert_eq!(at_border.form, "row", "{report:?}");
    let id3 = ngo.request_disclosure(at_border.hits[0], "confirm identity".into()).await.unwrap();
    let pending = disclosure(&border, id3, DisclosureStatus::Pending).await.expect("row-form hit did not resolve");
    assert_eq!(pending.record, Some(held));

    // 3. A member that was not told of the hit cannot use its handle.
    let police = fed.nodes[2].handle.clone();
    let probe =
        Request::Disclose(DisclosureRequest { id: Handle([9; 16]), hit, query: None, reason: "fishing".into() });
    police.raw_request(border.org, encode(Tag::Request, &probe, 1 << 20).unwrap()).await.unwrap();
    let police_org = police.org;
    wait_audit(&border, |e| matches!(e, AuditEvent::DisclosureUnresolved { from, .. } if *from == police_org))
        .await
        .expect("an unrelated member's disclosure request was not refused");
    assert!(!border.disclosures().await.unwrap().iter().any(|d| d.id == Handle([9; 16])));

    for n in &fed.nodes {
        assert!(n.handle.audit_verify().await.unwrap().is_ok());
    }
    fed.shutdown().await;
}

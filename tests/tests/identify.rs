//! End-to-end encrypted identification with real nodes: the prober finds
//! the one holder of a matching record, the others answer no match, budgets
//! refuse with a reason, both ends audit purpose and legal basis, and no
//! template bytes cross the wire.

use vigil_engine::audit::AuditEvent;
use vigil_matcher::synth::Population;
use vigil_node::now_ms;
use vigil_protocol::{Category, OrgKind};
use vigil_testkit::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identify_finds_the_one_holder_and_budgets_refuse_with_a_reason() {
    let logs: Vec<WireLog> = (0..3).map(|_| WireLog::default()).collect();
    let taps = logs.clone();
    let opts = FederationOptions {
        tap: Box::new(move |i| Some(taps[i].tap())),
        // The police unit answers at most two queries per peer and hour.
        tweak: Box::new(|i, cfg| {
            if i == 2 {
                cfg.queries.per_hour = 2;
            }
        }),
        ..Default::default()
    };
    let specs = [
        OrgSpec::new("Shelter North", OrgKind::Ngo),
        OrgSpec::new("Eastgate Border", OrgKind::Border),
        OrgSpec::new("Metro Police", OrgKind::Police),
    ];
    let mut fed = LocalFederation::start(&specs, opts).await.unwrap();
    fed.wait_connected(&[0, 1, 2], PATIENCE).await.unwrap();
    let pop = Population::new(77, "vigil-synth-128", 300);
    let enrol = |node: usize, person: usize| {
        let h = fed.nodes[node].handle.clone();
        let t = pop.sample(person, 1);
        async move { h.enrol(found(t, format!("CASE-{person}"))).await.unwrap() }
    };
    for p in 10..110 {
        enrol(1, p).await;
    }
    enrol(1, 5).await; // the border post holds the person
    for p in 110..300 {
        enrol(2, p).await;
    }
    let (border, police) = (fed.nodes[1].handle.org, fed.nodes[2].handle.org);
    let prober = &fed.nodes[0].handle;
    let report = prober
        .identify(pop.sample(5, 0), "missing child, family report".into(), "GDPR art. 6(1)(d)".into())
        .await
        .unwrap();
    assert_eq!(report.peers.len(), 2, "{report:?}");
    let at = |org| report.peers.iter().find(|p| p.peer == org).unwrap();
    assert_eq!(at(border).status, vigil_engine::OutcomeStatus::Answered);
    assert_eq!(at(border).hits.len(), 1, "exactly one record at the border post matches");
    assert!(at(border).positions >= 101);
    assert_eq!(at(police).status, vigil_engine::OutcomeStatus::Answered);
    assert!(at(police).hits.is_empty(), "the police unit holds no matching record");
    assert!(at(police).positions >= 190);
    // Gallery sizes unknown: both got the column form.
    assert!(report.peers.iter().all(|p| p.form == "column"), "{report:?}");

    // Both ends audited the query with its purpose and legal basis.
    let sent = audit_events(prober).await;
    assert!(sent.iter().any(|e| matches!(e, AuditEvent::QuerySent { query, purpose, legal_basis, peers: 2 }
        if *query == report.query && purpose == "missing child, family report" && legal_basis == "GDPR art. 6(1)(d)")));
    assert_eq!(
        sent.iter().filter(|e| matches!(e, AuditEvent::QueryAnswered { query, .. } if *query == report.query)).count(),
        2
    );
    for i in [1, 2] {
        let got = audit_events(&fed.nodes[i].handle).await;
        assert!(got.iter().any(|e| matches!(e, AuditEvent::QueryReceived { query, purpose, .. }
            if *query == report.query && purpose == "missing child, family report")));
    }

    // Budget: the police unit answers two queries per hour, then refuses.
    let second = prober.identify(pop.sample(6, 0), "second".into(), "test".into()).await.unwrap();
    assert!(second.peers.iter().all(|p| p.status == vigil_engine::OutcomeStatus::Answered));
    // Now the prober knows both galleries are small: the 24 KiB row form
    // (one-chunk probe) moves the fewest bytes, not the 2 MiB column form.
    assert!(second.peers.iter().all(|p| p.form == "row"), "{second:?}");
    assert!(second.peers.iter().all(|p| p.positions >= 101));
    let third = prober.identify(pop.sample(7, 0), "third".into(), "test".into()).await.unwrap();
    let refused = third.peers.iter().find(|p| p.peer == police).unwrap();
    assert_eq!(refused.status, vigil_engine::OutcomeStatus::Refused);
    assert!(refused.reason.as_deref().unwrap().contains("BudgetExceeded"));
    assert_eq!(third.peers.iter().find(|p| p.peer == border).unwrap().status, vigil_engine::OutcomeStatus::Answered);
    let police_audit = audit_events(&fed.nodes[2].handle).await;
    assert!(police_audit
        .iter()
        .any(|e| matches!(e, AuditEvent::QueryRefused { reason, .. } if reason == "query budget spent: 2 per hour")));

    // The spent budget survives a restart of the police node (it was kept
    // in memory only, so a restart handed the prober a fresh hour).
    fed.restart(2).await.unwrap();
    fed.wait_connected(&[0, 1, 2], PATIENCE).await.unwrap();
    let prober = &fed.nodes[0].handle;
    let fourth = prober.identify(pop.sample(8, 0), "fourth".into(), "test".into()).await.unwrap();
    let refused = fourth.peers.iter().find(|p| p.peer == police).unwrap();
    assert_eq!(refused.status, vigil_engine::OutcomeStatus::Refused, "{fourth:?}");

    // The key was made at start and sealed; rotating it changes the key id
    // that probes carry, and queries keep working.
    let started = audit_events(prober).await;
    let first_key = started
        .iter()
        .find_map(|e| if let AuditEvent::ProberKeyCreated { key_id } = e { Some(key_id.clone()) } else { None })
        .expect("key created at start");
    let new_key = prober.rotate_prober_key().await.unwrap();
    assert_ne!(new_key, first_key);
    let after = prober.identify(pop.sample(5, 2), "after rotation".into(), "test".into()).await.unwrap();
    let at_border = after.peers.iter().find(|p| p.peer == border).unwrap();
    assert_eq!((at_border.form.as_str(), at_border.hits.len()), ("row", 1), "the row form finds the holder too");
    assert!(audit_events(prober)
        .await
        .iter()
        .any(|e| matches!(e, AuditEvent::ProberKeyRotated { old, new } if *old == first_key && *new == new_key)));

    // No template bytes on the wire: the probe and every gallery vector.
    let mut needles: Vec<Vec<u8>> = Vec::new();
    for (person, capture) in [(5usize, 0u64), (5, 1), (6, 0), (7, 0), (50, 1), (200, 1)] {
        let bytes: Vec<u8> = pop.sample(person, capture).vector.iter().map(|x| *x as u8).collect();
        needles.extend(bytes.chunks(16).map(|c| c.to_vec()));
    }
    let mut identify_bytes = 0;
    for log in &logs {
        for (proto, bytes) in log.payloads() {
            identify_bytes += bytes.len();
            for n in &needles {
                assert!(!contains(&bytes, n), "template bytes sent on {proto}");
            }
        }
    }
    // Two column probes (2 MiB each) in the first query; row probes after.
    assert!(identify_bytes > 2 * 2 * 1024 * 1024, "the tap saw the encrypted probes ({identify_bytes} bytes)");
    assert!(identify_bytes < 3 * 2 * 1024 * 1024, "later queries went in row form ({identify_bytes} bytes)");
    for i in 0..3 {
        assert!(fed.nodes[i].handle.audit_verify().await.unwrap().is_ok());
    }
    fed.shutdown().await;
}

/// A member that published an encrypted alert learns each holder's gallery
/// size from the answer pages, so its first query to them goes in the row
/// form (24 KiB) instead of the column form (2 MiB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_to_an_alert_size_the_first_query() {
    let specs = [
        OrgSpec::new("Shelter North", OrgKind::Ngo),
        OrgSpec::new("Eastgate Border", OrgKind::Border),
        OrgSpec::new("Metro Police", OrgKind::Police),
    ];
    let fed = LocalFederation::start(&specs, FederationOptions::default()).await.unwrap();
    fed.wait_connected(&[0, 1, 2], PATIENCE).await.unwrap();
    let pop = Population::new(78, "vigil-synth-128", 200);
    for (node, people) in [(1usize, 10..60), (2, 60..180)] {
        let batch = people.map(|p| found(pop.sample(p, 1), format!("CASE-{p}"))).collect();
        fed.nodes[node].handle.enrol_many(batch).await.unwrap();
    }
    let prober = &fed.nodes[0].handle;
    prober.publish_alert(pop.sample(3, 0), Category::Missing, "K-1".into(), now_ms() + 3_600_000).await.unwrap();
    let holders = [fed.nodes[1].handle.org, fed.nodes[2].handle.org];
    let answered = vigil_testkit::wait_for(PATIENCE, || async {
        let events = audit_events(prober).await;
        holders
            .iter()
            .all(|h| events.iter().any(|e| matches!(e, AuditEvent::AlertAnswerReceived { holder, .. } if holder == h)))
            .then_some(())
    })
    .await;
    assert!(answered.is_some(), "both holders answered the alert");
    let report = prober.identify(pop.sample(4, 0), "first query".into(), "test".into()).await.unwrap();
    assert_eq!(report.peers.len(), 2, "{report:?}");
    assert!(
        report.peers.iter().all(|p| p.status == vigil_engine::OutcomeStatus::Answered && p.form == "row"),
        "{report:?}"
    );
    assert!(report.peers.iter().any(|p| p.positions >= 120), "{report:?}");
    fed.shutdown().await;
}

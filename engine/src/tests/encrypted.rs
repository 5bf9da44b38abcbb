//! Encrypted alerts between engines, without I/O: the issuer encrypts, the
//! holder's job answers, the issuer decrypts; standing matching for later
//! records, idempotent delivery, refusals, key rotation and disclosure.

use super::*;
use crate::identify::IdentifyStart;
use vigil_config::AlertForm;

const GOSSIP_E: usize = 40 * 1024;

fn jobs(actions: &[Action]) -> Vec<AlertJob> {
    actions.iter().filter_map(|a| if let Action::AnswerAlert(j) = a { Some((**j).clone()) } else { None }).collect()
}

fn sends(actions: &[Action]) -> Vec<(OrgId, Request, vigil_protocol::Handle)> {
    actions
        .iter()
        .filter_map(
            |a| if let Action::Send { to, request, key } = a { Some((*to, request.clone(), *key)) } else { None },
        )
        .collect()
}

/// Runs the holder's job and returns what it sends.
fn answer(holder: &mut Engine, job: &AlertJob) -> Vec<(OrgId, Request, vigil_protocol::Handle)> {
    let actions = holder.alert_answered(T0 + 10, job, job.run());
    sends(&actions)
}

/// The issuer (engine 0) holds exactly one hit, and asking for its
/// disclosure reaches the holder (engine 1) at record `rec`.
fn one_hit_leads_to(f: &mut Fed, issuer: OrgId, rec: u64) {
    let hits: Vec<StoredHit> = f.engines[0].hits().cloned().collect();
    assert_eq!(hits.len(), 1, "{hits:?}");
    let (_, actions) = f.engines[0].request_disclosure(T0 + 4, hits[0].handle, "family asks".into()).unwrap();
    let frame = encode(Tag::Request, &sends(&actions)[0].1, FRAME).unwrap();
    let (r, actions) = f.engines[1].on_request(T0 + 5, issuer, &frame, FRAME);
    assert_eq!(r, Response::Ack);
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Audit(AuditEvent::DisclosureReceived { record, .. }) if *record == rec)));
}

/// The holder's one pending disclosure, decided under the four-eyes rule:
/// no operator, one operator twice, a changed contact are refused; a
/// second approver's confirmation sends the first's contact.
fn four_eyes_decide(holder: &mut Engine) {
    let id = holder.disclosures().next().unwrap().id;
    let contact = || Some("duty desk, +00 555 0101".to_string());
    assert!(matches!(
        holder.decide_disclosure(T0 + 32, id, contact(), None, true),
        Err(EngineError::FourEyesNeedsOperators)
    ));
    let first = holder.decide_disclosure(T0 + 32, id, contact(), Some("amira"), true).unwrap();
    assert!(sends(&first).is_empty(), "nothing leaves on a first approval");
    assert!(first.iter().any(|a| matches!(a, Action::Audit(AuditEvent::DisclosureApprovalPending { .. }))));
    assert!(matches!(
        holder.decide_disclosure(T0 + 33, id, contact(), Some("amira"), true),
        Err(EngineError::SameApprover(_))
    ));
    let other = Some("someone else".to_string());
    assert!(matches!(holder.decide_disclosure(T0 + 33, id, other, Some("bo"), true), Err(EngineError::ContactDiffers)));
    let second = holder.decide_disclosure(T0 + 34, id, contact(), Some("bo"), true).unwrap();
    let sent = sends(&second);
    assert!(matches!(&sent[..], [(_, Request::DisclosureAnswer(a), _)] if a.approved && a.contact == contact()));
    assert!(matches!(
        holder.decide_disclosure(T0 + 35, id, None, Some("cy"), true),
        Err(EngineError::NotPendingHere(_))
    ));
}

#[test]
fn encrypted_alert_finds_the_holder_and_only_the_issuer_learns_it() {
    let mut f = fed_with(4, AlertForm::Encrypted);
    let pop = Population::new(7, "vigil-synth-128", 40);
    let (issuer, holder, other) = (f.engines[0].org(), f.engines[1].org(), f.engines[2].org());
    let (rec, _) = f.engines[1].enrol(T0, enrolment(pop.sample(3, 1))).unwrap();
    for p in 10..30 {
        f.engines[1].enrol(T0, enrolment(pop.sample(p, 1))).unwrap();
        f.engines[2].enrol(T0, enrolment(pop.sample(p, 2))).unwrap();
    }
    let (alert, actions) =
        f.engines[0].publish_alert(T0, &pop.sample(3, 0), Category::Missing, "K".into(), T0 + DAY, GOSSIP_E).unwrap();
    let bytes = published(&actions);
    let env: vigil_protocol::AlertEnvelope = vigil_protocol::decode(Tag::Gossip, &bytes, GOSSIP_E).unwrap();
    let vigil_protocol::AlertEnvelope::Publish(a) = env else { panic!("a publication") };
    assert!(a.body.probe.is_none() && a.body.encrypted.is_some(), "encrypted only: no protected template");
    // A smaller gossip limit cannot carry it.
    assert!(f.engines[0]
        .publish_alert(T0, &pop.sample(4, 0), Category::Missing, "L".into(), T0 + DAY, 16 * 1024)
        .is_err());

    // Both members accept it and answer: no hit is visible to them.
    let mut pages = Vec::new();
    for i in [1, 2] {
        let (v, actions) = f.engines[i].on_gossip(T0 + 5, issuer, &bytes, GOSSIP_E);
        assert_eq!(v, Verdict::Accept);
        assert!(sent_hits(&actions).is_empty(), "an encrypted alert is never matched in the clear");
        let js = jobs(&actions);
        assert_eq!(js.len(), 1);
        assert_eq!(js[0].records.len(), 21 - (i - 1));
        pages.push((f.engines[i].org(), answer(&mut f.engines[i], &js[0])));
        assert_eq!(f.engines[i].hits().count(), 0);
    }
    // The issuer decrypts: one hit, at the holder of person 3.
    for (from, sent) in &pages {
        for (to, req, _) in sent {
            assert_eq!(*to, issuer);
            let frame = encode(Tag::Request, req, FRAME).unwrap();
            let (r, _) = f.engines[0].on_request(T0 + 20, *from, &frame, FRAME);
            assert_eq!(r, Response::Ack);
            // Delivery is idempotent.
            assert_eq!(f.engines[0].on_request(T0 + 21, *from, &frame, FRAME).0, Response::Ack);
        }
    }
    let hits: Vec<StoredHit> = f.engines[0].hits().cloned().collect();
    assert_eq!(hits.len(), 1, "exactly one record matches: {hits:?}");
    assert_eq!(hits[0].peer, holder);
    assert!(matches!(hits[0].source, crate::model::HitSource::EncryptedAlert { alert: a, .. } if a == alert));
    // Acks mark the holder's pages delivered; nothing is resent after that.
    let (_, _, key) = pages[0].1[0].clone();
    let pending = |e: &Engine| e.outbox().into_iter().filter(|m| matches!(m.1, Request::AlertAnswer(_))).count();
    assert_eq!(pending(&f.engines[1]), 1);
    f.engines[1].on_response(T0 + 22, key, &Response::Ack);
    assert_eq!(pending(&f.engines[1]), 0);

    // The issuer asks for disclosure; only the holder resolves the handle, to the right record.
    let (_, actions) = f.engines[0].request_disclosure(T0 + 30, hits[0].handle, "family asks".into()).unwrap();
    let (to, req, _) = sends(&actions).pop().unwrap();
    assert_eq!(to, holder);
    let frame = encode(Tag::Request, &req, FRAME).unwrap();
    assert_eq!(f.engines[2].on_request(T0 + 31, issuer, &frame, FRAME).0, Response::Refused(Refusal::UnknownHit));
    let (r, actions) = f.engines[1].on_request(T0 + 31, issuer, &frame, FRAME);
    assert_eq!(r, Response::Ack);
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Audit(AuditEvent::DisclosureReceived { record, .. }) if *record == rec)));
    four_eyes_decide(&mut f.engines[1]);

    // Standing matching: a record of person 3 enrolled later at `other`
    // is answered alone, and the issuer finds it.
    let (_, actions) = f.engines[2].enrol(T0 + 40, enrolment(pop.sample(3, 3))).unwrap();
    let js = jobs(&actions);
    assert_eq!(js.len(), 1);
    assert_eq!(js[0].records.len(), 1);
    for (_, req, _) in answer(&mut f.engines[2], &js[0]) {
        let frame = encode(Tag::Request, &req, FRAME).unwrap();
        assert_eq!(f.engines[0].on_request(T0 + 41, other, &frame, FRAME).0, Response::Ack);
    }
    assert_eq!(f.engines[0].hits().filter(|h| h.peer == other).count(), 1);
    // A record of someone else: answered, no hit.
    let (_, actions) = f.engines[2].enrol(T0 + 42, enrolment(pop.sample(35, 0))).unwrap();
    for (_, req, _) in answer(&mut f.engines[2], &jobs(&actions)[0]) {
        let frame = encode(Tag::Request, &req, FRAME).unwrap();
        assert_eq!(f.engines[0].on_request(T0 + 43, other, &frame, FRAME).0, Response::Ack);
    }
    assert_eq!(f.engines[0].hits().count(), 2);

    // Everything is answered once: nothing is owed, even after a failed job
    // was taken back and answered again.
    assert!(jobs(&f.engines[2].pending_alert_jobs(T0 + 44)).is_empty());
    let (late, actions) = f.engines[2].enrol(T0 + 45, enrolment(pop.sample(36, 0))).unwrap();
    let failed = f.engines[2].alert_answered(T0 + 46, &jobs(&actions)[0], Err("worker died".into()));
    assert!(failed.iter().any(|a| matches!(a, Action::Audit(AuditEvent::AlertNotAnswered { .. }))));
    let again = jobs(&f.engines[2].pending_alert_jobs(T0 + 47));
    assert_eq!(again.iter().map(|j| j.records.clone()).collect::<Vec<_>>(), vec![vec![late]]);
    answer(&mut f.engines[2], &again[0]);
    assert!(jobs(&f.engines[2].pending_alert_jobs(T0 + 48)).is_empty());

    // Once the alert has expired and its purge delay passed, the holder's
    // answer pages (what maps a hit to a record) go with it.
    let stored_pages = |e: &Engine| e.answers.values().filter(|a| a.alert == alert).count();
    let before = stored_pages(&f.engines[2]);
    assert!(before >= 3, "the first answer and two standing ones");
    let purge = f.engines[2].purge_closed_alerts(T0 + 3 * DAY);
    let deleted = purge.iter().filter(|a| matches!(a, Action::Store(crate::model::StoreOp::DeleteAnswer(_)))).count();
    assert_eq!(deleted, before);
    assert_eq!(stored_pages(&f.engines[2]), 0);
    assert!(!f.engines[2].answered_alerts.contains(&alert, late));
}

#[test]
fn bad_answers_are_refused_and_rotation_keeps_old_alerts_readable() {
    let mut f = fed_with(4, AlertForm::Encrypted);
    let pop = Population::new(8, "vigil-synth-128", 10);
    let issuer = f.engines[0].org();
    let holder = f.engines[1].org();
    f.engines[1].enrol(T0, enrolment(pop.sample(2, 1))).unwrap();
    let (_, actions) =
        f.engines[0].publish_alert(T0, &pop.sample(2, 0), Category::Missing, "K".into(), T0 + DAY, GOSSIP_E).unwrap();
    let bytes = published(&actions);
    let (_, actions) = f.engines[1].on_gossip(T0 + 1, issuer, &bytes, GOSSIP_E);
    let sent = answer(&mut f.engines[1], &jobs(&actions)[0]);
    let Request::AlertAnswer(good) = sent[0].1.clone() else { panic!("an answer") };

    // Rotate the issuer's key: the answer under the old key still decrypts.
    f.engines[0].rotate_prober_key();
    // Truncated body: malformed, with a strike; nothing stored.
    let mut cut = good.clone();
    cut.body.truncate(cut.body.len() - 4);
    let frame = encode(Tag::Request, &Request::AlertAnswer(cut), FRAME).unwrap();
    assert_eq!(f.engines[0].on_request(T0 + 2, holder, &frame, FRAME).0, Response::Refused(Refusal::Malformed));
    assert_eq!(f.engines[0].strikes(&holder), 1);
    // An answer for an alert the receiver did not issue, or does not know.
    let frame = encode(Tag::Request, &Request::AlertAnswer(good.clone()), FRAME).unwrap();
    assert_eq!(f.engines[2].on_request(T0 + 2, holder, &frame, FRAME).0, Response::Refused(Refusal::UnknownAlert));
    assert_eq!(f.engines[1].on_request(T0 + 2, holder, &frame, FRAME).0, Response::Refused(Refusal::NotIssuer));
    // From a non-member (no match role): refused.
    let outsider = f.engines[3].org();
    assert_eq!(f.engines[0].on_request(T0 + 2, outsider, &frame, FRAME).0, Response::Refused(Refusal::NotAllowed));
    assert_eq!(f.engines[0].hits().count(), 0);
    // The genuine page, after rotation: decrypted with the retired key.
    assert_eq!(f.engines[0].on_request(T0 + 3, holder, &frame, FRAME).0, Response::Ack);
    assert_eq!(f.engines[0].hits().count(), 1);

    // A malformed encrypted probe in an alert is rejected before forwarding.
    let mut forged = f.engines[0].alerts().next().unwrap().alert.clone();
    forged.body.seq = 2;
    forged.body.encrypted.as_mut().unwrap().row.truncate(100);
    forged.signature = vigil_crypto::sign_alert(&f.ids[0], &forged.body).unwrap();
    let fb = encode(Tag::Gossip, &vigil_protocol::AlertEnvelope::Publish(forged), GOSSIP_E).unwrap();
    let (v, _) = f.engines[2].on_gossip(T0 + 4, issuer, &fb, GOSSIP_E);
    assert!(matches!(v, Verdict::Reject(r) if r.contains("encrypted probe")));
}

#[test]
fn alert_budgets_are_their_own_and_a_refusing_holder_tells_the_issuer_why() {
    use crate::identify::Budget;
    use crate::receipts::MemberState;
    let mut f = fed_with(4, AlertForm::Encrypted);
    f.engines[1].policy.answers_per_hour = 2;
    f.engines[1].policy.answers_per_day = 3;
    f.engines[1].queries.per_hour = 2;
    let pop = Population::new(9, "vigil-synth-128", 10);
    let (issuer, holder, quiet) = (f.engines[0].org(), f.engines[1].org(), f.engines[2].org());
    f.engines[1].enrol(T0, enrolment(pop.sample(1, 1))).unwrap();
    let (mut answered, mut alerts, mut refusals) = (Vec::new(), Vec::new(), Vec::new());
    for p in 0..3 {
        let (alert, actions) = f.engines[0]
            .publish_alert(T0 + p, &pop.sample(p as usize + 2, 0), Category::Missing, "K".into(), T0 + DAY, GOSSIP_E)
            .unwrap();
        alerts.push(alert);
        let bytes = published(&actions);
        let (v, actions) = f.engines[1].on_gossip(T0 + p + 1, issuer, &bytes, GOSSIP_E);
        assert_eq!(v, Verdict::Accept, "the alert is still stored and forwarded");
        answered.extend(jobs(&actions));
        refusals.extend(sends(&actions).into_iter().filter(|(_, r, _)| matches!(r, Request::AlertRefused(_))));
        assert_eq!(f.engines[2].on_gossip(T0 + p + 1, issuer, &bytes, GOSSIP_E).0, Verdict::Accept);
    }
    assert_eq!(answered.len(), 2, "the third alert within the hour is not answered");
    // The alert budget is not the query budget: queries are still answered.
    assert!(f.engines[1].budget_left(T0 + 5, issuer, Budget::Queries).is_ok());
    // The holder tells the issuer why, signed, once (and keeps it in its outbox).
    assert_eq!(refusals.len(), 1);
    let (to, refusal, key) = refusals.remove(0);
    assert_eq!(to, issuer);
    assert!(f.engines[1].outbox().iter().any(|(_, _, k, _)| *k == key));
    let Request::AlertRefused(signed) = &refusal else { unreachable!() };
    assert_eq!(signed.body.alert, alerts[2]);
    // A forged refusal (another member's signature) costs its sender a strike.
    let mut forged = signed.clone();
    forged.body.reason = "not answering".into();
    let frame = encode(Tag::Request, &Request::AlertRefused(forged), FRAME).unwrap();
    let (r, actions) = f.engines[0].on_request(T0 + 6, holder, &frame, FRAME);
    assert_eq!(r, Response::Refused(Refusal::BadSignature));
    assert!(actions.iter().any(|a| matches!(a, Action::Audit(AuditEvent::PeerPenalised { .. }))));
    // The real one is stored and audited at the issuer, and acknowledged.
    let frame = encode(Tag::Request, &refusal, FRAME).unwrap();
    let (r, actions) = f.engines[0].on_request(T0 + 6, holder, &frame, FRAME);
    assert_eq!(r, Response::Ack);
    assert!(actions.iter().any(|a| matches!(a, Action::Audit(AuditEvent::AlertRefusedBy { .. }))));
    f.engines[1].on_response(T0 + 7, key, &Response::Ack);
    assert!(!f.engines[1].outbox().iter().any(|(_, _, k, _)| *k == key), "delivered: not resent");
    // Answers reach the issuer for the first two alerts.
    for job in &answered {
        for (_, request, _) in answer(&mut f.engines[1], job) {
            let frame = encode(Tag::Request, &request, FRAME).unwrap();
            assert_eq!(f.engines[0].on_request(T0 + 8, holder, &frame, FRAME).0, Response::Ack);
        }
    }
    // The quiet member holds the alerts (its catch-up heads say so).
    let sync = sends(&f.engines[2].sync_start(issuer));
    let frame = encode(Tag::Request, &sync[0].1, FRAME).unwrap();
    f.engines[0].on_request(T0 + 9, quiet, &frame, FRAME);
    let state = |f: &Fed, alert: &AlertId, org: OrgId| {
        let members = f.engines[0].alert_members(alert).unwrap();
        members.into_iter().find(|m| m.member == org).unwrap()
    };
    assert_eq!(state(&f, &alerts[0], holder).state, MemberState::Answered);
    let refused = state(&f, &alerts[2], holder);
    assert_eq!(refused.state, MemberState::Refused);
    assert_eq!(refused.reason.as_deref(), Some("encrypted alert budget spent: 2 per hour"));
    assert_eq!(state(&f, &alerts[2], quiet).state, MemberState::Delivered);
    assert!(f.engines[1].alert_members(&alerts[2]).is_err(), "only the issuer has this view");
    // An hour later the holder answers the refused alert after all.
    assert!(f.engines[1].retry_deferred_alerts(T0 + 100).is_empty(), "still spent");
    let actions = f.engines[1].retry_deferred_alerts(T0 + 3600 * 1000 + 10);
    let late = jobs(&actions);
    assert_eq!(late.len(), 1);
    // That answer brings the issuer to 80 % of its daily budget: flagged.
    assert!(actions.iter().any(|a| matches!(a, Action::Audit(AuditEvent::BudgetPressure { used: 3, per_day: 3, .. }))));
    assert!(actions.iter().any(|a| matches!(a, Action::Store(StoreOp::DeleteReceipt(_)))));
    for (_, request, _) in answer(&mut f.engines[1], &late[0]) {
        let frame = encode(Tag::Request, &request, FRAME).unwrap();
        assert_eq!(f.engines[0].on_request(T0 + 3600 * 1000 + 20, holder, &frame, FRAME).0, Response::Ack);
    }
    assert_eq!(state(&f, &alerts[2], holder).state, MemberState::Answered);
    assert!(f.engines[1].retry_deferred_alerts(T0 + 2 * 3600 * 1000).is_empty(), "answered once");
}

#[test]
fn mid_sized_galleries_fetch_a_split_probe_and_answer_it() {
    let mut f = fed_with(4, AlertForm::Encrypted);
    let pop = Population::new(10, "vigil-synth-128", 400);
    let (issuer, holder) = (f.engines[0].org(), f.engines[1].org());
    let (rec, _) = f.engines[1].enrol(T0, enrolment(pop.sample(6, 1))).unwrap();
    for p in 10..310 {
        f.engines[1].enrol(T0, enrolment(pop.sample(p, 1))).unwrap();
    }
    let (alert, actions) =
        f.engines[0].publish_alert(T0, &pop.sample(6, 0), Category::Missing, "K".into(), T0 + DAY, GOSSIP_E).unwrap();
    let gossip = published(&actions);
    let (_, actions) = f.engines[1].on_gossip(T0 + 1, issuer, &gossip, GOSSIP_E);
    assert!(jobs(&actions).is_empty(), "301 records: a split probe moves fewer bytes than the alert's");
    let chunks = actions
        .iter()
        .find_map(|a| match a {
            Action::FetchProbe { to, alert: x, chunks: Some(n) } if *to == issuer && *x == alert => Some(*n),
            _ => None,
        })
        .expect("a split fetch");
    assert!(chunks > 1 && 128 % chunks == 0, "{chunks} chunks");

    // A split that does not cut the probe is refused; the asked one is given.
    let ask = |n: usize| {
        let r = Request::FetchSplit(vigil_protocol::FetchSplit { alert, chunks: n as u32 });
        encode(Tag::Request, &r, FRAME).unwrap()
    };
    assert!(matches!(
        f.engines[0].on_identify(T0 + 2, holder, &ask(100), [0; 32]),
        IdentifyStart::Answer(Response::Refused(Refusal::Malformed), _)
    ));
    let IdentifyStart::Fetch(job, _) = f.engines[0].on_identify(T0 + 2, holder, &ask(chunks), [0; 32]) else {
        panic!("the issuer must encrypt the split probe")
    };
    let response = job.run();
    assert!(matches!(&response, Response::Probe(p) if p.probe.len() > (chunks + 1) * 12 * 1024));
    // Encrypted once per form: a second holder asking gets the same bytes.
    let third = f.engines[2].org();
    let IdentifyStart::Fetch(again, _) = f.engines[0].on_identify(T0 + 2, third, &ask(chunks), [0; 32]) else {
        panic!("a second holder may fetch too")
    };
    assert!(again.run() == response);
    let actions = f.engines[1].probe_fetched(alert, Ok(response));
    let js = jobs(&actions);
    assert_eq!(js.len(), 1);
    assert!(matches!(&js[0].probe, JobProbe::Row(p) if p.chunks() == chunks));
    let mut bytes = 0;
    for (_, req, _) in answer(&mut f.engines[1], &js[0]) {
        let Request::AlertAnswer(a) = &req else { panic!("an answer page") };
        assert_eq!(a.body[3], Tag::RowAnswer as u8, "a row-form page");
        bytes += a.body.len();
        let frame = encode(Tag::Request, &req, FRAME).unwrap();
        assert_eq!(f.engines[0].on_request(T0 + 3, holder, &frame, FRAME).0, Response::Ack);
    }
    let row_bytes = vigil_matcher::encrypted::RowAnswer::encoded_len(301, 128);
    assert!(bytes * 2 < row_bytes, "split answers {bytes} bytes, the alert's own form {row_bytes}");
    one_hit_leads_to(&mut f, issuer, rec);

    // With split probes off, the same holder answers the alert's own probe.
    f.engines[2].policy.split_probes = false;
    for p in 10..310 {
        f.engines[2].enrol(T0, enrolment(pop.sample(p, 2))).unwrap();
    }
    let (_, actions) = f.engines[2].on_gossip(T0 + 1, issuer, &gossip, GOSSIP_E);
    assert_eq!(jobs(&actions).len(), 1, "{actions:?}");
}

#[test]
fn large_galleries_fetch_the_column_form_and_answer_it() {
    let mut f = fed_with(4, AlertForm::Encrypted);
    f.engines[1].policy.column_above = Some(5);
    let pop = Population::new(10, "vigil-synth-128", 40);
    let (issuer, holder) = (f.engines[0].org(), f.engines[1].org());
    let (rec, _) = f.engines[1].enrol(T0, enrolment(pop.sample(6, 1))).unwrap();
    for p in 10..30 {
        f.engines[1].enrol(T0, enrolment(pop.sample(p, 1))).unwrap();
    }
    let (alert, actions) =
        f.engines[0].publish_alert(T0, &pop.sample(6, 0), Category::Missing, "K".into(), T0 + DAY, GOSSIP_E).unwrap();
    let (_, actions) = f.engines[1].on_gossip(T0 + 1, issuer, &published(&actions), GOSSIP_E);
    assert!(jobs(&actions).is_empty(), "21 records > 5: no row-form job");
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::FetchProbe { to, alert: x, chunks: None } if *to == issuer && *x == alert)));

    // The issuer encrypts the column form for it (a blocking job at runtime).
    let fetch = encode(Tag::Request, &Request::FetchProbe(vigil_protocol::FetchProbe { alert }), FRAME).unwrap();
    let IdentifyStart::Fetch(job, _) = f.engines[0].on_identify(T0 + 2, holder, &fetch, [0; 32]) else {
        panic!("the issuer must encrypt the column form")
    };
    let response = job.run();
    assert!(matches!(&response, Response::Probe(p) if p.alert == alert && p.probe.len() > 128 * 16 * 1024));
    let actions = f.engines[1].probe_fetched(alert, Ok(response));
    let js = jobs(&actions);
    assert_eq!(js.len(), 1);
    assert!(matches!(js[0].probe, JobProbe::Column(_)));
    for (_, req, _) in answer(&mut f.engines[1], &js[0]) {
        let Request::AlertAnswer(a) = &req else { panic!("an answer page") };
        assert_eq!(a.body[3], Tag::EncryptedAnswer as u8, "a column-form page");
        let frame = encode(Tag::Request, &req, FRAME).unwrap();
        assert_eq!(f.engines[0].on_request(T0 + 3, holder, &frame, FRAME).0, Response::Ack);
    }
    one_hit_leads_to(&mut f, issuer, rec);

    // Fetches are bounded per holder and alert, refused to non-members and
    // after withdrawal; the holder's engine gives up on a refusal.
    let refused = |e: &mut Engine, from: OrgId| match e.on_identify(T0 + 6, from, &fetch, [0; 32]) {
        IdentifyStart::Answer(Response::Refused(r), _) => Some(r),
        _ => None,
    };
    let outsider = f.engines[3].org();
    assert_eq!(refused(&mut f.engines[0], outsider), Some(Refusal::NotAllowed));
    assert_eq!(refused(&mut f.engines[2], holder), Some(Refusal::UnknownAlert));
    assert_eq!(refused(&mut f.engines[0], holder), None);
    assert_eq!(refused(&mut f.engines[0], holder), None);
    assert_eq!(refused(&mut f.engines[0], holder), Some(Refusal::RateLimited), "three fetches per alert");
    f.engines[0].withdraw_alert(T0 + 7, alert, GOSSIP_E).unwrap();
    assert!(f.engines[0].alerts().all(|a| a.probe_vector.is_none()), "the probe is dropped on withdrawal");
    let other = f.engines[2].org();
    assert_eq!(refused(&mut f.engines[0], other), Some(Refusal::Unsupported));
}

#[test]
fn both_forms_each_holder_answers_one_of_them() {
    let mut f = fed_with(4, AlertForm::Both);
    let pop = Population::new(8, "vigil-synth-128", 40);
    let (issuer, plain_holder, enc_holder) = (f.engines[0].org(), f.engines[1].org(), f.engines[2].org());
    f.engines[1].policy.answer_protected = true;
    for i in [1, 2] {
        f.engines[i].enrol(T0, enrolment(pop.sample(5, i as u64))).unwrap();
        for p in 10..20 {
            f.engines[i].enrol(T0, enrolment(pop.sample(p, i as u64))).unwrap();
        }
    }
    let (alert, actions) =
        f.engines[0].publish_alert(T0, &pop.sample(5, 0), Category::Missing, "K".into(), T0 + DAY, GOSSIP_E).unwrap();
    let bytes = published(&actions);
    let env: vigil_protocol::AlertEnvelope = vigil_protocol::decode(Tag::Gossip, &bytes, GOSSIP_E).unwrap();
    let vigil_protocol::AlertEnvelope::Publish(a) = env else { panic!("a publication") };
    assert!(a.body.probe.is_some() && a.body.encrypted.is_some(), "both forms travel");

    // The member set to match the protected template sends a hit notice and
    // does no homomorphic work; the other answers the encrypted probe only.
    let (v, actions) = f.engines[1].on_gossip(T0 + 5, issuer, &bytes, GOSSIP_E);
    assert_eq!(v, Verdict::Accept);
    assert!(jobs(&actions).is_empty());
    let notices = sent_hits(&actions);
    assert_eq!(notices.len(), 1, "{actions:?}");
    let (v, actions) = f.engines[2].on_gossip(T0 + 5, issuer, &bytes, GOSSIP_E);
    assert_eq!(v, Verdict::Accept);
    assert!(sent_hits(&actions).is_empty(), "never matched in the clear unless the node chose to");
    let js = jobs(&actions);
    assert_eq!(js.len(), 1);

    // The issuer takes both: a notice from one, an encrypted hit from the other.
    let notice = encode(Tag::Request, &Request::Hit(notices[0].1.clone()), FRAME).unwrap();
    assert_eq!(f.engines[0].on_request(T0 + 6, plain_holder, &notice, FRAME).0, Response::Ack);
    for (_, req, _) in answer(&mut f.engines[2], &js[0]) {
        let frame = encode(Tag::Request, &req, FRAME).unwrap();
        assert_eq!(f.engines[0].on_request(T0 + 7, enc_holder, &frame, FRAME).0, Response::Ack);
    }
    let mut peers: Vec<OrgId> = f.engines[0].hits().map(|h| h.peer).collect();
    peers.sort();
    let mut want = vec![plain_holder, enc_holder];
    want.sort();
    assert_eq!(peers, want, "one hit from each holder");
    assert!(f.engines[0].hits().all(|h| h.source.alert() == Some(alert)));
}

#[test]
fn row_form_queries_are_answered_at_their_stride_and_refused_when_too_large() {
    use vigil_matcher::encrypted::{ProberKey, RowAnswer};
    use vigil_protocol::{decode, DisclosureRequest, Handle, IdentifyRequest};
    let mut f = fed_with(3, AlertForm::Encrypted);
    let pop = Population::new(12, "vigil-synth-128", 40);
    let prober = f.engines[0].org();
    let (rec, _) = f.engines[1].enrol(T0, enrolment(pop.sample(6, 1))).unwrap();
    for p in 10..30 {
        f.engines[1].enrol(T0, enrolment(pop.sample(p, 1))).unwrap();
    }
    // The prober picked a 4-chunk split (stride 32 at d = 128).
    let key = ProberKey::generate();
    let probe = key.encrypt_row_split(&pop.sample(6, 0).vector, 4).unwrap().to_bytes();
    let query = Handle([7; 16]);
    let ask = |probe: Vec<u8>| {
        let r = IdentifyRequest {
            query,
            purpose: "missing person".into(),
            legal_basis: "GDPR 6(1)(d)".into(),
            extractor: "vigil-synth-128".into(),
            probe,
        };
        encode(Tag::Request, &Request::Identify(r), FRAME).unwrap()
    };
    let job = match f.engines[1].on_identify(T0 + 1, prober, &ask(probe.clone()), [3; 32]) {
        IdentifyStart::Run(job, _) => job,
        IdentifyStart::Answer(r, actions) => panic!("a row-form query must be answered: {r:?} {actions:?}"),
        IdentifyStart::Fetch(..) => panic!("not a fetch"),
    };
    assert_eq!(job.stride(), 32);
    let Response::Answer(a) = decode(Tag::Response, &job.run(FRAME).unwrap(), FRAME).unwrap() else {
        panic!("an answer")
    };
    assert_eq!(a.answer[3], Tag::RowAnswer as u8, "answered in row form");
    let answer = RowAnswer::from_bytes(&a.answer, FRAME).unwrap();
    assert_eq!((answer.stride, answer.count), (32, 64), "21 records at 64 per group");
    let hits: Vec<usize> =
        key.decrypt_row(&answer).unwrap().iter().enumerate().filter(|(_, m)| **m).map(|(p, _)| p).collect();
    assert_eq!(hits.len(), 1, "one record matches");
    // Its handle resolves (for disclosure) through the row order.
    f.engines[1].identify_answered(&job);
    let hit = crate::query_handle(&query, &f.engines[1].org(), hits[0]);
    let d = DisclosureRequest { id: Handle([8; 16]), hit, query: Some(query), reason: "confirm".into() };
    let frame = encode(Tag::Request, &Request::Disclose(d), FRAME).unwrap();
    let (r, actions) = f.engines[1].on_request(T0 + 2, prober, &frame, FRAME);
    assert_eq!(r, Response::Ack);
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Audit(AuditEvent::DisclosureReceived { record, .. }) if *record == rec)));

    // A row answer that would pass the answer limit is refused before the
    // budget is spent, naming the way out.
    f.engines[1].queries.max_answer_bytes = 4_000; // one group is 6.4 KB
    match f.engines[1].on_identify(T0 + 3, prober, &ask(probe), [4; 32]) {
        IdentifyStart::Answer(Response::Refused(Refusal::Unsupported), actions) => assert!(actions.iter().any(
            |a| matches!(a, Action::Audit(AuditEvent::QueryRefused { reason, .. }) if reason.contains("send the column form"))
        )),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // A malformed row probe is refused with the decoder's reason.
    let mut bad = key.encrypt_row_split(&pop.sample(6, 0).vector, 4).unwrap().to_bytes();
    bad.truncate(bad.len() - 7);
    assert!(matches!(
        f.engines[1].on_identify(T0 + 4, prober, &ask(bad), [5; 32]),
        IdentifyStart::Answer(Response::Refused(Refusal::Unsupported), _)
    ));
}

#[test]
fn query_hits_are_kept_for_a_while_then_purged_unless_a_disclosure_is_open() {
    use vigil_protocol::Handle;
    let mut f = fed_with(3, AlertForm::Encrypted);
    let holder = f.engines[1].org();
    let keep = f.engines[0].queries.keep_hits.as_millis() as u64;
    let (q1, q2) = (Handle([1; 16]), Handle([2; 16]));
    f.engines[0].query_result(T0, q1, holder, &[(Handle([11; 16]), None), (Handle([12; 16]), None)], 100, None);
    f.engines[0].query_result(T0, q2, holder, &[(Handle([21; 16]), None)], 100, None);
    // A disclosure of q2's hit is waiting for the holder's decision.
    f.engines[0].request_disclosure(T0 + 1, Handle([21; 16]), "family asks".into()).unwrap();
    assert!(f.engines[0].purge_old_query_hits(T0 + keep - 1).is_empty(), "kept until keep_hits");
    let actions = f.engines[0].purge_old_query_hits(T0 + keep);
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Audit(AuditEvent::QueryHitsPurged { query, hits: 2 }) if *query == q1)));
    let left: Vec<Handle> = f.engines[0].hits().map(|h| h.handle).collect();
    assert_eq!(left, vec![Handle([21; 16])], "the hit with an open disclosure stays");
    assert_eq!(actions.iter().filter(|a| matches!(a, Action::Store(crate::model::StoreOp::DeleteHit(_)))).count(), 2);
}

#[test]
fn standing_matching_pages_are_counted_not_audited_one_by_one() {
    let mut f = fed_with(4, AlertForm::Encrypted);
    f.engines[1].policy.answers_per_hour = 100;
    let pop = Population::new(12, "vigil-synth-128", 40);
    let issuer = f.engines[0].org();
    f.engines[1].enrol(T0, enrolment(pop.sample(1, 1))).unwrap();
    let audits = |actions: &[Action]| actions.iter().filter(|a| matches!(a, Action::Audit(_))).count();
    // Three standing alerts, answered whole once (audited page by page).
    for a in 0..3 {
        let (_, actions) = f.engines[0]
            .publish_alert(T0 + a, &pop.sample(30 + a as usize, 0), Category::Missing, "K".into(), T0 + DAY, GOSSIP_E)
            .unwrap();
        let (_, actions) = f.engines[1].on_gossip(T0 + a + 1, issuer, &published(&actions), GOSSIP_E);
        for job in jobs(&actions) {
            let done = f.engines[1].alert_answered(T0 + 2, &job, job.run());
            assert!(done.iter().any(|a| matches!(a, Action::Audit(AuditEvent::AlertAnswerSent { .. }))));
        }
    }
    // Twenty records enrolled one by one: three one-record pages each, sent
    // and acknowledged. Audited: the enrolments only.
    let mut entries = 0;
    for p in 0..20 {
        let (_, actions) = f.engines[1].enrol(T0 + 10, enrolment(pop.sample(2 + p, 1))).unwrap();
        entries += audits(&actions);
        let standing = jobs(&actions);
        assert_eq!(standing.len(), 3);
        for job in standing {
            let done = f.engines[1].alert_answered(T0 + 11, &job, job.run());
            entries += audits(&done);
            for (_, _, key) in sends(&done) {
                entries += audits(&f.engines[1].on_response(T0 + 12, key, &Response::Ack));
            }
        }
    }
    assert_eq!(entries, 20, "one entry per enrolment (it was seven: the enrolment, three sent, three delivered)");
    // The counts come as one entry once the interval has passed.
    assert!(f.engines[1].aggregates_due(T0 + 20).is_empty(), "not before the interval");
    let due = f.engines[1].aggregates_due(T0 + 11 + 3_600_000);
    let [Action::Audit(AuditEvent::AlertAnswersCounted { issuers, .. })] = due.as_slice() else { panic!("{due:?}") };
    assert_eq!(issuers.len(), 1);
    assert_eq!(
        (issuers[0].issuer, issuers[0].pages_sent, issuers[0].records_sent, issuers[0].pages_delivered),
        (issuer, 60, 60, 60)
    );
}

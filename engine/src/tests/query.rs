//! The prober's query state machine on a hand-driven clock: forms chosen
//! from what answers showed, deadlines, outcomes per member.

use super::*;
use crate::query::form_for;
use vigil_matcher::encrypted::{AnswerForm, ProberKey};
use vigil_protocol::IdentifyRequest;

const TIMEOUT: u64 = 30_000;

/// The request frame of `start` in `form`, as the runtime encrypts it.
fn frame(start_key: &ProberKey, request: &IdentifyRequest, template: &Template, form: AnswerForm) -> Vec<u8> {
    let probe = match form.row_chunks() {
        None => start_key.encrypt(&template.vector).unwrap().to_bytes(),
        Some(n) => start_key.encrypt_row_split(&template.vector, n).unwrap().to_bytes(),
    };
    let req = IdentifyRequest { probe, ..request.clone() };
    encode(Tag::Request, &Request::Identify(req), 16 << 20).unwrap()
}

/// `holder` answers `frame` from `prober` (the homomorphic work, run here).
fn answer(holder: &mut Engine, now: u64, prober: OrgId, frame: &[u8]) -> Vec<u8> {
    match holder.on_identify(now, prober, frame, [1; 32]) {
        IdentifyStart::Run(job, _) => {
            holder.identify_answered(&job);
            job.run(64 << 20).unwrap()
        }
        other => panic!("expected an answer job, got {other:?}"),
    }
}

fn decrypt(prober: &mut Engine, now: u64, query: Handle, peer: OrgId, response: &[u8]) -> Vec<Action> {
    match prober.query_response(query, peer, response) {
        crate::QueryResponse::Decrypt(job) => {
            let result = job.run();
            prober.query_decrypted(now, &job, result)
        }
        crate::QueryResponse::Done(a) => panic!("expected an answer to decrypt, got {a:?}"),
    }
}

use vigil_protocol::Handle;

#[test]
fn a_query_times_out_on_the_clock_and_the_next_one_goes_in_the_cheapest_form() {
    let mut f = fed(4); // engines 0..=2 are members
    let pop = Population::new(21, "vigil-synth-128", 40);
    let (prober, near, far) = (f.engines[0].org(), f.engines[1].org(), f.engines[2].org());
    f.engines[1].enrol(T0, enrolment(pop.sample(6, 1))).unwrap();
    for p in 10..30 {
        f.engines[1].enrol(T0, enrolment(pop.sample(p, 1))).unwrap();
    }
    let probe = pop.sample(6, 0);
    let everyone = |_: &OrgId| true;
    let start = f.engines[0].start_query(T0, &probe, "family report".into(), "GDPR 6(1)(d)".into(), everyone).unwrap();
    let query = start.query;
    assert_eq!(start.forms, vec![AnswerForm::Column], "gallery sizes unknown: the column form for both");
    assert!(start.actions.iter().any(|a| matches!(a, Action::Audit(AuditEvent::ProberKeyCreated { .. }))));
    // Nothing is sent yet: the deadline does not run before the probes are encrypted.
    assert_eq!(f.engines[0].expire_queries(T0 + 10 * TIMEOUT).0, vec![]);
    let (send, actions) = f.engines[0].query_encrypted(query, &start.forms, everyone);
    assert_eq!(send, vec![(near, AnswerForm::Column), (far, AnswerForm::Column)]);
    assert!(actions.iter().any(|a| matches!(a, Action::Audit(AuditEvent::QuerySent { peers: 2, .. }))));

    let request = frame(&start.key, &start.request, &probe, AnswerForm::Column);
    let response = answer(&mut f.engines[1], T0 + 10, prober, &request);
    let actions = decrypt(&mut f.engines[0], T0 + 20, query, near, &response);
    assert!(actions.iter().any(|a| matches!(a, Action::Store(StoreOp::PutHit(_)))), "the hit is stored");
    assert!(f.engines[0].take_finished_query(query).is_none(), "the far member may still answer");
    // One millisecond before the deadline nothing expires; at it, the far member is timed out.
    assert_eq!(f.engines[0].expire_queries(T0 + TIMEOUT - 1).0, vec![]);
    let (late, actions) = f.engines[0].expire_queries(T0 + TIMEOUT);
    assert_eq!(late, vec![(query, far)]);
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Audit(AuditEvent::QueryUnanswered { peer, .. }) if *peer == far)));
    let report = f.engines[0].take_finished_query(query).expect("over");
    let at = |org: OrgId| report.peers.iter().find(|p| p.peer == org).unwrap().clone();
    assert_eq!((at(near).status, at(near).hits.len()), (OutcomeStatus::Answered, 1));
    let positions = at(near).positions;
    assert!(positions >= 21, "{positions} positions for 21 records");
    assert_eq!(at(far).status, OutcomeStatus::Timeout);
    assert!(f.engines[0].open_queries().next().is_none(), "forgotten once reported");
    // A late answer to a finished query changes nothing.
    assert!(
        matches!(f.engines[0].query_response(query, far, &response), crate::QueryResponse::Done(a) if a.is_empty())
    );

    // The next query: the near member's positions call for a row form,
    // the far one (never answered) still gets the column form.
    let cheap = form_for(Some(positions), 128);
    assert_ne!(cheap, AnswerForm::Column);
    let start = f.engines[0].start_query(T0 + TIMEOUT, &probe, "again".into(), "GDPR".into(), everyone).unwrap();
    let (send, _) = f.engines[0].query_encrypted(start.query, &start.forms, |o| *o == near);
    assert_eq!(send, vec![(near, cheap)], "only the connected member is asked, in its cheapest form");
    let response =
        answer(&mut f.engines[1], T0 + TIMEOUT + 10, prober, &frame(&start.key, &start.request, &probe, cheap));
    decrypt(&mut f.engines[0], T0 + TIMEOUT + 20, start.query, near, &response);
    let report = f.engines[0].take_finished_query(start.query).expect("every connected member answered");
    let at = |org: OrgId| report.peers.iter().find(|p| p.peer == org).unwrap().clone();
    assert_eq!(
        (at(near).status, at(near).hits.len(), at(near).form.clone()),
        (OutcomeStatus::Answered, 1, cheap.to_string())
    );
    assert_eq!((at(far).status, at(far).reason.as_deref()), (OutcomeStatus::Failed, Some("not connected")));
}

#[test]
fn a_refused_row_form_sends_the_next_query_in_column_form() {
    let mut f = fed(3);
    let pop = Population::new(22, "vigil-synth-128", 40);
    let (prober, near) = (f.engines[0].org(), f.engines[1].org());
    for p in 10..30 {
        f.engines[1].enrol(T0, enrolment(pop.sample(p, 1))).unwrap();
    }
    let probe = pop.sample(6, 0);
    let only = |o: &OrgId| *o == near;
    let start = f.engines[0].start_query(T0, &probe, "p".into(), "b".into(), only).unwrap();
    f.engines[0].query_encrypted(start.query, &start.forms, only);
    let response =
        answer(&mut f.engines[1], T0, prober, &frame(&start.key, &start.request, &probe, AnswerForm::Column));
    decrypt(&mut f.engines[0], T0, start.query, near, &response);
    f.engines[0].take_finished_query(start.query).unwrap();

    let start = f.engines[0].start_query(T0 + 1, &probe, "p".into(), "b".into(), only).unwrap();
    assert_ne!(start.forms, vec![AnswerForm::Column]);
    f.engines[0].query_encrypted(start.query, &start.forms, only);
    // Its gallery outgrew the form: the holder refuses it as unsupported.
    let refused = encode(Tag::Response, &Response::Refused(Refusal::Unsupported), 64).unwrap();
    match f.engines[0].query_response(start.query, near, &refused) {
        crate::QueryResponse::Done(a) => assert!(a.iter().any(
            |a| matches!(a, Action::Audit(AuditEvent::QueryUnanswered { reason, .. }) if reason.contains("Unsupported"))
        )),
        other => panic!("a refusal is recorded, not decrypted: {other:?}"),
    }
    let report = f.engines[0].take_finished_query(start.query).unwrap();
    assert_eq!(report.peers[0].status, OutcomeStatus::Refused);
    let start = f.engines[0].start_query(T0 + 2, &probe, "p".into(), "b".into(), only).unwrap();
    assert_eq!(start.forms, vec![AnswerForm::Column], "what was learned of its gallery is forgotten");
    // An undecodable response is a failure, named as such.
    f.engines[0].query_encrypted(start.query, &start.forms, only);
    assert!(matches!(f.engines[0].query_response(start.query, near, b"junk"), crate::QueryResponse::Done(_)));
    let report = f.engines[0].take_finished_query(start.query).unwrap();
    assert_eq!(report.peers[0].status, OutcomeStatus::Failed);
    assert!(report.peers[0].reason.as_deref().unwrap().starts_with("undecodable answer"));
}

#[test]
fn an_invalid_request_is_refused_before_any_state_is_kept() {
    let mut f = fed(3);
    let pop = Population::new(23, "vigil-synth-128", 4);
    let err = f.engines[0].start_query(T0, &pop.sample(1, 0), String::new(), "b".into(), |_| true).unwrap_err();
    assert!(matches!(err, EngineError::Query(_)), "{err}");
    assert!(f.engines[0].open_queries().next().is_none());
}

#[test]
fn hits_of_one_query_at_two_holders_keep_distinct_handles_and_each_resolves() {
    use vigil_protocol::DisclosureRequest;
    let mut f = fed(4);
    let pop = Population::new(24, "vigil-synth-128", 40);
    let (prober, a, b) = (f.engines[0].org(), f.engines[1].org(), f.engines[2].org());
    // Both holders: the same gallery layout, so the match sits at the same
    // answer position in both answers (the collision the old handles had).
    let mut records = Vec::new();
    for h in [1, 2] {
        let (rec, _) = f.engines[h].enrol(T0, enrolment(pop.sample(6, h as u64))).unwrap();
        for p in 10..20 {
            f.engines[h].enrol(T0, enrolment(pop.sample(p, h as u64))).unwrap();
        }
        records.push(rec);
    }
    let probe = pop.sample(6, 0);
    let everyone = |_: &OrgId| true;
    let start = f.engines[0].start_query(T0, &probe, "p".into(), "b".into(), everyone).unwrap();
    f.engines[0].query_encrypted(start.query, &start.forms, everyone);
    let request = frame(&start.key, &start.request, &probe, AnswerForm::Column);
    for (h, org) in [(1, a), (2, b)] {
        let response = answer(&mut f.engines[h], T0 + 1, prober, &request);
        decrypt(&mut f.engines[0], T0 + 2, start.query, org, &response);
    }
    let report = f.engines[0].take_finished_query(start.query).unwrap();
    let handles: Vec<Handle> = report.peers.iter().flat_map(|p| p.hits.clone()).collect();
    assert_eq!(handles.len(), 2, "{report:?}");
    assert_ne!(handles[0], handles[1]);
    assert_eq!(f.engines[0].hits().count(), 2, "both hits kept at the prober");
    // Each holder resolves its own hit, and not the other's.
    for (i, (h, org)) in [(1, a), (2, b)].into_iter().enumerate() {
        let mine = report.peers.iter().find(|p| p.peer == org).unwrap().hits[0];
        let other = report.peers.iter().find(|p| p.peer != org).unwrap().hits[0];
        for (hit, resolves) in [(mine, true), (other, false)] {
            let d = DisclosureRequest {
                id: Handle([i as u8 * 2 + u8::from(resolves); 16]),
                hit,
                query: Some(start.query),
                reason: "confirm".into(),
            };
            let frame = encode(Tag::Request, &Request::Disclose(d), FRAME).unwrap();
            let (_, actions) = f.engines[h].on_request(T0 + 3, prober, &frame, FRAME);
            let received = actions.iter().any(
                |x| matches!(x, Action::Audit(AuditEvent::DisclosureReceived { record, .. }) if *record == records[i]),
            );
            assert_eq!(received, resolves, "holder {h}, its own hit: {resolves}");
        }
    }
}

#[test]
fn a_deadline_during_a_decryption_waits_for_it_and_times_out_the_rest() {
    let mut f = fed(4);
    let pop = Population::new(25, "vigil-synth-128", 20);
    let (prober, near, far) = (f.engines[0].org(), f.engines[1].org(), f.engines[2].org());
    f.engines[1].enrol(T0, enrolment(pop.sample(6, 1))).unwrap();
    let probe = pop.sample(6, 0);
    let everyone = |_: &OrgId| true;
    let start = f.engines[0].start_query(T0, &probe, "p".into(), "b".into(), everyone).unwrap();
    f.engines[0].query_encrypted(start.query, &start.forms, everyone);
    let response =
        answer(&mut f.engines[1], T0 + 1, prober, &frame(&start.key, &start.request, &probe, AnswerForm::Column));
    let job = match f.engines[0].query_response(start.query, near, &response) {
        crate::QueryResponse::Decrypt(job) => job,
        other => panic!("{other:?}"),
    };
    // The deadline passes while the near member's answer is being decrypted.
    let (late, _) = f.engines[0].expire_queries(T0 + TIMEOUT);
    assert_eq!(late, vec![(start.query, far)]);
    assert!(f.engines[0].take_finished_query(start.query).is_none(), "the decryption under way is waited for");
    let result = job.run();
    f.engines[0].query_decrypted(T0 + TIMEOUT + 5, &job, result);
    let report = f.engines[0].take_finished_query(start.query).expect("over once decrypted");
    let at = |org: OrgId| report.peers.iter().find(|p| p.peer == org).unwrap().status;
    assert_eq!((at(near), at(far)), (OutcomeStatus::Answered, OutcomeStatus::Timeout));
}

#[test]
fn disclosure_requests_are_capped_per_query_and_handles_must_be_the_holders() {
    use crate::disclose::MAX_DISCLOSURES_PER_HIT_SOURCE;
    use vigil_protocol::{DisclosureRequest, Refusal, Response};
    let mut f = fed(3);
    let pop = Population::new(26, "vigil-synth-128", 40);
    let (prober, holder) = (f.engines[0].org(), f.engines[1].org());
    for p in 0..30 {
        f.engines[1].enrol(T0, enrolment(pop.sample(p, 1))).unwrap();
    }
    let probe = pop.sample(6, 0);
    let only_holder = |o: &OrgId| *o == holder;
    let start = f.engines[0].start_query(T0, &probe, "p".into(), "b".into(), only_holder).unwrap();
    f.engines[0].query_encrypted(start.query, &start.forms, only_holder);
    let request = frame(&start.key, &start.request, &probe, AnswerForm::Column);
    answer(&mut f.engines[1], T0 + 1, prober, &request);
    let ask = |f: &mut Fed, n: u8, hit: Handle| {
        let d = DisclosureRequest { id: Handle([n; 16]), hit, query: Some(start.query), reason: "confirm".into() };
        let frame = encode(Tag::Request, &Request::Disclose(d), FRAME).unwrap();
        let (response, _) = f.engines[1].on_request(T0 + 3, prober, &frame, FRAME);
        response
    };
    // A handle whose position bytes were changed (its digest names
    // position 3) does not resolve: the holder checks, it does not search.
    let mut moved = crate::query_handle(&start.query, &holder, 3);
    moved.0[0] = 4;
    assert_eq!(ask(&mut f, 200, moved), Response::Refused(Refusal::UnknownHit));
    // Every position of the answer resolves to a record (the holder cannot
    // tell which matched), so a prober walking positions is stopped at the cap.
    for pos in 0..MAX_DISCLOSURES_PER_HIT_SOURCE {
        let hit = crate::query_handle(&start.query, &holder, pos);
        assert_eq!(ask(&mut f, pos as u8, hit), Response::Ack, "position {pos}");
    }
    let next = crate::query_handle(&start.query, &holder, MAX_DISCLOSURES_PER_HIT_SOURCE);
    assert_eq!(ask(&mut f, 100, next), Response::Refused(Refusal::RateLimited));
    // The holder's operator is told these rest on the requester's decryption.
    assert!(f.engines[1].disclosures().all(|d| !d.hit_seen_here()));
}

#[test]
fn a_query_is_bound_only_to_a_case_of_this_node() {
    let mut f = fed(3);
    let pop = Population::new(21, "vigil-synth-128", 10);
    let (mine, actions) =
        f.engines[0].publish_alert(T0, &pop.sample(2, 0), Category::Found, "F-1".into(), T0 + DAY, 4 << 20).unwrap();
    let bytes = published(&actions);
    let query = Handle([9; 16]);
    let bound = f.engines[0].case_query(query, mine).unwrap();
    assert!(
        matches!(bound, Action::Audit(AuditEvent::QueryForCase { query: q, alert }) if q == query && alert == mine)
    );
    // The same alert at another member is not that member's case.
    let issuer = f.engines[0].org();
    let (v, _) = f.engines[1].on_gossip(T0 + 5, issuer, &bytes, 4 << 20);
    assert_eq!(v, Verdict::Accept);
    assert!(matches!(f.engines[1].case_query(query, mine), Err(EngineError::NotOurs(a)) if a == mine));
    let unknown = AlertId([7; 32]);
    assert!(matches!(f.engines[0].own_case(unknown), Err(EngineError::UnknownAlert(_))));
}

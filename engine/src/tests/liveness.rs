//! Liveness rules between engines: a format 2 policy spreads by catch-up
//! like any other, and then every enrolment, alert and query is held to
//! it: a missing attestation where required, a forged, stale or attack one
//! is refused (and the refusal is an audit entry); a good one is kept with
//! the record or alert and audited.

use super::*;
use vigil_crypto::{capture_public_key, sign_pad, sign_policy, PadError};
use vigil_protocol::pad::{CaptureKey, Liveness, PadBody, PadDecision, PadUse};
use vigil_protocol::{Digest, PolicyBody, SignedPolicy};

fn policy_with(rules: Liveness, signers: &[&Identity]) -> SignedPolicy {
    let body = PolicyBody {
        federation: "t".into(),
        issued_at_ms: T0,
        policy: vigil_matcher::Policy { version: 1, extractors: vigil_matcher::builtin().extractors.clone() },
        liveness: rules,
    };
    let mut p = SignedPolicy { body, signatures: vec![] };
    signers.iter().for_each(|s| sign_policy(&mut p, s).unwrap());
    p
}

fn claim(cam: &Identity, decision: PadDecision, at: u64, sample: Digest) -> PadClaim {
    let body =
        PadBody { key: "cam".into(), sdk: "pad-sdk 4.2".into(), decision, score: None, captured_at_ms: at, sample };
    PadClaim { attestation: sign_pad(cam, body).unwrap(), sample }
}

fn refusal(e: EngineError) -> (PadUse, PadError) {
    assert!(matches!(refusal_event(&e), Some(AuditEvent::PadRefused { .. })), "{e:?} is audited");
    match e {
        EngineError::Pad { use_, source } => (use_, source),
        other => panic!("not a PAD refusal: {other:?}"),
    }
}

#[test]
fn liveness_rules_spread_and_hold_every_capture_to_them() {
    let mut f = fed(3);
    let cam = Identity::generate();
    let key = CaptureKey {
        id: "cam".into(),
        sdk: "pad-sdk".into(),
        key: capture_public_key(&cam),
        status: Default::default(),
    };
    let rules = Liveness { capture_keys: vec![key], require: vec![PadUse::Enrolment, PadUse::Alert], max_age_s: 600 };
    let p = policy_with(rules.clone(), &[&f.stewards[0], &f.stewards[1]]);
    f.engines[0].apply_policy(p).unwrap();
    // Format 2 crosses the wire (encoded, decoded, verified) by catch-up.
    let (a, b) = (f.engines[0].org(), f.engines[1].org());
    let Action::Send { key, request, .. } = f.engines[1].policy_offer(a) else { panic!() };
    let frame = encode(Tag::Request, &request, FRAME).unwrap();
    let (response, _) = f.engines[0].on_request(T0, b, &frame, FRAME);
    f.engines[1].on_response(T0, key, &response);
    assert_eq!(f.engines[1].liveness(), &rules);

    let pop = Population::new(1, "vigil-synth-128", 20);
    let sample = Digest([7; 32]);
    let holder = &mut f.engines[1];
    let (use_, e) = refusal(holder.enrol(T0, enrolment(pop.sample(3, 1))).unwrap_err());
    assert_eq!((use_, e), (PadUse::Enrolment, PadError::Missing(PadUse::Enrolment)));
    let mut forged = claim(&Identity::generate(), PadDecision::BonaFide, T0, sample);
    forged.attestation.body.key = "cam".into();
    let e = holder.enrol(T0, Enrolment { pad: Some(forged), ..enrolment(pop.sample(3, 1)) }).unwrap_err();
    assert_eq!(refusal(e).1, PadError::Forged("cam".into()));
    let stale = claim(&cam, PadDecision::BonaFide, T0 - 601_000, sample);
    let e = holder.enrol(T0, Enrolment { pad: Some(stale), ..enrolment(pop.sample(3, 1)) }).unwrap_err();
    assert_eq!(refusal(e).1, PadError::Stale { age_s: 601, max_s: 600 });
    let attack = claim(&cam, PadDecision::Attack, T0, sample);
    let e = holder.enrol(T0, Enrolment { pad: Some(attack), ..enrolment(pop.sample(3, 1)) }).unwrap_err();
    assert_eq!(refusal(e).1, PadError::Attack("pad-sdk 4.2".into()));
    let mut other = claim(&cam, PadDecision::BonaFide, T0, sample);
    other.sample = Digest([8; 32]);
    let e = holder.enrol(T0, Enrolment { pad: Some(other), ..enrolment(pop.sample(3, 1)) }).unwrap_err();
    assert_eq!(refusal(e).1, PadError::OtherSample);

    let good = claim(&cam, PadDecision::BonaFide, T0 - 1000, sample);
    let (id, actions) = holder.enrol(T0, Enrolment { pad: Some(good.clone()), ..enrolment(pop.sample(3, 1)) }).unwrap();
    let stored = actions.iter().find_map(|a| match a {
        Action::Store(StoreOp::PutRecord(r)) => Some(r.pad.clone()),
        _ => None,
    });
    assert_eq!(stored, Some(Some(good.attestation.clone())), "kept with the record");
    let audited = actions.iter().any(|a| {
        matches!(a, Action::Audit(AuditEvent::PadAccepted { usage, subject, key, .. })
            if usage == "enrolment" && *subject == format!("record {id}") && key == "cam")
    });
    assert!(audited, "{actions:?}");

    // Alerts are held to it too, at the node that publishes them.
    let issuer = &mut f.engines[0];
    let probe = pop.sample(3, 0);
    let e = issuer.publish_alert(T0, &probe, Category::Missing, "K".into(), T0 + DAY, GOSSIP).unwrap_err();
    assert_eq!(refusal(e), (PadUse::Alert, PadError::Missing(PadUse::Alert)));
    let capture = Capture { template: &probe, pad: Some(&good) };
    let (alert, actions) = issuer.publish_alert(T0, capture, Category::Missing, "K".into(), T0 + DAY, GOSSIP).unwrap();
    assert_eq!(issuer.alerts().find(|a| a.id == alert).unwrap().pad.as_ref(), Some(&good.attestation));
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Audit(AuditEvent::PadAccepted { usage, .. }) if usage == "alert")));
    // The attestation stays at the issuer: the alert that travels has none.
    let bytes = published(&actions);
    let (v, _) = f.engines[1].on_gossip(T0 + 5, a, &bytes, GOSSIP);
    assert_eq!(v, Verdict::Accept);
    assert_eq!(f.engines[1].alerts().find(|x| x.id == alert).unwrap().pad, None);

    // Queries are not required here: none is fine, one is checked and kept.
    let start = f.engines[0].start_query(T0, &probe, "p".into(), "b".into(), |_| true);
    assert!(start.is_ok());
    let capture = Capture { template: &probe, pad: Some(&good) };
    let start = f.engines[0].start_query(T0, capture, "p".into(), "b".into(), |_| true).unwrap();
    assert!(start
        .actions
        .iter()
        .any(|a| matches!(a, Action::Audit(AuditEvent::PadAccepted { usage, .. }) if usage == "query")));
}

#[test]
fn without_rules_an_attestation_has_no_key_to_verify_with() {
    let mut f = fed(2);
    let pop = Population::new(1, "vigil-synth-128", 20);
    let cam = Identity::generate();
    let pad = claim(&cam, PadDecision::BonaFide, T0, Digest([1; 32]));
    let e = f.engines[0].enrol(T0, Enrolment { pad: Some(pad), ..enrolment(pop.sample(1, 0)) }).unwrap_err();
    assert_eq!(refusal(e).1, PadError::UnknownKey("cam".into()));
    assert!(f.engines[0].enrol(T0, enrolment(pop.sample(1, 0))).is_ok(), "none required under the built-in policy");
}

//! The biometric policy between engines: applied only with the steward
//! threshold, spread by catch-up, forged copies strike the sender, refusals
//! that depend on the receiver's own state do not; a retired extractor's
//! records stop matching and are listed stale.

use super::*;
use vigil_crypto::sign_policy;
use vigil_matcher::{Policy, Status};
use vigil_protocol::{PolicyBody, PolicyState, SignedPolicy};

fn policy(version: u64, threshold: f32, status: Status, signers: &[&Identity]) -> SignedPolicy {
    let mut ex = vigil_matcher::builtin().extractors[0].clone();
    ex.thresholds[0].cosine = threshold;
    ex.status = status;
    let body = PolicyBody {
        federation: "t".into(),
        issued_at_ms: T0,
        policy: Policy { version, extractors: vec![ex] },
        liveness: Default::default(),
    };
    let mut p = SignedPolicy { body, signatures: vec![] };
    signers.iter().for_each(|s| sign_policy(&mut p, s).unwrap());
    p
}

/// Engine `b` asks engine `a` for its policy and takes the answer.
fn catch_up(f: &mut Fed, a: usize, b: usize) -> Vec<Action> {
    let (peer_a, peer_b) = (f.engines[a].org(), f.engines[b].org());
    let Action::Send { key, request, .. } = f.engines[b].policy_offer(peer_a) else { panic!() };
    let frame = encode(Tag::Request, &request, FRAME).unwrap();
    let (response, _) = f.engines[a].on_request(T0, peer_b, &frame, FRAME);
    f.engines[b].on_response(T0, key, &response)
}

#[test]
fn a_policy_needs_the_stewards_and_spreads_by_catch_up() {
    let mut f = fed(3);
    let (s0, s1) = (&f.stewards[0], &f.stewards[1]);
    let weak = policy(1, 0.45, Status::Active, &[s0]);
    assert!(matches!(f.engines[0].apply_policy(weak), Err(EngineError::Roster(_))));
    let good = policy(1, 0.45, Status::Active, &[s0, s1]);
    f.engines[0].apply_policy(good.clone()).unwrap();
    assert_eq!(f.engines[0].biometric().version, 1);
    let actions = catch_up(&mut f, 0, 1);
    assert!(actions.iter().any(|a| matches!(a, Action::Store(StoreOp::PutPolicy(_)))), "{actions:?}");
    assert!(actions.iter().any(|a| matches!(a, Action::FederationChanged)));
    assert_eq!(f.engines[1].biometric().extractors[0].threshold(), 0.45);
    // Nothing newer to give: no policy in the answer, nothing applied.
    assert!(catch_up(&mut f, 1, 0).is_empty());
    // The older side asks back when it hears a newer version.
    let newer = f.engines[1].org();
    let frame = encode(Tag::Request, &Request::PolicySync(PolicyState { version: 1, policy: None }), FRAME).unwrap();
    let (r, actions) = f.engines[2].on_request(T0, newer, &frame, FRAME);
    assert_eq!(r, Response::Policy(PolicyState { version: 0, policy: None }));
    assert!(matches!(&actions[..], [Action::Send { request: Request::PolicySync(_), .. }]), "{actions:?}");
}

#[test]
fn forged_policies_strike_the_sender_and_state_dependent_refusals_do_not() {
    let mut f = fed(3);
    let stewards = std::mem::take(&mut f.stewards);
    let (s0, s1) = (&stewards[0], &stewards[1]);
    let sender = f.engines[0].org();
    f.engines[1].apply_policy(policy(1, 0.45, Status::Active, &[s0, s1])).unwrap();
    let offer = |f: &mut Fed, p: SignedPolicy| {
        let Action::Send { key, .. } = f.engines[1].policy_offer(sender) else { panic!() };
        let answer = Response::Policy(PolicyState { version: p.version(), policy: Some(p) });
        f.engines[1].on_response(T0, key, &answer)
    };
    // Signed by one steward and an outsider: the sender could tell.
    let outsider = Identity::generate();
    let actions = offer(&mut f, policy(2, 0.5, Status::Active, &[s0, &outsider]));
    assert!(actions.iter().any(|a| matches!(a, Action::Audit(AuditEvent::PolicyRefused { .. }))));
    assert_eq!(f.engines[1].strikes(&sender), 1);
    // Properly signed but reshaping the extractor: refused, not struck.
    let mut reshaped = policy(2, 0.5, Status::Active, &[]);
    reshaped.body.policy.extractors[0].protected_bits = 256;
    sign_policy(&mut reshaped, s0).unwrap();
    sign_policy(&mut reshaped, s1).unwrap();
    let actions = offer(&mut f, reshaped);
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Audit(AuditEvent::PolicyRefused { reason }) if reason.contains("new id"))));
    assert_eq!(f.engines[1].strikes(&sender), 1);
    assert_eq!(f.engines[1].biometric().version, 1);
}

#[test]
fn a_retired_extractor_stops_matching_and_its_records_are_stale() {
    let mut f = fed(3);
    let pop = Population::new(3, "vigil-synth-128", 10);
    let issuer = f.engines[0].org();
    f.engines[1].enrol(T0, enrolment(pop.sample(2, 1))).unwrap();
    assert!(f.engines[1].stale_records().is_empty());
    let (s0, s1) = (&f.stewards[0], &f.stewards[1]);
    let retired = policy(1, 0.5, Status::Retired, &[s0, s1]);
    f.engines[1].apply_policy(retired.clone()).unwrap();
    let stale = f.engines[1].stale_records();
    assert_eq!(stale.len(), 1);
    assert!(stale[0].reason.contains("retired"), "{}", stale[0].reason);
    // An alert of the retired extractor (from a node that has not heard yet) does not match.
    let (_, actions) =
        f.engines[0].publish_alert(T0, &pop.sample(2, 0), Category::Missing, "K".into(), T0 + DAY, GOSSIP).unwrap();
    let (_, actions) = f.engines[1].on_gossip(T0 + 1, issuer, &published(&actions), GOSSIP);
    assert!(sent_hits(&actions).is_empty(), "a retired extractor matched");
    // Nor can it be enrolled or alerted with.
    let err = f.engines[1].enrol(T0, enrolment(pop.sample(4, 1))).unwrap_err();
    assert!(err.to_string().contains("retired"), "{err}");
    f.engines[0].apply_policy(retired).unwrap();
    let err =
        f.engines[0].publish_alert(T0, &pop.sample(2, 0), Category::Missing, "K".into(), T0 + DAY, GOSSIP).unwrap_err();
    assert!(err.to_string().contains("retired"), "{err}");
}

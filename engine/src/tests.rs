//! Engine tests without I/O: two or three engines exchange the bytes their
//! actions carry, with a hand-driven clock.

use super::*;
use crate::audit::AuditEvent;
use crate::model::Meta;
use vigil_crypto::sign_roster;
use vigil_matcher::synth::Population;
use vigil_protocol::{
    encode, Member, OrgKind, Refusal, Request, Response, RosterBody, SignedHitNotice, SignedRoster, Tag,
};

const T0: u64 = 1_800_000_000_000;
const DAY: u64 = 24 * 3600 * 1000;
const GOSSIP: usize = 16 * 1024;
const FRAME: usize = 256 * 1024;

struct Fed {
    engines: Vec<Engine>,
    stewards: Vec<Identity>,
    ids: Vec<Arc<Identity>>,
}

fn roster(ids: &[Arc<Identity>], version: u64, stewards: &[Identity]) -> vigil_protocol::SignedRoster {
    let mut r = SignedRoster {
        body: RosterBody {
            federation: "t".into(),
            version,
            issued_at_ms: T0,
            members: ids
                .iter()
                .enumerate()
                .map(|(i, id)| Member {
                    org: id.org_id(),
                    name: format!("org{i}"),
                    kind: OrgKind::Ngo,
                    addrs: vec![],
                    roles: vec![Role::Alert, Role::Match, Role::Query],
                })
                .collect(),
        },
        signatures: vec![],
    };
    sign_roster(&mut r, &stewards[0]).unwrap();
    sign_roster(&mut r, &stewards[1]).unwrap();
    r
}

fn fed(n: usize) -> Fed {
    fed_with(n, vigil_config::AlertForm::Protected)
}

fn fed_with(n: usize, form: vigil_config::AlertForm) -> Fed {
    let stewards: Vec<Identity> = (0..3).map(|_| Identity::generate()).collect();
    let ids: Vec<Arc<Identity>> = (0..n).map(|_| Arc::new(Identity::generate())).collect();
    let anchor = TrustAnchor { stewards: stewards.iter().map(|s| s.org_id()).collect(), threshold: 2 };
    let r = roster(&ids[..n - 1], 1, &stewards); // the last engine is not a member
    let engines = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            Engine::new(EngineInit {
                identity: id.clone(),
                anchor: Some(anchor.clone()),
                policy: vigil_config::AlertPolicy { form, ..Default::default() },
                biometric_policy: None,
                queries: Default::default(),
                epoch_secret: Some([9; 32]),
                max_strikes: 3,
                meta: Meta { next_record: 1, roster: Some(r.clone()), ..Default::default() },
                records: vec![],
                alerts: vec![],
                hits: vec![],
                disclosures: vec![],
                answers: vec![],
                receipts: vec![],
                max_frame_bytes: FRAME,
                sync_bytes_per_hour: 4 << 30,
                refusals_audit_every_ms: 60_000,
                max_requests_per_minute: 600,
                max_refused_per_minute: 60,
                seed: Some(i as u64),
            })
            .unwrap()
        })
        .collect();
    Fed { engines, stewards, ids }
}

fn enrolment(t: Template) -> Enrolment {
    Enrolment {
        pad: None,
        template: t,
        category: Category::Found,
        case_ref: "C-1".into(),
        consent: "yes".into(),
        retain_until_ms: T0 + DAY,
        regime: None,
    }
}

fn published(actions: &[Action]) -> Vec<u8> {
    actions.iter().find_map(|a| if let Action::Publish(b) = a { Some(b.clone()) } else { None }).expect("publishes")
}

fn sent_hits(actions: &[Action]) -> Vec<(OrgId, SignedHitNotice)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { to, request: Request::Hit(notice), .. } => Some((*to, notice.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn alert_hit_and_idempotent_notice() {
    let mut f = fed(3);
    let pop = Population::new(1, "vigil-synth-128", 20);
    let issuer = f.engines[0].org();
    let holder = f.engines[1].org();
    let (rec, _) = f.engines[1].enrol(T0, enrolment(pop.sample(3, 1))).unwrap();
    f.engines[1].enrol(T0, enrolment(pop.sample(4, 1))).unwrap();
    let (id, actions) =
        f.engines[0].publish_alert(T0, &pop.sample(3, 0), Category::Missing, "K".into(), T0 + DAY, GOSSIP).unwrap();
    let bytes = published(&actions);
    let (v, actions) = f.engines[1].on_gossip(T0 + 5, issuer, &bytes, GOSSIP);
    assert_eq!(v, Verdict::Accept);
    let hits = sent_hits(&actions);
    assert_eq!(hits.len(), 1, "one of two records matches");
    assert_eq!(hits[0].0, issuer);
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Audit(AuditEvent::HitDetected { record, .. }) if *record == rec)));
    // Same bytes again: ignored, no second hit.
    let (v, actions) = f.engines[1].on_gossip(T0 + 6, issuer, &bytes, GOSSIP);
    assert!(matches!(v, Verdict::Ignore(_)));
    assert!(actions.is_empty());
    // Withdrawn, then replayed: it stays withdrawn and is not matched again.
    let actions = f.engines[0].withdraw_alert(T0 + 6, id, GOSSIP).unwrap();
    let wb = published(&actions);
    assert_eq!(f.engines[1].on_gossip(T0 + 6, issuer, &wb, GOSSIP).0, Verdict::Accept);
    let (v, actions) = f.engines[1].on_gossip(T0 + 7, issuer, &bytes, GOSSIP);
    assert!(matches!(v, Verdict::Ignore(_)));
    assert!(actions.is_empty());
    assert_eq!(f.engines[1].alerts().next().unwrap().status, crate::model::AlertStatus::Withdrawn);
    let (_, actions) = f.engines[1].enrol(T0 + 8, enrolment(pop.sample(3, 2))).unwrap();
    assert!(sent_hits(&actions).is_empty(), "a withdrawn alert still matched");
    // The issuer stores the notice once, however often it arrives.
    let frame = encode(Tag::Request, &Request::Hit(hits[0].1.clone()), FRAME).unwrap();
    for _ in 0..3 {
        let (r, _) = f.engines[0].on_request(T0 + 7, holder, &frame, FRAME);
        assert_eq!(r, Response::Ack);
    }
    assert_eq!(f.engines[0].hits().count(), 1);
    assert_eq!(f.engines[0].hits().next().unwrap().source, crate::model::HitSource::Alert(id));
    // A notice relayed by someone else than the holder is refused.
    let third = f.engines[2].org();
    let (r, _) = f.engines[0].on_request(T0 + 8, third, &frame, FRAME);
    assert_eq!(r, Response::Refused(Refusal::BadSignature));
    // The holder marks it delivered on Ack, and no longer resends it.
    let notices = |e: &Engine| e.outbox().into_iter().filter(|m| matches!(m.1, Request::Hit(_))).count();
    assert_eq!(notices(&f.engines[1]), 1);
    f.engines[1].on_hit_response(hits[0].1.body.handle, &Response::Ack);
    assert_eq!(notices(&f.engines[1]), 0);
}

#[test]
fn clock_window_fork_and_membership_checks() {
    let mut f = fed(3);
    let pop = Population::new(2, "vigil-synth-128", 5);
    let issuer = f.engines[0].org();
    let (_, a1) =
        f.engines[0].publish_alert(T0, &pop.sample(1, 0), Category::Missing, "K".into(), T0 + DAY, GOSSIP).unwrap();
    let b1 = published(&a1);
    // Future-dated (receiver's clock is two hours behind).
    let (v, _) = f.engines[1].on_gossip(T0 - 2 * 3600 * 1000, issuer, &b1, GOSSIP);
    assert!(matches!(v, Verdict::Reject(r) if r.starts_with("future-dated")));
    // Stale: received two days later.
    let (v, _) = f.engines[1].on_gossip(T0 + 2 * DAY, issuer, &b1, GOSSIP);
    assert!(matches!(v, Verdict::Reject(_)));
    // Accepted in time.
    assert_eq!(f.engines[1].on_gossip(T0 + 1, issuer, &b1, GOSSIP).0, Verdict::Accept);
    // Fork: the issuer signs another alert with the same seq.
    let mut forked = f.engines[0].alerts().next().unwrap().alert.clone();
    forked.body.created_at_ms += 1;
    forked.signature = vigil_crypto::sign_alert(&f.ids[0], &forked.body).unwrap();
    let fb = encode(Tag::Gossip, &vigil_protocol::AlertEnvelope::Publish(forked), GOSSIP).unwrap();
    // Not forwarded, and the issuer (whose key signed both) is struck.
    let (v, _) = f.engines[1].on_gossip(T0 + 2, issuer, &fb, GOSSIP);
    assert!(matches!(v, Verdict::Ignore(r) if r.starts_with("fork")));
    assert_eq!(f.engines[1].strikes(&issuer), 3, "future-dated, stale and forked");
    // A non-member cannot publish: its engine refuses, and members reject its alerts.
    let outsider = f.engines[2].org();
    assert!(matches!(
        f.engines[2].publish_alert(T0, &pop.sample(2, 0), Category::Missing, "K".into(), T0 + DAY, GOSSIP),
        Err(EngineError::NotAllowed(Role::Alert))
    ));
    // Rosters differ while a new one spreads: not the relay's fault.
    let mut fake = f.engines[0].alerts().next().unwrap().alert.clone();
    fake.body.issuer = outsider;
    fake.body.seq = 9;
    fake.signature = vigil_crypto::sign_alert(&f.ids[2], &fake.body).unwrap();
    let xb = encode(Tag::Gossip, &vigil_protocol::AlertEnvelope::Publish(fake), GOSSIP).unwrap();
    let (v, _) = f.engines[1].on_gossip(T0 + 3, issuer, &xb, GOSSIP);
    assert!(matches!(v, Verdict::Ignore(r) if r.contains("not a roster member")));
}

#[test]
fn strikes_block_after_the_limit_and_garbage_never_panics() {
    let mut f = fed(2);
    let peer = f.engines[1].org();
    let mut blocked = false;
    for i in 0..3 {
        let (v, actions) = f.engines[0].on_gossip(T0, peer, &[0x56, 0x47, 1, 1, 0xff, i], GOSSIP);
        assert!(matches!(v, Verdict::Reject(_)));
        blocked |= actions.iter().any(|a| matches!(a, Action::Block(p) if *p == peer));
        assert_eq!(blocked, i == 2, "blocked exactly at the third strike");
    }
    assert_eq!(f.engines[0].strikes(&peer), 3);
    let (r, _) = f.engines[0].on_request(T0, peer, b"", FRAME);
    assert_eq!(r, Response::Refused(Refusal::Malformed));
}

#[test]
fn roster_must_be_newer_and_signed() {
    let mut f = fed(2);
    let same = roster(&f.ids, 1, &f.stewards);
    assert!(f.engines[0].apply_roster(T0, same).is_err(), "same version is not newer");
    let mut one_sig = roster(&f.ids, 2, &f.stewards);
    one_sig.signatures.truncate(1);
    assert!(f.engines[0].apply_roster(T0, one_sig).is_err());
    let newer = roster(&f.ids, 2, &f.stewards);
    f.engines[0].apply_roster(T0, newer).unwrap();
    assert!(f.engines[0].is_member(&f.ids[1].org_id()), "the newer roster adds the second org");
}

#[test]
fn enrolment_validation_is_precise() {
    let mut f = fed(2);
    let pop = Population::new(3, "vigil-synth-128", 2);
    let mut e = enrolment(pop.sample(0, 0));
    e.case_ref = String::new();
    assert!(f.engines[0].enrol(T0, e).unwrap_err().to_string().contains("case reference"));
    let mut e = enrolment(pop.sample(0, 0));
    e.retain_until_ms = T0 - 1;
    assert!(matches!(f.engines[0].enrol(T0, e).unwrap_err(), EngineError::NotInFuture("retain-until date")));
    assert_eq!(f.engines[0].gallery_len(), 0, "nothing stored on error");
}

mod encrypted;
mod faults;
mod limits;
mod liveness;
mod policy;
mod query;
mod sync;

#[test]
fn waiting_messages_expire_after_the_outbox_ttl() {
    let mut f = fed(3);
    let pop = Population::new(12, "vigil-synth-128", 5);
    let issuer = f.engines[0].org();
    f.engines[1].enrol(T0, enrolment(pop.sample(2, 1))).unwrap();
    let (_, actions) =
        f.engines[0].publish_alert(T0, &pop.sample(2, 0), Category::Missing, "K".into(), T0 + DAY, GOSSIP).unwrap();
    let (_, actions) = f.engines[1].on_gossip(T0 + 1, issuer, &published(&actions), GOSSIP);
    assert_eq!(sent_hits(&actions).len(), 1);
    // The issuer never answers: the notice waits in the outbox ...
    assert_eq!(f.engines[1].outbox().len(), 1);
    // (listed without being built; built on demand as the notice sent first)
    let [(to, key, _)] = f.engines[1].outbox_entries()[..] else { panic!("one entry") };
    assert_eq!(to, issuer);
    let Some(Request::Hit(n)) = f.engines[1].outbox_request(&key) else { panic!("a hit notice") };
    assert_eq!(
        (n.body.handle, n.body.alert),
        (sent_hits(&actions)[0].1.body.handle, sent_hits(&actions)[0].1.body.alert)
    );
    assert!(f.engines[1].expire_outbox(T0 + DAY, 30 * DAY).is_empty());
    // ... until the TTL passes: given up, audited, no longer resent.
    let actions = f.engines[1].expire_outbox(T0 + 31 * DAY, 30 * DAY);
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Audit(AuditEvent::OutboxExpired { peer, .. }) if *peer == issuer)));
    assert!(actions.iter().any(|a| matches!(a, Action::Store(_))), "the decision is durable");
    assert!(f.engines[1].outbox().is_empty());
}

#[test]
fn records_past_their_retention_date_are_purged_and_scrubbed() {
    let mut f = fed(3);
    let pop = Population::new(13, "vigil-synth-128", 5);
    let issuer = f.engines[0].org();
    let mut e = enrolment(pop.sample(1, 1));
    e.retain_until_ms = T0 + 10;
    let (short, _) = f.engines[1].enrol(T0, e).unwrap();
    let (long, _) = f.engines[1].enrol(T0, enrolment(pop.sample(2, 1))).unwrap();
    let (_, actions) =
        f.engines[0].publish_alert(T0, &pop.sample(1, 0), Category::Missing, "K".into(), T0 + DAY, GOSSIP).unwrap();
    f.engines[1].on_gossip(T0 + 1, issuer, &published(&actions), GOSSIP);
    assert!(f.engines[1].hits().any(|h| h.record == Some(short)));
    assert!(f.engines[1].purge_expired(T0 + 5).is_empty(), "not yet due");
    let actions = f.engines[1].purge_expired(T0 + 11);
    assert!(actions.iter().any(|a| matches!(a, Action::Store(crate::model::StoreOp::DeleteRecord(r)) if *r == short)));
    assert!(actions.iter().any(|a| matches!(a, Action::Audit(AuditEvent::RecordErased { record, reason })
        if *record == short && reason.contains("retention"))));
    assert_eq!(f.engines[1].gallery_len(), 1);
    assert!(f.engines[1].hits().all(|h| h.record.is_none()), "the hit no longer names the record");
    assert!(f.engines[1].erase(long, "request").is_ok());
    assert!(f.engines[1].erase(long, "request").is_err());
}

//! Who pays for a refused alert: the sender only for what it could check
//! (decoding, signatures, clocks beyond any honest skew), the issuer for
//! forks, nobody for this node's own roster, policy, capacity or clock.

use super::sync::pump;
use super::*;
use vigil_config::AlertForm;
use vigil_protocol::{AlertEnvelope, SignedAlert};

const SKEW: u64 = 300_000;
const MAX_AGE: u64 = DAY;

fn gossip_of(alert: &SignedAlert) -> Vec<u8> {
    encode(Tag::Gossip, &AlertEnvelope::Publish(alert.clone()), GOSSIP).unwrap()
}

#[test]
fn the_active_alert_limit_counts_only_active_alerts_and_strikes_nobody() {
    let mut f = fed_with(4, AlertForm::Protected);
    for e in &mut f.engines[1..] {
        e.policy.max_active = 2;
    }
    f.engines[0].policy.max_active = 10;
    let pop = Population::new(31, "vigil-synth-128", 10);
    let (issuer, relay) = (f.engines[0].org(), f.engines[1].org());
    let publish = |f: &mut Fed, i: u64| {
        let t = pop.sample(i as usize, 0);
        let (id, a) = f.engines[0].publish_alert(T0 + i, &t, Category::Missing, "K".into(), T0 + DAY, GOSSIP).unwrap();
        (id, published(&a))
    };
    // Two alerts published and withdrawn: they no longer count.
    for i in 0..2 {
        let (id, bytes) = publish(&mut f, i);
        assert_eq!(f.engines[1].on_gossip(T0 + i, issuer, &bytes, GOSSIP).0, Verdict::Accept);
        let w = published(&f.engines[0].withdraw_alert(T0 + i, id, GOSSIP).unwrap());
        assert_eq!(f.engines[1].on_gossip(T0 + i, issuer, &w, GOSSIP).0, Verdict::Accept);
    }
    for i in 2..4 {
        let (_, bytes) = publish(&mut f, i);
        assert_eq!(f.engines[1].on_gossip(T0 + i, issuer, &bytes, GOSSIP).0, Verdict::Accept, "alert {i}");
    }
    // Two active ones: the next is over this node's capacity, which is
    // nobody's fault.
    let (_, fifth) = publish(&mut f, 4);
    let (v, actions) = f.engines[1].on_gossip(T0 + 4, issuer, &fifth, GOSSIP);
    assert_eq!(v, Verdict::Ignore("active alert limit reached".into()));
    assert!(actions.is_empty(), "{actions:?}");
    assert_eq!(f.engines[1].strikes(&issuer), 0);

    // A member catching up from the relay takes the log up to its own
    // limit, then stops without striking the relay (it used to be blocked
    // after three such pulls).
    for round in 0..4 {
        let actions = f.engines[2].sync_start(relay);
        pump(&mut f, 2, actions, T0 + 10 + round);
    }
    assert_eq!(f.engines[2].alerts().count(), 4, "two withdrawn and two active; the relay holds no more");
    assert_eq!(f.engines[2].strikes(&relay), 0);
}

#[test]
fn relays_pay_only_for_what_they_could_check_and_issuers_for_forks() {
    let mut f = fed_with(4, AlertForm::Protected);
    let pop = Population::new(32, "vigil-synth-128", 10);
    let (issuer, relay) = (f.engines[0].org(), f.engines[1].org());
    let t = pop.sample(1, 0);
    // Expiring between hops: fresh at the relay, expired here within the skew.
    let (_, a) = f.engines[0].publish_alert(T0, &t, Category::Missing, "K".into(), T0 + 1_000, GOSSIP).unwrap();
    let short = published(&a);
    assert_eq!(f.engines[1].on_gossip(T0 + 10, issuer, &short, GOSSIP).0, Verdict::Accept);
    let (v, actions) = f.engines[2].on_gossip(T0 + 1_500, relay, &short, GOSSIP);
    assert_eq!((v, actions), (Verdict::Ignore("expired alert".into()), vec![]));
    // Expired by more than any honest relay's clock could explain: its fault.
    assert!(matches!(f.engines[2].on_gossip(T0 + 1_001 + SKEW, relay, &short, GOSSIP).0, Verdict::Reject(_)));
    assert_eq!(f.engines[2].strikes(&relay), 1);

    // Stale: past the replay window by less than the skew, nobody's fault;
    // by more (a replay), the sender's.
    let (_, a) = f.engines[0].publish_alert(T0 + 1, &t, Category::Missing, "K".into(), T0 + 3 * DAY, GOSSIP).unwrap();
    let long = published(&a);
    let stale = f.engines[2].on_gossip(T0 + 1 + MAX_AGE + SKEW / 2, relay, &long, GOSSIP);
    assert!(matches!(&stale.0, Verdict::Ignore(r) if r.starts_with("stale")), "{stale:?}");
    assert!(stale.1.is_empty());
    assert!(matches!(f.engines[2].on_gossip(T0 + 2 + MAX_AGE + SKEW, relay, &long, GOSSIP).0, Verdict::Reject(_)));
    assert_eq!(f.engines[2].strikes(&relay), 2);

    // Future-dated by the issuer's clock: within twice the skew an honest
    // relay (whose clock may be ahead by the skew) passed it on.
    let ahead = f.engines[1].alerts().next().unwrap().alert.clone();
    let mut future = ahead.clone();
    future.body.created_at_ms = T0 + 100 + SKEW * 3 / 2;
    future.body.expires_at_ms = future.body.created_at_ms + DAY;
    future.signature = vigil_crypto::sign_alert(&f.ids[0], &future.body).unwrap();
    let v = f.engines[2].on_gossip(T0 + 100, relay, &gossip_of(&future), GOSSIP).0;
    assert!(matches!(v, Verdict::Ignore(r) if r.starts_with("future-dated")));
    assert_eq!(f.engines[2].strikes(&relay), 2);

    // An issuer this node's roster does not list (the relay's may): ignored.
    let mut outsider = ahead.clone();
    outsider.body.issuer = f.engines[3].org();
    outsider.signature = vigil_crypto::sign_alert(&f.ids[3], &outsider.body).unwrap();
    let (v, actions) = f.engines[2].on_gossip(T0 + 101, relay, &gossip_of(&outsider), GOSSIP);
    assert!(matches!(v, Verdict::Ignore(r) if r.contains("not a roster member")));
    assert!(actions.is_empty());

    // A signature that does not verify: the relay could have checked.
    let mut forged = ahead.clone();
    forged.signature = vigil_crypto::sign_alert(&f.ids[1], &forged.body).unwrap();
    assert!(matches!(f.engines[2].on_gossip(T0 + 102, relay, &gossip_of(&forged), GOSSIP).0, Verdict::Reject(_)));
    assert_eq!(f.engines[2].strikes(&relay), 3, "forged: the relay's strike");

    // A fork: the issuer signed two entries at seq 1. The relay passed on
    // what it held; the issuer is struck, not the relay.
    let mut h = fed_with(4, AlertForm::Protected);
    let (issuer, relay) = (h.engines[0].org(), h.engines[1].org());
    let (_, a) = h.engines[0].publish_alert(T0, &t, Category::Missing, "K".into(), T0 + DAY, GOSSIP).unwrap();
    assert_eq!(h.engines[2].on_gossip(T0, issuer, &published(&a), GOSSIP).0, Verdict::Accept);
    let mut fork = h.engines[0].alerts().next().unwrap().alert.clone();
    fork.body.created_at_ms += 1;
    fork.signature = vigil_crypto::sign_alert(&h.ids[0], &fork.body).unwrap();
    let (v, actions) = h.engines[2].on_gossip(T0 + 5, relay, &gossip_of(&fork), GOSSIP);
    assert!(matches!(v, Verdict::Ignore(r) if r.starts_with("fork")));
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Audit(AuditEvent::PeerPenalised { peer, .. }) if *peer == issuer.to_hex())));
    assert_eq!((h.engines[2].strikes(&relay), h.engines[2].strikes(&issuer)), (0, 1));
}

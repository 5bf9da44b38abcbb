//! Bounds on what one member can make another do: requests per minute
//! (refused before decoding), hit notices per holder and alert, and only
//! for active protected alerts, from members that match.

use super::*;
use crate::hits::sign_notice;
use vigil_config::AlertForm;
use vigil_protocol::{Handle, SyncState};

fn notice_frame(f: &Fed, holder: usize, alert: AlertId, handle: u8) -> Vec<u8> {
    notice_at(f, holder, alert, handle, T0)
}

fn notice_at(f: &Fed, holder: usize, alert: AlertId, handle: u8, at: u64) -> Vec<u8> {
    let n = sign_notice(&f.ids[holder], alert, Handle([handle; 16]), at);
    encode(Tag::Request, &Request::Hit(n), FRAME).unwrap()
}

#[test]
fn requests_over_the_rate_are_refused_before_decoding() {
    let mut f = fed(3);
    f.engines[1].max_requests_per_minute = 5;
    let peer = f.engines[0].org();
    let heads = SyncState { roster_version: 1, heads: vec![], roster: None };
    let frame = encode(Tag::Request, &Request::SyncHeads(heads), FRAME).unwrap();
    for i in 0..5 {
        let (r, _) = f.engines[1].on_request(T0 + i, peer, &frame, FRAME);
        assert!(matches!(r, Response::Heads(_)), "request {i}: {r:?}");
    }
    // Over the rate: refused, and not even decoded (garbage costs no strike
    // and no audit entry).
    assert_eq!(f.engines[1].on_request(T0 + 6, peer, &frame, FRAME), (Response::Refused(Refusal::RateLimited), vec![]));
    assert_eq!(
        f.engines[1].on_request(T0 + 7, peer, b"junk", FRAME),
        (Response::Refused(Refusal::RateLimited), vec![])
    );
    assert_eq!(f.engines[1].strikes(&peer), 0);
    // The identification protocol counts against the same rate.
    assert!(matches!(
        f.engines[1].on_identify(T0 + 8, peer, b"junk", [0; 32]),
        IdentifyStart::Answer(Response::Refused(Refusal::RateLimited), a) if a.is_empty()
    ));
    // Another peer has its own rate; the next minute starts afresh.
    let other = f.engines[2].org();
    assert!(matches!(f.engines[1].on_request(T0 + 9, other, &frame, FRAME).0, Response::Heads(_)));
    assert!(matches!(f.engines[1].on_request(T0 + 60_000, peer, &frame, FRAME).0, Response::Heads(_)));
}

#[test]
fn a_peer_whose_requests_keep_being_refused_is_refused_undecoded() {
    let mut f = fed(3);
    f.engines[1].max_refused_per_minute = 3;
    let peer = f.engines[0].org();
    // Notices for alerts engine 1 does not know: refused (no strike), each
    // a decode and an audit entry.
    for k in 0..3u8 {
        let n = sign_notice(&f.ids[0], AlertId([k; 32]), Handle([k; 16]), T0);
        let frame = encode(Tag::Request, &Request::Hit(n), FRAME).unwrap();
        let (r, actions) = f.engines[1].on_request(T0 + 1, peer, &frame, FRAME);
        assert_eq!(r, Response::Refused(Refusal::UnknownAlert));
        assert!(!actions.is_empty(), "audited");
    }
    // Now even a valid request is refused before decoding, without an audit entry.
    let heads = SyncState { roster_version: 1, heads: vec![], roster: None };
    let frame = encode(Tag::Request, &Request::SyncHeads(heads), FRAME).unwrap();
    assert_eq!(f.engines[1].on_request(T0 + 2, peer, &frame, FRAME), (Response::Refused(Refusal::RateLimited), vec![]));
    assert_eq!(f.engines[1].strikes(&peer), 0);
    assert!(matches!(f.engines[1].on_request(T0 + 60_001, peer, &frame, FRAME).0, Response::Heads(_)));
}

#[test]
fn hit_notices_are_bounded_and_only_for_active_protected_alerts() {
    let mut f = fed_with(4, AlertForm::Protected);
    let pop = Population::new(41, "vigil-synth-128", 4);
    let holder = f.engines[1].org();
    let (alert, _) =
        f.engines[0].publish_alert(T0, &pop.sample(1, 0), Category::Missing, "K".into(), T0 + DAY, GOSSIP).unwrap();
    for k in 0..MAX_NOTICES_PER_HOLDER_ALERT as u8 {
        let frame = notice_frame(&f, 1, alert, k);
        let (r, _) = f.engines[0].on_request(T0 + 1, holder, &frame, FRAME);
        assert_eq!(r, Response::Ack, "notice {k}");
    }
    let extra = notice_frame(&f, 1, alert, 200);
    // A non-member (or a member without the match role) sends none.
    let outsider = f.engines[3].org();
    let theirs = notice_frame(&f, 3, alert, 150);
    assert_eq!(f.engines[0].on_request(T0 + 2, outsider, &theirs, FRAME).0, Response::Refused(Refusal::NotAllowed));
    assert_eq!(f.engines[0].on_request(T0 + 2, holder, &extra, FRAME).0, Response::Refused(Refusal::RateLimited));
    assert_eq!(f.engines[0].hits().count(), MAX_NOTICES_PER_HOLDER_ALERT, "nothing stored beyond the bound");
    // A re-sent notice is still acknowledged (the outbox resends until Ack).
    let again = notice_frame(&f, 1, alert, 0);
    assert_eq!(f.engines[0].on_request(T0 + 3, holder, &again, FRAME).0, Response::Ack);
    // A closed alert takes the notices of hits detected while it was open
    // (delivered late), not of hits detected after.
    f.engines[0].withdraw_alert(T0 + 4, alert, GOSSIP).unwrap();
    let member2 = f.engines[2].org();
    let after = notice_at(&f, 2, alert, 101, T0 + 5);
    assert_eq!(f.engines[0].on_request(T0 + 6, member2, &after, FRAME).0, Response::Refused(Refusal::UnknownAlert));
    let before = notice_at(&f, 2, alert, 102, T0 + 3);
    assert_eq!(f.engines[0].on_request(T0 + 6, member2, &before, FRAME).0, Response::Ack);

    // An alert without a protected template takes no notices either.
    let mut g = fed_with(3, AlertForm::Encrypted);
    let (enc, _) =
        g.engines[0].publish_alert(T0, &pop.sample(2, 0), Category::Missing, "K".into(), T0 + DAY, 40 * 1024).unwrap();
    let holder = g.engines[1].org();
    let frame = notice_frame(&g, 1, enc, 1);
    assert_eq!(g.engines[0].on_request(T0 + 1, holder, &frame, FRAME).0, Response::Refused(Refusal::Unsupported));
    assert_eq!(g.engines[0].hits().count(), 0);
}

//! Catch-up between engines, without I/O: a member that missed alerts and
//! withdrawals pulls them in pages from another member (not the issuer),
//! runs its standing matches on them, and refuses forks and broken chains.

use super::*;
use vigil_config::AlertForm;

/// Delivers every `Send` among `actions` from `from` to engine `to` and the
/// response back, repeatedly, until no request is left (a tiny network);
/// returns every action seen, the delivered requests included.
pub(super) fn pump(f: &mut Fed, from: usize, mut actions: Vec<Action>, now: u64) -> Vec<Action> {
    let mut seen = Vec::new();
    let mut queue: Vec<(usize, Action)> = actions.drain(..).map(|a| (from, a)).collect();
    while let Some((src, a)) = queue.pop() {
        seen.push(a.clone());
        let Action::Send { to, request, key } = &a else { continue };
        let dst = f.engines.iter().position(|e| e.org() == *to).unwrap();
        let frame = encode(Tag::Request, request, FRAME).unwrap();
        let src_org = f.engines[src].org();
        let (response, more) = f.engines[dst].on_request(now, src_org, &frame, FRAME);
        queue.extend(more.into_iter().map(|a| (dst, a)));
        let back = f.engines[src].on_response(now, *key, &response);
        queue.extend(back.into_iter().map(|a| (src, a)));
    }
    seen
}

#[test]
fn a_member_that_missed_alerts_catches_up_from_another_member() {
    let mut f = fed_with(4, AlertForm::Protected);
    // A week of alerts, compressed into 300 ms here: no per-minute bound.
    for e in &mut f.engines {
        e.policy.max_per_issuer_per_minute = Some(usize::MAX);
    }
    let pop = Population::new(21, "vigil-synth-128", 30);
    let issuer = f.engines[0].org();
    let relay = f.engines[1].org();
    // Engine 2 holds a record of person 4; it is offline while engine 0
    // publishes 300 alerts (one of them for person 4) and withdraws one.
    let (rec, _) = f.engines[2].enrol(T0, enrolment(pop.sample(4, 1))).unwrap();
    let mut wanted = None;
    for i in 0..300u64 {
        let person = if i == 150 { 4 } else { 10 + (i as usize % 20) };
        let (id, actions) = f.engines[0]
            .publish_alert(T0 + i, &pop.sample(person, 0), Category::Missing, "K".into(), T0 + 7 * DAY, GOSSIP)
            .unwrap();
        assert_eq!(f.engines[1].on_gossip(T0 + i, issuer, &published(&actions), GOSSIP).0, Verdict::Accept);
        if i == 150 {
            wanted = Some(id);
        }
    }
    let first = f.engines[0].alerts().find(|a| a.alert.body.seq == 1).unwrap().id;
    let actions = f.engines[0].withdraw_alert(T0 + 400, first, GOSSIP).unwrap();
    assert_eq!(f.engines[1].on_gossip(T0 + 400, issuer, &published(&actions), GOSSIP).0, Verdict::Accept);
    // Two days later, engine 2 connects to the relay (the issuer is offline).
    let later = T0 + 2 * DAY - 1000;
    let start = f.engines[2].sync_start(relay);
    let seen = pump(&mut f, 2, start, later);
    assert_eq!(f.engines[2].alerts().count(), 300, "every alert caught up");
    assert_eq!(f.engines[2].log_heads(), f.engines[1].log_heads(), "the same log heads as the relay");
    assert!(f.engines[2].alerts().any(|a| a.id == first && a.status == crate::model::AlertStatus::Withdrawn));
    // Pages were bounded: several pulls.
    let pulls = seen.iter().filter(|a| matches!(a, Action::Audit(AuditEvent::SyncPulled { .. }))).count();
    assert!(pulls >= 2, "{pulls} pages");
    // Standing matching ran on what it missed: one hit, for person 4's alert.
    let hits = sent_hits(&seen);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].1.body.alert, wanted.unwrap());
    assert!(seen.iter().any(|a| matches!(a, Action::Audit(AuditEvent::HitDetected { record, .. }) if *record == rec)));
    // A second sync has nothing to pull.
    let again = f.engines[2].sync_start(relay);
    let seen = pump(&mut f, 2, again, later + 1);
    assert!(!seen.iter().any(|a| matches!(a, Action::Audit(AuditEvent::SyncPulled { .. }))));
}

#[test]
fn live_gaps_start_a_sync_and_forks_or_broken_chains_are_refused() {
    let mut f = fed_with(4, AlertForm::Protected);
    let pop = Population::new(22, "vigil-synth-128", 10);
    let issuer = f.engines[0].org();
    let mut bytes = Vec::new();
    for i in 0..3u64 {
        let (_, actions) = f.engines[0]
            .publish_alert(T0 + i, &pop.sample(i as usize, 0), Category::Missing, "K".into(), T0 + DAY, GOSSIP)
            .unwrap();
        bytes.push(published(&actions));
    }
    // Engine 1 sees only the third alert: a gap, ignored, and a sync with the sender.
    let (v, actions) = f.engines[1].on_gossip(T0 + 5, issuer, &bytes[2], GOSSIP);
    assert!(matches!(v, Verdict::Ignore(r) if r.contains("gap")));
    let seen = pump(&mut f, 1, actions, T0 + 6);
    assert_eq!(f.engines[1].alerts().count(), 3, "caught up through the gap");
    assert!(seen.iter().any(|a| matches!(a, Action::Audit(AuditEvent::SyncPulled { entries: 3, .. }))));

    // A broken chain: the issuer's key signs seq 4 that does not link to seq 3.
    let mut broken = f.engines[0].alerts().find(|a| a.alert.body.seq == 3).unwrap().alert.clone();
    broken.body.seq = 4;
    broken.body.prev = [7; 32];
    broken.signature = vigil_crypto::sign_alert(&f.ids[0], &broken.body).unwrap();
    let bb = encode(Tag::Gossip, &vigil_protocol::AlertEnvelope::Publish(broken.clone()), GOSSIP).unwrap();
    let (v, _) = f.engines[1].on_gossip(T0 + 7, issuer, &bb, GOSSIP);
    // The issuer's fault, not the sender's (both entries bear its signature).
    assert!(matches!(v, Verdict::Ignore(r) if r.starts_with("bad chain")));

    // A fork: the issuer's key signs another seq 2 (linking to seq 1).
    let mut forked = f.engines[0].alerts().find(|a| a.alert.body.seq == 2).unwrap().alert.clone();
    forked.body.created_at_ms += 1;
    forked.signature = vigil_crypto::sign_alert(&f.ids[0], &forked.body).unwrap();
    let fb = encode(Tag::Gossip, &vigil_protocol::AlertEnvelope::Publish(forked), GOSSIP).unwrap();
    let (v, _) = f.engines[1].on_gossip(T0 + 8, issuer, &fb, GOSSIP);
    assert!(matches!(v, Verdict::Ignore(r) if r.starts_with("fork")));
    assert_eq!(f.engines[1].strikes(&issuer), 2, "a strike for the broken chain, one for the fork");

    // A relay serving a page whose second entry does not link is refused and struck.
    let relay = f.engines[2].org();
    let heads = vec![vigil_protocol::LogHead { org: issuer, seq: 9, hash: [1; 32] }];
    let state = vigil_protocol::SyncState { roster_version: 1, heads, roster: None };
    let frame = encode(Tag::Request, &Request::SyncHeads(state), FRAME).unwrap();
    // Engine 3 (no alerts yet) learns from "the relay" that there is more to pull.
    let (_, actions) = f.engines[3].on_request(T0 + 9, relay, &frame, FRAME);
    let key = match &actions[..] {
        [Action::Send { key, request: Request::SyncPull(p), .. }] => {
            assert_eq!((p.org, p.from_seq), (issuer, 1));
            *key
        }
        other => panic!("expected one pull, got {other:?}"),
    };
    let first = f.engines[0].alerts().find(|a| a.alert.body.seq == 1).unwrap().alert.clone();
    let mut unlinked = f.engines[0].alerts().find(|a| a.alert.body.seq == 2).unwrap().alert.clone();
    unlinked.body.prev = [7; 32];
    unlinked.signature = vigil_crypto::sign_alert(&f.ids[0], &unlinked.body).unwrap();
    let page = Response::Entries(vec![
        vigil_protocol::AlertEnvelope::Publish(first),
        vigil_protocol::AlertEnvelope::Publish(unlinked),
    ]);
    let actions = f.engines[3].on_response(T0 + 10, key, &page);
    assert_eq!(f.engines[3].alerts().count(), 1, "only the first, valid entry is kept");
    assert!(actions.iter().any(
        |a| matches!(a, Action::Audit(AuditEvent::SyncRefused { reason, .. }) if reason.starts_with("bad chain"))
    ));
    assert_eq!(f.engines[3].strikes(&relay), 1);
    // The real seq 2, gossiped later, is still accepted as the next link.
    let real = f.engines[0].alerts().find(|a| a.alert.body.seq == 2).unwrap().alert.clone();
    let rb = encode(Tag::Gossip, &vigil_protocol::AlertEnvelope::Publish(real), GOSSIP).unwrap();
    assert_eq!(f.engines[3].on_gossip(T0 + 11, issuer, &rb, GOSSIP).0, Verdict::Accept);
}

#[test]
fn catch_up_served_to_one_peer_is_bounded_per_hour() {
    let mut f = fed_with(4, AlertForm::Protected);
    f.engines[1].sync_budget = 3000;
    let pop = Population::new(23, "vigil-synth-128", 10);
    let issuer = f.engines[0].org();
    for i in 0..40u64 {
        let (_, actions) = f.engines[0]
            .publish_alert(T0 + i, &pop.sample(i as usize % 10, 0), Category::Missing, "K".into(), T0 + DAY, GOSSIP)
            .unwrap();
        f.engines[1].on_gossip(T0 + i, issuer, &published(&actions), GOSSIP);
    }
    let puller = f.engines[2].org();
    let pull = |from_seq| {
        let p = vigil_protocol::SyncPull { org: issuer, from_seq, max: 256 };
        encode(Tag::Request, &Request::SyncPull(p), FRAME).unwrap()
    };
    // The first page is served whole (about 9.6 KB of alerts), the next is refused, audited once.
    let (r, _) = f.engines[1].on_request(T0 + 100, puller, &pull(1), FRAME);
    assert!(matches!(&r, Response::Entries(e) if e.len() == 40), "{r:?}");
    let (r, a) = f.engines[1].on_request(T0 + 101, puller, &pull(1), FRAME);
    assert_eq!(r, Response::Refused(Refusal::RateLimited));
    assert!(a
        .iter()
        .any(|a| matches!(a, Action::Audit(AuditEvent::MessageRejected { reason, .. }) if reason.contains("budget"))));
    let (r, a) = f.engines[1].on_request(T0 + 102, puller, &pull(1), FRAME);
    assert_eq!(r, Response::Refused(Refusal::RateLimited));
    assert!(a.is_empty(), "audited once per window");
    // Another peer has its own budget; an hour later the first one is served again.
    let other = f.engines[0].org();
    assert!(matches!(f.engines[1].on_request(T0 + 103, other, &pull(1), FRAME).0, Response::Entries(_)));
    assert!(matches!(f.engines[1].on_request(T0 + 3_700_000, puller, &pull(1), FRAME).0, Response::Entries(_)));
}

#[test]
fn an_issuer_flooding_valid_alerts_is_throttled_and_others_still_flow() {
    let mut f = fed_with(4, AlertForm::Protected);
    for e in &mut f.engines[1..] {
        e.policy.max_per_issuer_per_hour = 5;
        e.policy.max_per_issuer_per_minute = Some(5);
    }
    let pop = Population::new(24, "vigil-synth-128", 10);
    let (flooder, honest) = (f.engines[0].org(), f.engines[2].org());
    let mut bytes = Vec::new();
    for i in 0..8u64 {
        let (_, actions) = f.engines[0]
            .publish_alert(T0 + i * 1000, &pop.sample(i as usize, 0), Category::Missing, "K".into(), T0 + DAY, GOSSIP)
            .unwrap();
        bytes.push(published(&actions));
    }
    let mut audits = 0;
    for (i, b) in bytes.iter().enumerate() {
        let (v, actions) = f.engines[1].on_gossip(T0 + 9000, flooder, b, GOSSIP);
        if i < 5 {
            assert_eq!(v, Verdict::Accept, "alert {i} is within the bound");
        } else {
            // Over the bound: throttled, the later ones too (they follow a
            // gap, but an issuer over its bound starts no catch-up).
            assert!(matches!(&v, Verdict::Ignore(r) if r.contains("alert bound")), "alert {i}: {v:?}");
            assert!(!actions.iter().any(|a| matches!(a, Action::Block(_))), "no strike: the alerts are valid");
            let syncs = actions.iter().filter(|a| matches!(a, Action::Send { request: Request::SyncHeads(_), .. }));
            assert_eq!(syncs.count(), 0, "alert {i}: a flood must not start catch-ups");
        }
        audits += actions.iter().filter(|a| matches!(a, Action::Audit(AuditEvent::IssuerThrottled { .. }))).count();
    }
    assert_eq!(audits, 1, "audited once an hour, not per alert");
    // Another member's alert still flows.
    let (_, actions) =
        f.engines[2].publish_alert(T0, &pop.sample(9, 0), Category::Missing, "H".into(), T0 + DAY, GOSSIP).unwrap();
    assert_eq!(f.engines[1].on_gossip(T0 + 9001, honest, &published(&actions), GOSSIP).0, Verdict::Accept);
    // Catch-up applies the same bound, without blaming the relay.
    let start = f.engines[2].sync_start(flooder);
    let seen = pump(&mut f, 2, start, T0 + 9500);
    assert_eq!(f.engines[2].alerts().filter(|a| a.alert.body.issuer == flooder).count(), 5);
    assert!(seen.iter().any(|a| matches!(a, Action::Audit(AuditEvent::IssuerThrottled { .. }))));
    assert_eq!(f.engines[2].strikes(&flooder), 0);

    // A burst under the hourly bound meets the per-minute one, and the
    // audit entry says which bound it was.
    let mut g = fed_with(3, AlertForm::Protected);
    g.engines[1].policy.max_per_issuer_per_hour = 100;
    g.engines[1].policy.max_per_issuer_per_minute = Some(2);
    let burst = g.engines[0].org();
    let mut events = Vec::new();
    for i in 0..3u64 {
        let (_, actions) = g.engines[0]
            .publish_alert(T0 + i * 1000, &pop.sample(i as usize, 0), Category::Missing, "B".into(), T0 + DAY, GOSSIP)
            .unwrap();
        events.extend(g.engines[1].on_gossip(T0 + 5000, burst, &published(&actions), GOSSIP).1);
    }
    assert!(
        events.iter().any(|a| matches!(a, Action::Audit(AuditEvent::IssuerThrottledPerMinute { issuer, limit: 2 }) if *issuer == burst)),
        "{events:?}"
    );
    assert!(!events.iter().any(|a| matches!(a, Action::Audit(AuditEvent::IssuerThrottled { .. }))));

    // An issuer that keeps flooding is cut off: each hourly bound's worth
    // of throttled alerts is a strike, the third blocks it.
    let mut h = fed_with(3, AlertForm::Protected);
    h.engines[1].policy.max_per_issuer_per_hour = 2;
    h.engines[1].policy.max_per_issuer_per_minute = Some(100);
    let flooder = h.engines[0].org();
    let mut blocked = Vec::new();
    for i in 0..8u64 {
        let (_, actions) = h.engines[0]
            .publish_alert(T0 + i, &pop.sample(i as usize, 0), Category::Missing, "F".into(), T0 + DAY, GOSSIP)
            .unwrap();
        let bytes = published(&actions);
        let (_, out) = h.engines[1].on_gossip(T0 + 10, flooder, &bytes, GOSSIP);
        // The same alert again (another relay) is not counted twice.
        let (_, again) = h.engines[1].on_gossip(T0 + 10, flooder, &bytes, GOSSIP);
        blocked.extend(out.into_iter().chain(again).filter(|a| matches!(a, Action::Block(o) if *o == flooder)));
        let expected = (i.saturating_sub(1) / 2) as u32; // strikes at 2, 4, 6 throttled alerts
        assert_eq!(h.engines[1].strikes(&flooder), expected.min(3), "after alert {i}");
    }
    assert_eq!(blocked.len(), 1, "blocked once, after 6 alerts over a bound of 2");
}

#[test]
fn sync_answers_always_fit_in_a_frame() {
    let mut f = fed_with(4, AlertForm::Protected);
    let pop = Population::new(25, "vigil-synth-128", 10);
    // Three issuers' logs at engine 1, and a frame limit that fits few heads and no roster.
    for i in 0..3 {
        let issuer = f.engines[i].org();
        let (_, actions) =
            f.engines[i].publish_alert(T0, &pop.sample(i, 0), Category::Missing, "K".into(), T0 + DAY, GOSSIP).unwrap();
        if i != 1 {
            assert_eq!(f.engines[1].on_gossip(T0 + 1, issuer, &published(&actions), GOSSIP).0, Verdict::Accept);
        }
    }
    let limit = 600;
    f.engines[1].frame_limit = limit;
    let asker = f.engines[2].org();
    let state = vigil_protocol::SyncState { roster_version: 0, heads: vec![], roster: None };
    let frame = encode(Tag::Request, &Request::SyncHeads(state), FRAME).unwrap();
    let (r, _) = f.engines[1].on_request(T0 + 2, asker, &frame, FRAME);
    let Response::Heads(s) = &r else { panic!("{r:?}") };
    assert!(s.heads.len() == 2 && s.roster.is_none(), "bounded: {} heads", s.heads.len());
    assert!(encode(Tag::Response, &r, limit).is_ok(), "the answer fits the frame limit");
    // With room, the older asker gets the roster.
    f.engines[1].frame_limit = FRAME;
    let (r, _) = f.engines[1].on_request(T0 + 3, asker, &frame, FRAME);
    assert!(matches!(&r, Response::Heads(s) if s.roster.is_some() && s.heads.len() == 3), "{r:?}");
}

#[test]
fn a_failed_catch_up_is_retried_soon() {
    let mut f = fed_with(3, AlertForm::Protected);
    let peer = f.engines[0].org();
    let key = |actions: &[Action]| match actions {
        [Action::Send { key, request: Request::SyncHeads(_), .. }, Action::Send { request: Request::PolicySync(_), .. }] => {
            *key
        }
        other => panic!("expected SyncHeads and PolicySync, got {other:?}"),
    };
    let k = key(&f.engines[1].sync_start(peer));
    assert!(f.engines[1].take_sync_retries().is_empty(), "nothing failed yet");
    f.engines[1].request_failed(k);
    assert_eq!(f.engines[1].take_sync_retries(), vec![peer]);
    assert!(f.engines[1].take_sync_retries().is_empty(), "taken once");
    // A failure of some other request is not a catch-up to retry.
    f.engines[1].request_failed(vigil_protocol::Handle([7; 16]));
    assert!(f.engines[1].take_sync_retries().is_empty());
}

#[test]
fn a_burst_is_held_to_the_per_minute_bound() {
    let mut f = fed_with(3, AlertForm::Protected);
    f.engines[1].policy.max_per_issuer_per_hour = 20;
    f.engines[1].policy.max_per_issuer_per_minute = Some(2);
    let pop = Population::new(26, "vigil-synth-128", 10);
    let flooder = f.engines[0].org();
    let mut bytes = Vec::new();
    for i in 0..5u64 {
        let (_, actions) = f.engines[0]
            .publish_alert(T0 + i * 100, &pop.sample(i as usize, 0), Category::Missing, "K".into(), T0 + DAY, GOSSIP)
            .unwrap();
        bytes.push(published(&actions));
    }
    let verdicts: Vec<Verdict> =
        bytes.iter().map(|b| f.engines[1].on_gossip(T0 + 1000, flooder, b, GOSSIP).0).collect();
    assert_eq!(verdicts.iter().filter(|v| **v == Verdict::Accept).count(), 2, "{verdicts:?}");
    // A minute later (by creation time) the issuer may publish again.
    let (_, actions) = f.engines[0]
        .publish_alert(T0 + 61_000, &pop.sample(7, 0), Category::Missing, "K".into(), T0 + DAY, GOSSIP)
        .unwrap();
    let late = published(&actions);
    // It follows throttled alerts (a gap): caught up later, not accepted live.
    let (v, _) = f.engines[1].on_gossip(T0 + 61_001, flooder, &late, GOSSIP);
    assert!(matches!(v, Verdict::Ignore(ref r) if r.contains("gap")), "{v:?}");
}

#[test]
fn an_alert_withdrawn_within_the_pulled_page_is_not_answered() {
    const GOSSIP_E: usize = 40 * 1024;
    let mut f = fed_with(4, AlertForm::Encrypted);
    let pop = Population::new(27, "vigil-synth-128", 10);
    let issuer = f.engines[0].org();
    f.engines[2].enrol(T0, enrolment(pop.sample(3, 1))).unwrap();
    let (open, a1) =
        f.engines[0].publish_alert(T0, &pop.sample(3, 0), Category::Missing, "K".into(), T0 + DAY, GOSSIP_E).unwrap();
    let (closed, a2) = f.engines[0]
        .publish_alert(T0 + 1, &pop.sample(4, 0), Category::Missing, "L".into(), T0 + DAY, GOSSIP_E)
        .unwrap();
    let a3 = f.engines[0].withdraw_alert(T0 + 2, closed, GOSSIP_E).unwrap();
    drop((a1, a2, a3));
    // Engine 2 missed all three and pulls them from the issuer in one page.
    let start = f.engines[2].sync_start(issuer);
    let seen = pump(&mut f, 2, start, T0 + 10);
    let answered: Vec<vigil_protocol::AlertId> =
        seen.iter().filter_map(|a| if let Action::AnswerAlert(j) = a { Some(j.alert) } else { None }).collect();
    assert_eq!(answered, vec![open], "only the alert still open is answered");
    assert_eq!(f.engines[2].alerts().count(), 2, "both are held (the log is whole)");
}

#[test]
fn closed_alerts_lose_their_payload_and_their_log_still_serves_catch_up() {
    use crate::model::AlertStatus;
    use vigil_protocol::{AlertEnvelope, PrunedAlert, SyncPull};
    let mut f = fed_with(4, AlertForm::Protected);
    for e in &mut f.engines {
        e.policy.purge_closed_after = std::time::Duration::from_secs(3600);
    }
    let pop = Population::new(26, "vigil-synth-128", 10);
    let (issuer, relay) = (f.engines[0].org(), f.engines[1].org());
    // The relay holds a record of person 0: the first alert hits it.
    f.engines[1].enrol(T0, enrolment(pop.sample(0, 1))).unwrap();
    // Three alerts: the first withdrawn, the second expiring, the third active.
    let mut ids = Vec::new();
    for (i, expires) in [(0u64, T0 + 7 * DAY), (1, T0 + 2 * 3600 * 1000), (2, T0 + 7 * DAY)] {
        let (id, actions) = f.engines[0]
            .publish_alert(T0 + i, &pop.sample(i as usize, 0), Category::Missing, "K".into(), expires, GOSSIP)
            .unwrap();
        assert_eq!(f.engines[1].on_gossip(T0 + i, issuer, &published(&actions), GOSSIP).0, Verdict::Accept);
        ids.push(id);
    }
    let actions = f.engines[0].withdraw_alert(T0 + 10, ids[0], GOSSIP).unwrap();
    assert_eq!(f.engines[1].on_gossip(T0 + 10, issuer, &published(&actions), GOSSIP).0, Verdict::Accept);

    // Within the delay nothing is purged; after it, the withdrawn alert's
    // payload goes, and after its expiry (plus the delay) the second's.
    assert!(f.engines[1].purge_closed_alerts(T0 + 1000).is_empty());
    let purged = |actions: &[Action]| -> Vec<(AlertId, String)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Audit(AuditEvent::AlertPurged { alert, reason, .. }) => Some((*alert, reason.clone())),
                _ => None,
            })
            .collect()
    };
    let hit_of_first =
        |e: &Engine| e.hits().any(|h| matches!(h.source, crate::model::HitSource::Alert(a) if a == ids[0]));
    assert!(hit_of_first(&f.engines[1]), "the relay's record matched the first alert");
    let first = f.engines[1].purge_closed_alerts(T0 + 2 * 3600 * 1000);
    assert_eq!(purged(&first), vec![(ids[0], "withdrawn".to_string())]);
    assert!(!hit_of_first(&f.engines[1]), "its hit is purged with it");
    assert!(first.iter().any(|a| matches!(a, Action::Store(crate::model::StoreOp::DeleteHit(_)))));
    assert!(first.iter().any(|a| matches!(a, Action::Audit(AuditEvent::AlertPurged { hits: 1, .. }))));
    let later = T0 + 4 * 3600 * 1000;
    assert_eq!(purged(&f.engines[1].purge_closed_alerts(later)), vec![(ids[1], "expired".to_string())]);
    assert!(purged(&f.engines[1].purge_closed_alerts(later)).is_empty(), "purged once");
    let stored = |e: &Engine, id: AlertId| e.alerts().find(|a| a.id == id).cloned().unwrap();
    for id in &ids[..2] {
        let a = stored(&f.engines[1], *id);
        assert!(matches!(a.status, AlertStatus::Purged { .. }));
        assert!(a.alert.body.probe.is_none() && a.alert.body.encrypted.is_none(), "payload gone");
    }
    assert!(stored(&f.engines[1], ids[2]).alert.body.probe.is_some(), "the active alert keeps its payload");

    // A member that was offline catches up from the relay: pruned entries
    // verify and link, the active alert arrives whole, the heads agree.
    let start = f.engines[2].sync_start(relay);
    let seen = pump(&mut f, 2, start, later);
    assert_eq!(f.engines[2].log_heads(), f.engines[0].log_heads(), "{seen:?}");
    assert!(matches!(stored(&f.engines[2], ids[0]).status, AlertStatus::Purged { .. }));
    assert!(stored(&f.engines[2], ids[0]).withdrawal.is_some(), "the withdrawal entry followed");
    assert!(matches!(stored(&f.engines[2], ids[1]).status, AlertStatus::Purged { .. }));
    assert!(stored(&f.engines[2], ids[2]).alert.body.probe.is_some());
    assert_eq!(f.engines[2].strikes(&relay), 0);

    // A relay cannot hide an active alert as a pruned entry, nor forge one.
    let page = |e: &mut Engine, from: OrgId| {
        let frame = encode(Tag::Request, &Request::SyncPull(SyncPull { org: issuer, from_seq: 1, max: 8 }), FRAME);
        match e.on_request(later, from, &frame.unwrap(), FRAME).0 {
            Response::Entries(entries) => entries,
            other => panic!("{other:?}"),
        }
    };
    let member = f.engines[2].org();
    let served = page(&mut f.engines[0], member);
    let AlertEnvelope::Publish(active) = served[2].clone() else { panic!("the active alert is served whole") };
    let hidden =
        PrunedAlert { header: vigil_crypto::alert_header(&active.body), signature: active.signature, withdrawal: None };
    let mut forged = hidden.clone();
    forged.header.category = Category::Found;
    for (bad, why) in [(hidden, "neither expired nor withdrawn"), (forged, "forged pruned entry")] {
        let mut entries = page(&mut f.engines[1], member);
        entries[2] = AlertEnvelope::Pruned(bad);
        // Engine 3 asks the relay for its heads, then gets the tampered page.
        let key_of = |actions: &[Action]| {
            actions.iter().find_map(|a| if let Action::Send { key, .. } = a { Some(*key) } else { None }).unwrap()
        };
        let heads_key = key_of(&f.engines[3].sync_start(relay));
        let theirs = vigil_protocol::SyncState { roster_version: 1, heads: f.engines[1].log_heads(), roster: None };
        let pull_key = key_of(&f.engines[3].on_response(later, heads_key, &Response::Heads(theirs)));
        let out = f.engines[3].on_response(later, pull_key, &Response::Entries(entries));
        assert!(
            out.iter()
                .any(|a| matches!(a, Action::Audit(AuditEvent::SyncRefused { reason, .. }) if reason.contains(why))),
            "{why}: {out:?}"
        );
        assert!(f.engines[3].alerts().all(|a| a.id != ids[2]), "nothing stored in place of the active alert");
    }
    // Pruned entries never travel by gossip.
    let entries = page(&mut f.engines[1], member);
    let gossiped = encode(Tag::Gossip, &entries[0], GOSSIP).unwrap();
    assert!(matches!(f.engines[3].on_gossip(later, relay, &gossiped, GOSSIP).0, Verdict::Reject(_)));
}

#[test]
fn a_member_claiming_entries_of_our_own_log_it_cannot_serve_is_struck() {
    let mut f = fed(3);
    let pop = Population::new(2, "vigil-synth-128", 4);
    let (me, liar) = (f.engines[0].org(), f.engines[1].org());
    f.engines[0].publish_alert(T0, &pop.sample(1, 0), Category::Missing, "K".into(), T0 + DAY, GOSSIP).unwrap();
    let claim = vigil_protocol::SyncState {
        roster_version: 1,
        heads: vec![vigil_protocol::LogHead { org: me, seq: 5, hash: [0; 32] }],
        roster: None,
    };
    let frame = encode(Tag::Request, &Request::SyncHeads(claim), FRAME).unwrap();
    let (_, actions) = f.engines[0].on_request(T0, liar, &frame, FRAME);
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Audit(AuditEvent::OwnLogBehindPeers { held: 1, peers: 5, .. }))));
    let key = actions
        .iter()
        .find_map(|a| match a {
            Action::Send { request: Request::SyncPull(p), key, .. } if p.org == me => Some(*key),
            _ => None,
        })
        .expect("the node pulls its own log back");
    let probe = pop.sample(2, 0);
    let refused = f.engines[0].publish_alert(T0, &probe, Category::Missing, "K".into(), T0 + DAY, GOSSIP);
    assert!(matches!(refused, Err(EngineError::OwnLogBehind)));
    // The member has nothing to give: a strike, and publishing resumes.
    let actions = f.engines[0].on_response(T0, key, &Response::Entries(vec![]));
    let struck = actions.iter().any(|a| {
        matches!(a, Action::Audit(AuditEvent::PeerPenalised { peer, reason, .. })
            if *peer == liar.to_hex() && reason.contains("own log"))
    });
    assert!(struck, "{actions:?}");
    assert!(f.engines[0].publish_alert(T0, &probe, Category::Missing, "K".into(), T0 + DAY, GOSSIP).is_ok());
}

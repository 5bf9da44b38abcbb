//! Gossipsub peer scoring for the alert topic: alerts are rare (a few an
//! hour), members are a known roster (often behind one NAT, all on one
//! address in a drill), and the engine validates every message. So only
//! invalid messages (forged, replayed, malformed: the engine rejects them)
//! and broken gossip promises cost score; delivering alerts first earns a
//! little; nothing is expected of a peer's delivery rate.

use libp2p::gossipsub::{score_parameter_decay, IdentTopic, PeerScoreParams, PeerScoreThresholds, TopicScoreParams};
use std::time::Duration;

/// Score per rejected message, counted squared: one costs 10 (at the gossip
/// threshold: no more gossip to or from it), three cost 90 (graylisted, as
/// the engine's third strike blocks the member).
pub(super) const INVALID_WEIGHT: f64 = -10.0;

/// Parameters and thresholds for a node subscribed to `topic`.
pub(super) fn peer_score(topic: &IdentTopic) -> (PeerScoreParams, PeerScoreThresholds) {
    let alerts = TopicScoreParams {
        topic_weight: 1.0,
        // P1: time in the mesh says nothing on a topic this quiet.
        time_in_mesh_weight: 0.0,
        // P2: a little credit for delivering an alert first, kept for hours.
        first_message_deliveries_weight: 1.0,
        first_message_deliveries_decay: score_parameter_decay(Duration::from_secs(3600)),
        first_message_deliveries_cap: 10.0,
        // P3, P3b: no delivery rate is expected (an honest mesh peer may
        // relay nothing for hours).
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        // P4: rejected messages, forgotten over about a day.
        invalid_message_deliveries_weight: INVALID_WEIGHT,
        invalid_message_deliveries_decay: score_parameter_decay(Duration::from_secs(24 * 3600)),
        ..Default::default()
    };
    let params = PeerScoreParams {
        topics: [(topic.hash(), alerts)].into_iter().collect(),
        topic_score_cap: 10.0,
        // The engine's strikes block a member outright; no second account.
        app_specific_weight: 0.0,
        // Members are admitted by the roster, not by address: many share a NAT.
        ip_colocation_factor_weight: 0.0,
        // P7: broken IWANT promises and GRAFTs during backoff.
        behaviour_penalty_weight: -10.0,
        behaviour_penalty_threshold: 6.0,
        behaviour_penalty_decay: score_parameter_decay(Duration::from_secs(600)),
        // A peer whose queue is full is slow, not hostile (a node answering
        // a large query on a small machine).
        slow_peer_weight: 0.0,
        ..Default::default()
    };
    let thresholds = PeerScoreThresholds {
        gossip_threshold: -10.0,
        publish_threshold: -50.0,
        graylist_threshold: -80.0,
        // Peer exchange is not used: members come from the roster.
        accept_px_threshold: 100.0,
        opportunistic_graft_threshold: 1.0,
    };
    (params, thresholds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_valid_and_three_rejections_graylist() {
        let (p, t) = peer_score(&IdentTopic::new("vigil/alerts/1"));
        p.validate().unwrap();
        t.validate().unwrap();
        let after = |n: f64| n * n * INVALID_WEIGHT;
        assert!(after(1.0) <= t.gossip_threshold && after(1.0) > t.publish_threshold);
        assert!(after(3.0) <= t.graylist_threshold);
        assert!(after(2.0) > t.graylist_threshold, "two rejections do not graylist");
    }
}

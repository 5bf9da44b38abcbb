//! Outbound pacing on `/vigil/req/1`: at most `MAX_IN_FLIGHT` requests per
//! peer at a time, the rest wait in order. A burst (answer pages for a batch
//! of enrolments, a backlog of hit notices after a reconnection) then never
//! overruns the peer's limit of concurrent inbound streams, beyond which it
//! drops streams, catch-up requests among them.

use super::{net, Runtime};
use libp2p::PeerId;
use std::collections::{HashMap, VecDeque};
use vigil_protocol::{Handle, OrgId};

/// Requests in flight to one peer; half the streams a peer accepts per
/// connection (64), leaving room for other traffic.
pub(super) const MAX_IN_FLIGHT: usize = 32;

/// A request frame and the outbox key it answers to, if any.
pub(super) type Queued = (Vec<u8>, Option<Handle>);

#[derive(Debug, Default)]
struct Peer {
    in_flight: usize,
    waiting: VecDeque<Queued>,
}

#[derive(Debug, Default)]
pub(super) struct OutQueues {
    peers: HashMap<PeerId, Peer>,
}

impl OutQueues {
    /// A request to `peer`: returned to be sent now (and counted), or kept
    /// to wait for a slot.
    pub(super) fn admit(&mut self, peer: PeerId, request: Queued) -> Option<Queued> {
        let p = self.peers.entry(peer).or_default();
        if p.in_flight < MAX_IN_FLIGHT && p.waiting.is_empty() {
            p.in_flight += 1;
            Some(request)
        } else {
            p.waiting.push_back(request);
            None
        }
    }

    /// A request to `peer` ended (response or failure): the next waiting
    /// one, to be sent now (and counted).
    pub(super) fn done(&mut self, peer: &PeerId) -> Option<Queued> {
        let p = self.peers.get_mut(peer)?;
        p.in_flight = p.in_flight.saturating_sub(1);
        let next = p.waiting.pop_front();
        if next.is_some() {
            p.in_flight += 1;
        } else if p.in_flight == 0 {
            self.peers.remove(peer);
        }
        next
    }

    /// The last connection to `peer` closed: what waited for it (the
    /// requests in flight end with failures of their own).
    pub(super) fn drop_waiting(&mut self, peer: &PeerId) -> Vec<Queued> {
        self.peers.get_mut(peer).map(|p| p.waiting.drain(..).collect()).unwrap_or_default()
    }
}

impl Runtime {
    /// Sends a request frame to `to` on `/vigil/req/1`, now or when a slot
    /// to it frees up; `handle` (an outbox key) is never sent twice at once.
    pub(super) fn send_request(&mut self, to: OrgId, frame: Vec<u8>, handle: Option<Handle>) {
        let Ok(peer) = net::peer_id(&to) else { return };
        if let Some(h) = handle {
            if !self.in_flight.insert(h) {
                return;
            }
        }
        if let Some(request) = self.outq.admit(peer, (frame, handle)) {
            self.dispatch(peer, request);
        }
    }

    fn dispatch(&mut self, peer: PeerId, (frame, handle): Queued) {
        let id = self.swarm.behaviour_mut().req.send_request(&peer, net::Frame::Data(frame));
        if let Some(h) = handle {
            self.pending.insert(id, h);
        }
    }

    /// A request to `peer` was answered or failed: the next one may go.
    pub(super) fn request_ended(&mut self, peer: &PeerId) {
        if let Some(next) = self.outq.done(peer) {
            self.dispatch(*peer, next);
        }
    }

    /// No connection to `peer` is left: what waited for it fails now (the
    /// outbox resends it, catch-up restarts, on reconnection).
    pub(super) fn peer_gone(&mut self, peer: &PeerId) {
        for (_, handle) in self.outq.drop_waiting(peer) {
            if let Some(h) = handle {
                self.in_flight.remove(&h);
                self.engine.request_failed(h);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_beyond_the_limit_wait_in_order_and_go_as_others_end() {
        let (mut q, peer, other) = (OutQueues::default(), PeerId::random(), PeerId::random());
        let req = |i: u8| (vec![i], Some(Handle([i; 16])));
        for i in 0..MAX_IN_FLIGHT as u8 {
            assert!(q.admit(peer, req(i)).is_some());
        }
        assert!(q.admit(peer, req(100)).is_none());
        assert!(q.admit(peer, req(101)).is_none());
        assert!(q.admit(other, req(7)).is_some(), "another peer has its own slots");
        assert_eq!(q.done(&peer), Some(req(100)));
        assert_eq!(q.done(&peer), Some(req(101)));
        assert_eq!(q.done(&peer), None, "nothing waits: one slot free");
        assert!(q.admit(peer, req(102)).is_some());
        assert!(q.admit(peer, req(103)).is_none(), "MAX_IN_FLIGHT in flight again");
        assert_eq!(q.drop_waiting(&peer), vec![req(103)]);
        for _ in 0..MAX_IN_FLIGHT {
            assert_eq!(q.done(&peer), None);
        }
        assert!(!q.peers.contains_key(&peer), "an idle peer is forgotten");
        assert!(q.admit(peer, req(104)).is_some());
    }
}

//! The runtime's network events: the allow list and redials from the
//! roster, and every swarm event (gossip, requests, connections, refusals)
//! handed to the engine or answered.

use super::*;

impl Runtime {
    /// Allows the roster's members (and only them) and notes whom to dial.
    pub(super) fn sync_allow_list(&mut self) {
        let Some(r) = self.engine.roster() else { return };
        let me = self.engine.org();
        // A member nobody can dial (no listed address) dials everyone itself.
        let listed = r.body().members.iter().any(|m| m.org == me && !m.addrs.is_empty());
        // Decoding a member's key is not free: done once per roster, not per redial.
        self.dial_targets = r
            .body()
            .members
            .iter()
            .filter(|m| m.org != me && !m.addrs.is_empty())
            .filter_map(|m| {
                let addrs = m.addrs.iter().filter_map(|a| a.parse().ok()).collect();
                Some((net::peer_id(&m.org).ok()?, addrs, !listed || me < m.org))
            })
            .collect();
        let members: Vec<PeerId> = r.body().members.iter().filter_map(|m| net::peer_id(&m.org).ok()).collect();
        let allow = &mut self.swarm.behaviour_mut().allow;
        let current: Vec<PeerId> = allow.allowed_peers().iter().copied().collect();
        for p in current {
            if !members.contains(&p) {
                allow.disallow_peer(p);
            }
        }
        for p in members {
            allow.allow_peer(p);
        }
    }

    /// Dials every roster member we are not connected to. Of two listed
    /// members, the lower OrgId dials first; the other dials only after the
    /// member stayed unconnected for `DEFER_TICKS` redial ticks (`tick`: this
    /// call is one), so each pair does one handshake, not two crossing ones,
    /// and a member that cannot reach the other is still reached.
    pub(super) fn redial(&mut self, tick: bool) {
        let waited = std::mem::take(&mut self.waited);
        for (peer, addrs, first) in &self.dial_targets {
            let b = self.swarm.behaviour();
            if self.swarm.is_connected(peer) || b.block.blocked_peers().contains(peer) || self.is_cut(peer) {
                continue;
            }
            if !first {
                let w = waited.get(peer).copied().unwrap_or(0) + u32::from(tick);
                self.waited.insert(*peer, w);
                if w < DEFER_TICKS {
                    continue;
                }
            }
            let opts = libp2p::swarm::dial_opts::DialOpts::peer_id(*peer).addresses(addrs.clone()).build();
            if let Err(e) = self.swarm.dial(opts) {
                tracing::debug!(org = %self.name, %peer, "dial failed: {e}");
            }
        }
    }

    pub(super) fn on_swarm_event(&mut self, ev: SwarmEvent<BehaviourEvent>) -> Result<(), NodeError> {
        match ev {
            SwarmEvent::Behaviour(BehaviourEvent::Gossip(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => self.on_gossip(propagation_source, message_id, &message.data)?,
            // An alert published between the connection's catch-up and the
            // peer's subscription reached nobody there: catch up once more.
            SwarmEvent::Behaviour(BehaviourEvent::Gossip(gossipsub::Event::Subscribed { peer_id, topic }))
                if topic == gossipsub::IdentTopic::new(ALERT_TOPIC).hash() =>
            {
                if let Some(org) = net::org_of(&peer_id) {
                    let actions = self.engine.sync_start(org);
                    self.apply(actions)?;
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Req(ev)) => self.on_req_event(ev)?,
            SwarmEvent::Behaviour(BehaviourEvent::Identify(ev)) => self.on_identify_event(ev)?,
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error: libp2p::swarm::ListenError::Denied { cause },
                peer_id,
                ..
            } => {
                // Counted per source address; audited in aggregate (a
                // non-member's fresh keys and ports would each get an entry).
                let peer = peer_id.map(|p| p.to_string()).unwrap_or_else(|| send_back_addr.to_string());
                tracing::debug!(org = %self.name, %peer, "refused connection: {cause}");
                self.engine.connection_refused(now_ms(), &send_back_addr.to_string(), refusal_reason(&cause));
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                if let Some(org) = net::org_of(&peer_id) {
                    self.disconnected_at.insert(org, now_ms());
                }
                self.peer_gone(&peer_id)
            }
            SwarmEvent::ConnectionEstablished { peer_id, num_established, .. } => {
                self.connected(peer_id, num_established.get())?
            }
            _ => {}
        }
        Ok(())
    }

    /// A gossip message: the engine's verdict, reported to gossipsub (which
    /// scores the relaying peer by it) and counted.
    fn on_gossip(&mut self, source: PeerId, id: gossipsub::MessageId, data: &[u8]) -> Result<(), NodeError> {
        let (verdict, actions) = match net::org_of(&source) {
            Some(from) => self.engine.on_gossip(now_ms(), from, data, self.config.network.max_gossip_bytes),
            None => (Verdict::Reject("non-ed25519 peer".into()), vec![]),
        };
        self.apply_with(actions, true)?;
        let (label, acceptance) = match &verdict {
            Verdict::Accept => ("accept", gossipsub::MessageAcceptance::Accept),
            Verdict::Ignore(_) => ("ignore", gossipsub::MessageAcceptance::Ignore),
            Verdict::Reject(reason) => {
                tracing::warn!(org = %self.name, from = %source, "rejected gossip: {reason}");
                ("reject", gossipsub::MessageAcceptance::Reject)
            }
        };
        self.metrics.gossip.get_or_create(&crate::metrics::Verdict { verdict: label }).inc();
        self.swarm.behaviour_mut().gossip.report_message_validation_result(&id, &source, acceptance);
        Ok(())
    }

    /// An event of the `/vigil/req/1` behaviour.
    fn on_req_event(&mut self, ev: request_response::Event<net::Frame, Vec<u8>>) -> Result<(), NodeError> {
        match ev {
            request_response::Event::Message { peer, message, .. } => {
                let Some(from) = net::org_of(&peer) else { return Ok(()) };
                match message {
                    request_response::Message::Request { request: net::Frame::Oversized(len), channel, .. } => {
                        let reason =
                            format!("{}: {len} bytes, limit {}", net::OVERSIZED, self.config.network.max_frame_bytes);
                        tracing::warn!(org = %self.name, %peer, "rejected frame: {reason}");
                        let actions = self.engine.violation(from, &reason);
                        self.apply(actions)?;
                        let frame = encode(Tag::Response, &Response::Refused(vigil_protocol::Refusal::Malformed), 64)
                            .expect("tiny");
                        let _ = self.swarm.behaviour_mut().req.send_response(channel, frame);
                    }
                    request_response::Message::Request { request: net::Frame::Data(request), channel, .. } => {
                        self.on_request_frame(from, &request, channel)?;
                    }
                    request_response::Message::Response { request_id, response } => {
                        self.request_ended(&peer);
                        if let Some(h) = self.pending.remove(&request_id) {
                            self.in_flight.remove(&h);
                            self.on_response(from, h, &response)?;
                        }
                    }
                }
            }
            request_response::Event::OutboundFailure { request_id, peer, error, .. } => {
                self.request_ended(&peer);
                if let Some(h) = self.pending.remove(&request_id) {
                    self.in_flight.remove(&h);
                    self.engine.request_failed(h);
                }
                tracing::debug!(org = %self.name, %peer, "request failed: {error}");
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(org = %self.name, %peer, "inbound request failed: {error}");
            }
            _ => {}
        }
        Ok(())
    }

    /// A peer's response to our request `h`.
    fn on_response(&mut self, from: OrgId, h: Handle, response: &[u8]) -> Result<(), NodeError> {
        match vigil_protocol::decode::<Response>(Tag::Response, response, self.config.network.max_frame_bytes) {
            Ok(r) => {
                if r == Response::Ack {
                    self.retry.forget(&h);
                }
                // A peer's response acknowledges our request; what it
                // changes here (delivered flags, pulled log entries)
                // acknowledges nothing and a crash only repeats it, so it
                // need not wait for a flush (writes before anything this
                // sends still do).
                let actions = self.engine.on_response(now_ms(), h, &r);
                self.apply_with(actions, true)
            }
            Err(e) => {
                let actions = self.engine.violation(from, &format!("undecodable response: {e}"));
                self.apply(actions)
            }
        }
    }

    /// A connection to `peer` is up (`established`: how many now).
    fn connected(&mut self, peer: PeerId, established: u32) -> Result<(), NodeError> {
        tracing::debug!(org = %self.name, %peer, "connected");
        // Catch up on alert logs with every member we (re)connect to.
        if let (Some(org), 1) = (net::org_of(&peer), established) {
            let actions = self.engine.sync_start(org);
            self.apply(actions)?;
            // What waits for this peer may go at once.
            let keys: Vec<Handle> =
                self.engine.outbox_entries().into_iter().filter(|m| m.0 == org).map(|m| m.1).collect();
            self.retry.reset(keys);
        }
        self.resend_hits();
        Ok(())
    }
}

fn refusal_reason(cause: &libp2p::swarm::ConnectionDenied) -> String {
    if cause.downcast_ref::<libp2p::allow_block_list::NotAllowed>().is_some() {
        "not a roster member".into()
    } else if cause.downcast_ref::<libp2p::allow_block_list::Blocked>().is_some() {
        "blocked after protocol violations".into()
    } else {
        cause.to_string()
    }
}

//! A cap on the connections one IP address may hold in their handshake
//! at once. libp2p's own pending limit is global: 256 idle TCP sockets
//! from one address filled it and kept every inbound handshake refused
//! until they timed out. With this cap in front, one address takes at
//! most `max` of the global slots, and members elsewhere still get in.

use libp2p::core::{multiaddr::Protocol, Endpoint, Multiaddr};
use libp2p::swarm::{
    behaviour::ListenFailure, dummy, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::PeerId;
use std::collections::HashMap;
use std::net::IpAddr;
use std::task::{Context, Poll};

/// The error a refused handshake carries (the runtime audits it).
#[derive(Debug, thiserror::Error)]
#[error("more than {max} handshakes at once from {ip}")]
pub(crate) struct TooManyPending {
    pub ip: IpAddr,
    pub max: usize,
}

#[derive(Debug)]
pub(crate) struct PendingPerIp {
    max: usize,
    pending: HashMap<IpAddr, usize>,
    by_connection: HashMap<ConnectionId, IpAddr>,
}

impl PendingPerIp {
    pub(crate) fn new(max: usize) -> Self {
        Self { max, pending: HashMap::new(), by_connection: HashMap::new() }
    }

    fn release(&mut self, id: ConnectionId) {
        if let Some(ip) = self.by_connection.remove(&id) {
            if let Some(n) = self.pending.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    self.pending.remove(&ip);
                }
            }
        }
    }
}

fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

impl NetworkBehaviour for PendingPerIp {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = std::convert::Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        id: ConnectionId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        // In-memory transport addresses have no IP: not capped here.
        let Some(ip) = ip_of(remote) else { return Ok(()) };
        let n = self.pending.entry(ip).or_default();
        if *n >= self.max {
            return Err(ConnectionDenied::new(TooManyPending { ip, max: self.max }));
        }
        *n += 1;
        self.by_connection.insert(id, ip);
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        _peer: PeerId,
        _local: &Multiaddr,
        _remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.release(id);
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _id: ConnectionId,
        _peer: PeerId,
        _addr: &Multiaddr,
        _role: Endpoint,
        _port_use: libp2p::core::transport::PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        // A handshake that failed, timed out or was denied elsewhere.
        if let FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) = event {
            self.release(connection_id);
        }
    }

    fn on_connection_handler_event(&mut self, _: PeerId, _: ConnectionId, event: THandlerOutEvent<Self>) {
        libp2p::core::util::unreachable(event)
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_gets_at_most_max_handshakes_and_its_slots_come_back() {
        let mut p = PendingPerIp::new(2);
        let local: Multiaddr = "/ip4/127.0.0.1/tcp/7600".parse().unwrap();
        let (a, b): (Multiaddr, Multiaddr) =
            ("/ip4/203.0.113.7/tcp/5000".parse().unwrap(), "/ip4/198.51.100.1/tcp/5000".parse().unwrap());
        let ids: Vec<ConnectionId> = (0..5).map(|_| ConnectionId::new_unchecked(rand::random())).collect();
        assert!(p.handle_pending_inbound_connection(ids[0], &local, &a).is_ok());
        assert!(p.handle_pending_inbound_connection(ids[1], &local, &a).is_ok());
        assert!(p.handle_pending_inbound_connection(ids[2], &local, &a).is_err(), "a third at once from one address");
        assert!(p.handle_pending_inbound_connection(ids[3], &local, &b).is_ok(), "another address is not affected");
        // One handshake completes: its slot is free again.
        p.handle_established_inbound_connection(ids[0], PeerId::random(), &local, &a).unwrap();
        assert!(p.handle_pending_inbound_connection(ids[4], &local, &a).is_ok());
        let memory: Multiaddr = "/memory/42".parse().unwrap();
        for _ in 0..10 {
            let id = ConnectionId::new_unchecked(rand::random());
            assert!(p.handle_pending_inbound_connection(id, &local, &memory).is_ok());
        }
    }
}

//! The libp2p layer: TCP + Noise + Yamux, roster gating (allow list plus a
//! block list for penalised peers), connection limits (global, and
//! handshakes per IP address), the alerts gossipsub
//! topic with application-level validation, and request-response frames.
//! It moves bytes only; decisions are the engine's.

mod codec;
#[cfg(feature = "drill")]
mod latency;
mod pending;
mod score;

pub(crate) use codec::{Frame, FrameCodec, IDENTIFY_PROTOCOL, OVERSIZED, PROTOCOL};

use libp2p::{
    allow_block_list::{self, AllowedPeers, BlockedPeers},
    connection_limits, gossipsub, identity, noise,
    request_response::{self, ProtocolSupport},
    swarm::NetworkBehaviour,
    tcp, yamux, PeerId, Swarm,
};
use std::time::Duration;
use vigil_config::{NetworkConfig, QueryPolicy};
use vigil_protocol::OrgId;

/// The gossipsub topic that carries alert envelopes.
pub(crate) const ALERT_TOPIC: &str = "vigil/alerts/1";

/// Observes every payload this node sends (protocol name, bytes): gossip
/// publishes and request-response frames. For tests and drills.
#[cfg(feature = "drill")]
pub type Tap = std::sync::Arc<dyn Fn(&str, &[u8]) + Send + Sync>;

/// Peers a drill cut this node off from (a simulated partition); without
/// the `drill` feature, libp2p's behaviour that does nothing.
#[cfg(feature = "drill")]
pub(crate) type Cut = allow_block_list::Behaviour<BlockedPeers>;
#[cfg(not(feature = "drill"))]
pub(crate) type Cut = libp2p::swarm::dummy::Behaviour;

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    /// First, so that its count sees every handshake (`pending`).
    pub pending: pending::PendingPerIp,
    pub allow: allow_block_list::Behaviour<AllowedPeers>,
    pub block: allow_block_list::Behaviour<BlockedPeers>,
    /// Peers this node cannot reach: a drill's simulated partition.
    pub cut: Cut,
    pub limits: connection_limits::Behaviour,
    pub gossip: gossipsub::Behaviour,
    pub req: request_response::Behaviour<FrameCodec>,
    pub identify: request_response::Behaviour<FrameCodec>,
}

impl std::fmt::Debug for Behaviour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Behaviour")
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    #[error("invalid key: {0}")]
    Key(String),
    #[error("cannot build the transport: {0}")]
    Transport(String),
    #[error("invalid gossip configuration: {0}")]
    Gossip(String),
}

/// The libp2p keypair of an organisation (from its ed25519 seed).
pub(crate) fn keypair(secret: &[u8; 32]) -> Result<identity::Keypair, NetError> {
    let mut s = *secret;
    identity::Keypair::ed25519_from_bytes(&mut s).map_err(|e| NetError::Key(e.to_string()))
}

/// The bytes of an ed25519 PeerId before its 32 key bytes: identity
/// multihash (0x00, length 36) over the protobuf-encoded public key (field 1
/// key type = 1 (Ed25519), field 2 = 32 bytes).
const ED25519_PEER_PREFIX: [u8; 6] = [0x00, 0x24, 0x08, 0x01, 0x12, 0x20];

/// An organisation's PeerId. Built from the bytes, without decompressing
/// the key (hot: every request and every redial); an OrgId that is not a
/// valid key gives a PeerId nobody can authenticate as.
pub(crate) fn peer_id(org: &OrgId) -> Result<PeerId, NetError> {
    let mut bytes = ED25519_PEER_PREFIX.to_vec();
    bytes.extend_from_slice(&org.0);
    PeerId::from_bytes(&bytes).map_err(|e| NetError::Key(e.to_string()))
}

/// The organisation behind an ed25519 PeerId (the peers of this node's
/// connections were authenticated by Noise, so the key is not decoded again).
pub(crate) fn org_of(peer: &PeerId) -> Option<OrgId> {
    let bytes = peer.to_bytes();
    if bytes.len() == 38 && bytes[..6] == ED25519_PEER_PREFIX {
        return Some(OrgId(bytes[6..].try_into().ok()?));
    }
    // Any other encoding: decode the key properly.
    if bytes.len() < 2 || bytes[0] != 0 {
        return None;
    }
    let pk = identity::PublicKey::try_decode_protobuf(&bytes[2..]).ok()?;
    Some(OrgId(pk.try_into_ed25519().ok()?.to_bytes()))
}

/// The gossip message id: SHA-256 of the data, so the same envelope is the
/// same message whoever relays it.
fn message_id(m: &gossipsub::Message) -> gossipsub::MessageId {
    gossipsub::MessageId::from(vigil_crypto::sha256(&m.data).to_vec())
}

pub(crate) fn behaviour(
    metrics: &mut prometheus_client::registry::Registry,
    cfg: &NetworkConfig,
    queries: &QueryPolicy,
    #[cfg(feature = "drill")] tap: Option<Tap>,
) -> Result<Behaviour, NetError> {
    #[cfg(feature = "drill")]
    let (req_codec, identify_codec) = (
        FrameCodec::new(cfg.max_frame_bytes, cfg.max_frame_bytes).tapped(tap.clone()),
        FrameCodec::new(queries.max_query_bytes, queries.max_answer_bytes).tapped(tap),
    );
    #[cfg(not(feature = "drill"))]
    let (req_codec, identify_codec) = (
        FrameCodec::new(cfg.max_frame_bytes, cfg.max_frame_bytes),
        FrameCodec::new(queries.max_query_bytes, queries.max_answer_bytes),
    );
    // No libp2p message signing: every envelope carries its issuer's
    // signature, which each node verifies before accepting or forwarding,
    // and the forwarding peer is authenticated by the transport. A second
    // (libp2p) signature would be checked on every received copy, before
    // de-duplication: a SHA-512 over 24 KiB and an Ed25519 verification
    // per copy, the largest single cost of a flood at the receivers.
    let gossip_cfg = gossipsub::ConfigBuilder::default()
        .validation_mode(gossipsub::ValidationMode::Anonymous)
        .validate_messages()
        .message_id_fn(message_id)
        .max_transmit_size(cfg.max_gossip_bytes + 1024)
        .heartbeat_interval(Duration::from_millis(500))
        .duplicate_cache_time(Duration::from_secs(600))
        .mesh_n_low(2)
        .mesh_n(4)
        .mesh_n_high(8)
        .mesh_outbound_min(1)
        // Per peer, gossipsub allocates a bounded queue of half this many
        // outgoing messages up front (default 5000: ~0.6 MB per peer, 6.6 GB
        // for a 100-node drill in one process). Alerts are few and rate
        // limited; a message dropped on a full queue is healed by catch-up.
        .connection_handler_queue_len(256)
        .build()
        .map_err(|e| NetError::Gossip(e.to_string()))?;
    let mut gossip = gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, gossip_cfg)
        .map_err(|e| NetError::Gossip(e.to_string()))?
        .with_metrics(metrics.sub_registry_with_prefix("gossipsub"), Default::default());
    let topic = gossipsub::IdentTopic::new(ALERT_TOPIC);
    let (params, thresholds) = score::peer_score(&topic);
    gossip.with_peer_score(params, thresholds).map_err(NetError::Gossip)?;
    gossip.subscribe(&topic).map_err(|e| NetError::Gossip(e.to_string()))?;
    let limits = connection_limits::ConnectionLimits::default()
        .with_max_established_per_peer(Some(cfg.max_connections_per_peer))
        .with_max_pending_incoming(Some(256))
        .with_max_established(Some(4096));
    Ok(Behaviour {
        pending: pending::PendingPerIp::new(cfg.max_pending_per_ip),
        allow: Default::default(),
        block: Default::default(),
        #[cfg(feature = "drill")]
        cut: Default::default(),
        #[cfg(not(feature = "drill"))]
        cut: libp2p::swarm::dummy::Behaviour,
        limits: connection_limits::Behaviour::new(limits),
        gossip,
        req: request_response::Behaviour::with_codec(
            req_codec,
            [(PROTOCOL, ProtocolSupport::Full)],
            request_response::Config::default()
                .with_request_timeout(cfg.request_timeout)
                .with_max_concurrent_streams(64),
        ),
        identify: request_response::Behaviour::with_codec(
            identify_codec,
            [(IDENTIFY_PROTOCOL, ProtocolSupport::Full)],
            request_response::Config::default().with_request_timeout(queries.timeout).with_max_concurrent_streams(8),
        ),
    })
}

/// A swarm over TCP + Noise + Yamux, and over libp2p's in-memory
/// transport (`/memory/N` addresses) for nodes in one process.
pub(crate) fn tcp_swarm(
    key: identity::Keypair,
    cfg: &NetworkConfig,
    queries: &QueryPolicy,
    #[cfg(feature = "drill")] (tap, latency): (Option<Tap>, Duration),
    metrics: &mut prometheus_client::registry::Registry,
) -> Result<Swarm<Behaviour>, NetError> {
    #[cfg(feature = "drill")]
    let b = behaviour(metrics, cfg, queries, tap)?;
    #[cfg(not(feature = "drill"))]
    let b = behaviour(metrics, cfg, queries)?;
    Ok(libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
        .map_err(|e| NetError::Transport(e.to_string()))?
        .with_other_transport(|key| {
            use libp2p::core::{transport::MemoryTransport, upgrade, Transport};
            let noise = noise::Config::new(key).map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
            let memory = MemoryTransport::default();
            // Drills may simulate one-way latency on every in-memory link.
            #[cfg(feature = "drill")]
            let memory = memory.map(move |chan, _| latency::Delayed::new(chan, latency));
            Ok(memory.upgrade(upgrade::Version::V1).authenticate(noise).multiplex(yamux::Config::default()))
        })
        .map_err(|e| NetError::Transport(e.to_string()))?
        .with_behaviour(|_| b)
        .map_err(|e| NetError::Transport(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(24 * 3600)))
        // Noise and Yamux within this, or the connection is dropped (the
        // default 10 s let idle sockets hold handshake slots).
        .with_connection_timeout(cfg.handshake_timeout)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_ids_and_orgs_map_both_ways_without_decoding_keys() {
        for seed in [[1u8; 32], [7u8; 32], [200u8; 32]] {
            let key = keypair(&seed).unwrap();
            let pk = key.public().try_into_ed25519().unwrap();
            let org = OrgId(pk.to_bytes());
            // The fast paths agree with libp2p's own derivation.
            assert_eq!(peer_id(&org).unwrap(), key.public().to_peer_id());
            assert_eq!(org_of(&key.public().to_peer_id()), Some(org));
        }
        // Not an ed25519 identity PeerId: no organisation.
        assert_eq!(org_of(&PeerId::random()), None);
    }
}

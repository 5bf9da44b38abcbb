//! Hooks for drills and tests, compiled only with the cargo feature
//! `drill` (the test kit and the drill harness turn it on; a release
//! daemon has none of them): a wire tap, simulated latency and partitions,
//! crashes, a full disk, raw frames a malicious member would send, and
//! low-priority nodes for a drill's attackers.

use super::{heavy, Command, NodeError, NodeHandle, Reply, Runtime};
use crate::net::{self, Tap, ALERT_TOPIC};
use libp2p::gossipsub;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use vigil_protocol::OrgId;

/// What a drill or test changes about a node.
#[derive(Clone, Default)]
pub struct DrillHooks {
    /// Sees every payload this node sends (protocol, bytes).
    pub tap: Option<Tap>,
    /// Simulated one-way latency on in-memory links.
    pub memory_latency: Duration,
    /// Runs the event loop (and the connections it spawns) on a thread of
    /// its own at the lowest CPU priority instead of the caller's tokio
    /// runtime, and its blocking work on a low-priority pool of its own:
    /// a drill's simulated attacker, whose work in a deployment runs on its
    /// own machine, must not take the shared cores from the members whose
    /// latency the drill measures.
    pub low_priority: bool,
}

impl std::fmt::Debug for DrillHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DrillHooks")
            .field("tap", &self.tap.is_some())
            .field("memory_latency", &self.memory_latency)
            .field("low_priority", &self.low_priority)
            .finish()
    }
}

pub(super) enum DrillCommand {
    RawPublish(Vec<u8>, Reply<()>),
    RawRequest(OrgId, Vec<u8>, Reply<()>),
    Cut(Vec<OrgId>, Reply<()>),
    Crash(oneshot::Sender<()>),
    FillDisk(usize, Reply<()>),
}

impl NodeHandle {
    /// After `commits` more durable commits, every write of this node fails
    /// as on a full disk (ENOSPC).
    pub async fn fill_disk_after(&self, commits: usize) -> Result<(), NodeError> {
        self.ask(|tx| Command::Drill(DrillCommand::FillDisk(commits, tx))).await
    }
    /// Publishes pre-encoded bytes on the alert topic.
    pub async fn raw_publish(&self, bytes: Vec<u8>) -> Result<(), NodeError> {
        self.ask(|tx| Command::Drill(DrillCommand::RawPublish(bytes, tx))).await
    }
    /// Sends a pre-encoded request frame to `to`.
    pub async fn raw_request(&self, to: OrgId, bytes: Vec<u8>) -> Result<(), NodeError> {
        self.ask(|tx| Command::Drill(DrillCommand::RawRequest(to, bytes, tx))).await
    }
    /// A simulated partition. This node can no longer reach `peers`
    /// (connections closed, dials refused) until the next call replaces the
    /// set; an empty set heals.
    pub async fn cut(&self, peers: Vec<OrgId>) -> Result<(), NodeError> {
        self.ask(|tx| Command::Drill(DrillCommand::Cut(peers, tx))).await
    }
    /// Stops the event loop at once, as a crash would: no final flush, no
    /// `node stopped` audit entry; work in flight is lost.
    pub async fn crash(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Drill(DrillCommand::Crash(tx))).await.is_ok() {
            let _ = rx.await;
        }
    }
}

impl Runtime {
    pub(super) fn on_drill_command(&mut self, cmd: DrillCommand) {
        match cmd {
            DrillCommand::Cut(peers, reply) => {
                let cut = &mut self.swarm.behaviour_mut().cut;
                for p in cut.blocked_peers().clone() {
                    cut.unblock_peer(p);
                }
                peers.iter().filter_map(|o| net::peer_id(o).ok()).for_each(|p| {
                    cut.block_peer(p);
                });
                let _ = reply.send(Ok(()));
            }
            DrillCommand::RawPublish(bytes, reply) => {
                self.tap("gossip", &bytes);
                let topic = gossipsub::IdentTopic::new(ALERT_TOPIC);
                let r = self
                    .swarm
                    .behaviour_mut()
                    .gossip
                    .publish(topic, bytes)
                    .map(|_| ())
                    .map_err(|e| NodeError::Publish(e.to_string()));
                let _ = reply.send(r);
            }
            DrillCommand::RawRequest(to, bytes, reply) => {
                self.send_request(to, bytes, None);
                let _ = reply.send(Ok(()));
            }
            DrillCommand::FillDisk(commits, reply) => {
                self.store.fill_disk_after(commits);
                let _ = reply.send(Ok(()));
            }
            DrillCommand::Crash(_) => unreachable!("handled in the loop"),
        }
    }

    /// Whether a drill cut this node off from `peer`.
    pub(super) fn is_cut(&self, peer: &libp2p::PeerId) -> bool {
        self.swarm.behaviour().cut.blocked_peers().contains(peer)
    }

    pub(super) fn tap(&self, proto: &str, bytes: &[u8]) {
        if let Some(tap) = &self.hooks.tap {
            tap(proto, bytes);
        }
    }

    /// Runs the event loop on a low-priority thread of its own, with a
    /// low-priority pool for its blocking work (`DrillHooks::low_priority`).
    pub(super) fn spawn_low_priority(
        mut self,
        rx: tokio::sync::mpsc::Receiver<Command>,
        jobs: tokio::sync::mpsc::Receiver<super::identify::JobDone>,
    ) -> Result<(), NodeError> {
        // Its connections' tasks are spawned where the swarm is polled, so
        // they run on this thread too, and its blocking work's parallel
        // loops run on the pool.
        let pool =
            heavy::low_priority_pool("vigil-low-pool").map_err(|e| NodeError::Thread(std::io::Error::other(e)))?;
        self.low_pool = Some(Arc::new(pool));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        std::thread::Builder::new().name(format!("vigil-low-{}", self.name)).spawn(move || {
            heavy::lowest_priority();
            runtime.block_on(self.run(rx, jobs));
        })?;
        Ok(())
    }
}

//! The runtime's upkeep: resending what waits in the outbox on each peer's
//! retry schedule, passing a newer roster on, purging records past their
//! retention date, and compacting the store after erasure.

use super::{net, now_ms, NodeError, Runtime};
use vigil_engine::audit::AuditEvent;
use vigil_engine::model::{StoreOp, StoredBlock};
use vigil_protocol::{encode, OrgId, Tag};

impl Runtime {
    /// Resends what waits for connected peers, on each one's retry
    /// schedule, and gives up on what waited past `network.outbox_ttl`.
    pub(super) fn resend_hits(&mut self) {
        let now = now_ms();
        let ttl = self.config.network.outbox_ttl.as_millis() as u64;
        let expired = self.engine.expire_outbox(now, ttl);
        let connected: std::collections::HashSet<OrgId> =
            self.swarm.connected_peers().filter_map(net::org_of).collect();
        let fetches = self.engine.pending_fetches(|o| connected.contains(o));
        if let Err(e) = self.apply([expired, fetches].concat()) {
            tracing::error!(org = %self.name, "cannot update the outbox: {e}");
        }
        for (to, key, _) in self.engine.outbox_entries() {
            if !connected.contains(&to) || self.in_flight.contains(&key) || !self.retry.due(key, now) {
                continue;
            }
            let Some(request) = self.engine.outbox_request(&key) else { continue };
            if let Ok(frame) = encode(Tag::Request, &request, self.config.network.max_frame_bytes) {
                self.send_request(to, frame, Some(key));
            }
        }
    }

    /// A newer roster was applied: members removed from it are cut off now,
    /// and every connected member hears of it (flooding).
    pub(super) fn roster_changed(&mut self) -> Result<(), NodeError> {
        self.sync_allow_list();
        self.redial(false);
        self.sync_with_connected()
    }

    /// Starts a log exchange with every connected member.
    pub(super) fn sync_with_connected(&mut self) -> Result<(), NodeError> {
        let peers: Vec<OrgId> = self.swarm.connected_peers().filter_map(net::org_of).collect();
        for p in peers {
            let actions = self.engine.sync_start(p);
            self.apply(actions)?;
        }
        Ok(())
    }

    /// Audits the connections refused in the last interval, as one entry,
    /// and console logins under unknown names not yet audited, without a
    /// flush of its own (nobody was promised it).
    pub(super) fn audit_refusals(&mut self) -> Result<(), NodeError> {
        let now = now_ms();
        let mut actions = self.engine.aggregates_due(now);
        actions.extend(self.operators.unknown_logins_due(now));
        self.apply_with(actions, true)
    }

    /// Blocks `org` for `network.block_for`, on disk before it takes effect.
    pub(super) fn block(&mut self, org: OrgId) -> Result<(), NodeError> {
        let at_ms = now_ms();
        let until_ms = at_ms.saturating_add(self.config.network.block_for.as_millis() as u64);
        self.commit(&[StoreOp::PutBlock(StoredBlock { peer: org, at_ms, until_ms })], vec![])?;
        self.blocked.insert(org, until_ms);
        if let Ok(p) = net::peer_id(&org) {
            tracing::warn!(org = %self.name, peer = %p, "blocking peer after repeated violations");
            self.metrics.blocked.inc();
            self.swarm.behaviour_mut().block.block_peer(p);
        }
        Ok(())
    }

    /// At start: the blocks still in force apply again (expired ones go),
    /// and answer budgets spent in the last day count again.
    pub(super) fn restore_blocks(&mut self) -> Result<(), NodeError> {
        let now = now_ms();
        // Answer budgets too: a restart must not give a member a fresh day.
        for b in self.store.budgets()? {
            self.engine.restore_budget(now, b);
        }
        for b in self.store.blocks()? {
            if b.until_ms <= now {
                self.commit(&[StoreOp::DeleteBlock(b.peer)], vec![])?;
                continue;
            }
            self.blocked.insert(b.peer, b.until_ms);
            self.engine.keep_blocked(b.peer);
            if let Ok(p) = net::peer_id(&b.peer) {
                self.swarm.behaviour_mut().block.block_peer(p);
            }
        }
        Ok(())
    }

    /// Lifts the blocks whose time is up (the peer starts from no strikes).
    pub(super) fn expire_blocks(&mut self) -> Result<(), NodeError> {
        let now = now_ms();
        let ended: Vec<OrgId> = self.blocked.iter().filter(|(_, until)| **until <= now).map(|(o, _)| *o).collect();
        for org in ended {
            self.commit(&[StoreOp::DeleteBlock(org)], vec![AuditEvent::PeerUnblocked { peer: org }])?;
            self.blocked.remove(&org);
            self.engine.forgive(&org);
            if let Ok(p) = net::peer_id(&org) {
                self.swarm.behaviour_mut().block.unblock_peer(p);
            }
        }
        Ok(())
    }

    /// Answers encrypted alerts refused for a spent budget, where the
    /// issuer's budget allows again.
    pub(super) fn retry_deferred_alerts(&mut self) -> Result<(), NodeError> {
        let actions = self.engine.retry_deferred_alerts(now_ms());
        self.apply(actions)
    }

    /// Catches up again with connected peers whose catch-up failed.
    pub(super) fn retry_sync(&mut self) -> Result<(), NodeError> {
        for p in self.engine.take_sync_retries() {
            let connected = net::peer_id(&p).is_ok_and(|id| self.swarm.is_connected(&id));
            if connected {
                let actions = self.engine.sync_start(p);
                self.apply(actions)?;
            }
        }
        Ok(())
    }

    /// Erases records past their retention date, purges the payloads of
    /// closed alerts and old query hits, then compacts the store.
    pub(super) fn purge(&mut self) -> Result<(), NodeError> {
        let now = now_ms();
        let mut actions = self.engine.purge_expired(now);
        actions.extend(self.engine.purge_closed_alerts(now));
        actions.extend(self.engine.purge_old_query_hits(now));
        if actions.is_empty() {
            return Ok(());
        }
        self.apply(actions)?;
        self.compact_store()
    }

    /// Rewrites the store so erased values leave the files.
    pub(super) fn compact_store(&mut self) -> Result<(), NodeError> {
        let placeholder = self.store.placeholder()?;
        let store = std::mem::replace(&mut self.store, placeholder);
        match store.compact() {
            Ok((store, failed)) => {
                self.store = store;
                failed.map_or(Ok(()), |e| Err(e.into()))
            }
            Err(e) => {
                // Never go on writing to the placeholder: reopen the real
                // store, or stop the node.
                match self.store.reopen() {
                    Ok(store) => self.store = store,
                    Err(again) => {
                        panic!("store unusable after a failed compaction ({e}), and it does not reopen: {again}")
                    }
                }
                Err(e.into())
            }
        }
    }
}

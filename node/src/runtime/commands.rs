//! The runtime's answers to its handle: every `NodeHandle` call arrives
//! here as a `Command` on the event loop, goes to the engine, and is
//! answered on its reply channel once what it wrote is durable.

use super::*;

impl Runtime {
    pub(super) fn on_command(&mut self, cmd: Command) {
        let now = now_ms();
        let gossip_max = self.config.network.max_gossip_bytes;
        match cmd {
            Command::Enrol(e, reply) => {
                let r = self.engine.enrol(now, *e);
                let _ = reply.send(self.durable(r));
            }
            Command::EnrolMany(batch, reply) => {
                let _ = reply.send(self.enrol_many(now, batch));
            }
            Command::Publish { template, pad, category, case_ref, expires_at_ms, reply } => {
                let capture = vigil_engine::Capture { template: &template, pad: pad.as_deref() };
                let r = self.engine.publish_alert(now, capture, category, case_ref, expires_at_ms, gossip_max);
                let _ = reply.send(self.durable(r));
            }
            Command::Withdraw(id, reply) => {
                let r = self.engine.withdraw_alert(now, id, gossip_max).map(|a| ((), a));
                let _ = reply.send(self.durable(r));
            }
            Command::ApplyRoster(roster, reply) => {
                let _ = reply.send(self.apply_roster(now, *roster));
            }
            Command::ApplyPolicy(policy, reply) => {
                let _ = reply.send(self.apply_policy(*policy));
            }
            Command::Policy(reply) => {
                let view = crate::views::PolicyView {
                    policy: self.engine.biometric(),
                    signed: self.engine.signed_policy().cloned(),
                };
                let _ = reply.send(Ok(view));
            }
            Command::Alerts(reply) => {
                let members = self.engine.own_alert_members();
                let mut v: Vec<AlertView> = self
                    .engine
                    .alerts()
                    .map(|a| {
                        let mut view = AlertView::from(a);
                        view.members = members.get(&a.id).map(|m| MemberCounts::of(m));
                        view
                    })
                    .collect();
                v.sort_by_key(|a| (a.created_at_ms, a.seq));
                let _ = reply.send(Ok(v));
            }
            Command::AlertMembers(id, reply) => {
                let _ = reply.send(self.engine.alert_members(&id).map_err(NodeError::from));
            }
            Command::Erase { record, reason, reply } => {
                let r = self.engine.erase(record, &reason).map(|a| ((), a));
                let _ = reply.send(self.durable(r).and_then(|_| self.compact_store()));
            }
            Command::Backup { name, reply } => {
                let _ = reply.send(self.backup(&name));
            }
            Command::Records(reply) => {
                let policy = self.engine.biometric();
                let view = |r: &vigil_engine::model::StoredRecord| RecordView::under(r, &policy);
                let r = self.store.records().map(|v| v.iter().map(view).collect());
                let _ = reply.send(r.map_err(NodeError::from));
            }
            Command::Hits(reply) => {
                let mut v: Vec<StoredHit> = self.engine.hits().cloned().collect();
                v.sort_by_key(|h| h.at_ms);
                let _ = reply.send(Ok(v));
            }
            Command::HitViews(reply) => {
                let _ = reply.send(self.hit_views());
            }
            Command::AuditVerify(reply) => {
                // Off the event loop: a read snapshot, entry by entry, while
                // the node goes on serving (258,902 entries took 12.4 s on it).
                let reader = self.store.audit_reader();
                tokio::task::spawn_blocking(move || {
                    let _ = reply.send(Ok(reader.verify()));
                });
            }
            Command::AuditReader(reply) => {
                let _ = reply.send(Ok(self.store.audit_reader()));
            }
            Command::AuditExport(reply) => {
                let _ = reply.send(self.store.audit_entries().map_err(NodeError::from));
            }
            Command::Status(reply) => {
                let _ = reply.send(Ok(self.status()));
            }
            Command::Identify { template, pad, purpose, legal_basis, case, reply } => {
                self.start_identify(*template, pad.map(|p| *p), (purpose, legal_basis), case, reply)
            }
            Command::RequestDisclosure { hit, reason, reply } => {
                let r = self.engine.request_disclosure(now, hit, reason);
                let _ = reply.send(self.durable(r));
            }
            Command::DecideDisclosure { id, contact, reply } => {
                let by = self.actor.clone();
                let r = self.engine.decide_disclosure(now, id, contact, by.as_deref(), self.four_eyes).map(|a| ((), a));
                let _ = reply.send(self.durable(r));
            }
            Command::Disclosures(reply) => {
                let mut v: Vec<_> = self.engine.disclosures().cloned().collect();
                v.sort_by_key(|d| d.requested_at_ms);
                let _ = reply.send(Ok(v));
            }
            Command::RotateProberKey(reply) => {
                let (id, actions) = self.engine.rotate_prober_key();
                let _ = reply.send(self.apply(actions).map(|_| id));
            }
            Command::Operator(cmd) => self.on_operator_command(cmd),
            Command::Roster(reply) => {
                let _ = reply.send(Ok(self.engine.roster().map(|r| r.signed.clone())));
            }
            Command::As(operator, cmd) => {
                self.actor = Some(operator);
                self.on_command(*cmd);
                self.actor = None;
            }
            #[cfg(feature = "drill")]
            Command::Drill(cmd) => self.on_drill_command(cmd),
            Command::Shutdown(_) => unreachable!("handled in the loop"),
        }
    }

    /// An engine decision made durable: its actions applied, then its value.
    fn durable<T>(&mut self, decided: Result<(T, Vec<Action>), EngineError>) -> Result<T, NodeError> {
        let (value, actions) = decided.map_err(|e| self.refused(e))?;
        self.apply(actions)?;
        Ok(value)
    }

    /// Hits, oldest first, each with its side's liveness: the records of
    /// holder hits are read from the store (only those), alerts from memory.
    fn hit_views(&self) -> Result<Vec<crate::views::HitView>, NodeError> {
        use vigil_engine::model::HitRole;
        let mut hits: Vec<StoredHit> = self.engine.hits().cloned().collect();
        hits.sort_by_key(|h| h.at_ms);
        let ids: Vec<u64> = hits.iter().filter(|h| h.role == HitRole::Holder).filter_map(|h| h.record).collect();
        let records: HashMap<u64, Option<String>> = self
            .store
            .records_by_id(&ids)?
            .iter()
            .map(|r| (r.id, r.pad.as_ref().map(crate::views::liveness_of)))
            .collect();
        let alerts: HashMap<AlertId, Option<String>> = self
            .engine
            .alerts()
            .filter(|a| a.pad.is_some())
            .map(|a| (a.id, a.pad.as_ref().map(crate::views::liveness_of)))
            .collect();
        let liveness = |h: &StoredHit| match h.role {
            HitRole::Holder => h.record.and_then(|r| records.get(&r).cloned().flatten()),
            HitRole::Issuer => h.source.alert().and_then(|a| alerts.get(&a).cloned().flatten()),
            HitRole::Prober => None,
        };
        Ok(hits.into_iter().map(|hit| crate::views::HitView { liveness: liveness(&hit), hit }).collect())
    }

    /// An engine refusal as the caller hears it, audited first where the
    /// engine keeps a trace of such refusals (a failed PAD attestation).
    pub(super) fn refused(&mut self, e: EngineError) -> NodeError {
        if let Some(event) = vigil_engine::refusal_event(&e) {
            if let Err(failed) = self.audit(event) {
                return failed.into();
            }
        }
        NodeError::from(e)
    }

    /// A backup named `name` in the backups directory, audited.
    fn backup(&mut self, name: &str) -> Result<(std::path::PathBuf, u64), NodeError> {
        let failed = |e: crate::backup::BackupError| NodeError::Backup(e.to_string());
        let out = crate::backup::named(self.store.dir(), name).map_err(failed)?;
        let bytes = crate::backup::write(&self.store, &out).map_err(failed)?;
        self.audit(AuditEvent::BackupWritten { path: out.display().to_string() })?;
        Ok((out, bytes))
    }

    /// Group commit: the enrolments waiting in the queue (up to
    /// `ENROL_GROUP`) are decided one by one and made durable with one
    /// commit, then each caller hears of its own; nothing is acknowledged
    /// before the commit. Returns a command of another kind drawn while
    /// gathering, to be handled next (order is kept).
    pub(super) fn enrol_group(
        &mut self,
        first: (Box<Enrolment>, Reply<u64>),
        rx: &mut tokio::sync::mpsc::Receiver<Command>,
    ) -> Option<Command> {
        const ENROL_GROUP: usize = 64;
        let mut group = vec![first];
        let mut held = None;
        while group.len() < ENROL_GROUP {
            match rx.try_recv() {
                Ok(Command::Enrol(e, reply)) => group.push((e, reply)),
                Ok(other) => {
                    held = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        let now = now_ms();
        let (mut actions, mut decided) = (Vec::new(), Vec::with_capacity(group.len()));
        for (e, reply) in group {
            match self.engine.enrol(now, *e) {
                Ok((id, a)) => {
                    actions.extend(a);
                    decided.push((reply, Ok(id)));
                }
                Err(e) => {
                    let e = self.refused(e);
                    decided.push((reply, Err(e)));
                }
            }
        }
        let mut failed = self.apply(actions).err();
        for (reply, r) in decided {
            // A failed commit stops the node: the first caller hears why,
            // the others that it stopped; none is told its record is kept.
            let r = match (r, &mut failed) {
                (Ok(_), Some(_)) => Err(failed.take().unwrap_or(NodeError::Stopped)),
                (Ok(_), None) if self.halted.is_some() => Err(NodeError::Stopped),
                (r, _) => r,
            };
            let _ = reply.send(r);
        }
        held
    }

    /// A batch enrolled with one durable commit (drills, gallery imports).
    /// Stops at the first refusal; what was enrolled before it is made
    /// durable either way, and the error names the refusal.
    fn enrol_many(&mut self, now: u64, batch: Vec<Enrolment>) -> Result<Vec<u64>, NodeError> {
        let (mut ids, mut actions, mut failed) = (Vec::with_capacity(batch.len()), Vec::new(), None);
        for e in batch {
            match self.engine.enrol(now, e) {
                Ok((id, a)) => {
                    ids.push(id);
                    actions.extend(a);
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        self.apply(actions)?;
        match failed {
            Some(e) => Err(self.refused(e)),
            None => Ok(ids),
        }
    }

    /// A newer roster from the operator: applied and passed on, or refused
    /// (audited) with the reason.
    fn apply_roster(&mut self, now: u64, roster: SignedRoster) -> Result<u64, NodeError> {
        let version = roster.body.version;
        match self.engine.apply_roster(now, roster) {
            Ok(actions) => {
                self.apply(actions)?;
                self.roster_changed()?;
                Ok(version)
            }
            Err(e) => {
                let _ = self.audit(AuditEvent::RosterRefused { reason: e.to_string() });
                Err(e.into())
            }
        }
    }

    /// A newer biometric policy from the operator: applied, or refused
    /// (audited) with the reason.
    fn apply_policy(&mut self, policy: vigil_protocol::SignedPolicy) -> Result<u64, NodeError> {
        let version = policy.version();
        match self.engine.apply_policy(policy) {
            Ok(actions) => {
                self.apply(actions)?;
                // Passed on at once to every connected member.
                self.sync_with_connected()?;
                Ok(version)
            }
            Err(e) => {
                let _ = self.audit(AuditEvent::PolicyRefused { reason: e.to_string() });
                Err(e.into())
            }
        }
    }

    fn status(&self) -> Status {
        let roster = self.engine.roster();
        Status {
            org: self.engine.org(),
            name: self.name.clone(),
            peer_id: self.swarm.local_peer_id().to_string(),
            listen: self.listen.iter().map(|a| a.to_string()).collect(),
            connected: self.swarm.connected_peers().filter_map(net::org_of).collect(),
            roster_version: roster.map(|r| r.body().version),
            members: roster.map(|r| r.body().members.len()).unwrap_or(0),
            gallery: self.engine.gallery_len(),
            alerts: self.engine.alerts().count(),
            hits: self.engine.hits().count(),
            outbox: self.engine.outbox_entries().len(),
            blocked: {
                let mut b: Vec<(OrgId, u64)> = self.blocked.iter().map(|(o, u)| (*o, *u)).collect();
                b.sort();
                b
            },
            started_at_ms: self.started_at_ms,
            disconnected_at: {
                let connected: std::collections::HashSet<OrgId> =
                    self.swarm.connected_peers().filter_map(net::org_of).collect();
                let mut d: Vec<(OrgId, u64)> = self
                    .disconnected_at
                    .iter()
                    .filter(|(o, _)| !connected.contains(o))
                    .map(|(o, t)| (*o, *t))
                    .collect();
                d.sort();
                d
            },
        }
    }
}

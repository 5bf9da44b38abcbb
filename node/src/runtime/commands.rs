//! The runtime's answers to its handle: every `NodeHandle` call arrives
//! here as a `Command` on the event loop and is answered on its reply channel.

use super::*;

impl Runtime {
    pub(super) fn on_command(&mut self, cmd: Command) {
        let now = now_ms();
        let gossip_max = self.config.network.max_gossip_bytes;
        match cmd {
            Command::Enrol(e, reply) => {
                let r = self.engine.enrol(now, *e).map_err(NodeError::from).and_then(|(id, actions)| {
                    self.apply(actions)?;
                    Ok(id)
                });
                let _ = reply.send(r);
            }
            Command::EnrolMany(batch, reply) => {
                // One durable commit for the whole batch (drills, gallery imports).
                let mut ids = Vec::with_capacity(batch.len());
                let mut actions = Vec::new();
                let mut failed = None;
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
                // What was enrolled is made durable either way; the error names the first refusal.
                let r = self.apply(actions).and_then(|_| failed.map_or(Ok(ids), |e| Err(e.into())));
                let _ = reply.send(r);
            }
            Command::Publish { template, category, case_ref, expires_at_ms, reply } => {
                let r = self
                    .engine
                    .publish_alert(now, &template, category, case_ref, expires_at_ms, gossip_max)
                    .map_err(NodeError::from)
                    .and_then(|(id, actions)| {
                        self.apply(actions)?;
                        Ok(id)
                    });
                let _ = reply.send(r);
            }
            Command::Withdraw(id, reply) => {
                let r = self
                    .engine
                    .withdraw_alert(now, id, gossip_max)
                    .map_err(NodeError::from)
                    .and_then(|a| self.apply(a));
                let _ = reply.send(r);
            }
            Command::ApplyRoster(roster, reply) => {
                let version = roster.body.version;
                let r = match self.engine.apply_roster(now, *roster) {
                    Ok(actions) => self.apply(actions).and_then(|_| self.roster_changed()).map(|_| version),
                    Err(e) => {
                        let _ = self.audit(AuditEvent::RosterRefused { reason: e.to_string() });
                        Err(e.into())
                    }
                };
                let _ = reply.send(r);
            }
            Command::Alerts(reply) => {
                let mut v: Vec<AlertView> = self.engine.alerts().map(AlertView::from).collect();
                v.sort_by_key(|a| (a.created_at_ms, a.seq));
                let _ = reply.send(Ok(v));
            }
            Command::Erase { record, reason, reply } => {
                let r = self.engine.erase(record, &reason).map_err(NodeError::from).and_then(|a| {
                    self.apply(a)?;
                    self.compact_store()
                });
                let _ = reply.send(r);
            }
            Command::Backup { out, reply } => {
                let r = self.store.backup(&out).map_err(|e| NodeError::Backup(e.to_string()));
                if r.is_ok() {
                    let _ = self.audit(AuditEvent::BackupWritten { path: out.display().to_string() });
                }
                let _ = reply.send(r);
            }
            Command::Records(reply) => {
                let r = self.store.records().map(|v| v.iter().map(RecordView::from).collect());
                let _ = reply.send(r.map_err(NodeError::from));
            }
            Command::Hits(reply) => {
                let mut v: Vec<StoredHit> = self.engine.hits().cloned().collect();
                v.sort_by_key(|h| h.at_ms);
                let _ = reply.send(Ok(v));
            }
            Command::AuditVerify(reply) => {
                let _ = reply.send(Ok(self.store.audit_verify()));
            }
            Command::AuditExport(reply) => {
                let _ = reply.send(self.store.audit_entries().map_err(NodeError::from));
            }
            Command::Status(reply) => {
                let roster = self.engine.roster();
                let s = Status {
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
                };
                let _ = reply.send(Ok(s));
            }
            Command::Identify { template, purpose, legal_basis, reply } => {
                self.start_identify(*template, purpose, legal_basis, reply)
            }
            Command::RequestDisclosure { hit, reason, reply } => {
                let r =
                    self.engine.request_disclosure(now, hit, reason).map_err(NodeError::from).and_then(|(id, a)| {
                        self.apply(a)?;
                        Ok(id)
                    });
                let _ = reply.send(r);
            }
            Command::DecideDisclosure { id, contact, reply } => {
                let r = self
                    .engine
                    .decide_disclosure(now, id, contact)
                    .map_err(NodeError::from)
                    .and_then(|a| self.apply(a));
                let _ = reply.send(r);
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
            #[cfg(feature = "drill")]
            Command::Drill(cmd) => self.on_drill_command(cmd),
            Command::Shutdown(_) => unreachable!("handled in the loop"),
        }
    }
}

//! Retention and erasure: records past their retention date are purged on
//! schedule, and an operator can erase one at any time (right to erasure);
//! withdrawn and expired alerts lose their payload on schedule (kept as
//! their signed header for their issuer's log).
//! Every reference to an erased record (holder hits, answer positions,
//! pending disclosures) is scrubbed, so no handle resolves to it any more;
//! the runtime then compacts the store so its sealed bytes leave the disk.

use super::{Action, Engine, EngineError};
use crate::audit::AuditEvent;
use crate::model::{AlertStatus, DisclosureStatus, HitSource, StoreOp};
use std::collections::{HashMap, HashSet};
use vigil_protocol::{AlertId, Handle};

impl Engine {
    /// Erases record `id`; `reason` is audited.
    pub fn erase(&mut self, id: u64, reason: &str) -> Result<Vec<Action>, EngineError> {
        let g = self.gallery.remove(&id).ok_or(EngineError::UnknownRecord(id))?;
        self.layouts.remove(g.extractor);
        self.matched.retain(|(_, r)| *r != id);
        let mut actions = vec![Action::Store(StoreOp::DeleteRecord(id))];
        for h in self.hits.values_mut().filter(|h| h.record == Some(id)) {
            h.record = None;
            actions.push(Action::Store(StoreOp::PutHit(h.clone())));
        }
        for a in self.answers.values_mut().filter(|a| a.records.contains(&id)) {
            a.records.iter_mut().filter(|r| **r == id).for_each(|r| *r = 0);
            actions.push(Action::Store(StoreOp::PutAnswer(Box::new(a.clone()))));
        }
        for d in self.disclosures.values_mut().filter(|d| d.record == Some(id)) {
            d.record = None;
            actions.push(Action::Store(StoreOp::PutDisclosure(Box::new(d.clone()))));
        }
        // Identification answers remembered for disclosure no longer resolve to it.
        self.answered.clear();
        actions.push(Action::Audit(AuditEvent::RecordErased { record: id, reason: reason.into() }));
        Ok(actions)
    }

    /// Purges the payload (protected template, encrypted probe, the
    /// issuer's quantised probe) of every alert withdrawn or expired more
    /// than `alerts.purge_closed_after` ago. The alert stays as its header
    /// and signature (`AlertStatus::Purged`), which catch-up serves as a
    /// pruned entry. Audited per alert.
    pub fn purge_closed_alerts(&mut self, now_ms: u64) -> Vec<Action> {
        let grace = self.policy.purge_closed_after.as_millis() as u64;
        let mut actions = Vec::new();
        let mut purged: HashMap<AlertId, (&'static str, usize)> = HashMap::new();
        for a in self.alerts.values_mut() {
            let reason = match (&a.status, &a.withdrawal) {
                (AlertStatus::Purged { .. }, _) => continue,
                (_, Some(w)) if w.body.withdrawn_at_ms.saturating_add(grace) <= now_ms => "withdrawn",
                _ if a.alert.body.expires_at_ms.saturating_add(grace) <= now_ms => "expired",
                _ => continue,
            };
            a.status = AlertStatus::Purged { payload: vigil_crypto::payload_hash(&a.alert.body) };
            a.alert.body.probe = None;
            a.alert.body.encrypted = None;
            a.probe_vector = None;
            a.pad = None;
            actions.push(Action::Store(StoreOp::PutAlert(Box::new(a.clone()))));
            purged.insert(a.id, (reason, 0));
        }
        if purged.is_empty() {
            return actions;
        }
        // Their hits go too (one pass), unless a disclosure of one is still undecided.
        let open = self.undecided_disclosure_hits();
        let gone: Vec<(Handle, AlertId)> = self
            .hits
            .values()
            .filter_map(|h| match h.source {
                HitSource::Alert(x) | HitSource::EncryptedAlert { alert: x, .. }
                    if purged.contains_key(&x) && !open.contains(&h.handle) =>
                {
                    Some((h.handle, x))
                }
                _ => None,
            })
            .collect();
        for (h, alert) in gone {
            self.hits.remove(&h);
            actions.push(Action::Store(StoreOp::DeleteHit(h)));
            purged.get_mut(&alert).expect("purged above").1 += 1;
        }
        // A holder's answer pages to them (what maps a hit to a record) and
        // its note of the records it answered for them: a disclosure already
        // requested holds its record; a later one finds no hit, as at the
        // issuer, whose hits went above.
        let answers: Vec<Handle> =
            self.answers.values().filter(|a| purged.contains_key(&a.alert)).map(|a| a.id).collect();
        for id in answers {
            self.answers.remove(&id);
            actions.push(Action::Store(StoreOp::DeleteAnswer(id)));
        }
        for alert in purged.keys() {
            self.answered_alerts.forget(alert);
            self.deferred.remove(alert);
        }
        // What members said about them (refusals, page counts).
        let receipts: Vec<Handle> =
            self.receipts.iter().filter(|(_, r)| purged.contains_key(&r.alert)).map(|(k, _)| *k).collect();
        for key in receipts {
            self.receipts.remove(&key);
            actions.push(Action::Store(StoreOp::DeleteReceipt(key)));
        }
        let mut events: Vec<(AlertId, (&str, usize))> = purged.into_iter().collect();
        events.sort_by_key(|(id, _)| id.0);
        actions.extend(events.into_iter().map(|(alert, (reason, hits))| {
            Action::Audit(AuditEvent::AlertPurged { alert, reason: reason.into(), hits })
        }));
        actions
    }

    /// Purges the prober's hits of queries older than `queries.keep_hits`,
    /// unless a disclosure of one is still undecided. Audited per query.
    pub fn purge_old_query_hits(&mut self, now_ms: u64) -> Vec<Action> {
        let keep = self.queries.keep_hits.as_millis() as u64;
        let open = self.undecided_disclosure_hits();
        let old: Vec<(Handle, Handle)> = self
            .hits
            .values()
            .filter_map(|h| match h.source {
                HitSource::Query(q) if h.at_ms.saturating_add(keep) <= now_ms && !open.contains(&h.handle) => {
                    Some((h.handle, q))
                }
                _ => None,
            })
            .collect();
        let mut per_query: std::collections::BTreeMap<Handle, usize> = Default::default();
        let mut actions = Vec::new();
        for (h, q) in old {
            self.hits.remove(&h);
            actions.push(Action::Store(StoreOp::DeleteHit(h)));
            *per_query.entry(q).or_default() += 1;
        }
        actions.extend(
            per_query.into_iter().map(|(query, hits)| Action::Audit(AuditEvent::QueryHitsPurged { query, hits })),
        );
        actions
    }

    fn undecided_disclosure_hits(&self) -> HashSet<Handle> {
        self.disclosures
            .values()
            .filter(|d| matches!(d.status, DisclosureStatus::Pending | DisclosureStatus::Requested))
            .map(|d| d.hit)
            .collect()
    }

    /// Erases every record whose retention date has passed.
    pub fn purge_expired(&mut self, now_ms: u64) -> Vec<Action> {
        let due: Vec<u64> =
            self.gallery.iter().filter(|(_, g)| g.retain_until_ms <= now_ms).map(|(id, _)| *id).collect();
        due.into_iter().flat_map(|id| self.erase(id, "retention date passed").unwrap_or_default()).collect()
    }
}

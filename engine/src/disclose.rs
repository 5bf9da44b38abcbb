//! Disclosure after a hit (human in the loop, as Prüm's follow-up step):
//! the requester names a hit handle and a reason; the holder resolves the
//! handle to its record and waits for a person to approve or refuse (two
//! people under the four-eyes rule); only an approval sends the case
//! contact back. Every step is audited at both ends, and messages are
//! resent until acknowledged.

use super::identify::{handle_position, query_handle};
use super::{Action, Engine, EngineError};
use crate::audit::AuditEvent;
use crate::model::{DisclosureRole, DisclosureStatus, FirstApproval, HitRole, HitSource, StoreOp, StoredDisclosure};
use vigil_matcher::encrypted::{answer_order, row_order};
use vigil_protocol::{DisclosureAnswer, DisclosureRequest, Handle, OrgId, Refusal, Request, Response};

/// Disclosure requests a holder takes from one member for one query or
/// alert answer (or one hit notice): as many as hits it may report there
/// (`MAX_NOTICES_PER_HOLDER_ALERT`), so a prober cannot walk a gallery's positions
/// asking for each contact.
pub(crate) const MAX_DISCLOSURES_PER_HIT_SOURCE: usize = 16;

impl Engine {
    pub fn disclosures(&self) -> impl Iterator<Item = &StoredDisclosure> {
        self.disclosures.values()
    }

    fn put(&mut self, d: StoredDisclosure) -> Action {
        self.disclosures.insert(d.id, d.clone());
        Action::Store(StoreOp::PutDisclosure(Box::new(d)))
    }

    /// Asks the holder of hit `hit` to disclose the case contact.
    pub fn request_disclosure(
        &mut self,
        now_ms: u64,
        hit: Handle,
        reason: String,
    ) -> Result<(Handle, Vec<Action>), EngineError> {
        let h = self.hits.get(&hit).ok_or(EngineError::UnknownHit(hit))?;
        if !matches!(h.role, HitRole::Issuer | HitRole::Prober) {
            return Err(EngineError::HolderCannotRequest);
        }
        let query = match h.source {
            HitSource::Query(q) => Some(q),
            HitSource::EncryptedAlert { answer, .. } => Some(answer),
            HitSource::Alert(_) => None,
        };
        let peer = h.peer;
        let mut id = [0u8; 16];
        rand::RngCore::fill_bytes(&mut self.rng, &mut id);
        let id = Handle(id);
        let req = DisclosureRequest { id, hit, query, reason: reason.clone() };
        req.validate().map_err(|source| EngineError::Message { what: "invalid disclosure request", source })?;
        let d = StoredDisclosure {
            id,
            role: DisclosureRole::Requester,
            peer,
            hit,
            query,
            record: None,
            reason: reason.clone(),
            status: DisclosureStatus::Requested,
            contact: None,
            requested_at_ms: now_ms,
            decided_at_ms: None,
            delivered: false,
            first_approval: None,
        };
        let store = self.put(d);
        Ok((
            id,
            vec![
                store,
                Action::Audit(AuditEvent::DisclosureRequested { id, hit, holder: peer, reason }),
                Action::Send { to: peer, request: Request::Disclose(req), key: id },
            ],
        ))
    }

    /// Resolves a hit handle reported to `from` to a local record.
    fn resolve(&self, from: OrgId, hit: Handle, query: Option<Handle>) -> Option<u64> {
        match query {
            None => self.hits.get(&hit).filter(|h| h.role == HitRole::Holder && h.peer == from).and_then(|h| h.record),
            Some(q) if self.is_answer(&q) => self.resolve_answer(from, hit, q),
            Some(q) => {
                let pos = handle_position(&hit);
                if query_handle(&q, &self.org, pos) != hit {
                    return None;
                }
                let a = self.answered.iter().find(|a| a.query == q && a.from == from)?;
                let records = a.gallery.records.len();
                // Column answers: the run shuffle; row answers: at their
                // stride. One shuffle of the gallery's positions (3 to 17 ms
                // for a million records, measured), only for a handle that
                // is one of this answer's.
                let order =
                    if a.stride == 0 { answer_order(records, a.seed) } else { row_order(records, a.stride, a.seed) };
                a.gallery.records.get(*order.get(pos)? as usize).copied()
            }
        }
    }

    pub(super) fn on_disclosure_request(
        &mut self,
        now_ms: u64,
        from: OrgId,
        r: DisclosureRequest,
    ) -> (Response, Vec<Action>) {
        if r.validate().is_err() {
            return (Response::Refused(Refusal::Malformed), vec![]);
        }
        if self.disclosures.contains_key(&r.id) {
            return (Response::Ack, vec![]);
        }
        let asked = self
            .disclosures
            .values()
            .filter(|d| d.role == DisclosureRole::Holder && d.peer == from && d.query == r.query)
            .filter(|d| r.query.is_some() || d.hit == r.hit)
            .count();
        if asked >= MAX_DISCLOSURES_PER_HIT_SOURCE {
            let reason = format!(
                "disclosure request beyond {MAX_DISCLOSURES_PER_HIT_SOURCE} for one {}",
                if r.query.is_some() { "query or alert answer" } else { "hit notice" }
            );
            return (
                Response::Refused(Refusal::RateLimited),
                vec![Action::Audit(AuditEvent::MessageRejected { from: from.to_hex(), reason })],
            );
        }
        let Some(record) = self.resolve(from, r.hit, r.query) else {
            return (
                Response::Refused(Refusal::UnknownHit),
                vec![Action::Audit(AuditEvent::DisclosureUnresolved { id: r.id, from })],
            );
        };
        let d = StoredDisclosure {
            id: r.id,
            role: DisclosureRole::Holder,
            peer: from,
            hit: r.hit,
            query: r.query,
            record: Some(record),
            reason: r.reason.clone(),
            status: DisclosureStatus::Pending,
            contact: None,
            requested_at_ms: now_ms,
            decided_at_ms: None,
            delivered: true,
            first_approval: None,
        };
        let store = self.put(d);
        (
            Response::Ack,
            vec![store, Action::Audit(AuditEvent::DisclosureReceived { id: r.id, from, record, reason: r.reason })],
        )
    }

    /// A person at this node approves (with the contact to disclose) or
    /// refuses. Under the four-eyes rule an approval needs two operators:
    /// the first (`by`) records it and nothing is sent; a second, another
    /// person, confirms the same contact and only then is it sent. Anyone
    /// may refuse at either step.
    pub fn decide_disclosure(
        &mut self,
        now_ms: u64,
        id: Handle,
        contact: Option<String>,
        by: Option<&str>,
        four_eyes: bool,
    ) -> Result<Vec<Action>, EngineError> {
        let d = self.disclosures.get(&id).ok_or(EngineError::UnknownDisclosure(id))?;
        if d.role != DisclosureRole::Holder || d.status != DisclosureStatus::Pending {
            return Err(EngineError::NotPendingHere(id));
        }
        let approved = contact.is_some();
        let answer = DisclosureAnswer { id, approved, contact: contact.clone() };
        answer.validate().map_err(|source| EngineError::Message { what: "invalid disclosure answer", source })?;
        let mut d = d.clone();
        if approved && four_eyes {
            let by = by.ok_or(EngineError::FourEyesNeedsOperators)?;
            match &d.first_approval {
                None => {
                    d.first_approval = Some(FirstApproval { operator: by.into(), at_ms: now_ms });
                    d.contact = contact;
                    return Ok(vec![self.put(d), Action::Audit(AuditEvent::DisclosureApprovalPending { id })]);
                }
                Some(first) if first.operator == by => return Err(EngineError::SameApprover(by.into())),
                Some(_) if d.contact != contact => return Err(EngineError::ContactDiffers),
                Some(_) => {}
            }
        }
        d.status = if approved { DisclosureStatus::Approved } else { DisclosureStatus::Refused };
        d.contact = contact;
        d.decided_at_ms = Some(now_ms);
        d.delivered = false;
        let to = d.peer;
        let store = self.put(d);
        Ok(vec![
            store,
            Action::Audit(AuditEvent::DisclosureDecided { id, approved }),
            Action::Send { to, request: Request::DisclosureAnswer(answer), key: id },
        ])
    }

    pub(super) fn on_disclosure_answer(
        &mut self,
        now_ms: u64,
        from: OrgId,
        a: DisclosureAnswer,
    ) -> (Response, Vec<Action>) {
        if a.validate().is_err() {
            return (Response::Refused(Refusal::Malformed), vec![]);
        }
        let Some(d) = self.disclosures.get(&a.id).filter(|d| d.role == DisclosureRole::Requester && d.peer == from)
        else {
            return (Response::Refused(Refusal::UnknownHit), vec![]);
        };
        if d.status != DisclosureStatus::Requested {
            return (Response::Ack, vec![]);
        }
        let mut d = d.clone();
        d.status = if a.approved { DisclosureStatus::Approved } else { DisclosureStatus::Refused };
        d.contact = a.contact;
        d.decided_at_ms = Some(now_ms);
        d.delivered = true;
        let store = self.put(d);
        (
            Response::Ack,
            vec![store, Action::Audit(AuditEvent::DisclosureAnswered { id: a.id, holder: from, approved: a.approved })],
        )
    }

    /// The peer acknowledged our message about disclosure `id`.
    pub(super) fn disclosure_acked(&mut self, id: Handle) -> Vec<Action> {
        match self.disclosures.get(&id) {
            Some(d) if !d.delivered => {
                let mut d = d.clone();
                d.delivered = true;
                vec![self.put(d)]
            }
            _ => vec![],
        }
    }

    /// Disclosure messages not yet acknowledged (resent on reconnect).
    pub fn undelivered_disclosures(&self) -> Vec<(OrgId, Request, Handle)> {
        self.disclosures
            .values()
            .filter(|d| !d.delivered)
            .filter_map(|d| match (d.role, d.status) {
                (DisclosureRole::Requester, DisclosureStatus::Requested) => {
                    Some(Request::Disclose(DisclosureRequest {
                        id: d.id,
                        hit: d.hit,
                        query: d.query,
                        reason: d.reason.clone(),
                    }))
                }
                (DisclosureRole::Holder, DisclosureStatus::Approved | DisclosureStatus::Refused) => {
                    Some(Request::DisclosureAnswer(DisclosureAnswer {
                        id: d.id,
                        approved: d.status == DisclosureStatus::Approved,
                        contact: d.contact.clone(),
                    }))
                }
                _ => None,
            })
            .map(|r| {
                let (to, key) = match &r {
                    Request::Disclose(q) => (self.disclosures[&q.id].peer, q.id),
                    Request::DisclosureAnswer(a) => (self.disclosures[&a.id].peer, a.id),
                    _ => unreachable!("only disclosure messages are built here"),
                };
                (to, r, key)
            })
            .collect()
    }
}

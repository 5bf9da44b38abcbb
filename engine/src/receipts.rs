//! What each member did with this node's alerts, so an unanswered alert
//! never looks like "no match": a holder that will not answer an encrypted
//! alert sends the issuer a signed refusal with its reason (kept at both
//! ends, resent until acknowledged), the issuer counts answer pages per
//! holder, and `alert_members` gives the issuer's view per member:
//! pending, delivered, answered, hit or refused (and why).

use super::{Action, Engine, EngineError};
use crate::audit::AuditEvent;
use crate::model::{receipt_key, HitRole, StoreOp, StoredReceipt};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use vigil_crypto::{sign_body, verify_body};
use vigil_protocol::{
    domain, limits::MAX_TEXT, AlertId, AlertRefusal, Handle, LogHead, OrgId, Refusal, Request, Response,
    SignedAlertRefusal,
};

/// Where one member stands with one of this node's alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberState {
    /// Nothing heard: the member may not hold the alert yet.
    Pending,
    /// The member holds the alert (its catch-up heads say so); no answer
    /// page, hit or refusal from it yet. For a protected alert this is
    /// "no match" (a holder matches on receipt and notifies hits).
    Delivered,
    /// It answered (encrypted pages decrypted here) and none matched.
    Answered,
    /// At least one of its records matched.
    Hit,
    /// It will not answer, and said why (signed).
    Refused,
}

/// One member's row in the issuer's view of an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    pub member: OrgId,
    pub name: String,
    pub state: MemberState,
    /// Encrypted answer pages decrypted from it.
    pub pages: u32,
    pub hits: usize,
    /// Its reason, when it refused.
    pub reason: Option<String>,
    /// When it refused, by its own clock (signed).
    pub refused_at_ms: Option<u64>,
}

/// `s` cut to at most `MAX_TEXT` bytes on a character boundary.
fn bounded(s: &str) -> String {
    let mut end = s.len().min(MAX_TEXT);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

impl Engine {
    /// Holder: this node will not answer encrypted alert `alert` of
    /// `issuer`. Audited, and told to the issuer once (signed, through the
    /// outbox); a refusal already told is not told again.
    pub(super) fn refuse_alert(&mut self, now_ms: u64, alert: AlertId, issuer: OrgId, reason: String) -> Vec<Action> {
        let key = receipt_key(&alert, &issuer);
        if self.receipts.get(&key).is_some_and(|r| r.refusal.is_some()) {
            return vec![];
        }
        let body = AlertRefusal { alert, holder: self.org, reason: bounded(&reason), refused_at_ms: now_ms };
        let signature = sign_body(&self.me, domain::ALERT_REFUSAL, &body).expect("refusals are small");
        let signed = SignedAlertRefusal { body, signature };
        let receipt = StoredReceipt {
            alert,
            member: issuer,
            pages: 0,
            refusal: Some(signed.clone()),
            at_ms: now_ms,
            delivered: false,
        };
        self.receipts.insert(key, receipt.clone());
        vec![
            Action::Audit(AuditEvent::AlertNotAnswered { alert, reason }),
            Action::Store(StoreOp::PutReceipt(Box::new(receipt))),
            Action::Send { to: issuer, request: Request::AlertRefused(signed), key },
        ]
    }

    /// Holder: the alert is answered after all (a budget refusal, retried
    /// once the budget allowed): the refusal no longer stands here.
    pub(super) fn withdraw_refusal(&mut self, alert: AlertId, issuer: OrgId) -> Vec<Action> {
        let key = receipt_key(&alert, &issuer);
        match self.receipts.remove(&key) {
            Some(_) => vec![Action::Store(StoreOp::DeleteReceipt(key))],
            None => vec![],
        }
    }

    /// Issuer: a holder's refusal of one of our encrypted alerts.
    pub(super) fn on_alert_refused(
        &mut self,
        now_ms: u64,
        from: OrgId,
        r: SignedAlertRefusal,
    ) -> (Response, Vec<Action>) {
        let refuse = |refusal: Refusal, reason: &str| {
            let audit = Action::Audit(AuditEvent::MessageRejected { from: from.to_hex(), reason: reason.into() });
            (Response::Refused(refusal), vec![audit])
        };
        // What the sender could have checked itself costs it a strike.
        let b = &r.body;
        if b.validate().is_err() {
            return (Response::Refused(Refusal::Malformed), self.violation(from, "malformed alert refusal"));
        }
        if b.holder != from || verify_body(&b.holder, domain::ALERT_REFUSAL, b, &r.signature).is_err() {
            return (Response::Refused(Refusal::BadSignature), self.violation(from, "forged alert refusal"));
        }
        let Some(alert) = self.alerts.get(&b.alert) else {
            return refuse(Refusal::UnknownAlert, "alert refusal for an unknown alert");
        };
        if alert.alert.body.issuer != self.org {
            return refuse(Refusal::NotIssuer, "alert refusal for an alert this node did not issue");
        }
        if alert.alert.body.encrypted.is_none() {
            return refuse(Refusal::Unsupported, "alert refusal for an alert without an encrypted probe");
        }
        let key = receipt_key(&b.alert, &from);
        let mut receipt = self.receipts.get(&key).cloned().unwrap_or(StoredReceipt {
            alert: b.alert,
            member: from,
            pages: 0,
            refusal: None,
            at_ms: now_ms,
            delivered: true,
        });
        if receipt.refusal.as_ref() == Some(&r) {
            return (Response::Ack, vec![]);
        }
        let audit = AuditEvent::AlertRefusedBy { alert: b.alert, holder: from, reason: b.reason.clone() };
        receipt.refusal = Some(r);
        receipt.at_ms = now_ms;
        self.receipts.insert(key, receipt.clone());
        (Response::Ack, vec![Action::Store(StoreOp::PutReceipt(Box::new(receipt))), Action::Audit(audit)])
    }

    /// Issuer: an answer page from `holder` to `alert` was decrypted.
    pub(super) fn count_answer_page(&mut self, now_ms: u64, alert: AlertId, holder: OrgId) -> Action {
        let key = receipt_key(&alert, &holder);
        let receipt = self.receipts.entry(key).or_insert(StoredReceipt {
            alert,
            member: holder,
            pages: 0,
            refusal: None,
            at_ms: now_ms,
            delivered: true,
        });
        receipt.pages = receipt.pages.saturating_add(1);
        receipt.at_ms = now_ms;
        Action::Store(StoreOp::PutReceipt(Box::new(receipt.clone())))
    }

    /// Holder: the issuer answered our refusal (`Ack`, or a refusal of
    /// its own: either way it is not sent again).
    pub(super) fn receipt_response(&mut self, key: Handle, response: &Response) -> Vec<Action> {
        let Some(r) = self.receipts.get_mut(&key) else { return vec![] };
        if r.delivered {
            return vec![];
        }
        r.delivered = true;
        let mut actions = vec![Action::Store(StoreOp::PutReceipt(Box::new(r.clone())))];
        if !matches!(response, Response::Ack) {
            let reason = format!("issuer refused our alert refusal: {response:?}");
            actions.push(Action::Audit(AuditEvent::MessageRejected { from: r.member.to_hex(), reason }));
        }
        actions
    }

    /// Refusals this node still owes issuers: (issuer, key, refused at).
    pub(super) fn undelivered_receipts(&self) -> impl Iterator<Item = (OrgId, Handle, u64)> + '_ {
        self.receipts.iter().filter(|(_, r)| !r.delivered && r.refusal.is_some()).map(|(k, r)| (r.member, *k, r.at_ms))
    }

    pub(super) fn receipt_request(&self, key: &Handle) -> Option<Request> {
        let r = self.receipts.get(key).filter(|r| !r.delivered)?;
        r.refusal.clone().map(Request::AlertRefused)
    }

    /// Gives up resending a refusal (outbox expiry).
    pub(super) fn expire_receipt(&mut self, key: &Handle) -> Option<Action> {
        let r = self.receipts.get_mut(key)?;
        r.delivered = true;
        Some(Action::Store(StoreOp::PutReceipt(Box::new(r.clone()))))
    }

    /// A peer's catch-up heads: how far it holds this node's own log.
    pub(super) fn note_peer_heads(&mut self, peer: OrgId, heads: &[LogHead]) {
        if let Some(h) = heads.iter().find(|h| h.org == self.org) {
            let seen = self.peer_heads.entry(peer).or_default();
            *seen = (*seen).max(h.seq);
        }
    }

    /// Issuer: where every other member stands with alert `id`.
    pub fn alert_members(&self, id: &AlertId) -> Result<Vec<MemberStatus>, EngineError> {
        let hits = self.issuer_hit_counts(Some(id));
        self.members_of(id, &hits)
    }

    /// `alert_members` of every alert of this node's, from one pass over
    /// the hits (one pass per alert made a list of 10,000 alerts with as
    /// many hits take 0.4 s of the event loop).
    pub fn own_alert_members(&self) -> HashMap<AlertId, Vec<MemberStatus>> {
        let hits = self.issuer_hit_counts(None);
        self.alerts
            .values()
            .filter(|a| a.alert.body.issuer == self.org)
            .filter_map(|a| Some((a.id, self.members_of(&a.id, &hits).ok()?)))
            .collect()
    }

    /// Issuer hits per (alert, holder): of alert `only`, or of all.
    fn issuer_hit_counts(&self, only: Option<&AlertId>) -> HashMap<(AlertId, OrgId), usize> {
        let mut counts = HashMap::new();
        for h in self.hits.values().filter(|h| h.role == HitRole::Issuer) {
            let Some(a) = h.source.alert() else { continue };
            if only.is_none_or(|o| *o == a) {
                *counts.entry((a, h.peer)).or_insert(0) += 1;
            }
        }
        counts
    }

    fn members_of(
        &self,
        id: &AlertId,
        hits: &HashMap<(AlertId, OrgId), usize>,
    ) -> Result<Vec<MemberStatus>, EngineError> {
        let a = self.alerts.get(id).ok_or(EngineError::UnknownAlert(*id))?;
        if a.alert.body.issuer != self.org {
            return Err(EngineError::NotOurs(*id));
        }
        let seq = a.alert.body.seq;
        let Some(roster) = &self.roster else { return Ok(vec![]) };
        let statuses = roster
            .body()
            .members
            .iter()
            .filter(|m| m.org != self.org)
            .map(|m| {
                let receipt = self.receipts.get(&receipt_key(id, &m.org));
                let pages = receipt.map_or(0, |r| r.pages);
                let refusal = receipt.and_then(|r| r.refusal.as_ref());
                let hits = hits.get(&(*id, m.org)).copied().unwrap_or(0);
                let delivered = self.peer_heads.get(&m.org).is_some_and(|s| *s >= seq);
                let state = if hits > 0 {
                    MemberState::Hit
                } else if pages > 0 {
                    MemberState::Answered
                } else if refusal.is_some() {
                    MemberState::Refused
                } else if delivered {
                    MemberState::Delivered
                } else {
                    MemberState::Pending
                };
                MemberStatus {
                    member: m.org,
                    name: m.name.clone(),
                    state,
                    pages,
                    hits,
                    reason: refusal.map(|r| r.body.reason.clone()),
                    refused_at_ms: refusal.map(|r| r.body.refused_at_ms),
                }
            })
            .collect();
        Ok(statuses)
    }
}

//! Hit routing: holders sign a notice (alert, holder, random handle, and
//! the band where the extractor has bands) for the issuer; issuers verify
//! and store it. Delivery is idempotent: a notice with a known handle is
//! acknowledged again and stored once.

use super::{Action, Engine, RequestOutcome};
use crate::audit::AuditEvent;
use crate::model::{AlertStatus, HitRole, HitSource, StoreOp, StoredHit};
use vigil_crypto::{sign_body, verify_body, Identity};
use vigil_protocol::{
    decode, domain, policy::Band, AlertId, BandedHitNotice, Handle, HitNotice, OrgId, Refusal, Request, Response, Role,
    SignedBandedHit, SignedHitNotice, Tag,
};

pub(super) fn sign_notice(me: &Identity, alert: AlertId, handle: Handle, at_ms: u64) -> SignedHitNotice {
    let body = HitNotice { alert, holder: me.org_id(), handle, detected_at_ms: at_ms };
    let signature = sign_body(me, domain::HIT, &body).expect("hit notices are small");
    SignedHitNotice { body, signature }
}

/// The notice of a holder's hit of protected alert `alert`, signed afresh:
/// with its band where the extractor has bands (`vigil/v1/hit-band`).
pub(super) fn notice_request(me: &Identity, alert: AlertId, hit: &StoredHit) -> Request {
    let SignedHitNotice { body, signature } = sign_notice(me, alert, hit.handle, hit.at_ms);
    match hit.band {
        None => Request::Hit(SignedHitNotice { body, signature }),
        Some(band) => {
            let body = BandedHitNotice { notice: body, band };
            let signature = sign_body(me, domain::HIT_BAND, &body).expect("hit notices are small");
            Request::BandedHit(SignedBandedHit { body, signature })
        }
    }
}

/// Hit notices kept per holder and protected alert: a holder matches a
/// person in a few records at most; a member flooding notices is refused.
pub const MAX_NOTICES_PER_HOLDER_ALERT: usize = 16;

impl Engine {
    /// Handles a request frame from `from`: the response to send now, or
    /// an encrypted answer page to decrypt first (on a blocking thread; then
    /// `alert_answer_decrypted` gives the response).
    pub fn on_request_frame(
        &mut self,
        now_ms: u64,
        from: OrgId,
        bytes: &[u8],
        max_frame_bytes: usize,
    ) -> RequestOutcome {
        if !self.take_request(now_ms, from) {
            return RequestOutcome::Respond(Response::Refused(Refusal::RateLimited), vec![]);
        }
        let req: Request = match decode(Tag::Request, bytes, max_frame_bytes) {
            Ok(r) => r,
            Err(e) => {
                let reason = format!("undecodable request: {e}");
                let actions = self.violation(from, &reason);
                let response = Response::Refused(Refusal::Malformed);
                self.note_refused(from, &response);
                return RequestOutcome::Respond(response, actions);
            }
        };
        let (response, actions) = match req {
            Request::Hit(n) => {
                if verify_body(&n.body.holder, domain::HIT, &n.body, &n.signature).is_err() {
                    self.forged_notice(from)
                } else {
                    self.on_hit_notice(now_ms, from, &n.body, None)
                }
            }
            Request::BandedHit(n) => {
                if verify_body(&n.body.notice.holder, domain::HIT_BAND, &n.body, &n.signature).is_err() {
                    self.forged_notice(from)
                } else {
                    self.on_hit_notice(now_ms, from, &n.body.notice, Some(n.body.band))
                }
            }
            Request::Disclose(r) => self.on_disclosure_request(now_ms, from, r),
            Request::DisclosureAnswer(a) => self.on_disclosure_answer(now_ms, from, a),
            Request::AlertAnswer(a) => {
                let outcome = self.on_alert_answer(from, a, max_frame_bytes);
                if let RequestOutcome::Respond(r, _) = &outcome {
                    self.note_refused(from, r);
                }
                return outcome;
            }
            Request::AlertRefused(r) => self.on_alert_refused(now_ms, from, r),
            Request::SyncHeads(h) => self.on_sync_heads(from, h),
            Request::PolicySync(p) => self.on_policy_sync(from, p),
            Request::SyncPull(p) => self.on_sync_pull(now_ms, from, p),
            // Queries travel on their own protocol, with their own limits.
            Request::Identify(_) | Request::FetchProbe(_) | Request::FetchSplit(_) => {
                let reason = "identification query or probe fetch on the notice protocol".to_string();
                let actions = self.violation(from, &reason);
                (Response::Refused(Refusal::Malformed), actions)
            }
        };
        self.note_refused(from, &response);
        RequestOutcome::Respond(response, actions)
    }

    /// As `on_request_frame`, decrypting answer pages inline (for callers
    /// off the async runtime, and tests). Returns the response to send.
    pub fn on_request(
        &mut self,
        now_ms: u64,
        from: OrgId,
        bytes: &[u8],
        max_frame_bytes: usize,
    ) -> (Response, Vec<Action>) {
        match self.on_request_frame(now_ms, from, bytes, max_frame_bytes) {
            RequestOutcome::Respond(r, actions) => (r, actions),
            RequestOutcome::Decrypt(job, mut actions) => {
                let (r, more) = self.alert_answer_decrypted(now_ms, &job, job.run());
                actions.extend(more);
                (r, actions)
            }
        }
    }

    /// A hit notice whose signature does not verify: refused, a strike.
    fn forged_notice(&mut self, from: OrgId) -> (Response, Vec<Action>) {
        (Response::Refused(Refusal::BadSignature), self.violation(from, "forged hit notice"))
    }

    /// A hit notice (its signature checked) from `from`, with the band the
    /// holder says its record reached, if any.
    fn on_hit_notice(
        &mut self,
        now_ms: u64,
        from: OrgId,
        b: &HitNotice,
        band: Option<Band>,
    ) -> (Response, Vec<Action>) {
        let refuse = |this: &mut Engine, refusal: Refusal, reason: &str, strike: bool| {
            let mut actions =
                vec![Action::Audit(AuditEvent::MessageRejected { from: from.to_hex(), reason: reason.into() })];
            if strike {
                actions.extend(this.strike(from, reason));
            }
            (Response::Refused(refusal), actions)
        };
        if b.holder != from {
            return refuse(self, Refusal::BadSignature, "hit notice names another holder than its sender", true);
        }
        let Some(alert) = self.alerts.get(&b.alert) else {
            return refuse(self, Refusal::UnknownAlert, "hit notice for an unknown alert", false);
        };
        if alert.alert.body.issuer != self.org {
            return refuse(self, Refusal::NotIssuer, "hit notice for an alert this node did not issue", false);
        }
        if self.hits.contains_key(&b.handle) {
            return (Response::Ack, vec![]);
        }
        // Only a member that matches, for an active protected alert, and a
        // bounded number per holder and alert (the roster may differ: no strike).
        if !self.has_role(&from, Role::Match) {
            return refuse(self, Refusal::NotAllowed, "hit notice from a member without the match role", false);
        }
        // A hit detected while the alert was open is taken later too (the
        // outbox resends until acknowledged); one detected after it closed is not.
        let closed_at = match alert.status {
            AlertStatus::Active => alert.alert.body.expires_at_ms,
            AlertStatus::Withdrawn => {
                alert.withdrawal.as_ref().map_or(0, |w| w.body.withdrawn_at_ms.min(alert.alert.body.expires_at_ms))
            }
            AlertStatus::Purged { .. } => 0,
        };
        if b.detected_at_ms > closed_at || b.detected_at_ms > now_ms + self.policy.max_clock_skew.as_millis() as u64 {
            return refuse(self, Refusal::UnknownAlert, "hit notice for a closed alert", false);
        }
        if alert.alert.body.probe.is_none() {
            return refuse(self, Refusal::Unsupported, "hit notice for an alert without a protected template", false);
        }
        let held = self.hits.values().filter(|h| h.peer == from && h.source == HitSource::Alert(b.alert)).count();
        if held >= MAX_NOTICES_PER_HOLDER_ALERT {
            return refuse(self, Refusal::RateLimited, "more hit notices for one alert than a holder may send", false);
        }
        let hit = StoredHit {
            handle: b.handle,
            role: HitRole::Issuer,
            source: HitSource::Alert(b.alert),
            peer: from,
            record: None,
            at_ms: now_ms,
            delivered: true,
            band,
            case: None,
        };
        self.hits.insert(b.handle, hit.clone());
        let (alert, handle) = (b.alert, b.handle);
        let mut actions = vec![
            Action::Store(StoreOp::PutHit(hit)),
            Action::Audit(AuditEvent::HitReceived { alert, holder: from, handle }),
        ];
        actions.extend(
            band.map(|band| Action::Audit(AuditEvent::HitReceivedInBand { alert, holder: from, handle, band })),
        );
        (Response::Ack, actions)
    }

    /// A peer answered a request we sent under `key` (a hit handle, an answer
    /// page id or a disclosure id).
    pub fn on_response(&mut self, now_ms: u64, key: Handle, response: &Response) -> Vec<Action> {
        if let Some(ctx) = self.take_sync(&key) {
            return self.on_sync_response(now_ms, ctx, response);
        }
        if self.hits.contains_key(&key) {
            return self.on_hit_response(key, response);
        }
        if self.is_answer(&key) {
            return self.answer_response(now_ms, key, response);
        }
        if self.receipts.contains_key(&key) {
            return self.receipt_response(key, response);
        }
        match response {
            Response::Ack => self.disclosure_acked(key),
            other => {
                let peer = self.disclosures.get(&key).map(|d| d.peer.to_hex()).unwrap_or_default();
                vec![Action::Audit(AuditEvent::MessageRejected {
                    from: peer,
                    reason: format!("disclosure message refused: {other:?}"),
                })]
            }
        }
    }

    /// The issuer answered our hit notice.
    pub fn on_hit_response(&mut self, handle: Handle, response: &Response) -> Vec<Action> {
        let Some(h) = self.hits.get_mut(&handle) else { return vec![] };
        match response {
            Response::Ack if !h.delivered => {
                h.delivered = true;
                let hit = h.clone();
                vec![
                    Action::Store(StoreOp::PutHit(hit.clone())),
                    Action::Audit(AuditEvent::HitDelivered { handle, issuer: hit.peer }),
                ]
            }
            Response::Ack => vec![],
            Response::Refused(r) => vec![Action::Audit(AuditEvent::MessageRejected {
                from: h.peer.to_hex(),
                reason: format!("issuer refused hit notice: {r:?}"),
            })],
            Response::Answer(_)
            | Response::Probe(_)
            | Response::Heads(_)
            | Response::Entries(_)
            | Response::Policy(_) => {
                vec![Action::Audit(AuditEvent::MessageRejected {
                    from: h.peer.to_hex(),
                    reason: "another kind of response in reply to a hit notice".into(),
                })]
            }
        }
    }
}

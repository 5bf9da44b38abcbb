//! The alert pipeline: publishing and withdrawing our own alerts, and
//! validating every gossiped envelope (size, version, roster, signature,
//! clock window, replay and fork checks) before it is stored, matched
//! against the gallery and forwarded.

use super::fault::{clock_fault, Fault};
use super::sync::{Link, LogRef};
use super::{Action, Capture, Engine, EngineError};
use crate::audit::AuditEvent;
use crate::model::{AlertStatus, StoreOp, StoredAlert};
use vigil_config::AlertForm;
use vigil_crypto::{alert_header, sign_alert, sign_body, verify_alert, verify_withdrawal};
use vigil_matcher::encrypted::parts;
use vigil_protocol::pad::PadUse;
use vigil_protocol::{
    decode, domain, encode, AlertBody, AlertEnvelope, AlertId, Category, EncryptedAlertProbe, OrgId, Role, SignedAlert,
    SignedWithdrawal, Tag, Withdrawal,
};

/// The outcome of checking a live alert.
enum Check {
    Accept,
    Ignore(String),
    /// Valid, but entries of its issuer's log are missing before it.
    Gap,
    /// Valid, but its issuer is over its hourly bound (audit the first time).
    Throttled(Vec<Action>),
}

/// What gossipsub must do with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Valid and new: forward it.
    Accept,
    /// Valid but known (or not for us to act on): do not forward, no penalty.
    Ignore(String),
    /// Invalid: do not forward, penalise the sender.
    Reject(String),
}

/// The id of an alert: SHA-256 of its header (`vigil_crypto::alert_id`).
pub use vigil_crypto::alert_id;

impl Engine {
    /// Publishes a new alert for a captured template (`&Template` or a
    /// `Capture` with its PAD claim). The case reference stays here.
    pub fn publish_alert<'a>(
        &mut self,
        now_ms: u64,
        capture: impl Into<Capture<'a>>,
        category: Category,
        case_ref: String,
        expires_at_ms: u64,
        max_gossip_bytes: usize,
    ) -> Result<(AlertId, Vec<Action>), EngineError> {
        if !self.has_role(&self.org, Role::Alert) {
            return Err(EngineError::NotAllowed(Role::Alert));
        }
        if case_ref.is_empty() || case_ref.len() > super::MAX_CASE_REF {
            return Err(EngineError::TextLength { field: "case reference", max: super::MAX_CASE_REF, hint: "" });
        }
        if expires_at_ms <= now_ms {
            return Err(EngineError::NotInFuture("expiry"));
        }
        if expires_at_ms - now_ms > self.policy.max_lifetime.as_millis() as u64 {
            return Err(EngineError::BeyondLifetime(humantime::format_duration(self.policy.max_lifetime).to_string()));
        }
        if self.active_alerts(now_ms) >= self.policy.max_active {
            return Err(EngineError::TooManyAlerts(self.policy.max_active));
        }
        if self.pulling.contains(&self.org) {
            return Err(EngineError::OwnLogBehind);
        }
        let Capture { template, pad } = capture.into();
        let pad = self.attest(now_ms, PadUse::Alert, pad)?;
        let mut actions = Vec::new();
        let form = self.policy.form;
        let bio = self.biometric();
        let ex = bio.active(&template.extractor).map_err(vigil_matcher::TemplateError::from)?;
        let probe = match form {
            // A multi-finger template travels encrypted only.
            AlertForm::Both if ex.parts() > 1 => None,
            AlertForm::Protected | AlertForm::Both => {
                Some(self.matcher.as_mut().ok_or(EngineError::NoEpochSecret)?.protect(ex, template)?)
            }
            AlertForm::Encrypted => None,
        };
        let encrypted = match form {
            AlertForm::Encrypted | AlertForm::Both => {
                let (key, created) = self.prober_key();
                actions.extend(created);
                // One GLWE pair: about a millisecond, fine on the event loop.
                // Only the fingers the probe holds.
                let p = parts::probe_parts(ex, &template.vector);
                let row = parts::wrap(p.parts.as_deref(), key.encrypt_row(&p.values)?.to_bytes());
                Some(EncryptedAlertProbe { modality: ex.modality, extractor: ex.id.clone(), row })
            }
            AlertForm::Protected => None,
        };
        // After the log's head, also where entries taken back from members
        // (a database put back to an older copy) put it.
        self.meta.alert_seq = self.next_own_seq();
        let body = AlertBody {
            issuer: self.org,
            seq: self.meta.alert_seq,
            prev: self.head(&self.org).1,
            category,
            created_at_ms: now_ms,
            expires_at_ms,
            probe,
            encrypted,
        };
        let signature = sign_alert(&self.me, &body)?;
        let alert = SignedAlert { body, signature };
        let id = alert_id(&alert.body);
        let bytes = encode(Tag::Gossip, &AlertEnvelope::Publish(alert.clone()), max_gossip_bytes)
            .map_err(|source| EngineError::Message { what: "alert does not fit in a gossip message", source })?;
        let probe_vector = alert.body.encrypted.is_some().then(|| template.vector.clone());
        let stored = StoredAlert {
            id,
            alert,
            status: AlertStatus::Active,
            received_at_ms: now_ms,
            case_ref: Some(case_ref),
            probe_vector,
            withdrawal: None,
            pad,
        };
        self.record_entry(self.org, self.meta.alert_seq, LogRef { hash: id.0, alert: id, withdrawal: false });
        self.alerts.insert(id, stored.clone());
        actions.extend([
            Action::Store(StoreOp::PutAlert(Box::new(stored))),
            Action::Store(StoreOp::PutMeta(Box::new(self.meta.clone()))),
            Action::Audit(AuditEvent::AlertPublished { alert: id, seq: self.meta.alert_seq }),
            Action::Publish(bytes),
        ]);
        let pad = self.alerts[&id].pad.as_ref();
        actions.extend(pad.map(|p| Action::Audit(crate::pad_accepted(PadUse::Alert, format!("alert {id}"), p))));
        Ok((id, actions))
    }

    /// The position of this node's next log entry.
    fn next_own_seq(&self) -> u64 {
        self.meta.alert_seq.max(self.head(&self.org).0) + 1
    }

    /// Withdraws one of our own alerts.
    pub fn withdraw_alert(
        &mut self,
        now_ms: u64,
        id: AlertId,
        max_gossip_bytes: usize,
    ) -> Result<Vec<Action>, EngineError> {
        let a = self.alerts.get(&id).ok_or(EngineError::UnknownAlert(id))?;
        if a.alert.body.issuer != self.org {
            return Err(EngineError::NotOurs(id));
        }
        if a.status == AlertStatus::Withdrawn {
            return Err(EngineError::AlreadyWithdrawn(id));
        }
        if self.pulling.contains(&self.org) {
            return Err(EngineError::OwnLogBehind);
        }
        let seq = self.next_own_seq();
        let body =
            Withdrawal { issuer: self.org, seq, prev: self.head(&self.org).1, alert: id, withdrawn_at_ms: now_ms };
        let signature = sign_body(&self.me, domain::WITHDRAWAL, &body)?;
        let signed = SignedWithdrawal { body, signature };
        let bytes = encode(Tag::Gossip, &AlertEnvelope::Withdraw(signed.clone()), max_gossip_bytes)
            .map_err(|source| EngineError::Message { what: "withdrawal does not fit in a gossip message", source })?;
        self.meta.alert_seq = seq;
        let hash = super::sync::entry_hash(&AlertEnvelope::Withdraw(signed.clone()));
        self.record_entry(self.org, seq, LogRef { hash, alert: id, withdrawal: true });
        let a = self.alerts.get_mut(&id).expect("checked above");
        a.status = AlertStatus::Withdrawn;
        a.withdrawal = Some(signed);
        // The probe is kept only while someone may still fetch the column form.
        a.probe_vector = None;
        let stored = a.clone();
        self.fetched_forms.retain(|(alert, _), _| *alert != id);
        Ok(vec![
            Action::Store(StoreOp::PutAlert(Box::new(stored))),
            Action::Store(StoreOp::PutMeta(Box::new(self.meta.clone()))),
            Action::Audit(AuditEvent::AlertWithdrawn { alert: id, by: self.org }),
            Action::Publish(bytes),
        ])
    }

    /// Validates a gossip message received from `from` (the forwarding
    /// peer) and, if valid, stores and matches it.
    pub fn on_gossip(
        &mut self,
        now_ms: u64,
        from: OrgId,
        bytes: &[u8],
        max_gossip_bytes: usize,
    ) -> (Verdict, Vec<Action>) {
        let env: AlertEnvelope = match decode(Tag::Gossip, bytes, max_gossip_bytes) {
            Ok(e) => e,
            Err(e) => return self.blame(from, Fault::Sender(format!("undecodable alert: {e}"))),
        };
        if let Err(e) = env.validate() {
            return self.blame(from, Fault::Sender(format!("malformed alert: {e}")));
        }
        match env {
            AlertEnvelope::Publish(alert) => {
                let checked = self.check_alert(now_ms, &alert);
                self.verdict(from, checked, |e| Ok(e.accept_alert(now_ms, from, alert)))
            }
            AlertEnvelope::Withdraw(w) => {
                let checked = self.check_withdrawal(&w);
                self.verdict(from, checked, |e| e.apply_withdrawal(w))
            }
            AlertEnvelope::Pruned(_) => {
                self.blame(from, Fault::Sender("a pruned log entry gossiped (catch-up pages only)".into()))
            }
        }
    }

    /// The verdict on a checked log entry from `from`; `accept` applies it.
    fn verdict(
        &mut self,
        from: OrgId,
        checked: Result<Check, Fault>,
        accept: impl FnOnce(&mut Engine) -> Result<Vec<Action>, Fault>,
    ) -> (Verdict, Vec<Action>) {
        match checked {
            Ok(Check::Accept) => match accept(self) {
                Ok(actions) => (Verdict::Accept, actions),
                Err(fault) => self.blame(from, fault),
            },
            Ok(Check::Ignore(reason)) => (Verdict::Ignore(reason), vec![]),
            Ok(Check::Gap) => (Verdict::Ignore("gap in the issuer's log; catching up".into()), self.sync_start(from)),
            Ok(Check::Throttled(audit)) => {
                (Verdict::Ignore("issuer over its alert bound (per hour or per minute)".into()), audit)
            }
            Err(fault) => self.blame(from, fault),
        }
    }

    /// `Err(fault)` to refuse (who is to blame decides the penalty);
    /// otherwise accept, ignore, or catch up first.
    fn check_alert(&mut self, now_ms: u64, alert: &SignedAlert) -> Result<Check, Fault> {
        let b = &alert.body;
        // Rosters differ between members while a new one spreads.
        if !self.is_member(&b.issuer) {
            return Err(Fault::Local(format!("alert issuer {} is not a roster member", b.issuer)));
        }
        if !self.has_role(&b.issuer, Role::Alert) {
            return Err(Fault::Local(format!("issuer {} may not publish alerts", b.issuer)));
        }
        if !verify_alert(&b.issuer, &alert_header(b), &alert.signature) {
            return Err(Fault::Sender(format!("forged alert: signature does not verify for issuer {}", b.issuer)));
        }
        self.check_alert_clock(now_ms, b)?;
        if b.expires_at_ms - b.created_at_ms > self.policy.max_lifetime.as_millis() as u64 {
            return Err(Fault::Local("alert lifetime exceeds the federation maximum".into()));
        }
        // An issuer over its hourly bound (counted over verified alerts
        // only) is ignored before its probe is decoded or its log position
        // looked at: the rest of a flood costs a signature check each, and
        // its gaps (the throttled alerts are not in our log) start no
        // catch-up, which would not pull them either.
        if let Some(audit) = self.flooding(now_ms, b.issuer, b.seq, b.created_at_ms) {
            return Ok(Check::Throttled(audit));
        }
        self.check_encrypted_probe(b)?;
        // Both entries are signed by the issuer: its log forked.
        let issuer = b.issuer;
        match self.link(b.issuer, b.seq, b.prev, alert_id(b).0) {
            Link::Known => return Ok(Check::Ignore("already known".into())),
            Link::Fork => {
                let reason = format!("fork: issuer {issuer} signed two different log entries with seq {}", b.seq);
                return Err(Fault::Issuer { issuer, reason });
            }
            Link::Broken => {
                let reason = format!("bad chain: alert {} does not link to its issuer's log", b.seq);
                return Err(Fault::Issuer { issuer, reason });
            }
            Link::Gap => return Ok(Check::Gap),
            Link::Next => {}
        }
        if self.active_alerts(now_ms) >= self.policy.max_active {
            return Err(Fault::Local("active alert limit reached".into()));
        }
        Ok(Check::Accept)
    }

    /// The replay window and expiry on this node's clock: past them by
    /// more than the allowed skew, an honest relay would not have
    /// forwarded it; within the skew, nobody is at fault.
    fn check_alert_clock(&self, now_ms: u64, b: &AlertBody) -> Result<(), Fault> {
        let skew = self.policy.max_clock_skew.as_millis() as u64;
        let max_age = self.policy.max_age.as_millis() as u64;
        if b.created_at_ms > now_ms + skew {
            let reason = "future-dated alert (beyond the allowed clock skew)".to_string();
            return Err(clock_fault(b.created_at_ms > now_ms + 2 * skew, reason));
        }
        if b.created_at_ms + max_age < now_ms {
            let reason = "stale or replayed alert (older than the replay window)".to_string();
            return Err(clock_fault(b.created_at_ms + max_age + skew < now_ms, reason));
        }
        if b.expires_at_ms <= now_ms {
            return Err(clock_fault(b.expires_at_ms + skew < now_ms, "expired alert".into()));
        }
        Ok(())
    }

    /// An encrypted probe must decode (the sender could check that), and
    /// fit its extractor if this node's policy lists it.
    pub(super) fn check_encrypted_probe(&self, b: &AlertBody) -> Result<(), Fault> {
        if let Some(enc) = &b.encrypted {
            let malformed =
                |e: vigil_matcher::encrypted::EncryptedError| Fault::Sender(format!("malformed encrypted probe: {e}"));
            let (inner, carried) =
                parts::open(&enc.row, vigil_protocol::limits::MAX_ROW_PROBE_BYTES).map_err(malformed)?;
            let probe = vigil_matcher::encrypted::RowProbe::from_bytes(&inner).map_err(malformed)?;
            if let Some(ex) = self.biometric.get(&enc.extractor) {
                if let Some(p) = &carried {
                    parts::check(ex, p).map_err(|e| Fault::Local(e.to_string()))?;
                }
                let dim = parts::parts_dim(ex, carried.as_deref());
                if probe.dim != dim {
                    let reason = format!("encrypted probe has {} dimensions, {} has {dim}", probe.dim, ex.id);
                    return Err(Fault::Local(reason));
                }
            }
        }
        Ok(())
    }

    pub(super) fn accept_alert(&mut self, now_ms: u64, from: OrgId, alert: SignedAlert) -> Vec<Action> {
        let id = alert_id(&alert.body);
        let issuer = alert.body.issuer;
        let stored = StoredAlert {
            id,
            alert,
            status: AlertStatus::Active,
            received_at_ms: now_ms,
            case_ref: None,
            probe_vector: None,
            withdrawal: None,
            pad: None,
        };
        self.record_entry(issuer, stored.alert.body.seq, LogRef { hash: id.0, alert: id, withdrawal: false });
        self.count_created(issuer, stored.alert.body.created_at_ms);
        let expired = stored.alert.body.expires_at_ms <= now_ms;
        self.alerts.insert(id, stored.clone());
        let mut actions = vec![
            Action::Store(StoreOp::PutAlert(Box::new(stored))),
            Action::Audit(AuditEvent::AlertAccepted { alert: id, issuer, via: from.to_hex() }),
        ];
        // Expired alerts arrive by catch-up: kept in the log, never matched.
        if issuer != self.org && !expired {
            let records: Vec<u64> = self.gallery.keys().copied().collect();
            for r in records {
                actions.extend(self.match_one(now_ms, id, r));
            }
            actions.extend(self.encrypted_alert_jobs(now_ms, id, None));
        }
        actions
    }

    /// A gossiped withdrawal: accept when it is the next entry of its
    /// issuer's log and names an alert held here.
    fn check_withdrawal(&mut self, w: &SignedWithdrawal) -> Result<Check, Fault> {
        let b = &w.body;
        if !self.is_member(&b.issuer) {
            return Err(Fault::Local(format!("withdrawal issuer {} is not a roster member", b.issuer)));
        }
        if !verify_withdrawal(w) {
            return Err(Fault::Sender(format!("forged withdrawal: signature does not verify for {}", b.issuer)));
        }
        let (issuer, hash) = (b.issuer, super::sync::entry_hash(&AlertEnvelope::Withdraw(w.clone())));
        match self.link(b.issuer, b.seq, b.prev, hash) {
            Link::Known => Ok(Check::Ignore("already known".into())),
            Link::Gap => Ok(Check::Gap),
            Link::Fork => Err(Fault::Issuer {
                issuer,
                reason: format!("fork: {issuer} signed two log entries with seq {}", b.seq),
            }),
            Link::Broken => {
                Err(Fault::Issuer { issuer, reason: "bad chain: withdrawal does not link to its issuer's log".into() })
            }
            Link::Next if !self.alerts.contains_key(&b.alert) => {
                Ok(Check::Ignore("withdrawal of an unknown alert".into()))
            }
            Link::Next => Ok(Check::Accept),
        }
    }
}

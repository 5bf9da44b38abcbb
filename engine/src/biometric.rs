//! The biometric policy a node matches with: the federation's
//! steward-signed policy once one is applied, else the built-in demo
//! policy. Templates are only compared within one active extractor;
//! records of a retired or unlisted extractor are kept but never matched.
//! Policies spread like rosters: each catch-up compares versions.

use crate::audit::AuditEvent;
use crate::model::StoreOp;
use crate::sync::SyncCtx;
use crate::{Action, Engine, EngineError};
use std::sync::Arc;
use vigil_matcher::{Extractor, Policy};
use vigil_protocol::{encode, OrgId, PolicyState, Request, Response, SignedPolicy, Tag};

/// Why a policy was not applied.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum PolicyRefusal {
    #[error("policy is for federation {found:?}, this node belongs to {ours:?}")]
    OtherFederation { found: String, ours: String },
    #[error("policy version {found} is not newer than the current version {current}")]
    Stale { found: u64, current: u64 },
    #[error(transparent)]
    Shape(#[from] vigil_matcher::PolicyError),
}

/// A record that no longer matches: its extractor is retired or not in
/// the policy, so it must be enrolled again with an active one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleRecord {
    pub id: u64,
    pub extractor: &'static str,
    pub reason: String,
}

impl Engine {
    /// The policy in force (shared: matching jobs hold it while it changes).
    pub fn biometric(&self) -> Arc<Policy> {
        Arc::clone(&self.biometric)
    }

    /// The band that a decrypted band index (`AnyAnswer::decrypt_bands`)
    /// names in `extractor`'s policy entry; `None` for an answer of one
    /// threshold, or an extractor no longer active.
    pub(crate) fn band_named(&self, extractor: &str, index: Option<u8>) -> Option<vigil_matcher::Band> {
        Some(self.biometric.active(extractor).ok()?.thresholds.get(usize::from(index?))?.band)
    }

    /// The signed policy in force, if one was applied.
    pub fn signed_policy(&self) -> Option<&SignedPolicy> {
        self.signed_policy.as_ref()
    }

    /// The verified policy of `init`, if it holds one that verifies; a
    /// stored policy that no longer verifies (stewards changed) is dropped
    /// for the built-in one, and the next catch-up brings the current one.
    pub(crate) fn stored_policy(
        anchor: Option<&vigil_crypto::TrustAnchor>,
        stored: Option<SignedPolicy>,
    ) -> Option<SignedPolicy> {
        let (anchor, p) = (anchor?, stored?);
        vigil_crypto::verify_policy(&p, anchor).is_ok().then_some(p)
    }

    /// Applies a policy if the stewards signed it, it is for this
    /// federation, newer, and keeps the template shape of every id it keeps.
    pub fn apply_policy(&mut self, policy: SignedPolicy) -> Result<Vec<Action>, EngineError> {
        let anchor = self.anchor.as_ref().ok_or(EngineError::NoStewards)?;
        vigil_crypto::verify_policy(&policy, anchor)?;
        if let Some(r) = &self.roster {
            if r.body().federation != policy.body.federation {
                return Err(PolicyRefusal::OtherFederation {
                    found: policy.body.federation.clone(),
                    ours: r.body().federation.clone(),
                }
                .into());
            }
        }
        let current = &self.biometric;
        if policy.version() <= current.version {
            return Err(PolicyRefusal::Stale { found: policy.version(), current: current.version }.into());
        }
        current.check_successor(&policy.body.policy).map_err(PolicyRefusal::from)?;
        let p = &policy.body.policy;
        let ids = |active: bool| -> Vec<String> {
            p.extractors.iter().filter(|e| e.is_active() == active).map(|e| e.id.clone()).collect()
        };
        let event = AuditEvent::PolicyApplied { version: p.version, active: ids(true), retired: ids(false) };
        self.biometric = Arc::new(p.clone());
        self.signed_policy = Some(policy.clone());
        // Encrypted layouts are per extractor; rebuild them under the new policy.
        self.layouts.clear();
        self.protect_unprotected();
        Ok(vec![Action::Store(StoreOp::PutPolicy(Box::new(policy))), Action::Audit(event)])
    }

    /// Records whose extractor became active (a policy listing an
    /// extractor of records enrolled before) get their protected templates.
    fn protect_unprotected(&mut self) {
        let Some(m) = self.matcher.as_mut() else { return };
        for g in self.gallery.values_mut().filter(|g| g.protected.is_none()) {
            if let Ok(ex) = self.biometric.active(g.extractor) {
                let t = vigil_matcher::Template {
                    modality: ex.modality,
                    extractor: ex.id.clone(),
                    quality: None,
                    vector: g.vector.clone(),
                };
                g.protected = m.protect(ex, &t).ok();
            }
        }
    }

    /// The extractor of `id` if it may be matched now.
    pub(crate) fn active_extractor(&self, id: &str) -> Result<&Extractor, EngineError> {
        Ok(self.biometric.active(id).map_err(vigil_matcher::TemplateError::from)?)
    }

    /// Records that no longer match under the policy in force.
    pub fn stale_records(&self) -> Vec<StaleRecord> {
        self.gallery
            .iter()
            .filter_map(|(id, g)| {
                let reason = self.biometric.active(g.extractor).err()?.to_string();
                Some(StaleRecord { id: *id, extractor: g.extractor, reason })
            })
            .collect()
    }
}

impl Engine {
    fn policy_version(&self) -> u64 {
        self.biometric.version
    }

    /// Catch-up of the policy with `peer`: send it our version.
    pub(crate) fn policy_offer(&mut self, peer: OrgId) -> Action {
        let key = self.handle();
        self.sync_requests.insert(key, SyncCtx::Policy { peer });
        let state = PolicyState { version: self.policy_version(), policy: None };
        Action::Send { to: peer, request: Request::PolicySync(state), key }
    }

    /// A peer sent its policy version: answer with ours (and our signed
    /// policy if it fits half a frame and theirs is older); ask back if
    /// theirs is newer.
    pub(crate) fn on_policy_sync(&mut self, from: OrgId, theirs: PolicyState) -> (Response, Vec<Action>) {
        let mine = self.policy_version();
        let actions = if theirs.version > mine { vec![self.policy_offer(from)] } else { vec![] };
        let policy = (theirs.version < mine)
            .then(|| self.signed_policy.clone())
            .flatten()
            .filter(|p| encode(Tag::Body, p, self.frame_limit / 2).is_ok());
        (Response::Policy(PolicyState { version: mine, policy }), actions)
    }

    /// A peer answered our policy version. A newer policy is applied if the
    /// stewards signed it; forged signatures count against the peer (it
    /// checks them with the same stewards), anything that depends on this
    /// node's own state (version, template shape) is audited only.
    pub(crate) fn on_policy_response(&mut self, peer: OrgId, theirs: &PolicyState) -> Vec<Action> {
        let Some(p) = theirs.policy.clone() else { return vec![] };
        if p.version() <= self.policy_version() {
            return vec![];
        }
        match self.apply_policy(p) {
            Ok(mut actions) => {
                actions.push(Action::FederationChanged);
                actions
            }
            Err(e) => {
                let reason = format!("policy from a peer refused: {e}");
                let mut actions = vec![Action::Audit(AuditEvent::PolicyRefused { reason: reason.clone() })];
                if matches!(e, EngineError::Roster(_)) {
                    actions.extend(self.strike(peer, &reason));
                }
                actions
            }
        }
    }
}

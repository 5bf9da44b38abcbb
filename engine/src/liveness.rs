//! Liveness (presentation-attack detection) at the point of capture: the
//! policy's rules applied to the attestation an enrolment, alert or query
//! came with, before anything is stored or sent; accepted and refused
//! attestations are audited. Attestations never leave the node.

use crate::audit::AuditEvent;
use crate::{Engine, EngineError, PadClaim};
use vigil_protocol::pad::{Liveness, PadAttestation, PadUse};

impl Engine {
    /// The liveness rules in force (empty under the built-in policy).
    pub fn liveness(&self) -> &Liveness {
        static NONE: Liveness = Liveness { capture_keys: Vec::new(), require: Vec::new(), max_age_s: 0 };
        self.signed_policy.as_ref().map_or(&NONE, |p| &p.body.liveness)
    }

    /// Checks `claim` for `use_` under the rules in force: the attestation
    /// to keep, none when none came and none is required.
    pub(crate) fn attest(
        &self,
        now_ms: u64,
        use_: PadUse,
        claim: Option<&PadClaim>,
    ) -> Result<Option<PadAttestation>, EngineError> {
        let (pad, sample) = match claim {
            Some(c) => (Some(&c.attestation), c.sample),
            None => (None, vigil_protocol::Digest([0; 32])),
        };
        vigil_crypto::check_pad(self.liveness(), use_, pad, &sample, now_ms)
            .map_err(|source| EngineError::Pad { use_, source })
    }
}

/// The audit entry of an accepted attestation for `subject`.
pub(crate) fn pad_accepted(use_: PadUse, subject: String, p: &PadAttestation) -> AuditEvent {
    AuditEvent::PadAccepted {
        usage: use_.to_string(),
        subject,
        key: p.body.key.clone(),
        sdk: p.body.sdk.clone(),
        captured_at_ms: p.body.captured_at_ms,
    }
}

/// The audit entry of a refusal the engine returned, where one is kept:
/// a missing or failed PAD attestation.
pub fn refusal_event(e: &EngineError) -> Option<AuditEvent> {
    match e {
        EngineError::Pad { use_, source } => {
            Some(AuditEvent::PadRefused { usage: use_.to_string(), reason: source.to_string() })
        }
        _ => None,
    }
}

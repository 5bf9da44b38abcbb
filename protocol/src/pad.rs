//! Presentation-attack detection (liveness) in ISO/IEC 30107-3 terms: the
//! capture keys and rules a federation's policy sets (`Liveness`), and the
//! attestation a capture SDK signs over one sample (`PadAttestation`).

use crate::policy::Status;
use crate::{Digest, PublicKey, Sig, WireError};
use serde::{Deserialize, Serialize};

/// Most capture keys one policy lists.
pub const MAX_CAPTURE_KEYS: usize = 64;
/// Longest accepted attestation age a policy may set: 30 days.
pub const MAX_PAD_AGE_S: u64 = 30 * 24 * 3600;
/// Shortest: one minute.
pub const MIN_PAD_AGE_S: u64 = 60;
/// How far in the future (clock skew) a capture time may lie, in ms.
pub const PAD_SKEW_MS: u64 = 5 * 60 * 1000;

/// Where a policy may require an attestation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PadUse {
    /// A record enrolled into the node's gallery.
    Enrolment,
    /// The probe of an alert this node publishes.
    Alert,
    /// The probe of an identification query this node sends.
    Query,
}

impl std::fmt::Display for PadUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PadUse::Enrolment => "enrolment",
            PadUse::Alert => "alert",
            PadUse::Query => "query",
        })
    }
}

/// A capture device's or SDK's signing key, as the policy lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureKey {
    /// What attestations name the key by (`a–z 0–9 . _ -`, 1–64).
    pub id: String,
    /// The PAD subsystem (vendor, product, version) the key belongs to.
    #[serde(default)]
    pub sdk: String,
    /// Its ed25519 public key.
    pub key: PublicKey,
    /// Attestations of a retired key are refused.
    #[serde(default)]
    pub status: Status,
}

/// The policy's rules for PAD attestations. Empty (the default): no keys,
/// nothing required, and the policy keeps its format 1 encoding.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Liveness {
    #[serde(default)]
    pub capture_keys: Vec<CaptureKey>,
    /// Where a valid bona fide attestation is required.
    #[serde(default)]
    pub require: Vec<PadUse>,
    /// The oldest attestation accepted, seconds from capture to use.
    #[serde(default)]
    pub max_age_s: u64,
}

impl Liveness {
    pub fn is_empty(&self) -> bool {
        *self == Liveness::default()
    }

    pub fn requires(&self, u: PadUse) -> bool {
        self.require.contains(&u)
    }

    pub fn key(&self, id: &str) -> Option<&CaptureKey> {
        self.capture_keys.iter().find(|k| k.id == id)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.is_empty() {
            return Ok(());
        }
        if self.capture_keys.is_empty() || self.capture_keys.len() > MAX_CAPTURE_KEYS {
            return Err(format!("liveness lists 1..={MAX_CAPTURE_KEYS} capture keys"));
        }
        if !(MIN_PAD_AGE_S..=MAX_PAD_AGE_S).contains(&self.max_age_s) {
            return Err(format!("liveness max_age_s must be in {MIN_PAD_AGE_S}..={MAX_PAD_AGE_S}"));
        }
        let mut ids = std::collections::HashSet::new();
        for k in &self.capture_keys {
            if !crate::policy::valid_id(&k.id) {
                return Err(format!("capture key id {:?}: 1–64 characters of a–z, 0–9, '.', '_' and '-'", k.id));
            }
            if k.sdk.len() > crate::limits::MAX_TEXT {
                return Err(format!("capture key {:?}: sdk over {} bytes", k.id, crate::limits::MAX_TEXT));
            }
            if !ids.insert(&k.id) {
                return Err(format!("capture key {:?} listed twice", k.id));
            }
        }
        let mut uses = self.require.clone();
        uses.sort();
        uses.dedup();
        if uses.len() != self.require.len() {
            return Err("a liveness use is required twice".into());
        }
        Ok(())
    }
}

/// A PAD decision (ISO/IEC 30107-3: a bona fide presentation, or an attack
/// presentation such as a printed photo, a screen, a mask or a fake finger).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PadDecision {
    BonaFide,
    Attack,
}

/// What a capture key signs (domain `vigil/v1/pad`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PadBody {
    /// The capture key's id in the policy.
    pub key: String,
    /// The PAD subsystem and version that decided.
    pub sdk: String,
    pub decision: PadDecision,
    /// The subsystem's PAD score, as it reports it (informative only).
    #[serde(default)]
    pub score: Option<f32>,
    pub captured_at_ms: u64,
    /// SHA-256 of the sample: a Vigil template file's vector (its values
    /// as little-endian f32), or a standard record's bytes.
    pub sample: Digest,
}

/// A capture SDK's signed PAD result for one sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PadAttestation {
    pub body: PadBody,
    pub signature: Sig,
}

impl PadBody {
    pub fn validate(&self) -> Result<(), WireError> {
        let bad = |s: String| Err(WireError::Invalid(format!("PAD attestation: {s}")));
        if !crate::policy::valid_id(&self.key) {
            return bad(format!("key id {:?} is not 1–64 characters of a–z, 0–9, '.', '_' and '-'", self.key));
        }
        if self.sdk.is_empty() || self.sdk.len() > crate::limits::MAX_TEXT {
            return bad(format!("sdk must be 1..={} bytes", crate::limits::MAX_TEXT));
        }
        if self.score.is_some_and(|s| !s.is_finite()) {
            return bad("score is not a finite number".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> CaptureKey {
        CaptureKey { id: id.into(), sdk: "sdk 1".into(), key: PublicKey([1; 32]), status: Status::Active }
    }

    #[test]
    fn liveness_validation_names_the_problem() {
        assert!(Liveness::default().validate().is_ok());
        let mut l = Liveness { capture_keys: vec![key("a")], require: vec![PadUse::Enrolment], max_age_s: 3600 };
        assert!(l.validate().is_ok());
        l.max_age_s = 10;
        assert!(l.validate().unwrap_err().contains("max_age_s"));
        l.max_age_s = 3600;
        l.capture_keys.push(key("a"));
        assert!(l.validate().unwrap_err().contains("listed twice"));
        l.capture_keys.pop();
        l.require.push(PadUse::Enrolment);
        assert!(l.validate().unwrap_err().contains("required twice"));
        let l = Liveness { capture_keys: vec![], require: vec![PadUse::Alert], max_age_s: 3600 };
        assert!(l.validate().unwrap_err().contains("capture keys"));
    }

    #[test]
    fn attestations_read_as_json() {
        let json = format!(
            r#"{{"body": {{"key": "cam-1", "sdk": "x 2.1", "decision": "bona-fide", "score": 0.1,
                "captured_at_ms": 5, "sample": "{}"}}, "signature": "{}"}}"#,
            "ab".repeat(32),
            "cd".repeat(64)
        );
        let a: PadAttestation = serde_json::from_str(&json).unwrap();
        assert_eq!(a.body.decision, PadDecision::BonaFide);
        assert!(a.body.validate().is_ok());
        let mut b = a.body.clone();
        b.score = Some(f32::NAN);
        assert!(b.validate().is_err());
    }
}

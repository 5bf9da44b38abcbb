//! PAD attestations: a capture key signs its presentation-attack detection
//! result over one sample (domain `vigil/v1/pad`); a node accepts it only as
//! the policy's liveness rules say (listed active key, bona fide, this
//! sample, fresh), and refuses a missing one where they require it.

use crate::identity::{sign_body, verify_body, Identity};
use vigil_protocol::pad::{Liveness, PadAttestation, PadBody, PadDecision, PadUse, PAD_SKEW_MS};
use vigil_protocol::{domain, Digest, OrgId, PublicKey};

/// Why an attestation (or its absence) is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PadError {
    #[error("the federation's policy requires a liveness (PAD) attestation for {0}: add the capture SDK's signed result (`pad` in the template file, or --pad FILE)")]
    Missing(PadUse),
    #[error("{0}")]
    Invalid(String),
    #[error("PAD attestation names capture key {0:?}, which the federation's policy does not list")]
    UnknownKey(String),
    #[error("PAD attestation is signed by capture key {0:?}, which the federation's policy retired")]
    RetiredKey(String),
    #[error("PAD attestation's signature does not verify with capture key {0:?}: forged or altered")]
    Forged(String),
    #[error("PAD attestation is for another sample (its digest is not this template's or record's)")]
    OtherSample,
    #[error("the capture SDK {0:?} decided this was an attack presentation")]
    Attack(String),
    #[error("PAD attestation is stale: captured {age_s} s ago, the policy accepts at most {max_s} s")]
    Stale { age_s: u64, max_s: u64 },
    #[error("PAD attestation's capture time lies {ahead_s} s in the future (check the capture device's clock)")]
    Future { ahead_s: u64 },
}

/// Signs a PAD result with a capture key.
pub fn sign_pad(key: &Identity, body: PadBody) -> Result<PadAttestation, crate::SignError> {
    let signature = sign_body(key, domain::PAD, &body)?;
    Ok(PadAttestation { body, signature })
}

/// The public key of a capture key pair, as a policy lists it.
pub fn capture_public_key(key: &Identity) -> PublicKey {
    PublicKey(key.org_id().0)
}

/// Checks `pad` for `sample` at `now_ms` under `rules`: `Ok(None)` when
/// there is none and none is required; the attestation when it holds.
pub fn check_pad(
    rules: &Liveness,
    use_: PadUse,
    pad: Option<&PadAttestation>,
    sample: &Digest,
    now_ms: u64,
) -> Result<Option<PadAttestation>, PadError> {
    let Some(pad) = pad else {
        return if rules.requires(use_) { Err(PadError::Missing(use_)) } else { Ok(None) };
    };
    let b = &pad.body;
    b.validate().map_err(|e| PadError::Invalid(e.to_string()))?;
    let key = rules.key(&b.key).ok_or_else(|| PadError::UnknownKey(b.key.clone()))?;
    verify_body(&OrgId(key.key.0), domain::PAD, b, &pad.signature).map_err(|_| PadError::Forged(b.key.clone()))?;
    if key.status != vigil_protocol::policy::Status::Active {
        return Err(PadError::RetiredKey(b.key.clone()));
    }
    if b.sample != *sample {
        return Err(PadError::OtherSample);
    }
    if b.decision == PadDecision::Attack {
        return Err(PadError::Attack(b.sdk.clone()));
    }
    if b.captured_at_ms > now_ms + PAD_SKEW_MS {
        return Err(PadError::Future { ahead_s: (b.captured_at_ms - now_ms) / 1000 });
    }
    let age_s = now_ms.saturating_sub(b.captured_at_ms) / 1000;
    if age_s > rules.max_age_s {
        return Err(PadError::Stale { age_s, max_s: rules.max_age_s });
    }
    Ok(Some(pad.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_protocol::pad::CaptureKey;
    use vigil_protocol::policy::Status;

    const NOW: u64 = 1_000_000_000;

    fn setup() -> (Identity, Liveness) {
        let cam = Identity::generate();
        let key =
            CaptureKey { id: "cam".into(), sdk: "s".into(), key: capture_public_key(&cam), status: Status::Active };
        (cam, Liveness { capture_keys: vec![key], require: vec![PadUse::Enrolment], max_age_s: 600 })
    }

    fn body(decision: PadDecision, at: u64) -> PadBody {
        PadBody {
            key: "cam".into(),
            sdk: "sdk 3".into(),
            decision,
            score: Some(0.02),
            captured_at_ms: at,
            sample: Digest([5; 32]),
        }
    }

    #[test]
    fn each_rule_refuses_with_its_reason() {
        let (cam, mut rules) = setup();
        let sample = Digest([5; 32]);
        let check = |rules: &Liveness, u, p: Option<&PadAttestation>| check_pad(rules, u, p, &sample, NOW);
        let good = sign_pad(&cam, body(PadDecision::BonaFide, NOW - 1000)).unwrap();
        assert_eq!(check(&rules, PadUse::Enrolment, Some(&good)), Ok(Some(good.clone())));
        assert_eq!(check(&rules, PadUse::Enrolment, None), Err(PadError::Missing(PadUse::Enrolment)));
        assert_eq!(check(&rules, PadUse::Alert, None), Ok(None));
        assert_eq!(
            check_pad(&rules, PadUse::Enrolment, Some(&good), &Digest([6; 32]), NOW),
            Err(PadError::OtherSample)
        );
        let mut altered = good.clone();
        altered.body.score = Some(0.01);
        assert_eq!(check(&rules, PadUse::Enrolment, Some(&altered)), Err(PadError::Forged("cam".into())));
        let by_other = sign_pad(&Identity::generate(), body(PadDecision::BonaFide, NOW)).unwrap();
        assert_eq!(check(&rules, PadUse::Enrolment, Some(&by_other)), Err(PadError::Forged("cam".into())));
        let attack = sign_pad(&cam, body(PadDecision::Attack, NOW)).unwrap();
        assert_eq!(check(&rules, PadUse::Enrolment, Some(&attack)), Err(PadError::Attack("sdk 3".into())));
        let old = sign_pad(&cam, body(PadDecision::BonaFide, NOW - 601_000)).unwrap();
        assert_eq!(check(&rules, PadUse::Enrolment, Some(&old)), Err(PadError::Stale { age_s: 601, max_s: 600 }));
        let ahead = sign_pad(&cam, body(PadDecision::BonaFide, NOW + 3_600_000)).unwrap();
        assert_eq!(check(&rules, PadUse::Enrolment, Some(&ahead)), Err(PadError::Future { ahead_s: 3600 }));
        let mut other = body(PadDecision::BonaFide, NOW);
        other.key = "cam-2".into();
        let other = sign_pad(&cam, other).unwrap();
        assert_eq!(check(&rules, PadUse::Enrolment, Some(&other)), Err(PadError::UnknownKey("cam-2".into())));
        rules.capture_keys[0].status = Status::Retired;
        assert_eq!(check(&rules, PadUse::Enrolment, Some(&good)), Err(PadError::RetiredKey("cam".into())));
    }

    #[test]
    fn a_pad_signature_is_not_any_other() {
        let (cam, rules) = setup();
        let b = body(PadDecision::BonaFide, NOW);
        let sig = sign_body(&cam, domain::POLICY, &b).unwrap();
        let forged = PadAttestation { body: b, signature: sig };
        let e = check_pad(&rules, PadUse::Enrolment, Some(&forged), &Digest([5; 32]), NOW);
        assert_eq!(e, Err(PadError::Forged("cam".into())));
    }
}

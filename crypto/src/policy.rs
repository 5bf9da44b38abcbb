//! Biometric policy signatures: stewards sign a policy body like a roster
//! (domain `vigil/v1/policy`), and a node accepts it only with the same
//! steward threshold it applies to rosters.

use crate::identity::{sign_body, verify_body, Identity};
use crate::roster::{RosterError, TrustAnchor};
use std::collections::BTreeSet;
use vigil_protocol::{domain, SignedPolicy, StewardSignature};

/// Adds (or replaces) `steward`'s signature on `policy`.
pub fn sign_policy(policy: &mut SignedPolicy, steward: &Identity) -> Result<(), crate::SignError> {
    let signature = sign_body(steward, domain::POLICY, &policy.body)?;
    let org = steward.org_id();
    policy.signatures.retain(|s| s.steward != org);
    policy.signatures.push(StewardSignature { steward: org, signature });
    Ok(())
}

/// Checks structure and that at least `threshold` distinct anchored
/// stewards signed (errors in roster terms: the rule is the same).
pub fn verify_policy(policy: &SignedPolicy, anchor: &TrustAnchor) -> Result<(), RosterError> {
    if anchor.threshold == 0 || anchor.threshold > anchor.stewards.len() {
        return Err(RosterError::BadAnchor(anchor.stewards.len()));
    }
    policy.body.validate().map_err(|e| RosterError::Invalid(e.to_string()))?;
    let valid: BTreeSet<_> = policy
        .signatures
        .iter()
        .filter(|s| {
            anchor.stewards.contains(&s.steward)
                && verify_body(&s.steward, domain::POLICY, &policy.body, &s.signature).is_ok()
        })
        .map(|s| s.steward)
        .collect();
    if valid.len() < anchor.threshold {
        return Err(RosterError::Threshold { valid: valid.len(), threshold: anchor.threshold });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_protocol::policy::{Band, Extractor, Policy, Status, Threshold};
    use vigil_protocol::{Modality, PolicyBody};

    fn policy() -> SignedPolicy {
        let ex = Extractor {
            id: "face-a".into(),
            model: String::new(),
            modality: Modality::Face,
            fingers: vec![],
            input_dim: None,
            dim: 4,
            centre: Some(vec![0.1; 4]),
            projection: None,
            thresholds: vec![Threshold { band: Band::Possible, cosine: 0.4, fmr: 1e-3, fewer_fingers: vec![] }],
            protected_bits: 64,
            status: Status::Active,
            representation: None,
        };
        let body = PolicyBody {
            federation: "f".into(),
            issued_at_ms: 1,
            policy: Policy { version: 1, extractors: vec![ex] },
            liveness: Default::default(),
        };
        SignedPolicy { body, signatures: vec![] }
    }

    #[test]
    fn policies_need_the_steward_threshold_and_their_own_domain() {
        let (a, b, c) = (Identity::generate(), Identity::generate(), Identity::generate());
        let anchor = TrustAnchor { stewards: vec![a.org_id(), b.org_id()], threshold: 2 };
        let mut p = policy();
        sign_policy(&mut p, &a).unwrap();
        sign_policy(&mut p, &c).unwrap();
        assert_eq!(verify_policy(&p, &anchor), Err(RosterError::Threshold { valid: 1, threshold: 2 }));
        sign_policy(&mut p, &b).unwrap();
        assert_eq!(verify_policy(&p, &anchor), Ok(()));
        // A changed centre breaks every signature.
        p.body.policy.extractors[0].centre = Some(vec![0.2; 4]);
        assert_eq!(verify_policy(&p, &anchor), Err(RosterError::Threshold { valid: 0, threshold: 2 }));
        // A roster signature over the same bytes does not count for a policy.
        let mut q = policy();
        let sig = sign_body(&a, domain::ROSTER, &q.body).unwrap();
        q.signatures.push(StewardSignature { steward: a.org_id(), signature: sig });
        let one = TrustAnchor { stewards: vec![a.org_id()], threshold: 1 };
        assert!(verify_policy(&q, &one).is_err());
    }

    #[test]
    fn liveness_rules_are_signed_with_the_rest() {
        use vigil_protocol::pad::{CaptureKey, Liveness, PadUse};
        let a = Identity::generate();
        let anchor = TrustAnchor { stewards: vec![a.org_id()], threshold: 1 };
        let mut p = policy();
        sign_policy(&mut p, &a).unwrap();
        // Rules added to a signed format 1 policy break its signature.
        let key = CaptureKey {
            id: "cam".into(),
            sdk: String::new(),
            key: vigil_protocol::PublicKey([3; 32]),
            status: Status::Active,
        };
        p.body.liveness = Liveness { capture_keys: vec![key], require: vec![PadUse::Alert], max_age_s: 60 };
        assert_eq!(verify_policy(&p, &anchor), Err(RosterError::Threshold { valid: 0, threshold: 1 }));
        sign_policy(&mut p, &a).unwrap();
        assert_eq!(verify_policy(&p, &anchor), Ok(()));
        p.body.liveness.require.clear();
        assert!(verify_policy(&p, &anchor).is_err(), "a dropped requirement breaks the signature");
    }
}

//! Roster verification: a roster is valid only if at least `threshold`
//! distinct stewards pinned in the node's config signed its body.

use crate::identity::{sign_body, verify_body, Identity};
use std::collections::BTreeSet;
use vigil_protocol::{domain, OrgId, RosterBody, SignedRoster, StewardSignature};

/// The stewards a node trusts and how many must sign a roster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustAnchor {
    pub stewards: Vec<OrgId>,
    pub threshold: usize,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RosterError {
    #[error("roster has {valid} valid steward signatures, {threshold} required")]
    Threshold { valid: usize, threshold: usize },
    #[error("the trust anchor needs a threshold between 1 and its {0} stewards")]
    BadAnchor(usize),
    #[error("roster is malformed: {0}")]
    Invalid(String),
    #[error("roster version {offered} is not newer than the current version {current}")]
    NotNewer { offered: u64, current: u64 },
    #[error("roster is for federation {found:?}, this node belongs to {expected:?}")]
    WrongFederation { expected: String, found: String },
}

/// A roster whose signatures met the threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRoster {
    pub signed: SignedRoster,
}

impl VerifiedRoster {
    pub fn body(&self) -> &RosterBody {
        &self.signed.body
    }
    pub fn is_member(&self, org: &OrgId) -> bool {
        self.signed.body.member(org).is_some()
    }
}

/// Adds (or replaces) `steward`'s signature on `roster`.
pub fn sign_roster(roster: &mut SignedRoster, steward: &Identity) -> Result<(), crate::SignError> {
    let signature = sign_body(steward, domain::ROSTER, &roster.body)?;
    let org = steward.org_id();
    roster.signatures.retain(|s| s.steward != org);
    roster.signatures.push(StewardSignature { steward: org, signature });
    Ok(())
}

/// Checks structure and that at least `threshold` distinct anchored stewards
/// signed. Signatures by unknown keys are ignored, not counted.
pub fn verify_roster(roster: &SignedRoster, anchor: &TrustAnchor) -> Result<VerifiedRoster, RosterError> {
    if anchor.threshold == 0 || anchor.threshold > anchor.stewards.len() {
        return Err(RosterError::BadAnchor(anchor.stewards.len()));
    }
    roster.body.validate().map_err(|e| RosterError::Invalid(e.to_string()))?;
    let mut valid = BTreeSet::new();
    for s in &roster.signatures {
        if anchor.stewards.contains(&s.steward)
            && verify_body(&s.steward, domain::ROSTER, &roster.body, &s.signature).is_ok()
        {
            valid.insert(s.steward);
        }
    }
    if valid.len() < anchor.threshold {
        return Err(RosterError::Threshold { valid: valid.len(), threshold: anchor.threshold });
    }
    Ok(VerifiedRoster { signed: roster.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_protocol::{Member, OrgKind, Role};

    fn roster(version: u64) -> SignedRoster {
        SignedRoster {
            body: RosterBody {
                federation: "test".into(),
                version,
                issued_at_ms: 1,
                members: vec![Member {
                    org: Identity::generate().org_id(),
                    name: "Shelter North".into(),
                    kind: OrgKind::Ngo,
                    addrs: vec![],
                    roles: vec![Role::Alert],
                }],
            },
            signatures: vec![],
        }
    }

    #[test]
    fn threshold_counts_distinct_anchored_stewards() {
        let s: Vec<Identity> = (0..3).map(|_| Identity::generate()).collect();
        let anchor = TrustAnchor { stewards: s.iter().map(|i| i.org_id()).collect(), threshold: 2 };
        let mut r = roster(1);
        sign_roster(&mut r, &s[0]).unwrap();
        assert_eq!(verify_roster(&r, &anchor), Err(RosterError::Threshold { valid: 1, threshold: 2 }));
        sign_roster(&mut r, &s[0]).unwrap(); // same steward twice counts once
        assert!(verify_roster(&r, &anchor).is_err());
        let outsider = Identity::generate();
        sign_roster(&mut r, &outsider).unwrap();
        assert!(verify_roster(&r, &anchor).is_err());
        sign_roster(&mut r, &s[2]).unwrap();
        verify_roster(&r, &anchor).unwrap();
        // Editing the body after signing breaks it.
        r.body.members[0].name = "Mallory".into();
        assert_eq!(verify_roster(&r, &anchor), Err(RosterError::Threshold { valid: 0, threshold: 2 }));
    }
}

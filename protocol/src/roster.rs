//! The federation roster: who may connect and what each member may do,
//! signed by a threshold of federation stewards.

use crate::ids::{OrgId, Sig};
use crate::limits::{MAX_ADDRS, MAX_MEMBERS, MAX_TEXT};
use crate::WireError;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrgKind {
    Ngo,
    Police,
    Border,
    Other,
}

/// What a member may do in the federation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// May publish alerts.
    Alert,
    /// May hold a gallery and report hits.
    Match,
    /// May send identification queries (encrypted matching).
    Query,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub org: OrgId,
    pub name: String,
    pub kind: OrgKind,
    /// libp2p multiaddrs where the member listens, e.g. `/ip4/10.0.0.5/tcp/7600`.
    pub addrs: Vec<String>,
    pub roles: Vec<Role>,
}

/// The signed content of a roster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterBody {
    pub federation: String,
    /// Strictly increasing; a node replaces its roster only by a newer one.
    pub version: u64,
    pub issued_at_ms: u64,
    pub members: Vec<Member>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StewardSignature {
    /// The steward's ed25519 public key.
    pub steward: OrgId,
    pub signature: Sig,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedRoster {
    pub body: RosterBody,
    pub signatures: Vec<StewardSignature>,
}

impl RosterBody {
    pub fn validate(&self) -> Result<(), WireError> {
        let bad = |m: String| Err(WireError::Invalid(m));
        if self.federation.is_empty() || self.federation.len() > MAX_TEXT {
            return bad("federation name must be 1..=256 bytes".into());
        }
        if self.members.len() > MAX_MEMBERS {
            return bad(format!("roster has {} members, limit {MAX_MEMBERS}", self.members.len()));
        }
        let mut seen = std::collections::HashSet::new();
        for m in &self.members {
            if !seen.insert(m.org) {
                return bad(format!("member {} is listed twice", m.org));
            }
            if m.name.is_empty() || m.name.len() > MAX_TEXT {
                return bad(format!("member {} has an empty or over-long name", m.org));
            }
            if m.addrs.len() > MAX_ADDRS || m.roles.len() > MAX_ADDRS {
                return bad(format!("member {} lists too many addresses or roles", m.name));
            }
            if m.addrs.iter().any(|a| a.len() > MAX_TEXT) {
                return bad(format!("member {} has an over-long address", m.name));
            }
        }
        Ok(())
    }

    pub fn member(&self, org: &OrgId) -> Option<&Member> {
        self.members.iter().find(|m| &m.org == org)
    }
}

/// Version of the roster file format (the JSON that stewards pass around).
pub const ROSTER_FILE_FORMAT: u32 = 1;

/// A roster as a JSON file: `{"format": 1, "body": ..., "signatures": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterFile {
    pub format: u32,
    #[serde(flatten)]
    pub roster: SignedRoster,
}

impl RosterFile {
    pub fn to_json(roster: &SignedRoster) -> String {
        let f = RosterFile { format: ROSTER_FILE_FORMAT, roster: roster.clone() };
        serde_json::to_string_pretty(&f).expect("rosters serialise")
    }

    /// Parses a roster file under the size limit and checks its format and body.
    pub fn parse(bytes: &[u8]) -> Result<SignedRoster, WireError> {
        if bytes.len() > crate::limits::MAX_ROSTER_BYTES {
            return Err(WireError::TooLarge { len: bytes.len(), limit: crate::limits::MAX_ROSTER_BYTES });
        }
        #[derive(Deserialize)]
        struct Format {
            format: Option<u32>,
        }
        let f: Format = serde_json::from_slice(bytes).map_err(|e| WireError::Malformed(e.to_string()))?;
        match f.format {
            Some(ROSTER_FILE_FORMAT) => {}
            Some(v) => {
                return Err(WireError::Invalid(format!(
                    "unsupported roster file format {v} (expected {ROSTER_FILE_FORMAT})"
                )))
            }
            None => return Err(WireError::Invalid("not a Vigil roster file (no \"format\" field)".into())),
        }
        let file: RosterFile = serde_json::from_slice(bytes).map_err(|e| WireError::Malformed(e.to_string()))?;
        file.roster.body.validate()?;
        Ok(file.roster)
    }
}

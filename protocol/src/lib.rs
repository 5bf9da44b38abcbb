//! Vigil's wire types and their encoding: every message that crosses the
//! network between member nodes, with its version tag and size limits.
//! No heavy dependencies: every other crate (and other implementations,
//! via `PROTOCOL.md`) can rely on these definitions.

mod codec;
mod ids;
mod messages;
pub mod pad;
pub mod policy;
mod roster;

pub use codec::{decode, encode, tag_of, Tag, WireError, WIRE_VERSION};
pub use ids::{AlertId, Digest, Handle, OrgId, PublicKey, Sig};
pub use messages::{
    AlertAnswer, AlertBody, AlertEnvelope, AlertHeader, AlertRefusal, BandedHitNotice, Category, DisclosureAnswer,
    DisclosureRequest, EncryptedAlertProbe, FetchProbe, FetchSplit, HitNotice, IdentifyAnswer, IdentifyRequest,
    LogHead, Modality, PolicyState, ProbeForm, ProtectedProbe, PrunedAlert, Refusal, Request, Response, SignedAlert,
    SignedAlertRefusal, SignedBandedHit, SignedHitNotice, SignedWithdrawal, SyncPull, SyncState, Withdrawal,
};
pub use policy::{PolicyBody, PolicyFile, SignedPolicy, POLICY_FILE_FORMAT};
pub use roster::{Member, OrgKind, Role, RosterBody, RosterFile, SignedRoster, StewardSignature, ROSTER_FILE_FORMAT};

/// Hard upper bounds on decoded sizes. A node's config may set lower limits,
/// never higher ones.
pub mod limits {
    /// Largest gossip message (an alert envelope), in bytes.
    pub const MAX_GOSSIP_BYTES: usize = 64 * 1024;
    /// Largest request-response frame on `/vigil/req/1`, in bytes.
    pub const MAX_FRAME_BYTES: usize = 1024 * 1024;
    /// Largest identification query (an encrypted probe in column form is
    /// 16 KiB per dimension: 30 MiB for a ten-finger probe of 1,920), in bytes.
    pub const MAX_QUERY_BYTES: usize = 33 * 1024 * 1024;
    /// Largest identification answer (16 KiB per 2048 records: 8M records), in bytes.
    pub const MAX_ANSWER_BYTES: usize = 65 * 1024 * 1024;
    /// Largest roster (signed), in bytes.
    pub const MAX_ROSTER_BYTES: usize = 1024 * 1024;
    /// Largest policy file (JSON), in bytes; its binary form fits a frame.
    pub const MAX_POLICY_FILE_BYTES: usize = 8 * 1024 * 1024;
    /// Largest template dimension encrypted matching takes (its parameter
    /// set's error budget and probe sizes are worked out up to here; a
    /// one-chunk row probe still fits one GLWE of N = 2048).
    pub const MAX_ENCRYPTED_DIM: usize = 2048;
    /// Longest encrypted alert probe (a row-form GLWE pair, 32 KiB plus
    /// its header), in bytes.
    pub const MAX_ROW_PROBE_BYTES: usize = 33 * 1024;
    /// Longest protected probe, in bytes (4096 bits).
    pub const MAX_PROBE_BITS_BYTES: usize = 512;
    /// Longest short text field (names, extractor ids, addresses), in bytes.
    pub const MAX_TEXT: usize = 256;
    /// Most members in a roster.
    pub const MAX_MEMBERS: usize = 4096;
    /// Most addresses or roles per member.
    pub const MAX_ADDRS: usize = 16;
}

/// Domain-separation prefixes for every signature Vigil makes. A signature
/// made for one purpose never verifies for another.
pub mod domain {
    pub const ALERT: &[u8] = b"vigil/v1/alert";
    pub const WITHDRAWAL: &[u8] = b"vigil/v1/withdrawal";
    pub const HIT: &[u8] = b"vigil/v1/hit";
    pub const ROSTER: &[u8] = b"vigil/v1/roster";
    pub const AUDIT: &[u8] = b"vigil/v1/audit";
    pub const ALERT_REFUSAL: &[u8] = b"vigil/v1/alert-refusal";
    pub const POLICY: &[u8] = b"vigil/v1/policy";
    /// A capture key's presentation-attack detection attestation.
    pub const PAD: &[u8] = b"vigil/v1/pad";
    /// A hit notice with its confidence band.
    pub const HIT_BAND: &[u8] = b"vigil/v1/hit-band";
}

//! Alerts, withdrawals and hit notices: the gossip payloads and the
//! request-response messages between members.

use crate::ids::{AlertId, Handle, OrgId, Sig};
use crate::limits::{MAX_PROBE_BITS_BYTES, MAX_ROW_PROBE_BYTES, MAX_TEXT};
use crate::WireError;
use serde::{Deserialize, Serialize};

/// Biometric modality of a template. Templates of different modalities or
/// extractors are never compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Modality {
    Face,
    Finger,
    Iris,
}

/// What a record or alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Missing,
    Found,
    Victim,
    Other,
}

/// A protected ("hashed") template: keyed sign-random-projection bits
/// under the federation epoch secret. Never the template itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtectedProbe {
    /// First 8 bytes of SHA-256 over the epoch secret: names the key.
    pub epoch_id: [u8; 8],
    pub modality: Modality,
    pub extractor: String,
    /// Packed bits, least significant bit first.
    pub bits: Vec<u8>,
}

/// An encrypted probe in row form (a `RowProbe`, tag 9, as bytes) under
/// the issuer's GLWE key: members compute on it and only the issuer can
/// read their answers.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedAlertProbe {
    pub modality: Modality,
    pub extractor: String,
    #[serde(with = "serde_bytes")]
    pub row: Vec<u8>,
}

impl std::fmt::Debug for EncryptedAlertProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EncryptedAlertProbe({}, {} bytes)", self.extractor, self.row.len())
    }
}

/// The signed part of an alert. It carries a protected template, an
/// encrypted probe, or both (as the issuer's federation policy says).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertBody {
    pub issuer: OrgId,
    /// Position in the issuer's alert log (publications and withdrawals),
    /// starting at 1.
    pub seq: u64,
    /// Hash of the issuer's previous log entry (zeros for seq 1).
    pub prev: [u8; 32],
    pub category: Category,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
    pub probe: Option<ProtectedProbe>,
    pub encrypted: Option<EncryptedAlertProbe>,
}

/// What an alert's signature and id cover: the body with its payload
/// (protected template, encrypted probe) replaced by the payload's hash,
/// so that a withdrawn or expired alert can be kept as this header alone
/// (`PrunedAlert`) and still verify and link its issuer's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertHeader {
    pub issuer: OrgId,
    pub seq: u64,
    pub prev: [u8; 32],
    pub category: Category,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
    /// SHA-256 of the encoded `(probe, encrypted)` pair.
    pub payload: [u8; 32],
}

/// A log entry whose alert was withdrawn or has expired, kept without its
/// payload: the header and the issuer's signature over it, and the
/// withdrawal when there is one (a node accepts a pruned entry only for an
/// alert that is expired by its header or withdrawn by its issuer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrunedAlert {
    pub header: AlertHeader,
    pub signature: Sig,
    pub withdrawal: Option<SignedWithdrawal>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedAlert {
    pub body: AlertBody,
    pub signature: Sig,
}

/// An issuer's withdrawal of one of its alerts (person found, case closed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Withdrawal {
    pub issuer: OrgId,
    /// Position in the issuer's alert log.
    pub seq: u64,
    /// Hash of the issuer's previous log entry.
    pub prev: [u8; 32],
    pub alert: AlertId,
    pub withdrawn_at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedWithdrawal {
    pub body: Withdrawal,
    pub signature: Sig,
}

/// Everything published on the alerts gossip topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlertEnvelope {
    Publish(SignedAlert),
    Withdraw(SignedWithdrawal),
    /// Only in catch-up pages, never gossiped.
    Pruned(PrunedAlert),
}

/// A holder's notice to an alert's issuer that a record matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HitNotice {
    pub alert: AlertId,
    pub holder: OrgId,
    /// Random per-hit handle for follow-up; names no record.
    pub handle: Handle,
    pub detected_at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedHitNotice {
    pub body: HitNotice,
    pub signature: Sig,
}

/// A hit notice with the highest confidence band the record reached
/// (alerts whose extractor has several thresholds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BandedHitNotice {
    pub notice: HitNotice,
    pub band: crate::policy::Band,
}

/// Signed by the holder, domain `vigil/v1/hit-band`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedBandedHit {
    pub body: BandedHitNotice,
    pub signature: Sig,
}

/// A holder's word to an alert's issuer that it will not answer the
/// encrypted alert (budget spent, another extractor or dimension, an
/// unreadable probe), and why: without it, an unanswered alert would look
/// like "no match". The issuer keeps it, signed, as the holder's statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRefusal {
    pub alert: AlertId,
    pub holder: OrgId,
    /// 1..=256 bytes.
    pub reason: String,
    pub refused_at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedAlertRefusal {
    pub body: AlertRefusal,
    pub signature: Sig,
}

/// An identification query: "is this person known to you?", with an
/// encrypted probe (an `EncryptedProbe`, tag 7, as bytes) only the prober
/// can read the answer to.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentifyRequest {
    /// Random per query; names the query in both audit logs.
    pub query: Handle,
    pub purpose: String,
    pub legal_basis: String,
    pub extractor: String,
    #[serde(with = "serde_bytes")]
    pub probe: Vec<u8>,
}

impl std::fmt::Debug for IdentifyRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IdentifyRequest({:?}, {}, {} probe bytes)", self.query, self.extractor, self.probe.len())
    }
}

/// The encrypted answer (an `EncryptedAnswer`, tag 8, as bytes).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentifyAnswer {
    pub query: Handle,
    #[serde(with = "serde_bytes")]
    pub answer: Vec<u8>,
}

impl std::fmt::Debug for IdentifyAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IdentifyAnswer({:?}, {} bytes)", self.query, self.answer.len())
    }
}

/// A holder's encrypted answer to an alert's encrypted probe, for the
/// issuer alone to decrypt: one page (a `RowAnswer`, tag 10, as bytes) over
/// some of the holder's records, in an order fresh per answer.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertAnswer {
    pub alert: AlertId,
    /// Random per page; hits are named `position_handle(answer, p)`.
    pub answer: Handle,
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}

impl std::fmt::Debug for AlertAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AlertAnswer({}, {:?}, {} bytes)", self.alert, self.answer, self.body.len())
    }
}

/// A holder whose gallery is large asks an alert's issuer for the probe in
/// column form (cheaper to answer for many records), on `/vigil/identify/1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchProbe {
    pub alert: AlertId,
}

/// A holder of a few hundred to a few thousand records asks an alert's
/// issuer for the probe split into `chunks` row-form chunks (its answers
/// then carry `N/⌈d/chunks⌉` results per mask instead of `N/d`), on
/// `/vigil/identify/1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchSplit {
    pub alert: AlertId,
    pub chunks: u32,
}

/// The issuer's reply to `FetchProbe` or `FetchSplit`: an `EncryptedProbe`
/// (tag 7) or a split `RowProbe` (tag 9) as bytes, freshly encrypted under
/// the key of the alert's row-form probe.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeForm {
    pub alert: AlertId,
    #[serde(with = "serde_bytes")]
    pub probe: Vec<u8>,
}

impl std::fmt::Debug for ProbeForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProbeForm({}, {} bytes)", self.alert, self.probe.len())
    }
}

/// After a hit, the prober (or alert issuer) asks the holder to disclose
/// the case contact for it. A person at the holder decides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisclosureRequest {
    /// Random; names the request at both ends.
    pub id: Handle,
    /// The hit's handle (from a hit notice, or an answer position).
    pub hit: Handle,
    /// The identification query or alert answer the hit came from (`None`
    /// for hit notices).
    pub query: Option<Handle>,
    pub reason: String,
}

/// The holder's decision, sent back to the requester.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisclosureAnswer {
    pub id: Handle,
    pub approved: bool,
    /// The case contact, only when approved.
    pub contact: Option<String>,
}

/// Request-response requests: `Hit`, `Disclose`, `DisclosureAnswer` and
/// `AlertAnswer` on `/vigil/req/1`; `Identify` and `FetchProbe` on
/// `/vigil/identify/1` (each protocol has its own frame limits).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    Hit(SignedHitNotice),
    Identify(IdentifyRequest),
    Disclose(DisclosureRequest),
    DisclosureAnswer(DisclosureAnswer),
    AlertAnswer(AlertAnswer),
    FetchProbe(FetchProbe),
    /// Catch-up: "this is my roster version and the heads of the alert
    /// logs I hold".
    SyncHeads(SyncState),
    /// Catch-up: "send me `org`'s log entries from `from_seq` on".
    SyncPull(SyncPull),
    /// A split row-form probe of an alert (on `/vigil/identify/1`).
    FetchSplit(FetchSplit),
    /// A holder will not answer an encrypted alert (on `/vigil/req/1`).
    AlertRefused(SignedAlertRefusal),
    /// Catch-up of the biometric policy: "this is my policy version"
    /// (`policy` = None in a request).
    PolicySync(PolicyState),
    /// A hit notice with its band (a protected alert of a banded extractor).
    BandedHit(SignedBandedHit),
}

/// A node's biometric policy version and, in an answer to an asker whose
/// version is older, its steward-signed policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyState {
    pub version: u64,
    pub policy: Option<crate::SignedPolicy>,
}

/// What a node holds, for catch-up: its roster version, the heads of its
/// alert logs, and (in an answer, when the asker's roster is older) its
/// signed roster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncState {
    pub roster_version: u64,
    pub heads: Vec<LogHead>,
    pub roster: Option<crate::SignedRoster>,
}

/// The head of one issuer's alert log at a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogHead {
    pub org: OrgId,
    pub seq: u64,
    pub hash: [u8; 32],
}

/// A request for a page of one issuer's alert log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncPull {
    pub org: OrgId,
    pub from_seq: u64,
    /// Most entries wanted (the answer may hold fewer, to fit the frame).
    pub max: u32,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    BadSignature,
    UnknownAlert,
    NotIssuer,
    NotMember,
    Malformed,
    RateLimited,
    /// The peer's query budget (per hour or per day) is spent.
    BudgetExceeded,
    /// Parameters, dimension or extractor this node cannot answer.
    Unsupported,
    /// The member's roster roles do not allow this.
    NotAllowed,
    /// No hit with that handle was reported to this requester.
    UnknownHit,
}

/// Request-response responses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// Stored durably (or already known: delivery is idempotent).
    Ack,
    Refused(Refusal),
    Answer(IdentifyAnswer),
    Probe(ProbeForm),
    /// The responder's state (answer to `SyncHeads`).
    Heads(SyncState),
    /// Consecutive entries of one issuer's log (answer to `SyncPull`).
    Entries(Vec<AlertEnvelope>),
    /// The responder's policy state (answer to `PolicySync`).
    Policy(PolicyState),
}

fn text(field: &str, s: &str) -> Result<(), WireError> {
    if s.is_empty() || s.len() > MAX_TEXT {
        return Err(WireError::Invalid(format!("{field} must be 1..={MAX_TEXT} bytes, found {}", s.len())));
    }
    Ok(())
}

impl ProtectedProbe {
    pub fn validate(&self) -> Result<(), WireError> {
        text("extractor", &self.extractor)?;
        if self.bits.is_empty() || self.bits.len() > MAX_PROBE_BITS_BYTES {
            return Err(WireError::Invalid(format!(
                "probe must be 1..={MAX_PROBE_BITS_BYTES} bytes, found {}",
                self.bits.len()
            )));
        }
        Ok(())
    }
}

impl EncryptedAlertProbe {
    pub fn validate(&self) -> Result<(), WireError> {
        text("extractor", &self.extractor)?;
        if self.row.is_empty() || self.row.len() > MAX_ROW_PROBE_BYTES {
            return Err(WireError::Invalid(format!(
                "encrypted probe must be 1..={MAX_ROW_PROBE_BYTES} bytes, found {}",
                self.row.len()
            )));
        }
        Ok(())
    }
}

impl IdentifyRequest {
    pub fn validate(&self) -> Result<(), WireError> {
        text("purpose", &self.purpose)?;
        text("legal basis", &self.legal_basis)?;
        text("extractor", &self.extractor)
    }
}

impl DisclosureRequest {
    pub fn validate(&self) -> Result<(), WireError> {
        text("reason", &self.reason)
    }
}

impl AlertRefusal {
    pub fn validate(&self) -> Result<(), WireError> {
        text("reason", &self.reason)
    }
}

impl DisclosureAnswer {
    pub fn validate(&self) -> Result<(), WireError> {
        match (&self.contact, self.approved) {
            (Some(c), true) => text("contact", c),
            (None, false) => Ok(()),
            _ => Err(WireError::Invalid("a contact goes with an approval, and only with one".into())),
        }
    }
}

impl AlertEnvelope {
    /// Structural checks that need no keys or clock (signatures, roster and
    /// expiry are checked by the node).
    pub fn validate(&self) -> Result<(), WireError> {
        match self {
            AlertEnvelope::Publish(a) => {
                match (&a.body.probe, &a.body.encrypted) {
                    (None, None) => return Err(WireError::Invalid("alert carries no probe".into())),
                    (p, e) => {
                        p.as_ref().map(ProtectedProbe::validate).transpose()?;
                        e.as_ref().map(EncryptedAlertProbe::validate).transpose()?;
                    }
                }
                if a.body.seq == 0 {
                    return Err(WireError::Invalid("alert seq must start at 1".into()));
                }
                if a.body.expires_at_ms <= a.body.created_at_ms {
                    return Err(WireError::Invalid("alert expires before it is created".into()));
                }
                Ok(())
            }
            AlertEnvelope::Withdraw(_) => Ok(()),
            AlertEnvelope::Pruned(p) => {
                if p.header.seq == 0 {
                    return Err(WireError::Invalid("alert seq must start at 1".into()));
                }
                match &p.withdrawal {
                    Some(w) if w.body.issuer != p.header.issuer || w.body.seq <= p.header.seq => {
                        Err(WireError::Invalid("a pruned alert's withdrawal must follow it in its issuer's log".into()))
                    }
                    _ => Ok(()),
                }
            }
        }
    }
}

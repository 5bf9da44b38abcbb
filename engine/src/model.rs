//! The node's domain model: what it holds (records, alerts, hits,
//! disclosures, answer pages, counters) and `StoreOp`, the durable writes
//! the engine asks for. The node's store seals and persists these; the
//! engine never touches a disk.

use serde::{Deserialize, Serialize};
use vigil_matcher::Template;
use vigil_protocol::pad::PadAttestation;
use vigil_protocol::{AlertId, Category, Handle, OrgId, SignedAlert, SignedRoster};

/// Legal regime a record falls under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Regime {
    /// General Data Protection Regulation.
    Gdpr,
    /// Law Enforcement Directive (EU 2016/680).
    Led,
}

/// An enrolled gallery record (sealed at rest; never leaves the node).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRecord {
    pub id: u64,
    pub template: Template,
    pub category: Category,
    pub case_ref: String,
    pub consent: String,
    pub regime: Regime,
    pub enrolled_at_ms: u64,
    pub retain_until_ms: u64,
    /// The capture SDK's liveness (PAD) attestation, as checked at enrolment.
    pub pad: Option<PadAttestation>,
}

/// A record as stored before PAD attestations: still read, as one without.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRecordV1 {
    pub id: u64,
    pub template: Template,
    pub category: Category,
    pub case_ref: String,
    pub consent: String,
    pub regime: Regime,
    pub enrolled_at_ms: u64,
    pub retain_until_ms: u64,
}

impl From<StoredRecordV1> for StoredRecord {
    fn from(r: StoredRecordV1) -> Self {
        let StoredRecordV1 { id, template, category, case_ref, consent, regime, enrolled_at_ms, retain_until_ms } = r;
        Self { id, template, category, case_ref, consent, regime, enrolled_at_ms, retain_until_ms, pad: None }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Active,
    Withdrawn,
    /// Withdrawn or expired, and its payload (template or probe) purged:
    /// kept as its header (the payload's hash) to serve and link its
    /// issuer's log.
    Purged {
        payload: [u8; 32],
    },
}

/// An alert this node issued or received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredAlert {
    pub id: AlertId,
    pub alert: SignedAlert,
    pub status: AlertStatus,
    pub received_at_ms: u64,
    /// The case reference, only for alerts this node issued.
    pub case_ref: Option<String>,
    /// The quantised probe, only for encrypted alerts this node issued and
    /// while they are active (to encrypt the column form on request).
    pub probe_vector: Option<Vec<i8>>,
    /// The issuer's signed withdrawal, once withdrawn (an entry of its log).
    pub withdrawal: Option<vigil_protocol::SignedWithdrawal>,
    /// Alerts this node issued: the probe's liveness (PAD) attestation.
    pub pad: Option<PadAttestation>,
}

/// An alert as stored before PAD attestations: still read, as one without.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredAlertV1 {
    pub id: AlertId,
    pub alert: SignedAlert,
    pub status: AlertStatus,
    pub received_at_ms: u64,
    pub case_ref: Option<String>,
    pub probe_vector: Option<Vec<i8>>,
    pub withdrawal: Option<vigil_protocol::SignedWithdrawal>,
}

impl From<StoredAlertV1> for StoredAlert {
    fn from(a: StoredAlertV1) -> Self {
        let StoredAlertV1 { id, alert, status, received_at_ms, case_ref, probe_vector, withdrawal } = a;
        Self { id, alert, status, received_at_ms, case_ref, probe_vector, withdrawal, pad: None }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HitRole {
    /// This node holds the matching record and notified the issuer.
    Holder,
    /// This node issued the alert and was notified by the holder.
    Issuer,
    /// This node sent an identification query and decrypted a match.
    Prober,
}

/// What produced a hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HitSource {
    /// A hit notice for an alert with a protected template.
    Alert(AlertId),
    Query(Handle),
    /// A position of a holder's encrypted answer to an alert (issuer only).
    #[serde(rename = "encrypted_alert")]
    EncryptedAlert {
        alert: AlertId,
        answer: Handle,
    },
}

impl HitSource {
    /// The alert a hit is for (none for a query's hit).
    pub fn alert(&self) -> Option<AlertId> {
        match self {
            HitSource::Alert(a) | HitSource::EncryptedAlert { alert: a, .. } => Some(*a),
            HitSource::Query(_) => None,
        }
    }
}

/// A holder's encrypted answer (one page) to an alert: kept to resend it
/// until the issuer acknowledges it, and to resolve its positions to
/// records when the issuer asks for disclosure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredAnswer {
    pub id: Handle,
    pub alert: AlertId,
    pub issuer: OrgId,
    /// Record id of each answer position (0: padding).
    pub records: Vec<u64>,
    /// The encoded `RowAnswer`; emptied once delivered. As bytes, not a
    /// sequence of numbers (the same bincode encoding, encoded in one copy).
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    pub created_at_ms: u64,
    pub delivered: bool,
}

/// A hit, seen from either end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredHit {
    pub handle: Handle,
    pub role: HitRole,
    pub source: HitSource,
    /// The other end: the issuer (for a holder), the holder (for an issuer
    /// or a prober).
    pub peer: OrgId,
    /// The matching local record (holder only).
    pub record: Option<u64>,
    pub at_ms: u64,
    /// Holder: whether the issuer acknowledged the notice.
    pub delivered: bool,
    /// Issuer of an encrypted alert whose policy entry has bands: the
    /// highest band the holder's record reached (never a score). `None`
    /// for hits of one threshold.
    pub band: Option<vigil_protocol::policy::Band>,
    /// Prober: this node's own case (alert) the query was made for, when
    /// it was bound to one (`vigil identify --case`, the console).
    pub case: Option<AlertId>,
}

/// A hit as stored before bands (no `band`): still read, as one without.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredHitV1 {
    pub handle: Handle,
    pub role: HitRole,
    pub source: HitSource,
    pub peer: OrgId,
    pub record: Option<u64>,
    pub at_ms: u64,
    pub delivered: bool,
}

impl From<StoredHitV1> for StoredHit {
    fn from(h: StoredHitV1) -> Self {
        let StoredHitV1 { handle, role, source, peer, record, at_ms, delivered } = h;
        Self { handle, role, source, peer, record, at_ms, delivered, band: None, case: None }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DisclosureRole {
    /// A peer asked this node (which holds the record) to disclose.
    Holder,
    /// This node asked a holder.
    Requester,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DisclosureStatus {
    /// Waiting for a person at this (holding) node to decide.
    Pending,
    /// Sent; waiting for the holder's decision.
    Requested,
    Approved,
    Refused,
}

/// A disclosure request, at either end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredDisclosure {
    pub id: Handle,
    pub role: DisclosureRole,
    pub peer: OrgId,
    pub hit: Handle,
    pub query: Option<Handle>,
    /// The matching local record (holder only).
    pub record: Option<u64>,
    pub reason: String,
    pub status: DisclosureStatus,
    /// The case contact (holder: what it approved; requester: what it received).
    pub contact: Option<String>,
    pub requested_at_ms: u64,
    pub decided_at_ms: Option<u64>,
    /// Whether the other end acknowledged our last message about it.
    pub delivered: bool,
    /// Holder, four-eyes rule: the first approval, waiting for a second
    /// approver (the status stays `Pending` until then).
    pub first_approval: Option<FirstApproval>,
}

/// A first operator's approval of a disclosure, before the second's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirstApproval {
    pub operator: String,
    pub at_ms: u64,
}

/// A disclosure as stored before the four-eyes rule (no
/// `first_approval`): still read, as one with none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredDisclosureV1 {
    pub id: Handle,
    pub role: DisclosureRole,
    pub peer: OrgId,
    pub hit: Handle,
    pub query: Option<Handle>,
    pub record: Option<u64>,
    pub reason: String,
    pub status: DisclosureStatus,
    pub contact: Option<String>,
    pub requested_at_ms: u64,
    pub decided_at_ms: Option<u64>,
    pub delivered: bool,
}

impl From<StoredDisclosureV1> for StoredDisclosure {
    fn from(d: StoredDisclosureV1) -> Self {
        Self {
            id: d.id,
            role: d.role,
            peer: d.peer,
            hit: d.hit,
            query: d.query,
            record: d.record,
            reason: d.reason,
            status: d.status,
            contact: d.contact,
            requested_at_ms: d.requested_at_ms,
            decided_at_ms: d.decided_at_ms,
            delivered: d.delivered,
            first_approval: None,
        }
    }
}

impl StoredDisclosure {
    /// Holder: whether this node saw the hit itself (it decided the match
    /// and sent the hit notice), so the request names a real match. A hit
    /// in an encrypted answer was decided by the requester's decryption,
    /// which the holder cannot check: its operator is told so.
    pub fn hit_seen_here(&self) -> bool {
        self.query.is_none()
    }
}

/// What one member said about one encrypted alert, kept at both ends: at
/// the issuer, the answer pages it decrypted from that holder and the
/// holder's signed refusal; at the holder, the refusal it owes the issuer
/// (an outbox message until acknowledged). Keyed by `receipt_key`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredReceipt {
    pub alert: AlertId,
    /// The other end: the holder (at the issuer), the issuer (at the holder).
    pub member: OrgId,
    /// Issuer: answer pages decrypted from this holder for this alert.
    pub pages: u32,
    /// The holder's signed word that it will not answer, and why.
    pub refusal: Option<vigil_protocol::SignedAlertRefusal>,
    pub at_ms: u64,
    /// Holder: whether the issuer acknowledged the refusal.
    pub delivered: bool,
}

/// The store key of the receipt for `alert` and `member`.
pub fn receipt_key(alert: &AlertId, member: &OrgId) -> Handle {
    let mut b = alert.0.to_vec();
    b.extend_from_slice(&member.0);
    Handle(vigil_crypto::sha256(&b)[..16].try_into().expect("16 bytes"))
}

/// A peer blocked after repeated violations, until `until_ms`: kept on
/// disk, so a restart does not give it a clean slate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredBlock {
    pub peer: OrgId,
    pub at_ms: u64,
    pub until_ms: u64,
}

/// Which answer budget a member spends (see `identify::Budget`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BudgetKind {
    Queries,
    Alerts,
}

/// The times (ms) of a member's answers on one budget in the last day:
/// kept on disk, so a restart does not hand the member a fresh budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredBudget {
    pub peer: OrgId,
    pub kind: BudgetKind,
    pub spent_ms: Vec<u64>,
}

impl StoredBudget {
    /// Its key in the store: the peer, then the kind.
    pub fn key(peer: &OrgId, kind: BudgetKind) -> Vec<u8> {
        let mut k = peer.0.to_vec();
        k.push(kind as u8);
        k
    }
}

/// Counters and singletons.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    pub next_record: u64,
    pub alert_seq: u64,
    pub roster: Option<SignedRoster>,
    /// This node's GLWE secret key for encrypted queries (sealed with the rest).
    pub prober_key: Option<Vec<u8>>,
    /// Keys replaced by rotation, kept so that answers to alerts encrypted
    /// under them can still be read (newest last, bounded).
    pub retired_prober_keys: Vec<Vec<u8>>,
}

/// One durable write, produced by the services and applied by the runtime.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreOp {
    PutRecord(Box<StoredRecord>),
    PutAlert(Box<StoredAlert>),
    PutHit(StoredHit),
    PutMeta(Box<Meta>),
    PutDisclosure(Box<StoredDisclosure>),
    PutAnswer(Box<StoredAnswer>),
    /// Erasure: the record's sealed value is removed (gone from the files
    /// after `Store::compact`).
    DeleteRecord(u64),
    /// A hit of a purged alert is removed.
    DeleteHit(Handle),
    /// A holder's answer page to an alert that was purged.
    DeleteAnswer(Handle),
    PutReceipt(Box<StoredReceipt>),
    PutBlock(StoredBlock),
    /// A member's answer budget after it spent on it.
    PutBudget(StoredBudget),
    /// The block of a peer expired.
    DeleteBlock(OrgId),
    /// The receipt (by `receipt_key`) of an alert that was purged.
    DeleteReceipt(Handle),
    /// The steward-signed biometric policy now applied.
    PutPolicy(Box<vigil_protocol::SignedPolicy>),
    /// An operator of the console, added or changed.
    PutOperator(Box<crate::operators::StoredOperator>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_protocol::{encode, Tag};
    const MAX_VALUE_BYTES: usize = 1024 * 1024;

    /// `StoredAnswer.body` as bytes encodes exactly as the plain `Vec<u8>` did,
    /// so stores written before still open.
    #[test]
    fn answer_bodies_encode_as_before() {
        #[derive(Serialize)]
        struct Before {
            id: Handle,
            alert: AlertId,
            issuer: OrgId,
            records: Vec<u64>,
            body: Vec<u8>,
            created_at_ms: u64,
            delivered: bool,
        }
        let now = StoredAnswer {
            id: Handle([1; 16]),
            alert: AlertId([2; 32]),
            issuer: OrgId([3; 32]),
            records: vec![4, 5],
            body: (0..=255u8).collect(),
            created_at_ms: 6,
            delivered: false,
        };
        let before = Before {
            id: now.id,
            alert: now.alert,
            issuer: now.issuer,
            records: now.records.clone(),
            body: now.body.clone(),
            created_at_ms: 6,
            delivered: false,
        };
        let a = encode(Tag::Stored, &now, MAX_VALUE_BYTES).unwrap();
        assert_eq!(a, encode(Tag::Stored, &before, MAX_VALUE_BYTES).unwrap());
        let back: StoredAnswer = vigil_protocol::decode(Tag::Stored, &a, MAX_VALUE_BYTES).unwrap();
        assert_eq!(back.body, now.body);
    }
}

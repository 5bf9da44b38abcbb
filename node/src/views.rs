//! What operators see of alerts, records and the node (the local API's
//! answers): ids, times and case facts, never a template.

use crate::now_ms;
use serde::{Deserialize, Serialize};
use vigil_engine::model::{AlertStatus, StoredAlert, StoredHit, StoredRecord};
pub use vigil_engine::receipts::{MemberState, MemberStatus};
use vigil_protocol::pad::{PadAttestation, PadDecision};
use vigil_protocol::{AlertId, Category, OrgId};

/// An alert as shown to operators.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlertView {
    pub id: AlertId,
    pub issuer: OrgId,
    pub seq: u64,
    pub category: Category,
    pub status: AlertStatus,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
    /// When this node received (or published) it.
    pub received_at_ms: u64,
    /// Past its expiry (standing matching has stopped).
    pub expired: bool,
    pub own: bool,
    pub case_ref: Option<String>,
    /// Own alerts: how many members stand where (`vigil alert members`
    /// lists them one by one).
    pub members: Option<MemberCounts>,
    /// Own alerts: the probe's liveness (PAD) attestation (`liveness_of`).
    #[serde(default)]
    pub liveness: Option<String>,
}

/// A PAD attestation as operators see it: decision, SDK, key, capture
/// time and score (never the sample digest or the signature).
pub fn liveness_of(p: &PadAttestation) -> String {
    let b = &p.body;
    let decision = match b.decision {
        PadDecision::BonaFide => "bona fide",
        PadDecision::Attack => "attack",
    };
    let score = b.score.map(|s| format!(", score {s}")).unwrap_or_default();
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(b.captured_at_ms);
    let at = humantime::format_rfc3339_seconds(at);
    format!("{decision} ({}, key {}, captured {at}{score})", b.sdk, b.key)
}

/// A hit with the liveness of this node's side of the match: its record's
/// attestation (holder) or its alert probe's (issuer). A prober's probe
/// attestation is in the identification report and the audit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HitView {
    #[serde(flatten)]
    pub hit: StoredHit,
    #[serde(default)]
    pub liveness: Option<String>,
}

/// Members per state for one of this node's alerts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberCounts {
    pub pending: usize,
    pub delivered: usize,
    pub answered: usize,
    pub hit: usize,
    pub refused: usize,
}

impl MemberCounts {
    pub fn of(members: &[MemberStatus]) -> Self {
        let mut c = MemberCounts::default();
        for m in members {
            *match m.state {
                MemberState::Pending => &mut c.pending,
                MemberState::Delivered => &mut c.delivered,
                MemberState::Answered => &mut c.answered,
                MemberState::Hit => &mut c.hit,
                MemberState::Refused => &mut c.refused,
            } += 1;
        }
        c
    }
}

impl From<&StoredAlert> for AlertView {
    fn from(a: &StoredAlert) -> Self {
        AlertView {
            id: a.id,
            issuer: a.alert.body.issuer,
            seq: a.alert.body.seq,
            category: a.alert.body.category,
            status: a.status,
            created_at_ms: a.alert.body.created_at_ms,
            expires_at_ms: a.alert.body.expires_at_ms,
            received_at_ms: a.received_at_ms,
            expired: a.alert.body.expires_at_ms <= now_ms(),
            own: a.case_ref.is_some(),
            case_ref: a.case_ref.clone(),
            members: None,
            liveness: a.pad.as_ref().map(liveness_of),
        }
    }
}

/// A node's state at a glance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub org: OrgId,
    pub name: String,
    pub peer_id: String,
    pub listen: Vec<String>,
    pub connected: Vec<OrgId>,
    pub roster_version: Option<u64>,
    pub members: usize,
    pub gallery: usize,
    pub alerts: usize,
    pub hits: usize,
    /// Messages waiting in the outbox for peers.
    pub outbox: usize,
    /// Peers blocked after repeated violations, and until when (ms).
    #[serde(default)]
    pub blocked: Vec<(OrgId, u64)>,
    /// When this node started (ms).
    #[serde(default)]
    pub started_at_ms: u64,
    /// Members not connected now whose last connection closed since this
    /// start, and when (ms); the others were not reached since the start.
    #[serde(default)]
    pub disconnected_at: Vec<(OrgId, u64)>,
}

/// An enrolled record as shown to operators: no template.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordView {
    pub id: u64,
    pub category: Category,
    pub case_ref: String,
    pub extractor: String,
    pub enrolled_at_ms: u64,
    pub retain_until_ms: u64,
    /// Why the record no longer matches (its extractor is retired or not
    /// in the policy in force): it must be enrolled again.
    #[serde(default)]
    pub stale: Option<String>,
    /// The capture's liveness (PAD) attestation, as checked at enrolment.
    #[serde(default)]
    pub liveness: Option<String>,
}

/// What an operator is told at start about records that no longer match
/// under policy `version` (their extractor retired or not listed), and how
/// to bring them back; `None` when there are none.
pub fn stale_note(records: &[RecordView], version: u64) -> Option<String> {
    let mut by: std::collections::BTreeMap<&str, usize> = Default::default();
    for r in records.iter().filter(|r| r.stale.is_some()) {
        *by.entry(r.extractor.as_str()).or_default() += 1;
    }
    if by.is_empty() {
        return None;
    }
    let list: Vec<String> = by.iter().map(|(e, n)| format!("{e}: {n}")).collect();
    Some(format!(
        "Note: {} records were enrolled with extractors policy v{version} does not list as active ({}). \
         They are kept and never matched. Ask your stewards for a signed policy that lists the extractor \
         (vigil calibrate, vigil policy new|sign|apply), or enrol those people again (vigil records --stale).",
        by.values().sum::<usize>(),
        list.join(", ")
    ))
}

impl RecordView {
    /// The record as operators see it under the policy in force.
    pub fn under(r: &StoredRecord, policy: &vigil_matcher::Policy) -> Self {
        RecordView {
            id: r.id,
            category: r.category,
            case_ref: r.case_ref.clone(),
            extractor: r.template.extractor.clone(),
            enrolled_at_ms: r.enrolled_at_ms,
            retain_until_ms: r.retain_until_ms,
            stale: policy.active(&r.template.extractor).err().map(|e| e.to_string()),
            liveness: r.pad.as_ref().map(liveness_of),
        }
    }
}

/// The biometric policy a node holds: the signed document once one is
/// applied (`signed`), and the extractors in force.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyView {
    pub policy: std::sync::Arc<vigil_matcher::Policy>,
    pub signed: Option<vigil_protocol::SignedPolicy>,
}

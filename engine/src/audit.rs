//! Audit events: what the engine reports happened, for the node's signed
//! audit chain. Reasons are short, fixed phrases plus ids; events name ids
//! and peers, never case details. Variants are only ever appended, so that
//! stored chains keep decoding.

use serde::{Deserialize, Serialize};
use vigil_protocol::{AlertId, Handle, OrgId};

/// One issuer's line in `AlertAnswersCounted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerCounts {
    pub issuer: OrgId,
    pub pages_sent: u64,
    pub records_sent: u64,
    pub pages_delivered: u64,
}

/// What happened. Reasons are short, fixed phrases plus ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditEvent {
    NodeStarted {
        org: OrgId,
    },
    RosterApplied {
        version: u64,
        members: usize,
    },
    RosterRefused {
        reason: String,
    },
    Enrolled {
        record: u64,
        category: String,
        extractor: String,
    },
    AlertPublished {
        alert: AlertId,
        seq: u64,
    },
    AlertWithdrawn {
        alert: AlertId,
        by: OrgId,
    },
    AlertAccepted {
        alert: AlertId,
        issuer: OrgId,
        via: String,
    },
    MessageRejected {
        from: String,
        reason: String,
    },
    HitDetected {
        alert: AlertId,
        record: u64,
        handle: Handle,
        issuer: OrgId,
    },
    HitReceived {
        alert: AlertId,
        holder: OrgId,
        handle: Handle,
    },
    HitDelivered {
        handle: Handle,
        issuer: OrgId,
    },
    ConnectionRefused {
        peer: String,
        reason: String,
    },
    PeerPenalised {
        peer: String,
        strikes: u32,
        reason: String,
    },
    PeerBlocked {
        peer: String,
    },
    ProberKeyCreated {
        key_id: String,
    },
    ProberKeyRotated {
        old: String,
        new: String,
    },
    QuerySent {
        query: Handle,
        purpose: String,
        legal_basis: String,
        peers: usize,
    },
    QueryAnswered {
        query: Handle,
        peer: OrgId,
        positives: usize,
        positions: usize,
    },
    QueryFlagged {
        query: Handle,
        peer: OrgId,
        positives: usize,
        positions: usize,
    },
    QueryUnanswered {
        query: Handle,
        peer: OrgId,
        reason: String,
    },
    QueryReceived {
        query: Handle,
        from: OrgId,
        purpose: String,
        legal_basis: String,
        records: usize,
    },
    QueryRefused {
        query: Handle,
        from: OrgId,
        reason: String,
    },
    DisclosureRequested {
        id: Handle,
        hit: Handle,
        holder: OrgId,
        reason: String,
    },
    DisclosureReceived {
        id: Handle,
        from: OrgId,
        record: u64,
        reason: String,
    },
    DisclosureUnresolved {
        id: Handle,
        from: OrgId,
    },
    DisclosureDecided {
        id: Handle,
        approved: bool,
    },
    DisclosureAnswered {
        id: Handle,
        holder: OrgId,
        approved: bool,
    },
    /// Holder: answered an encrypted alert over `records` records (one page),
    /// in column form (`column`, fetched from the issuer) or row form.
    AlertAnswerSent {
        alert: AlertId,
        answer: Handle,
        issuer: OrgId,
        records: usize,
        column: bool,
    },
    /// Holder: the issuer acknowledged (or definitively refused) an answer page.
    AlertAnswerDelivered {
        answer: Handle,
        issuer: OrgId,
        accepted: bool,
    },
    /// Holder: an encrypted alert this node cannot answer, and why.
    AlertNotAnswered {
        alert: AlertId,
        reason: String,
    },
    /// Catch-up: pulled `entries` of `org`'s alert log from `peer`, up to `head`.
    SyncPulled {
        peer: OrgId,
        org: OrgId,
        entries: usize,
        head: u64,
    },
    /// Catch-up: a page from `peer` held a gap, a fork, a broken link or a
    /// forged entry; the pull stopped and the peer got a strike.
    SyncRefused {
        peer: OrgId,
        org: OrgId,
        reason: String,
    },
    /// A message for `peer` waited longer than `network.outbox_ttl`: no
    /// longer resent.
    OutboxExpired {
        key: Handle,
        peer: OrgId,
    },
    /// An issuer created `limit` alerts in an hour (its hourly bound): its
    /// further alerts are ignored for now (audited once an hour).
    IssuerThrottled {
        issuer: OrgId,
        limit: usize,
    },
    /// A backup of the data directory was written to `path`.
    BackupWritten {
        path: String,
    },
    /// A record was erased: on request (right to erasure) or because its
    /// retention date passed. References to it (hits, answers) are scrubbed.
    RecordErased {
        record: u64,
        reason: String,
    },
    /// Issuer: decrypted an answer page from `holder`.
    AlertAnswerReceived {
        alert: AlertId,
        answer: Handle,
        holder: OrgId,
        positives: usize,
        positions: usize,
    },
    /// An issuer created `limit` alerts in a minute (its per-minute bound,
    /// reached first in a burst): further alerts ignored for now (audited
    /// once an hour, as the hourly bound). Appended so that stored audit
    /// chains keep decoding.
    IssuerThrottledPerMinute {
        issuer: OrgId,
        limit: usize,
    },
    /// The payload (template or probe) of a withdrawn or expired alert was
    /// purged, with `hits` of its hits; its signed header stays for its
    /// issuer's log.
    AlertPurged {
        alert: AlertId,
        reason: String,
        hits: usize,
    },
    /// The prober's hits of `query` passed `queries.keep_hits`: purged.
    QueryHitsPurged {
        query: Handle,
        hits: usize,
    },
    /// Connections refused since `since_ms` (an interval), per source
    /// address, with the first reason seen; refusals from sources beyond
    /// the first few counted in `other_refusals`. One entry per interval
    /// at most, however many connections a non-member opens.
    ConnectionsRefused {
        since_ms: u64,
        sources: Vec<RefusedSource>,
        other_refusals: u64,
    },
    /// Issuer: a holder will not answer one of this node's encrypted
    /// alerts, and said why (its signed refusal is kept).
    AlertRefusedBy {
        alert: AlertId,
        holder: OrgId,
        reason: String,
    },
    /// Holder: a member has drawn `used` answers of its daily budget of
    /// `per_day` (`kind`: queries or encrypted alerts), the share at which
    /// it is flagged: each answer tells it a threshold bit per record, and
    /// a member reading gallery directions with chosen probes needs many.
    BudgetPressure {
        peer: OrgId,
        kind: String,
        used: u32,
        per_day: u32,
    },
    /// Holder: standing-matching answer pages sent to each issuer since
    /// `since_ms` (an interval), and pages issuers acknowledged: one entry
    /// per interval instead of two per page.
    AlertAnswersCounted {
        since_ms: u64,
        issuers: Vec<AnswerCounts>,
    },
    /// A peer's block (`network.block_for`) ended.
    PeerUnblocked {
        peer: OrgId,
    },
    /// A steward-signed biometric policy was applied: its version, and the
    /// extractors it lists as active and retired.
    PolicyApplied {
        version: u64,
        active: Vec<String>,
        retired: Vec<String>,
    },
    /// A biometric policy was offered and not applied.
    PolicyRefused {
        reason: String,
    },
    /// What follows was done by a console operator: `event` as any other
    /// entry, with the operator's name.
    ByOperator {
        operator: String,
        event: Box<AuditEvent>,
    },
    OperatorAdded {
        name: String,
        role: String,
    },
    OperatorDisabled {
        name: String,
    },
    OperatorPasswordSet {
        name: String,
    },
    OperatorLoggedIn {
        name: String,
    },
    /// A wrong password for a known operator (`failures` in a row).
    OperatorLoginFailed {
        name: String,
        failures: u32,
    },
    /// Failed logins in a row locked the operator out until `until_ms`.
    OperatorLocked {
        name: String,
        until_ms: u64,
    },
    /// Holder, four-eyes rule: a first operator approved disclosure `id`;
    /// nothing is sent until a second approver confirms.
    DisclosureApprovalPending {
        id: Handle,
    },
    /// Issuer: a hit of an encrypted alert whose extractor has bands, with
    /// the highest band the holder's record reached.
    HitReceivedInBand {
        alert: AlertId,
        holder: OrgId,
        handle: Handle,
        band: vigil_protocol::policy::Band,
    },
    /// A member holds this node's own alert log further (`peers`) than this
    /// node does (`held`): its database was put back to an older copy (or
    /// lost entries). The missing entries, signed by this node, are taken
    /// back from the member, and nothing is published until they are.
    OwnLogBehindPeers {
        peer: OrgId,
        held: u64,
        peers: u64,
    },
    /// Prober: identification `query` was made for this node's own case
    /// (alert) `alert`; the binding stays here, holders never see it.
    QueryForCase {
        query: Handle,
        alert: AlertId,
    },
    /// A liveness (PAD) attestation held for `usage` (enrolment, alert,
    /// query) of `subject` (the record, alert or query it came with).
    PadAccepted {
        usage: String,
        subject: String,
        key: String,
        sdk: String,
        captured_at_ms: u64,
    },
    /// An enrolment, alert or query refused for its PAD attestation
    /// (missing where required, forged, stale, an attack, another sample).
    PadRefused {
        usage: String,
        reason: String,
    },
    /// Logins under a name no operator has: the latest name tried (cut to
    /// 64 characters) and the attempts since the last such entry (at most
    /// one entry a minute).
    OperatorLoginUnknown {
        name: String,
        attempts: u64,
    },
}

/// Refused connections from one source address in an interval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedSource {
    pub source: String,
    pub count: u64,
    pub reason: String,
}

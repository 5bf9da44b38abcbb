//! Vigil's engine: the node's services as one I/O-free state machine.
//! Each method takes `now_ms` and an input (an operator command, a
//! decoded-or-not message from a peer) and returns a decision plus
//! `Action`s: durable writes, audit entries, gossip to publish, notices to
//! send, peers to block. The node's runtime (libp2p + redb) applies them in
//! order; drills and tests drive the same engine with a clock of their own.
//! This crate has no tokio, libp2p, sled or redb dependency, and Cargo keeps it so.

pub mod audit;
pub use biometric::{PolicyRefusal, StaleRecord};
pub mod model;

mod alert_jobs;
mod alerts;
mod answered;
mod biometric;
mod disclose;
mod encrypted_alerts;
mod fault;
mod hits;
mod identify;
mod liveness;
pub mod operators;
mod outbox;
mod query;
pub mod receipts;
pub mod refusals;
mod retention;
mod sync;
mod tally;

use crate::audit::AuditEvent;
use crate::model::{AlertStatus, HitRole, HitSource, Meta, Regime, StoreOp, StoredAlert, StoredHit, StoredRecord};
use rand::{RngCore, SeedableRng};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use vigil_config::AlertPolicy;
use vigil_crypto::{Identity, RosterError, SignError, TrustAnchor, VerifiedRoster};
use vigil_matcher::encrypted::EncryptedError;
use vigil_matcher::{EpochSecret, ProtectedMatcher, ProtectedTemplate, Template, TemplateError};
use vigil_protocol::pad::{PadAttestation, PadUse};
use vigil_protocol::{AlertId, Category, Handle, OrgId, Role, WireError};

pub use alert_jobs::{AlertJob, AnswerJob, AnswerPage, Decisions, FetchJob, JobProbe};
pub use alerts::{alert_id, Verdict};
pub use encrypted_alerts::{RequestOutcome, MAX_POSITIONS_PER_HOLDER_ALERT};
pub use hits::MAX_NOTICES_PER_HOLDER_ALERT;
pub use identify::{position_handle, query_handle, EncryptedGallery, IdentifyJob, IdentifyStart};
use liveness::pad_accepted;
pub use liveness::refusal_event;
pub use outbox::RetrySchedule;
pub use query::{
    form_for, DecryptJob, Decrypted, IdentifyReport, OutcomeStatus, PeerOutcome, QueryResponse, QueryStart,
};
pub use sync::{entry_hash, MAX_PAGE_ENTRIES};

/// Something the runtime must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Store(StoreOp),
    Audit(AuditEvent),
    /// Publish these bytes (an encoded `AlertEnvelope`) on the alerts topic.
    Publish(Vec<u8>),
    /// Send a request on `/vigil/req/1`; `key` names it for acknowledgement.
    Send {
        to: OrgId,
        request: vigil_protocol::Request,
        key: vigil_protocol::Handle,
    },
    /// Disconnect and refuse this peer from now on.
    Block(OrgId),
    /// Answer an encrypted alert on a blocking thread, then hand the pages
    /// to `Engine::alert_answered`.
    AnswerAlert(Box<AlertJob>),
    /// A newer roster or biometric policy was applied (from a peer):
    /// refresh the allow list, cut off removed members, and pass it on to
    /// connected peers.
    FederationChanged,
    /// Ask an alert's issuer for its column-form probe (`chunks` = `None`)
    /// or a split row form (on the identify protocol), then hand the
    /// response to `Engine::probe_fetched`.
    FetchProbe {
        to: OrgId,
        alert: AlertId,
        chunks: Option<usize>,
    },
}

/// Why the engine refused an operator's command (or could not start).
/// Callers decide on the variant; the text is for people.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    #[error("invalid template: {0}")]
    Template(#[from] TemplateError),
    #[error("no federation epoch secret is configured; protected templates cannot be made")]
    NoEpochSecret,
    #[error("this organisation is not in the roster with the {0:?} role")]
    NotAllowed(Role),
    #[error("unknown alert {0}")]
    UnknownAlert(AlertId),
    #[error("alert {0} was not issued by this node")]
    NotOurs(AlertId),
    #[error("alert {0} is already withdrawn")]
    AlreadyWithdrawn(AlertId),
    #[error("the limit of {0} active alerts is reached")]
    TooManyAlerts(usize),
    #[error(
        "members hold this node's alert log further than it does (was its database put back to an older copy?); \
         its own entries are being taken back from them: try again in a moment"
    )]
    OwnLogBehind,
    /// Operator-supplied text is empty or too long.
    #[error("{field} must be 1..={max} bytes{hint}")]
    TextLength { field: &'static str, max: usize, hint: &'static str },
    /// A date that must lie ahead (`expiry`, `retain-until date`) does not.
    #[error("{0} must be in the future")]
    NotInFuture(&'static str),
    #[error("expiry is beyond the federation's maximum alert lifetime of {0}")]
    BeyondLifetime(String),
    #[error("no hit with handle {0}")]
    UnknownHit(Handle),
    #[error("this node holds that record; disclosure is asked by the other end")]
    HolderCannotRequest,
    #[error("no disclosure request {0}")]
    UnknownDisclosure(Handle),
    #[error("disclosure {0} is not waiting for this node's decision")]
    NotPendingHere(Handle),
    #[error(
        "disclosure approvals need two operators here (console.four_eyes): approve in the console, \
         where a second approver confirms"
    )]
    FourEyesNeedsOperators,
    #[error("operator {0:?} gave the first approval; a second approver, another person, must confirm")]
    SameApprover(String),
    #[error("the second approver confirms the contact the first entered; refuse and ask again to change it")]
    ContactDiffers,
    #[error("no record {0}")]
    UnknownRecord(u64),
    /// A message this node would send is invalid or too large.
    #[error("{what}: {source}")]
    Message {
        what: &'static str,
        #[source]
        source: WireError,
    },
    /// Encrypting a probe failed.
    #[error("cannot encrypt the probe: {0}")]
    Encrypt(#[from] EncryptedError),
    #[error("cannot sign: {0}")]
    Sign(#[from] SignError),
    #[error("the stored {which} prober key does not load: {source}")]
    StoredKey {
        which: &'static str,
        #[source]
        source: EncryptedError,
    },
    #[error("no trusted stewards are configured (federation.stewards)")]
    NoStewards,
    #[error(transparent)]
    Roster(#[from] RosterError),
    #[error("roster is for federation {found:?}, this node belongs to {ours:?}")]
    OtherFederation { found: String, ours: String },
    #[error("roster version {found} is not newer than the current version {current}")]
    StaleRoster { found: u64, current: u64 },
    /// A liveness (PAD) attestation is missing where the policy requires
    /// one, or does not hold.
    #[error("{source}")]
    Pad {
        use_: PadUse,
        #[source]
        source: vigil_crypto::PadError,
    },
    /// The query's request is invalid (purpose, legal basis, extractor).
    #[error("invalid query: {0}")]
    Query(WireError),
    #[error(transparent)]
    Policy(#[from] PolicyRefusal),
}

/// An operator's enrolment request (already validated as a template).
#[derive(Debug, Clone)]
pub struct Enrolment {
    pub template: Template,
    pub category: Category,
    pub case_ref: String,
    pub consent: String,
    pub retain_until_ms: u64,
    pub regime: Option<Regime>,
    /// The capture's liveness (PAD) attestation, if it came with one.
    pub pad: Option<PadClaim>,
}

/// A PAD attestation as it came with a template, and the digest of the
/// sample it came with (what it must have been signed over).
#[derive(Debug, Clone, PartialEq)]
pub struct PadClaim {
    pub attestation: PadAttestation,
    pub sample: vigil_protocol::Digest,
}

/// A template as captured, with its PAD claim if any: what alerts and
/// queries are made from (a bare `&Template` converts, with none).
#[derive(Debug, Clone, Copy)]
pub struct Capture<'a> {
    pub template: &'a Template,
    pub pad: Option<&'a PadClaim>,
}

impl<'a> From<&'a Template> for Capture<'a> {
    fn from(template: &'a Template) -> Self {
        Self { template, pad: None }
    }
}

/// A gallery entry kept in memory for matching.
#[derive(Debug, Clone)]
struct GalleryEntry {
    /// The extractor's id, interned (compared per record on every alert:
    /// no heap string to chase).
    extractor: &'static str,
    vector: Vec<i8>,
    protected: Option<ProtectedTemplate>,
    retain_until_ms: u64,
}

/// Limits of operator-supplied text.
pub const MAX_CASE_REF: usize = 128;
pub const MAX_CONSENT: usize = 512;

/// The node's state machine.
#[derive(Debug)]
pub struct Engine {
    me: Arc<Identity>,
    org: OrgId,
    anchor: Option<TrustAnchor>,
    roster: Option<VerifiedRoster>,
    policy: AlertPolicy,
    /// The biometric policy in force (see `biometric`).
    biometric: Arc<vigil_matcher::Policy>,
    signed_policy: Option<vigil_protocol::SignedPolicy>,
    matcher: Option<ProtectedMatcher>,
    meta: Meta,
    gallery: BTreeMap<u64, GalleryEntry>,
    alerts: HashMap<AlertId, StoredAlert>,
    /// Every issuer's alert log as held here: (issuer, seq) -> entry.
    log: HashMap<(OrgId, u64), sync::LogRef>,
    /// (seq, hash) of the last entry held of each issuer's log.
    heads: HashMap<OrgId, (u64, [u8; 32])>,
    /// Sync requests in flight, by request key.
    sync_requests: HashMap<vigil_protocol::Handle, sync::SyncCtx>,
    /// Logs being pulled now (one pull per log at a time).
    pulling: HashSet<OrgId>,
    /// The furthest a member was seen holding this node's own log beyond
    /// it (audited once per new height).
    own_log_seen: u64,
    /// Peers to catch up with again at the next redial tick (a sync
    /// request to them failed).
    sync_retry: HashSet<OrgId>,
    /// Per issuer: how many of its alerts were created at each millisecond
    /// (for the per-hour flood bound).
    created: HashMap<OrgId, BTreeMap<u64, u32>>,
    /// Per issuer: when its flooding was last audited.
    throttled_at: HashMap<OrgId, u64>,
    /// Per issuer: (hour window start, log positions of its alerts
    /// throttled in that hour): each hourly bound's worth of excess costs
    /// the issuer a strike, so a member that keeps flooding is cut off.
    throttled: HashMap<OrgId, (u64, HashSet<u64>)>,
    /// Catch-up served per peer: (window start, bytes) in the current hour.
    sync_served: HashMap<OrgId, (u64, u64)>,
    /// `network.sync_bytes_per_hour`.
    sync_budget: u64,
    /// (alert, record) pairs already reported.
    matched: HashSet<(AlertId, u64)>,
    hits: BTreeMap<vigil_protocol::Handle, StoredHit>,
    strikes: HashMap<OrgId, u32>,
    max_strikes: u32,
    rng: rand_chacha::ChaCha20Rng,
    queries: vigil_config::QueryPolicy,
    prober: Option<Arc<vigil_matcher::encrypted::ProberKey>>,
    /// Encrypted-matching layouts per extractor, rebuilt after enrolment.
    layouts: HashMap<String, Arc<identify::EncryptedGallery>>,
    /// Answers given per (peer, budget): queries and encrypted alerts
    /// draw on separate budgets (`queries.per_*`, `alerts.answers_per_*`).
    budgets: HashMap<(OrgId, identify::Budget), std::collections::VecDeque<u64>>,
    /// Refusals told and answer pages counted, per (alert, member).
    receipts: HashMap<vigil_protocol::Handle, crate::model::StoredReceipt>,
    /// Issuer: how far each peer holds this node's own alert log (from
    /// catch-up heads; in memory, renewed at every catch-up).
    peer_heads: HashMap<OrgId, u64>,
    /// Holder: encrypted alerts refused for a spent budget, retried by
    /// `retry_deferred_alerts` once the budget allows.
    deferred: HashSet<AlertId>,
    answered: std::collections::VecDeque<identify::AnsweredQuery>,
    disclosures: BTreeMap<vigil_protocol::Handle, crate::model::StoredDisclosure>,
    /// Holder: answer pages to encrypted alerts, by answer id.
    answers: HashMap<vigil_protocol::Handle, crate::model::StoredAnswer>,
    /// Holder: the records each encrypted alert was answered (or is being
    /// answered) for.
    answered_alerts: answered::Answered,
    /// Issuer: GLWE keys replaced by rotation, still read for old alerts.
    retired: Vec<Arc<vigil_matcher::encrypted::ProberKey>>,
    /// Issuer: answer pages already decrypted (idempotent delivery).
    seen_answers: HashSet<vigil_protocol::Handle>,
    /// Largest request frame; answer pages fill at most half of it.
    frame_limit: usize,
    /// Holder: column-form probes being fetched, by alert.
    fetching: HashMap<AlertId, encrypted_alerts::Fetching>,
    /// Issuer: column-form probes encrypted per (holder, alert).
    fetches: HashMap<(OrgId, AlertId), u32>,
    /// Issuer: each fetched form of an alert's probe, encrypted once and
    /// given to every holder that asks (bounded, see `encrypted_alerts`).
    fetched_forms: HashMap<(AlertId, Option<usize>), alert_jobs::FetchedForm>,
    /// Prober: queries collecting answers, and what answers showed of
    /// each member's gallery.
    open_queries: query::Queries,
    /// Connections refused since they were last audited.
    refusals: refusals::Refusals,
    /// Standing-matching answer pages, audited in aggregate.
    tally: tally::AnswerTally,
    /// Holder: standing-matching pages not yet acknowledged (their
    /// delivery is counted, not audited one by one; in memory).
    standing_pages: HashSet<vigil_protocol::Handle>,
    /// Per peer in the current minute: (window start, requests, refused).
    request_rate: HashMap<OrgId, (u64, u32, u32)>,
    /// `network.max_requests_per_minute`.
    max_requests_per_minute: u32,
    /// `network.max_refused_per_minute`.
    max_refused_per_minute: u32,
    /// Issuer: answer positions received per (holder, alert) since start.
    positions_received: HashMap<(OrgId, AlertId), u64>,
}

/// What the engine is built from: config and what the store holds.
#[derive(Debug)]
pub struct EngineInit {
    pub identity: Arc<Identity>,
    pub anchor: Option<TrustAnchor>,
    pub policy: AlertPolicy,
    /// The stored steward-signed biometric policy (else the built-in one).
    pub biometric_policy: Option<vigil_protocol::SignedPolicy>,
    pub queries: vigil_config::QueryPolicy,
    pub epoch_secret: Option<[u8; 32]>,
    pub max_strikes: u32,
    pub meta: Meta,
    pub records: Vec<StoredRecord>,
    pub alerts: Vec<StoredAlert>,
    pub hits: Vec<StoredHit>,
    pub disclosures: Vec<crate::model::StoredDisclosure>,
    pub answers: Vec<crate::model::StoredAnswer>,
    pub receipts: Vec<crate::model::StoredReceipt>,
    /// Largest request frame (`network.max_frame_bytes`).
    pub max_frame_bytes: usize,
    /// Catch-up bytes served to one peer per hour (`network.sync_bytes_per_hour`).
    pub sync_bytes_per_hour: u64,
    /// Refused connections are audited at most once per this interval
    /// (`network.refusals_audit_interval`).
    pub refusals_audit_every_ms: u64,
    /// Requests (both protocols) taken from one peer per minute
    /// (`network.max_requests_per_minute`); beyond, refused before decoding.
    pub max_requests_per_minute: u32,
    /// Refused requests of one peer per minute before the rest are refused
    /// undecoded (`network.max_refused_per_minute`).
    pub max_refused_per_minute: u32,
    /// Seed for handles; `None` draws one from the OS.
    pub seed: Option<u64>,
}

impl Engine {
    pub fn new(init: EngineInit) -> Result<Self, EngineError> {
        let rng = match init.seed {
            Some(s) => rand_chacha::ChaCha20Rng::seed_from_u64(s),
            None => rand_chacha::ChaCha20Rng::from_entropy(),
        };
        let roster = match (&init.anchor, &init.meta.roster) {
            (Some(anchor), Some(r)) => vigil_crypto::verify_roster(r, anchor).ok(),
            _ => None,
        };
        let signed_policy = Engine::stored_policy(init.anchor.as_ref(), init.biometric_policy);
        let biometric = Arc::new(match &signed_policy {
            Some(p) => p.body.policy.clone(),
            None => vigil_matcher::builtin().clone(),
        });
        let mut e = Engine {
            biometric,
            signed_policy,
            org: init.identity.org_id(),
            me: init.identity,
            anchor: init.anchor,
            roster,
            policy: init.policy,
            matcher: init.epoch_secret.map(|s| ProtectedMatcher::new(EpochSecret::new(s))),
            meta: init.meta,
            gallery: BTreeMap::new(),
            alerts: HashMap::new(),
            log: HashMap::new(),
            heads: HashMap::new(),
            sync_requests: HashMap::new(),
            pulling: HashSet::new(),
            own_log_seen: 0,
            sync_retry: HashSet::new(),
            sync_served: HashMap::new(),
            created: HashMap::new(),
            throttled_at: HashMap::new(),
            throttled: HashMap::new(),
            sync_budget: init.sync_bytes_per_hour,
            matched: HashSet::new(),
            hits: BTreeMap::new(),
            strikes: HashMap::new(),
            max_strikes: init.max_strikes,
            rng,
            queries: init.queries,
            prober: None,
            layouts: HashMap::new(),
            budgets: HashMap::new(),
            receipts: HashMap::new(),
            peer_heads: HashMap::new(),
            deferred: HashSet::new(),
            answered: Default::default(),
            disclosures: BTreeMap::new(),
            answers: HashMap::new(),
            answered_alerts: Default::default(),
            retired: Vec::new(),
            seen_answers: HashSet::new(),
            frame_limit: init.max_frame_bytes,
            fetching: HashMap::new(),
            fetches: HashMap::new(),
            fetched_forms: HashMap::new(),
            open_queries: Default::default(),
            refusals: refusals::Refusals::new(init.refusals_audit_every_ms),
            tally: tally::AnswerTally::new(init.refusals_audit_every_ms),
            standing_pages: HashSet::new(),
            request_rate: HashMap::new(),
            max_requests_per_minute: init.max_requests_per_minute,
            max_refused_per_minute: init.max_refused_per_minute,
            positions_received: HashMap::new(),
        };
        let mut answered: HashMap<AlertId, BTreeSet<u64>> = HashMap::new();
        for a in init.answers {
            answered.entry(a.alert).or_default().extend(a.records.iter().filter(|r| **r != 0));
            e.answers.insert(a.id, a);
        }
        for k in &e.meta.retired_prober_keys {
            let key = vigil_matcher::encrypted::ProberKey::from_bytes(k)
                .map_err(|source| EngineError::StoredKey { which: "retired", source })?;
            e.retired.push(Arc::new(key));
        }
        for r in init.receipts {
            e.receipts.insert(crate::model::receipt_key(&r.alert, &r.member), r);
        }
        for d in init.disclosures {
            e.disclosures.insert(d.id, d);
        }
        if let Some(k) = &e.meta.prober_key {
            let key = vigil_matcher::encrypted::ProberKey::from_bytes(k)
                .map_err(|source| EngineError::StoredKey { which: "current", source })?;
            e.prober = Some(Arc::new(key));
        }
        for r in init.records {
            e.add_to_gallery(&r)?;
            // Never reuse an id, even if the counter was not written.
            e.meta.next_record = e.meta.next_record.max(r.id + 1);
        }
        for a in init.alerts {
            e.index_alert(&a);
            e.alerts.insert(a.id, a);
        }
        let extractor = |alert: &AlertId| e.alerts.get(alert).and_then(|a| a.alert.body.encrypted.as_ref());
        e.answered_alerts = answered::Answered::rebuild(answered, &e.gallery, |alert, g| {
            extractor(alert).is_some_and(|enc| enc.extractor == g.extractor)
        });
        for h in init.hits {
            if let (Some(r), HitSource::Alert(a)) = (h.record, h.source) {
                e.matched.insert((a, r));
            }
            e.hits.insert(h.handle, h);
        }
        Ok(e)
    }

    pub fn org(&self) -> OrgId {
        self.org
    }

    pub fn roster(&self) -> Option<&VerifiedRoster> {
        self.roster.as_ref()
    }

    pub fn is_member(&self, org: &OrgId) -> bool {
        self.roster.as_ref().is_some_and(|r| r.is_member(org))
    }

    fn has_role(&self, org: &OrgId, role: Role) -> bool {
        self.roster.as_ref().and_then(|r| r.body().member(org)).is_some_and(|m| m.roles.contains(&role))
    }

    pub fn alerts(&self) -> impl Iterator<Item = &StoredAlert> {
        self.alerts.values()
    }

    /// The extractor of an alert's encrypted probe, if it has one.
    pub fn alert_extractor(&self, alert: &AlertId) -> Option<&'static str> {
        let enc = self.alerts.get(alert)?.alert.body.encrypted.as_ref()?;
        self.biometric.active(&enc.extractor).ok().map(|e| vigil_matcher::intern(&e.id))
    }

    pub fn hits(&self) -> impl Iterator<Item = &StoredHit> {
        self.hits.values()
    }

    pub fn gallery_len(&self) -> usize {
        self.gallery.len()
    }

    /// Adds a record to the in-memory gallery. A record of an extractor
    /// the policy does not list as active is held (it can be erased and is
    /// listed as stale) but never protected or matched.
    fn add_to_gallery(&mut self, r: &StoredRecord) -> Result<(), EngineError> {
        let protected = match (&mut self.matcher, self.biometric.active(&r.template.extractor)) {
            (Some(m), Ok(ex)) if ex.parts() == 1 => Some(m.protect(ex, &r.template)?),
            _ => None,
        };
        self.layouts.remove(&r.template.extractor);
        self.gallery.insert(
            r.id,
            GalleryEntry {
                extractor: vigil_matcher::intern(&r.template.extractor),
                vector: r.template.vector.clone(),
                protected,
                retain_until_ms: r.retain_until_ms,
            },
        );
        Ok(())
    }

    fn handle(&mut self) -> vigil_protocol::Handle {
        let mut h = [0u8; 16];
        self.rng.fill_bytes(&mut h);
        vigil_protocol::Handle(h)
    }

    /// Applies a roster if it verifies and is newer than the current one.
    pub fn apply_roster(
        &mut self,
        now_ms: u64,
        roster: vigil_protocol::SignedRoster,
    ) -> Result<Vec<Action>, EngineError> {
        let _ = now_ms;
        let anchor = self.anchor.as_ref().ok_or(EngineError::NoStewards)?;
        let verified = vigil_crypto::verify_roster(&roster, anchor)?;
        if let Some(cur) = &self.roster {
            if verified.body().federation != cur.body().federation {
                return Err(EngineError::OtherFederation {
                    found: verified.body().federation.clone(),
                    ours: cur.body().federation.clone(),
                });
            }
            if verified.body().version <= cur.body().version {
                return Err(EngineError::StaleRoster { found: verified.body().version, current: cur.body().version });
            }
        }
        let event =
            AuditEvent::RosterApplied { version: verified.body().version, members: verified.body().members.len() };
        self.meta.roster = Some(roster);
        self.roster = Some(verified);
        Ok(vec![Action::Store(StoreOp::PutMeta(Box::new(self.meta.clone()))), Action::Audit(event)])
    }

    /// Enrols a record and runs it against every active alert.
    pub fn enrol(&mut self, now_ms: u64, req: Enrolment) -> Result<(u64, Vec<Action>), EngineError> {
        if req.case_ref.is_empty() || req.case_ref.len() > MAX_CASE_REF {
            return Err(EngineError::TextLength { field: "case reference", max: MAX_CASE_REF, hint: "" });
        }
        if req.consent.is_empty() || req.consent.len() > MAX_CONSENT {
            return Err(EngineError::TextLength { field: "consent", max: MAX_CONSENT, hint: " (state the basis)" });
        }
        if req.retain_until_ms <= now_ms {
            return Err(EngineError::NotInFuture("retain-until date"));
        }
        let ex = self.active_extractor(&req.template.extractor)?;
        if req.template.vector.len() != ex.dim || req.template.modality != ex.modality {
            return Err(TemplateError::Mismatch(req.template.extractor.clone(), ex.id.clone()).into());
        }
        let pad = self.attest(now_ms, PadUse::Enrolment, req.pad.as_ref())?;
        let id = self.meta.next_record.max(1);
        let record = StoredRecord {
            id,
            category: req.category,
            case_ref: req.case_ref,
            consent: req.consent,
            regime: req.regime.unwrap_or(Regime::Gdpr),
            enrolled_at_ms: now_ms,
            retain_until_ms: req.retain_until_ms,
            template: req.template,
            pad,
        };
        self.add_to_gallery(&record)?;
        self.meta.next_record = id + 1;
        let mut actions = vec![
            Action::Store(StoreOp::PutRecord(Box::new(record.clone()))),
            Action::Store(StoreOp::PutMeta(Box::new(self.meta.clone()))),
            Action::Audit(AuditEvent::Enrolled {
                record: id,
                category: format!("{:?}", record.category).to_lowercase(),
                extractor: record.template.extractor.clone(),
            }),
        ];
        actions.extend(
            record.pad.as_ref().map(|p| Action::Audit(pad_accepted(PadUse::Enrolment, format!("record {id}"), p))),
        );
        let active: Vec<AlertId> = self
            .alerts
            .values()
            .filter(|a| {
                a.status == AlertStatus::Active
                    && a.alert.body.issuer != self.org
                    && a.alert.body.expires_at_ms > now_ms
            })
            .map(|a| a.id)
            .collect();
        for alert in active {
            actions.extend(self.match_one(now_ms, alert, id));
            actions.extend(self.encrypted_alert_jobs(now_ms, alert, Some(id)));
        }
        Ok((id, actions))
    }

    /// Matches one alert against one record, producing a hit if they match
    /// and the pair was not reported before.
    fn match_one(&mut self, now_ms: u64, alert: AlertId, record: u64) -> Vec<Action> {
        if self.matched.contains(&(alert, record)) {
            return vec![];
        }
        let (Some(a), Some(g)) = (self.alerts.get(&alert), self.gallery.get(&record)) else {
            return vec![];
        };
        // An alert with an encrypted probe is answered encrypted, never in
        // the clear, unless it also carries the protected template and this
        // node matches that (`alerts.answer_protected`).
        let Some(probe) = &a.alert.body.probe else { return vec![] };
        if a.alert.body.encrypted.is_some() && !self.policy.answer_protected {
            return vec![];
        }
        let Some(p) = &g.protected else { return vec![] };
        let Ok(ex) = self.biometric.active(g.extractor) else { return vec![] };
        if g.extractor != probe.extractor {
            return vec![];
        }
        let Ok(Some(band)) = ProtectedMatcher::band(ex, probe, p) else { return vec![] };
        // One threshold: a plain notice, as before bands existed.
        let band = (ex.thresholds.len() > 1).then(|| ex.thresholds[band].band);
        let issuer = a.alert.body.issuer;
        self.matched.insert((alert, record));
        let handle = self.handle();
        let hit = StoredHit {
            handle,
            role: HitRole::Holder,
            source: HitSource::Alert(alert),
            peer: issuer,
            record: Some(record),
            at_ms: now_ms,
            delivered: false,
            band,
            case: None,
        };
        self.hits.insert(handle, hit.clone());
        let request = hits::notice_request(&self.me, alert, &hit);
        vec![
            Action::Store(StoreOp::PutHit(hit)),
            Action::Audit(AuditEvent::HitDetected { alert, record, handle, issuer }),
            Action::Send { to: issuer, request, key: handle },
        ]
    }

    /// A rejected message from `peer`: audited, and a strike against it.
    pub fn violation(&mut self, peer: OrgId, reason: &str) -> Vec<Action> {
        let mut actions =
            vec![Action::Audit(AuditEvent::MessageRejected { from: peer.to_hex(), reason: reason.to_string() })];
        actions.extend(self.strike(peer, reason));
        actions
    }

    /// Records a protocol violation by `peer`; blocks it after too many.
    pub fn strike(&mut self, peer: OrgId, reason: &str) -> Vec<Action> {
        let n = self.strikes.entry(peer).or_default();
        *n += 1;
        let mut actions =
            vec![Action::Audit(AuditEvent::PeerPenalised { peer: peer.to_hex(), strikes: *n, reason: reason.into() })];
        if *n == self.max_strikes {
            actions.push(Action::Audit(AuditEvent::PeerBlocked { peer: peer.to_hex() }));
            actions.push(Action::Block(peer));
        }
        actions
    }

    /// Counts a request frame from `from` against its per-minute rate;
    /// `false`: over the rate, or over its refusals for the minute: refuse
    /// it before decoding anything (no audit entry, no strike: what it
    /// costs is this counter).
    pub(crate) fn take_request(&mut self, now_ms: u64, from: OrgId) -> bool {
        const MINUTE: u64 = 60_000;
        if self.request_rate.len() > 4096 {
            self.request_rate.retain(|_, (start, _, _)| now_ms < *start + MINUTE);
        }
        let (start, n, refused) = self.request_rate.entry(from).or_insert((now_ms, 0, 0));
        if now_ms >= *start + MINUTE {
            (*start, *n, *refused) = (now_ms, 0, 0);
        }
        *n += 1;
        *n <= self.max_requests_per_minute && *refused < self.max_refused_per_minute
    }

    /// A request of `from` was refused (not for its rate): counted.
    pub(crate) fn note_refused(&mut self, from: OrgId, response: &vigil_protocol::Response) {
        use vigil_protocol::{Refusal, Response};
        if matches!(response, Response::Refused(r) if *r != Refusal::RateLimited) {
            if let Some((_, _, refused)) = self.request_rate.get_mut(&from) {
                *refused += 1;
            }
        }
    }

    /// A connection from `addr` was refused (not a member, blocked, over a
    /// connection limit): counted per source address, audited in
    /// aggregate by `aggregates_due`.
    pub fn connection_refused(&mut self, now_ms: u64, addr: &str, reason: String) {
        self.refusals.note(now_ms, refusals::refused_source(addr), reason);
    }

    /// The aggregate audit entries (refused connections, standing-matching
    /// answer pages), each once an interval has passed since the first
    /// event it counts.
    pub fn aggregates_due(&mut self, now_ms: u64) -> Vec<Action> {
        let refused = self.refusals.due(now_ms);
        let answers = self.tally.due(now_ms, false);
        refused.into_iter().chain(answers).map(Action::Audit).collect()
    }

    /// Every count not audited yet, whatever the interval (on shutdown).
    pub fn aggregates_now(&mut self, now_ms: u64) -> Vec<Action> {
        let refused = self.refusals.due(now_ms.saturating_add(u64::MAX / 2));
        let answers = self.tally.due(now_ms, true);
        refused.into_iter().chain(answers).map(Action::Audit).collect()
    }

    /// A block on `peer` ended: its strikes start from zero again.
    pub fn forgive(&mut self, peer: &OrgId) {
        self.strikes.remove(peer);
    }

    /// A block on `peer` is still in force (from the store, at start).
    pub fn keep_blocked(&mut self, peer: OrgId) {
        self.strikes.insert(peer, self.max_strikes);
    }

    pub fn strikes(&self, peer: &OrgId) -> u32 {
        self.strikes.get(peer).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests;

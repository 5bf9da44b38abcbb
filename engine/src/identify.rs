//! Encrypted identification queries. As responder: check membership, role,
//! budget and the probe's form (column, or row in 1..=32 chunks: the prober
//! picks by the gallery size it saw last), then hand a job (probe + gallery
//! snapshot) to the runtime, which runs the homomorphic work off the async
//! runtime. As prober: hold the GLWE key, audit what was asked, why, and
//! what came back, and flag answers with implausibly many positives.

use super::{Action, Engine};
use crate::audit::AuditEvent;
use crate::model::{StoreOp, StoredBudget};
use std::sync::Arc;
use vigil_matcher::encrypted::parts;
use vigil_matcher::encrypted::{
    present_parts, respond, respond_row_any, AnyProbe, ProberKey, RowAnswer, RunLayout, Thresholds, MAX_SPLIT_CHUNKS,
};
use vigil_matcher::Gallery;
use vigil_protocol::{decode, encode, Handle, IdentifyAnswer, OrgId, Refusal, Request, Response, Role, Tag};

/// A gallery snapshot for one extractor, laid out for encrypted answers.
#[derive(Debug)]
pub struct EncryptedGallery {
    pub layout: RunLayout,
    /// Record id of each gallery row.
    pub records: Vec<u64>,
    /// Fingers each row holds (`present_parts`), for multi-finger
    /// extractors; empty otherwise.
    pub present: Vec<u16>,
}

/// Homomorphic work for the runtime to run on a blocking thread.
#[derive(Debug)]
pub struct IdentifyJob {
    pub query: Handle,
    pub from: OrgId,
    /// The probe, in the form the prober chose.
    pub probe: AnyProbe,
    pub gallery: Arc<EncryptedGallery>,
    /// The policy's band thresholds, rising (per row where they depend on
    /// the fingers a record shares with the probe): a row-form answer
    /// carries one answer per band when there are several (column form:
    /// the first).
    pub thresholds: Thresholds,
    pub seed: [u8; 32],
}

impl IdentifyJob {
    /// Result stride of the answer: 0 for the column form.
    pub fn stride(&self) -> usize {
        self.probe.stride()
    }

    /// The homomorphic work (blocking): the encoded `Response::Answer`.
    pub fn run(&self, max_answer_bytes: usize) -> Result<Vec<u8>, String> {
        let answer = match &self.probe {
            AnyProbe::Column(p) => {
                respond(p, &self.gallery.layout, self.thresholds.band(0), self.seed).map(|a| a.0.to_bytes())
            }
            AnyProbe::Row(p) => {
                respond_row_any(p, &self.gallery.layout.gallery(), &self.thresholds, self.seed).map(|a| a.0)
            }
        }
        .map_err(|e| e.to_string())?;
        let r = Response::Answer(IdentifyAnswer { query: self.query, answer });
        encode(Tag::Response, &r, max_answer_bytes).map_err(|e| e.to_string())
    }
}

/// An answered query, remembered so that its handles resolve to records
/// when the prober asks for disclosure.
#[derive(Debug)]
pub(crate) struct AnsweredQuery {
    pub(crate) query: Handle,
    pub(crate) from: OrgId,
    pub(crate) seed: [u8; 32],
    pub(crate) gallery: Arc<EncryptedGallery>,
    /// 0: column form; else the row form's stride.
    pub(crate) stride: usize,
}

/// What to do with an incoming query frame.
#[derive(Debug)]
pub enum IdentifyStart {
    Run(Box<IdentifyJob>, Vec<Action>),
    /// Encrypt an alert's column-form probe for a holder (blocking work).
    Fetch(Box<super::FetchJob>, Vec<Action>),
    Answer(Response, Vec<Action>),
}

/// The share of a member's daily budget at which the holder flags it.
pub(crate) const BUDGET_PRESSURE: f64 = 0.8;
/// How long an answer counts against a member's daily budget.
const BUDGET_DAY_MS: u64 = 24 * 3600 * 1000;

/// The answer budgets a holder keeps per member: each answer tells the
/// member one threshold bit per record, so both are bounded.
pub(crate) use crate::model::BudgetKind as Budget;

/// The handle of position `pos` of the answer from `holder` to `query`:
/// both ends derive it, the holder resolves it to a record (for
/// disclosure), the prober names hits by it. Unique per holder: two
/// holders' hits of one query never collide. The position is in the
/// handle's first four bytes, so the holder resolves a handle in constant
/// time (never by hashing every position of its gallery on a peer's
/// request); a position of a fresh per-query shuffle says nothing beyond
/// the answer it names.
pub fn query_handle(query: &Handle, holder: &OrgId, pos: usize) -> Handle {
    let mut b = query.0.to_vec();
    b.extend_from_slice(&holder.0);
    b.extend_from_slice(&(pos as u64).to_le_bytes());
    positioned(pos, &vigil_crypto::sha256(&b))
}

/// The handle of position `pos` of answer page `answer` (an id unique to
/// its holder) to an encrypted alert; laid out as `query_handle`.
pub fn position_handle(query: &Handle, pos: usize) -> Handle {
    let mut b = query.0.to_vec();
    b.extend_from_slice(&(pos as u64).to_le_bytes());
    positioned(pos, &vigil_crypto::sha256(&b))
}

/// The position a handle names, if it is one of `query_handle` or
/// `position_handle` form (the caller recomputes the handle to check it).
pub(crate) fn handle_position(handle: &Handle) -> usize {
    u32::from_le_bytes(handle.0[..4].try_into().expect("4 bytes")) as usize
}

/// `pos` (little-endian u32) then the first 12 bytes of `digest`. Answers
/// have fewer than 2^32 positions (`EncryptedAnswer::check` caps them).
fn positioned(pos: usize, digest: &[u8; 32]) -> Handle {
    let mut h = [0u8; 16];
    h[..4].copy_from_slice(&(pos as u32).to_le_bytes());
    h[4..].copy_from_slice(&digest[..12]);
    Handle(h)
}

fn hex_id(id: &[u8; 16]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// Answered queries remembered for follow-up (bounded).
pub(super) const MAX_REMEMBERED_QUERIES: usize = 1000;

impl Engine {
    /// The GLWE key, created on first use (the runtime persists `Meta`).
    pub fn prober_key(&mut self) -> (Arc<ProberKey>, Vec<Action>) {
        if let Some(k) = &self.prober {
            return (k.clone(), vec![]);
        }
        let key = Arc::new(ProberKey::generate());
        self.meta.prober_key = Some(key.to_bytes().to_vec());
        self.prober = Some(key.clone());
        let id = hex_id(&key.id());
        (
            key,
            vec![
                Action::Store(crate::model::StoreOp::PutMeta(Box::new(self.meta.clone()))),
                Action::Audit(AuditEvent::ProberKeyCreated { key_id: id }),
            ],
        )
    }

    /// Replaces the GLWE key. Queries already sent keep the old key until
    /// their answers are decrypted; new queries use the new one.
    pub fn rotate_prober_key(&mut self) -> (String, Vec<Action>) {
        let old = self.prober.take().map(|k| {
            let id = hex_id(&k.id());
            self.retire_key(k);
            id
        });
        let (key, mut actions) = self.prober_key();
        let new = hex_id(&key.id());
        // prober_key() audited a creation; record it as a rotation instead.
        actions.retain(|a| !matches!(a, Action::Audit(_)));
        actions.push(Action::Audit(AuditEvent::ProberKeyRotated { old: old.unwrap_or_default(), new: new.clone() }));
        (new, actions)
    }

    /// The records of `ex` laid out for encrypted answers: kept for the
    /// whole vectors (until the gallery changes); made for each query that
    /// carries only some fingers (`carried`), over those fingers alone.
    fn encrypted_gallery(
        &mut self,
        ex: &vigil_matcher::Extractor,
        carried: Option<&[u8]>,
    ) -> Option<Arc<EncryptedGallery>> {
        let extractor = vigil_matcher::intern(&ex.id);
        if let (Some(g), None) = (self.layouts.get(extractor), carried) {
            return Some(g.clone());
        }
        let rows: Vec<(u64, &Vec<i8>)> =
            self.gallery.iter().filter(|(_, e)| e.extractor == extractor).map(|(id, e)| (*id, &e.vector)).collect();
        rows.first()?;
        let dim = parts::parts_dim(ex, carried);
        let mut data = Vec::with_capacity(rows.len() * dim);
        rows.iter().for_each(|(_, v)| parts::extend_parts(ex, v, carried, &mut data));
        let present = match ex.parts() {
            1 => vec![],
            _ => rows.iter().map(|(_, v)| present_parts(ex, v)).collect(),
        };
        let g = Arc::new(EncryptedGallery {
            layout: RunLayout::new(&Gallery::new(dim, data)),
            records: rows.iter().map(|(id, _)| *id).collect(),
            present,
        });
        if carried.is_none() {
            self.layouts.insert(extractor.to_string(), g.clone());
        }
        Some(g)
    }

    /// Counts an answer against `from`'s budget of that kind; `Err` names
    /// the spent window. The answer that brings a member to
    /// `BUDGET_PRESSURE` of its daily budget is flagged in the audit (what
    /// a holder can see of a chosen-probe attack: it cannot read probes or
    /// answers, but every answer is a threshold bit per record).
    pub(super) fn spend_budget(&mut self, now_ms: u64, from: OrgId, budget: Budget) -> Result<Vec<Action>, String> {
        self.budget_left(now_ms, from, budget)?;
        let per_day = match budget {
            Budget::Queries => self.queries.per_day,
            Budget::Alerts => self.policy.answers_per_day,
        };
        let log = self.budgets.entry((from, budget)).or_default();
        log.push_back(now_ms);
        let used = log.len() as u32;
        let stored = StoredBudget { peer: from, kind: budget, spent_ms: log.iter().copied().collect() };
        let mut actions = vec![Action::Store(StoreOp::PutBudget(stored))];
        let mark = (per_day as f64 * BUDGET_PRESSURE).ceil().max(1.0) as u32;
        if used != mark {
            return Ok(actions);
        }
        let kind = match budget {
            Budget::Queries => "queries",
            Budget::Alerts => "encrypted alerts",
        };
        actions.push(Action::Audit(AuditEvent::BudgetPressure { peer: from, kind: kind.into(), used, per_day }));
        Ok(actions)
    }

    /// A member's budget as the store kept it (at start): answers of the
    /// last day keep counting against it.
    pub fn restore_budget(&mut self, now_ms: u64, b: StoredBudget) {
        let log: std::collections::VecDeque<u64> =
            b.spent_ms.into_iter().filter(|t| *t + BUDGET_DAY_MS > now_ms).collect();
        if !log.is_empty() {
            self.budgets.insert((b.peer, b.kind), log);
        }
    }

    /// Whether `from` may be answered once more now (forgetting answers a
    /// day old); `Err` names the spent window.
    pub(super) fn budget_left(&mut self, now_ms: u64, from: OrgId, budget: Budget) -> Result<(), String> {
        const HOUR: u64 = 3600 * 1000;
        let (per_hour, per_day, what) = match budget {
            Budget::Queries => (self.queries.per_hour, self.queries.per_day, "query"),
            Budget::Alerts => (self.policy.answers_per_hour, self.policy.answers_per_day, "encrypted alert"),
        };
        let log = self.budgets.entry((from, budget)).or_default();
        while log.front().is_some_and(|t| *t + BUDGET_DAY_MS <= now_ms) {
            log.pop_front();
        }
        let last_hour = log.iter().filter(|t| **t + HOUR > now_ms).count() as u32;
        if last_hour >= per_hour {
            return Err(format!("{what} budget spent: {per_hour} per hour"));
        }
        if log.len() as u32 >= per_day {
            return Err(format!("{what} budget spent: {per_day} per day"));
        }
        Ok(())
    }

    /// Handles a frame on the identify protocol from `from`.
    pub fn on_identify(&mut self, now_ms: u64, from: OrgId, bytes: &[u8], seed: [u8; 32]) -> IdentifyStart {
        if !self.take_request(now_ms, from) {
            return IdentifyStart::Answer(Response::Refused(Refusal::RateLimited), vec![]);
        }
        let start = self.identify_frame(now_ms, from, bytes, seed);
        if let IdentifyStart::Answer(r, _) = &start {
            self.note_refused(from, r);
        }
        start
    }

    fn identify_frame(&mut self, now_ms: u64, from: OrgId, bytes: &[u8], seed: [u8; 32]) -> IdentifyStart {
        let max = self.queries.max_query_bytes;
        let req = match decode::<Request>(Tag::Request, bytes, max) {
            Ok(Request::Identify(r)) => r,
            Ok(r @ (Request::FetchProbe(_) | Request::FetchSplit(_))) => {
                let (alert, chunks) = match r {
                    Request::FetchSplit(f) => (f.alert, Some(f.chunks as usize)),
                    Request::FetchProbe(f) => (f.alert, None),
                    _ => unreachable!("matched above"),
                };
                return match self.on_fetch_probe(from, alert, chunks) {
                    Ok(job) => IdentifyStart::Fetch(Box::new(job), vec![]),
                    Err((refusal, reason)) => IdentifyStart::Answer(
                        Response::Refused(refusal),
                        vec![Action::Audit(AuditEvent::MessageRejected {
                            from: from.to_hex(),
                            reason: format!("fetch of alert {alert} refused: {reason}"),
                        })],
                    ),
                };
            }
            Ok(_) | Err(_) => {
                let reason = "undecodable identification query".to_string();
                let actions = self.violation(from, &reason);
                return IdentifyStart::Answer(Response::Refused(Refusal::Malformed), actions);
            }
        };
        let refuse = |refusal: Refusal, reason: String, query: Handle| {
            IdentifyStart::Answer(
                Response::Refused(refusal),
                vec![Action::Audit(AuditEvent::QueryRefused { query, from, reason })],
            )
        };
        if let Err(e) = req.validate() {
            return refuse(Refusal::Malformed, e.to_string(), req.query);
        }
        if !self.has_role(&from, Role::Query) {
            return refuse(
                Refusal::NotAllowed,
                "the roster does not give this member the query role".into(),
                req.query,
            );
        }
        let bio = self.biometric();
        let extractor = match bio.active(&req.extractor) {
            Ok(ex) => ex,
            Err(e) => return refuse(Refusal::Unsupported, e.to_string(), req.query),
        };
        let opened = parts::unwrap(extractor, &req.probe, max)
            .and_then(|(inner, carried)| Ok((AnyProbe::from_bytes(&inner, max, MAX_SPLIT_CHUNKS)?, carried)));
        let dim = |carried: &Option<Vec<u8>>| parts::parts_dim(extractor, carried.as_deref());
        let (probe, carried) = match opened {
            Ok((p, carried)) if p.dim() == dim(&carried) => (p, carried),
            Ok((p, carried)) => {
                let reason = format!("probe has {} dimensions, {} has {}", p.dim(), extractor.id, dim(&carried));
                return refuse(Refusal::Unsupported, reason, req.query);
            }
            Err(e) => return refuse(Refusal::Unsupported, format!("probe refused: {e}"), req.query),
        };
        let gallery = self.encrypted_gallery(extractor, carried.as_deref()).unwrap_or_else(|| {
            Arc::new(EncryptedGallery {
                layout: RunLayout::new(&Gallery::new(probe.dim(), vec![])),
                records: vec![],
                present: vec![],
            })
        });
        if let AnyProbe::Row(p) = &probe {
            // A row answer grows with the gallery (the prober's idea of its
            // size may be old): refused before the budget is spent.
            let bytes = RowAnswer::encoded_len(gallery.records.len(), p.stride()) + 64;
            if bytes > self.queries.max_answer_bytes {
                let reason = format!(
                    "a row-form answer for {} records is {bytes} bytes, above the {} limit: send the column form",
                    gallery.records.len(),
                    self.queries.max_answer_bytes
                );
                return refuse(Refusal::Unsupported, reason, req.query);
            }
        }
        let mut actions = match self.spend_budget(now_ms, from, Budget::Queries) {
            Ok(flagged) => flagged,
            Err(reason) => return refuse(Refusal::BudgetExceeded, reason, req.query),
        };
        let event = AuditEvent::QueryReceived {
            query: req.query,
            from,
            purpose: req.purpose.clone(),
            legal_basis: req.legal_basis.clone(),
            records: gallery.records.len(),
        };
        let thresholds = Thresholds::for_rows(extractor, &gallery.present, carried.as_deref());
        let job = IdentifyJob { query: req.query, from, probe, gallery, thresholds, seed };
        actions.push(Action::Audit(event));
        IdentifyStart::Run(Box::new(job), actions)
    }

    /// The runtime finished a job; remember how to resolve its handles.
    pub fn identify_answered(&mut self, job: &IdentifyJob) {
        if self.answered.len() >= MAX_REMEMBERED_QUERIES {
            self.answered.pop_front();
        }
        self.answered.push_back(AnsweredQuery {
            query: job.query,
            from: job.from,
            seed: job.seed,
            gallery: job.gallery.clone(),
            stride: job.stride(),
        });
    }

    /// Stores the hits of an answer the prober decrypted (so they can be
    /// followed up by disclosure) and audits it: `hits` of `positions`.
    pub fn query_result(
        &mut self,
        now_ms: u64,
        query: Handle,
        peer: OrgId,
        hits: &[(Handle, Option<vigil_protocol::policy::Band>)],
        positions: usize,
        case: Option<vigil_protocol::AlertId>,
    ) -> Vec<Action> {
        let positives = hits.len();
        let mut actions = vec![Action::Audit(AuditEvent::QueryAnswered { query, peer, positives, positions })];
        for &(handle, band) in hits {
            let hit = crate::model::StoredHit {
                handle,
                role: crate::model::HitRole::Prober,
                source: crate::model::HitSource::Query(query),
                peer,
                record: None,
                at_ms: now_ms,
                delivered: true,
                band,
                case,
            };
            self.hits.insert(handle, hit.clone());
            actions.push(Action::Store(crate::model::StoreOp::PutHit(hit)));
        }
        if positions > 0 && positives as f64 > self.queries.flag_hit_fraction * positions as f64 && positives > 1 {
            actions.push(Action::Audit(AuditEvent::QueryFlagged { query, peer, positives, positions }));
        }
        actions
    }
}

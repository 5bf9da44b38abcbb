//! The prober's side of encrypted identification queries, as engine state
//! on the caller's clock: which form each member gets (the one that moves
//! the fewest bytes for the gallery size its answers showed; column when
//! unknown), which members were asked and have not answered, the deadline,
//! and each member's outcome. The runtime only encrypts, sends, decrypts
//! and replies to the operator.

use super::{Action, Engine, EngineError};
use crate::audit::AuditEvent;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use vigil_matcher::encrypted::{
    answer_forms, cheapest, AnswerForm, AnyAnswer, EncryptedAnswer, ProberKey, MAX_SPLIT_CHUNKS,
};
use vigil_protocol::{decode, AlertId, Handle, IdentifyRequest, OrgId, Response, Role, Tag};

/// How one member's part of a query ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutcomeStatus {
    /// It answered; the answer decrypted.
    Answered,
    /// It refused (budget, role, form), saying why.
    Refused,
    /// No answer before the deadline.
    Timeout,
    /// Not connected, or the answer did not decode or decrypt.
    Failed,
}

/// How one peer answered a query.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerOutcome {
    pub peer: OrgId,
    pub status: OutcomeStatus,
    pub reason: Option<String>,
    /// Handles of matching positions (resolve them with that peer).
    pub hits: Vec<Handle>,
    /// The band of each hit when the member's answer carried bands.
    #[serde(default)]
    pub bands: Vec<Option<vigil_protocol::policy::Band>>,
    /// Gallery positions the peer answered for.
    pub positions: usize,
    /// The probe's form sent to this peer: `column`, `row` or `split N`.
    pub form: String,
}

impl PeerOutcome {
    fn new(peer: OrgId, status: OutcomeStatus, reason: impl Into<String>, form: AnswerForm) -> Self {
        PeerOutcome {
            peer,
            status,
            reason: Some(reason.into()),
            hits: vec![],
            bands: vec![],
            positions: 0,
            form: form.to_string(),
        }
    }
}

/// The outcome of a query, once nothing more can arrive.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdentifyReport {
    pub query: Handle,
    pub peers: Vec<PeerOutcome>,
    /// The probe's liveness (PAD) attestation, as checked when it was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad: Option<vigil_protocol::pad::PadAttestation>,
}

/// A query to start: encrypt `template` once per form in `forms` (with
/// `key`) into an `IdentifyRequest` like `request`, then hand the frames to
/// `Engine::query_encrypted`.
#[derive(Debug)]
pub struct QueryStart {
    pub query: Handle,
    pub key: Arc<ProberKey>,
    /// The request, without its probe.
    pub request: IdentifyRequest,
    /// The forms some connected member gets, each once.
    pub forms: Vec<AnswerForm>,
    /// What to encrypt: the fingers the probe carries (`parts::wrap` the
    /// encrypted probe with them).
    pub probe: vigil_matcher::encrypted::parts::ProbeParts,
    pub actions: Vec<Action>,
}

/// A member's answer to decrypt (blocking work), then hand to
/// `Engine::query_decrypted`.
#[derive(Debug)]
pub struct DecryptJob {
    pub query: Handle,
    pub peer: OrgId,
    pub form: AnswerForm,
    key: Arc<ProberKey>,
    answer: Vec<u8>,
    dim: usize,
    max_bytes: usize,
}

/// What decrypting an answer gave: matching positions, each with the
/// highest band index reached when the answer carries bands, and
/// positions in all.
pub type Decrypted = Result<(Vec<(Handle, Option<u8>)>, usize), String>;

impl DecryptJob {
    /// Decrypts the answer in the form asked: a column answer, or a row
    /// answer at the stride of the split sent (another stride is refused);
    /// names each matching position by its handle.
    pub fn run(&self) -> Decrypted {
        let answer = match self.form.row_chunks() {
            None => {
                AnyAnswer::Column(EncryptedAnswer::from_bytes(&self.answer, self.max_bytes).map_err(|e| e.to_string())?)
            }
            Some(chunks) => {
                let a = AnyAnswer::from_bytes(&self.answer, self.max_bytes).map_err(|e| e.to_string())?;
                let want = vigil_matcher::encrypted::stride(self.dim, chunks);
                if a.stride() != Some(want) {
                    return Err(format!("row answer at stride {:?}, the probe sent has stride {want}", a.stride()));
                }
                a
            }
        };
        let (positives, positions) = answer.positives(&self.key).map_err(|e| e.to_string())?;
        let hits = positives.into_iter().map(|(p, b)| (super::query_handle(&self.query, &self.peer, p), b)).collect();
        Ok((hits, positions))
    }
}

/// What to do with a member's response to a query.
#[derive(Debug)]
pub enum QueryResponse {
    /// Decrypt it off the event loop.
    Decrypt(Box<DecryptJob>),
    /// Recorded (refused or undecodable); apply these.
    Done(Vec<Action>),
}

/// A query this node sent and is still collecting answers for.
#[derive(Debug)]
struct OpenQuery {
    deadline_ms: u64,
    key: Arc<ProberKey>,
    /// Members asked and not yet answered, with the form sent.
    waiting: HashMap<OrgId, AnswerForm>,
    /// Every member with the match role, and the form it gets.
    plan: Vec<(OrgId, AnswerForm)>,
    extractor: &'static str,
    dim: usize,
    purpose: String,
    legal_basis: String,
    decrypting: usize,
    outcomes: Vec<PeerOutcome>,
    /// Whether the probes are encrypted (and sent): only then can it end.
    sent: bool,
    /// This node's own case the query was made for (`case_query`).
    case: Option<AlertId>,
    /// The probe's PAD attestation, for the report.
    pad: Option<vigil_protocol::pad::PadAttestation>,
}

/// The prober's queries and what it learned of each member's gallery.
#[derive(Debug, Default)]
pub(crate) struct Queries {
    open: HashMap<Handle, OpenQuery>,
    /// Positions in each member's last answer, per extractor: picks the
    /// form of the next query to it (`form_for`).
    peer_records: HashMap<(OrgId, &'static str), usize>,
    /// Issuer: positions in the pages of each holder's answer to our latest
    /// alert it answered, per extractor (`note_alert_answer`).
    alert_pages: HashMap<(OrgId, &'static str), (AlertId, usize)>,
}

/// The form of the next query to a peer whose last answer had `records`
/// positions (`None`: never answered): the one that moves the fewest bytes,
/// as holders pick for alerts; the column form when the size is unknown.
pub fn form_for(records: Option<usize>, dim: usize) -> AnswerForm {
    match records {
        Some(r) => cheapest(r, dim, &answer_forms(dim, MAX_SPLIT_CHUNKS)),
        None => AnswerForm::Column,
    }
}

impl Queries {
    /// A page of a holder's answer to one of our alerts: the pages of one
    /// alert add up to the size of the holder's gallery, so the first query
    /// to that holder can go in the form that moves the fewest bytes instead
    /// of the 2 MiB column form. Raises what is known, never lowers it (a
    /// query's answer, exact, replaces it).
    pub(crate) fn note_alert_answer(
        &mut self,
        holder: OrgId,
        alert: AlertId,
        extractor: &'static str,
        positions: usize,
    ) {
        let key = (holder, extractor);
        let sum = match self.alert_pages.get(&key) {
            Some((a, n)) if *a == alert => n + positions,
            _ => positions,
        };
        self.alert_pages.insert(key, (alert, sum));
        let known = self.peer_records.entry(key).or_insert(0);
        *known = (*known).max(sum);
    }
}

impl Engine {
    /// Operator command: a query for `template` to every member with the
    /// match role; `connected` says which are reachable now (only their
    /// forms are encrypted). The deadline is `queries.timeout` from `now_ms`.
    pub fn start_query<'a>(
        &mut self,
        now_ms: u64,
        capture: impl Into<crate::Capture<'a>>,
        purpose: String,
        legal_basis: String,
        connected: impl Fn(&OrgId) -> bool,
    ) -> Result<QueryStart, EngineError> {
        let crate::Capture { template, pad } = capture.into();
        let bio = self.biometric();
        let ex = bio.active(&template.extractor).map_err(vigil_matcher::TemplateError::from)?;
        let mut id = [0u8; 16];
        rand::RngCore::fill_bytes(&mut self.rng, &mut id);
        let request = IdentifyRequest {
            query: Handle(id),
            purpose: purpose.clone(),
            legal_basis: legal_basis.clone(),
            extractor: ex.id.clone(),
            probe: vec![],
        };
        request.validate().map_err(EngineError::Query)?;
        let pad = self.attest(now_ms, vigil_protocol::pad::PadUse::Query, pad)?;
        let (key, mut actions) = self.prober_key();
        let subject = format!("query {}", request.query);
        let usage = vigil_protocol::pad::PadUse::Query;
        actions.extend(pad.as_ref().map(|p| Action::Audit(crate::pad_accepted(usage, subject, p))));
        let probe = vigil_matcher::encrypted::parts::probe_parts(ex, &template.vector);
        let dim = vigil_matcher::encrypted::parts::parts_dim(ex, probe.parts.as_deref());
        let me = self.org;
        let known = &self.open_queries.peer_records;
        let plan: Vec<(OrgId, AnswerForm)> = self
            .roster
            .as_ref()
            .map(|r| {
                r.body()
                    .members
                    .iter()
                    .filter(|m| m.org != me && m.roles.contains(&Role::Match))
                    .map(|m| (m.org, form_for(known.get(&(m.org, vigil_matcher::intern(&ex.id))).copied(), dim)))
                    .collect()
            })
            .unwrap_or_default();
        // Encrypt only the forms of members connected now (a column probe
        // for an absent large member would be 35 ms of work for nothing).
        let mut forms: Vec<AnswerForm> = plan.iter().filter(|(o, _)| connected(o)).map(|(_, f)| *f).collect();
        forms.sort_by_key(|f| f.to_string());
        forms.dedup();
        let query = request.query;
        self.open_queries.open.insert(
            query,
            OpenQuery {
                deadline_ms: now_ms.saturating_add(self.queries.timeout.as_millis() as u64),
                key: key.clone(),
                waiting: HashMap::new(),
                plan,
                extractor: vigil_matcher::intern(&ex.id),
                dim,
                purpose,
                legal_basis,
                decrypting: 0,
                outcomes: vec![],
                sent: false,
                case: None,
                pad,
            },
        );
        Ok(QueryStart { query, key, request, forms, probe, actions })
    }

    /// The probes of `query` are encrypted, one per form: which member gets
    /// which form (to send now), members not connected recorded as failed.
    /// `Err`: encryption failed and the query is over.
    pub fn query_encrypted(
        &mut self,
        query: Handle,
        forms: &[AnswerForm],
        connected: impl Fn(&OrgId) -> bool,
    ) -> (Vec<(OrgId, AnswerForm)>, Vec<Action>) {
        let Some(q) = self.open_queries.open.get_mut(&query) else { return (vec![], vec![]) };
        q.sent = true;
        let mut send = vec![];
        for (peer, form) in q.plan.clone() {
            if connected(&peer) && forms.contains(&form) {
                q.waiting.insert(peer, form);
                send.push((peer, form));
            } else {
                q.outcomes.push(PeerOutcome::new(peer, OutcomeStatus::Failed, "not connected", form));
            }
        }
        let event = AuditEvent::QuerySent {
            query,
            purpose: q.purpose.clone(),
            legal_basis: q.legal_basis.clone(),
            peers: send.len(),
        };
        (send, vec![Action::Audit(event)])
    }

    /// Checks that `alert` is one of this node's own cases, so that an
    /// identification can be bound to it (`case_query`).
    pub fn own_case(&self, alert: AlertId) -> Result<(), EngineError> {
        let a = self.alerts.get(&alert).ok_or(EngineError::UnknownAlert(alert))?;
        if a.alert.body.issuer != self.org {
            return Err(EngineError::NotOurs(alert));
        }
        Ok(())
    }

    /// Binds open `query` to this node's case `alert`: its hits name the
    /// case; the audit entry that records it.
    pub fn case_query(&mut self, query: Handle, alert: AlertId) -> Result<Action, EngineError> {
        self.own_case(alert)?;
        if let Some(q) = self.open_queries.open.get_mut(&query) {
            q.case = Some(alert);
        }
        Ok(Action::Audit(AuditEvent::QueryForCase { query, alert }))
    }

    /// Drops a query whose probes could not be encrypted.
    pub fn query_abandoned(&mut self, query: Handle) {
        self.open_queries.open.remove(&query);
    }

    /// `peer`'s response frame to `query`.
    pub fn query_response(&mut self, query: Handle, peer: OrgId, frame: &[u8]) -> QueryResponse {
        let max = self.queries.max_answer_bytes;
        let Some(q) = self.open_queries.open.get_mut(&query) else { return QueryResponse::Done(vec![]) };
        let Some(form) = q.waiting.remove(&peer) else { return QueryResponse::Done(vec![]) };
        let reason = match decode::<Response>(Tag::Response, frame, max) {
            Ok(Response::Answer(a)) if a.query == query => {
                q.decrypting += 1;
                let (key, dim) = (q.key.clone(), q.dim);
                return QueryResponse::Decrypt(Box::new(DecryptJob {
                    query,
                    peer,
                    form,
                    key,
                    answer: a.answer,
                    dim,
                    max_bytes: max,
                }));
            }
            Ok(Response::Refused(r)) => {
                if r == vigil_protocol::Refusal::Unsupported && form != AnswerForm::Column {
                    // Its gallery may have outgrown the form: column next time.
                    self.open_queries.peer_records.remove(&(peer, q.extractor));
                }
                q.outcomes.push(PeerOutcome::new(peer, OutcomeStatus::Refused, format!("{r:?}"), form));
                let reason = format!("refused: {r:?}");
                return QueryResponse::Done(vec![Action::Audit(AuditEvent::QueryUnanswered { query, peer, reason })]);
            }
            Err(e) => format!("undecodable answer: {e}"),
            Ok(_) => "answer to another query".to_string(),
        };
        q.outcomes.push(PeerOutcome::new(peer, OutcomeStatus::Failed, reason.clone(), form));
        QueryResponse::Done(vec![Action::Audit(AuditEvent::QueryUnanswered { query, peer, reason })])
    }

    /// The request to `peer` failed before any response (`timeout`: the
    /// transport's own request timeout).
    pub fn query_failed(&mut self, query: Handle, peer: OrgId, timeout: bool, reason: String) -> Vec<Action> {
        let Some(q) = self.open_queries.open.get_mut(&query) else { return vec![] };
        let Some(form) = q.waiting.remove(&peer) else { return vec![] };
        let status = if timeout { OutcomeStatus::Timeout } else { OutcomeStatus::Failed };
        q.outcomes.push(PeerOutcome::new(peer, status, reason.clone(), form));
        vec![Action::Audit(AuditEvent::QueryUnanswered { query, peer, reason })]
    }

    /// A decryption finished: what it learned of the member's gallery
    /// picks the next query's form; hits are stored and audited.
    pub fn query_decrypted(&mut self, now_ms: u64, job: &DecryptJob, result: Decrypted) -> Vec<Action> {
        let Some(q) = self.open_queries.open.get_mut(&job.query) else { return vec![] };
        q.decrypting = q.decrypting.saturating_sub(1);
        let (hits, positions) = match result {
            Ok(r) => r,
            Err(e) => {
                q.outcomes.push(PeerOutcome::new(job.peer, OutcomeStatus::Failed, e.clone(), job.form));
                return vec![Action::Audit(AuditEvent::QueryUnanswered {
                    query: job.query,
                    peer: job.peer,
                    reason: e,
                })];
            }
        };
        let (extractor, case) = (q.extractor, q.case);
        let hits: Vec<(Handle, Option<vigil_protocol::policy::Band>)> =
            hits.into_iter().map(|(h, b)| (h, self.band_named(extractor, b))).collect();
        let actions = self.query_result(now_ms, job.query, job.peer, &hits, positions, case);
        self.open_queries.peer_records.insert((job.peer, extractor), positions);
        let q = self.open_queries.open.get_mut(&job.query).expect("present above");
        q.outcomes.push(PeerOutcome {
            peer: job.peer,
            status: OutcomeStatus::Answered,
            reason: None,
            bands: hits.iter().map(|h| h.1).collect(),
            hits: hits.into_iter().map(|h| h.0).collect(),
            positions,
            form: job.form.to_string(),
        });
        actions
    }

    /// Members that missed a query's deadline are timed out: returns them
    /// (to forget their requests) and the audit entries.
    pub fn expire_queries(&mut self, now_ms: u64) -> (Vec<(Handle, OrgId)>, Vec<Action>) {
        let (mut late, mut actions) = (vec![], vec![]);
        for (query, q) in self.open_queries.open.iter_mut().filter(|(_, q)| q.sent && q.deadline_ms <= now_ms) {
            // Decryptions under way are this node's own work: they finish,
            // and the report waits for them.
            for (peer, form) in q.waiting.drain() {
                late.push((*query, peer));
                q.outcomes.push(PeerOutcome::new(peer, OutcomeStatus::Timeout, "no answer before the deadline", form));
                let reason = "timeout".to_string();
                actions.push(Action::Audit(AuditEvent::QueryUnanswered { query: *query, peer, reason }));
            }
        }
        late.sort();
        (late, actions)
    }

    /// The report of `query` once nothing more can arrive (then forgotten).
    pub fn take_finished_query(&mut self, query: Handle) -> Option<IdentifyReport> {
        let q = self.open_queries.open.get(&query)?;
        if !(q.sent && q.waiting.is_empty() && q.decrypting == 0) {
            return None;
        }
        let q = self.open_queries.open.remove(&query)?;
        let mut peers = q.outcomes;
        peers.sort_by_key(|o| o.peer);
        Some(IdentifyReport { query, peers, pad: q.pad })
    }

    /// Queries still collecting answers.
    pub fn open_queries(&self) -> impl Iterator<Item = Handle> + '_ {
        self.open_queries.open.keys().copied()
    }
}

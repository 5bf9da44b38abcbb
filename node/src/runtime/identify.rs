//! The runtime's part of encrypted identification: encrypting probes (per
//! peer in the form that moves the fewest bytes for the gallery size its
//! last answer showed: column when unknown), answering queries and
//! decrypting answers on blocking threads (never on the async runtime),
//! collecting answers until every peer replied or the deadline passed, and
//! reporting per peer.

use super::{now_ms, NodeError, Reply, Runtime};
use crate::net::{self, Frame};
use crate::services::{position_handle, IdentifyJob, IdentifyStart};
use crate::store::AuditEvent;
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;
use vigil_matcher::encrypted::{
    answer_forms, cheapest, AnswerForm, EncryptedAnswer, ProberKey, RowAnswer, MAX_SPLIT_CHUNKS,
};
use vigil_matcher::Template;
use vigil_protocol::{decode, encode, AlertId, Handle, IdentifyRequest, OrgId, Refusal, Request, Response, Role, Tag};

/// Bound of the queue of finished blocking jobs.
pub(super) const JOB_QUEUE: usize = 64;

/// How one peer answered a query.
#[derive(Debug, Clone, Serialize)]
pub struct PeerOutcome {
    pub peer: OrgId,
    /// `answered`, `refused`, `timeout` or `failed`.
    pub status: String,
    pub reason: Option<String>,
    /// Handles of matching positions (resolve them with that peer).
    pub hits: Vec<Handle>,
    /// Gallery positions the peer answered for.
    pub positions: usize,
    /// The probe's form sent to this peer: `column`, `row` or `split N`.
    pub form: String,
}

/// The form of the next query to a peer whose last answer had `records`
/// positions (`None`: never answered): the one that moves the fewest bytes,
/// as holders pick for alerts; the column form when the size is unknown.
pub(super) fn form_for(records: Option<usize>, dim: usize) -> AnswerForm {
    match records {
        Some(r) => cheapest(r, dim, &answer_forms(dim, MAX_SPLIT_CHUNKS)),
        None => AnswerForm::Column,
    }
}

impl Runtime {
    /// A page of a holder's answer to one of our alerts: the pages of one
    /// alert add up to the size of the holder's gallery, so the first query
    /// to that holder can go in the form that moves the fewest bytes instead
    /// of the 2 MiB column form. Raises what is known, never lowers it (a
    /// query's answer, exact, replaces it).
    pub(super) fn note_alert_answer(
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

/// The outcome of `identify`.
#[derive(Debug, Clone, Serialize)]
pub struct IdentifyReport {
    pub query: Handle,
    pub peers: Vec<PeerOutcome>,
}

/// Work done on a blocking thread, handed back to the event loop.
pub(super) enum JobDone {
    /// The query's request in every form some peer gets.
    Encrypted {
        query: Handle,
        requests: Result<Vec<(AnswerForm, Vec<u8>)>, String>,
    },
    Answered {
        job: Box<IdentifyJob>,
        channel: ResponseChannel<Vec<u8>>,
        frame: Result<Vec<u8>, String>,
    },
    Decrypted {
        query: Handle,
        peer: OrgId,
        form: AnswerForm,
        result: Result<(Vec<Handle>, usize), String>,
    },
    /// A holder's answer pages to an encrypted alert.
    AlertAnswered {
        job: Box<crate::services::AlertJob>,
        pages: Result<Vec<crate::services::AnswerPage>, String>,
    },
    /// An issuer's column-form probe for a holder, with the channel to respond on.
    ProbeEncrypted {
        channel: ResponseChannel<Vec<u8>>,
        response: Response,
    },
    /// An issuer's decryption of one answer page, with the channel to respond on.
    AnswerDecrypted {
        job: Box<crate::services::AnswerJob>,
        channel: ResponseChannel<Vec<u8>>,
        result: Result<(Vec<usize>, usize), String>,
    },
}

pub(super) struct PendingQuery {
    reply: Reply<IdentifyReport>,
    deadline: Instant,
    key: Arc<ProberKey>,
    /// Peers asked and not yet answered, by request, with the form sent.
    waiting: HashMap<OutboundRequestId, (OrgId, AnswerForm)>,
    /// Every member with the match role, and the form it gets.
    plan: Vec<(OrgId, AnswerForm)>,
    extractor: &'static str,
    dim: usize,
    purpose: String,
    legal_basis: String,
    decrypting: usize,
    outcomes: Vec<PeerOutcome>,
    encrypted: bool,
}

fn outcome(peer: OrgId, status: &str, reason: Option<String>, form: AnswerForm) -> PeerOutcome {
    PeerOutcome { peer, status: status.into(), reason, hits: vec![], positions: 0, form: form.to_string() }
}

impl Runtime {
    /// Operator command: encrypt `template` and ask every connected member.
    pub(super) fn start_identify(
        &mut self,
        template: Template,
        purpose: String,
        legal_basis: String,
        reply: Reply<IdentifyReport>,
    ) {
        let ex = match template.extractor() {
            Ok(ex) => ex,
            Err(e) => {
                let _ = reply.send(Err(NodeError::Engine(e.into())));
                return;
            }
        };
        let probe = IdentifyRequest {
            query: Handle(rand::random()),
            purpose: purpose.clone(),
            legal_basis: legal_basis.clone(),
            extractor: ex.id.into(),
            probe: vec![],
        };
        if let Err(e) = probe.validate() {
            let _ = reply.send(Err(NodeError::Config(e.to_string())));
            return;
        }
        let (key, actions) = self.engine.prober_key();
        if let Err(e) = self.apply(actions) {
            let _ = reply.send(Err(e));
            return;
        }
        let query = probe.query;
        let me = self.engine.org();
        let plan: Vec<(OrgId, AnswerForm)> = self
            .engine
            .roster()
            .map(|r| {
                r.body()
                    .members
                    .iter()
                    .filter(|m| m.org != me && m.roles.contains(&Role::Match))
                    .map(|m| (m.org, form_for(self.peer_records.get(&(m.org, ex.id)).copied(), ex.dim)))
                    .collect()
            })
            .unwrap_or_default();
        // Encrypt only the forms of members connected now (a column probe
        // for an absent large member would be 35 ms of work for nothing).
        let connected = |org: &OrgId| net::peer_id(org).is_ok_and(|p| self.swarm.is_connected(&p));
        let mut forms: Vec<AnswerForm> = plan.iter().filter(|(o, _)| connected(o)).map(|(_, f)| *f).collect();
        forms.sort_by_key(|f| f.to_string());
        forms.dedup();
        self.queries.insert(
            query,
            PendingQuery {
                reply,
                deadline: Instant::now() + self.config.queries.timeout,
                key: key.clone(),
                waiting: HashMap::new(),
                plan,
                extractor: ex.id,
                dim: ex.dim,
                purpose: purpose.clone(),
                legal_basis: legal_basis.clone(),
                decrypting: 0,
                outcomes: vec![],
                encrypted: false,
            },
        );
        let tx = self.jobs_tx.clone();
        let max = self.config.queries.max_query_bytes;
        self.spawn_blocking(move || {
            // One encryption per form, shared by the peers that get it.
            let requests = forms
                .into_iter()
                .map(|form| {
                    let bytes = match form.row_chunks() {
                        None => key.encrypt(&template.vector).map(|p| p.to_bytes()),
                        Some(n) => key.encrypt_row_split(&template.vector, n).map(|p| p.to_bytes()),
                    }
                    .map_err(|e| e.to_string())?;
                    let req = IdentifyRequest { probe: bytes, ..probe.clone() };
                    let frame = encode(Tag::Request, &Request::Identify(req), max).map_err(|e| e.to_string())?;
                    Ok((form, frame))
                })
                .collect();
            let _ = tx.blocking_send(JobDone::Encrypted { query, requests });
        });
    }

    pub(super) fn on_job_done(&mut self, done: JobDone) -> Result<(), NodeError> {
        match done {
            // Batched by `on_jobs_done`; one alone is a batch of one.
            d @ (JobDone::AlertAnswered { .. } | JobDone::AnswerDecrypted { .. }) => self.on_jobs_done(vec![d])?,
            JobDone::ProbeEncrypted { channel, response } => {
                let frame = self.response_frame(&response, self.config.queries.max_answer_bytes);
                let _ = self.swarm.behaviour_mut().identify.send_response(channel, frame);
            }
            JobDone::Encrypted { query, requests } => {
                let Some(q) = self.queries.get_mut(&query) else { return Ok(()) };
                q.encrypted = true;
                let requests = match requests {
                    Ok(r) => r,
                    Err(e) => {
                        let q = self.queries.remove(&query).expect("present");
                        let _ = q.reply.send(Err(NodeError::Config(format!("cannot encrypt the probe: {e}"))));
                        return Ok(());
                    }
                };
                let plan = q.plan.clone();
                let (mut asked, mut unreachable) = (HashMap::new(), vec![]);
                for (peer, form) in plan {
                    let frame = requests.iter().find(|(f, _)| *f == form).map(|(_, frame)| frame);
                    match (net::peer_id(&peer), frame) {
                        (Ok(pid), Some(frame)) if self.swarm.is_connected(&pid) => {
                            let id = self.swarm.behaviour_mut().identify.send_request(&pid, Frame::Data(frame.clone()));
                            self.identify_requests.insert(id, query);
                            asked.insert(id, (peer, form));
                        }
                        _ => unreachable.push(outcome(peer, "failed", Some("not connected".into()), form)),
                    }
                }
                let q = self.queries.get_mut(&query).expect("present");
                let (purpose, legal_basis) = (q.purpose.clone(), q.legal_basis.clone());
                q.waiting = asked;
                q.outcomes.extend(unreachable);
                let event = AuditEvent::QuerySent { query, purpose, legal_basis, peers: q.waiting.len() };
                self.audit(event)?;
                self.finish_if_done(query)?;
            }
            JobDone::Answered { job, channel, frame } => {
                let frame = match frame {
                    Ok(f) => {
                        self.engine.identify_answered(&job);
                        f
                    }
                    Err(e) => {
                        tracing::error!(org = %self.name, "answering query failed: {e}");
                        encode(Tag::Response, &Response::Refused(Refusal::Unsupported), 64).expect("tiny")
                    }
                };
                let _ = self.swarm.behaviour_mut().identify.send_response(channel, frame);
            }
            JobDone::Decrypted { query, peer, form, result } => {
                let Some(q) = self.queries.get_mut(&query) else { return Ok(()) };
                q.decrypting -= 1;
                match result {
                    Ok((hits, positions)) => {
                        self.peer_records.insert((peer, q.extractor), positions);
                        let actions = self.engine.query_result(now_ms(), query, peer, &hits, positions);
                        let q = self.queries.get_mut(&query).expect("present");
                        let form = form.to_string();
                        q.outcomes.push(PeerOutcome {
                            peer,
                            status: "answered".into(),
                            reason: None,
                            hits,
                            positions,
                            form,
                        });
                        self.apply(actions)?;
                    }
                    Err(e) => {
                        q.outcomes.push(outcome(peer, "failed", Some(e.clone()), form));
                        self.audit(AuditEvent::QueryUnanswered { query, peer, reason: e })?;
                    }
                }
                self.finish_if_done(query)?;
            }
        }
        Ok(())
    }

    /// An event of the `/vigil/identify/1` behaviour.
    pub(super) fn on_identify_event(&mut self, ev: request_response::Event<Frame, Vec<u8>>) -> Result<(), NodeError> {
        match ev {
            request_response::Event::Message { peer, message, .. } => {
                let Some(from) = net::org_of(&peer) else { return Ok(()) };
                match message {
                    request_response::Message::Request { request: Frame::Oversized(len), channel, .. } => {
                        let reason = format!(
                            "{}: query of {len} bytes, limit {}",
                            net::OVERSIZED,
                            self.config.queries.max_query_bytes
                        );
                        let actions = self.engine.violation(from, &reason);
                        self.apply(actions)?;
                        let frame = encode(Tag::Response, &Response::Refused(Refusal::Malformed), 64).expect("tiny");
                        let _ = self.swarm.behaviour_mut().identify.send_response(channel, frame);
                    }
                    request_response::Message::Request { request: Frame::Data(bytes), channel, .. } => {
                        match self.engine.on_identify(now_ms(), from, &bytes, rand::random()) {
                            IdentifyStart::Answer(response, actions) => {
                                self.apply(actions)?;
                                let frame = encode(Tag::Response, &response, 64).expect("refusals are tiny");
                                let _ = self.swarm.behaviour_mut().identify.send_response(channel, frame);
                            }
                            IdentifyStart::Fetch(job, actions) => {
                                self.apply(actions)?;
                                let tx = self.jobs_tx.clone();
                                self.spawn_blocking(move || {
                                    let response = job.run();
                                    let _ = tx.blocking_send(JobDone::ProbeEncrypted { channel, response });
                                });
                            }
                            IdentifyStart::Run(job, actions) => {
                                self.apply(actions)?;
                                let tx = self.jobs_tx.clone();
                                let max = self.config.queries.max_answer_bytes;
                                // Homomorphic work never runs on the async runtime.
                                super::heavy::spawn_heavy(move || {
                                    let frame = job.run(max);
                                    let _ = tx.blocking_send(JobDone::Answered { job, channel, frame });
                                });
                            }
                        }
                    }
                    request_response::Message::Response { request_id, response } => {
                        if let Some(alert) = self.fetch_requests.remove(&request_id) {
                            return self.probe_fetched(alert, from, &response);
                        }
                        let Some(query) = self.identify_requests.remove(&request_id) else { return Ok(()) };
                        let Some(q) = self.queries.get_mut(&query) else { return Ok(()) };
                        let Some((peer, form)) = q.waiting.remove(&request_id) else { return Ok(()) };
                        match decode::<Response>(Tag::Response, &response, self.config.queries.max_answer_bytes) {
                            Ok(Response::Answer(a)) if a.query == query => {
                                q.decrypting += 1;
                                let (key, tx, max) =
                                    (q.key.clone(), self.jobs_tx.clone(), self.config.queries.max_answer_bytes);
                                let dim = q.dim;
                                self.spawn_blocking(move || {
                                    let result = decrypt_answer(&key, &a.answer, form, dim, max).map(
                                        |(decisions, positions)| {
                                            let hits = decisions
                                                .iter()
                                                .enumerate()
                                                .filter(|(_, m)| **m)
                                                .map(|(p, _)| position_handle(&query, p))
                                                .collect();
                                            (hits, positions)
                                        },
                                    );
                                    let _ = tx.blocking_send(JobDone::Decrypted { query, peer, form, result });
                                });
                            }
                            Ok(Response::Refused(r)) => {
                                if r == Refusal::Unsupported && form != AnswerForm::Column {
                                    // Its gallery may have outgrown the form: column next time.
                                    self.peer_records.remove(&(peer, q.extractor));
                                }
                                q.outcomes.push(outcome(peer, "refused", Some(format!("{r:?}")), form));
                                self.audit(AuditEvent::QueryUnanswered {
                                    query,
                                    peer,
                                    reason: format!("refused: {r:?}"),
                                })?;
                            }
                            other => {
                                let reason = match other {
                                    Err(e) => format!("undecodable answer: {e}"),
                                    _ => "answer to another query".into(),
                                };
                                q.outcomes.push(outcome(peer, "failed", Some(reason.clone()), form));
                                self.audit(AuditEvent::QueryUnanswered { query, peer, reason })?;
                            }
                        }
                        self.finish_if_done(query)?;
                    }
                }
            }
            request_response::Event::OutboundFailure { request_id, peer, error, .. } => {
                if let Some(alert) = self.fetch_requests.remove(&request_id) {
                    let actions = self.engine.probe_fetched(alert, Err(error.to_string()));
                    return self.apply(actions);
                }
                let Some(query) = self.identify_requests.remove(&request_id) else { return Ok(()) };
                if let Some(q) = self.queries.get_mut(&query) {
                    if let Some((org, form)) = q.waiting.remove(&request_id) {
                        let status = if matches!(error, request_response::OutboundFailure::Timeout) {
                            "timeout"
                        } else {
                            "failed"
                        };
                        q.outcomes.push(outcome(org, status, Some(error.to_string()), form));
                        self.audit(AuditEvent::QueryUnanswered { query, peer: org, reason: error.to_string() })?;
                    }
                }
                tracing::debug!(org = %self.name, %peer, "query failed: {error}");
                self.finish_if_done(query)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Replies to the operator once nothing more can arrive.
    fn finish_if_done(&mut self, query: Handle) -> Result<(), NodeError> {
        let done = self.queries.get(&query).is_some_and(|q| q.encrypted && q.waiting.is_empty() && q.decrypting == 0);
        if done {
            let q = self.queries.remove(&query).expect("present");
            let mut peers = q.outcomes;
            peers.sort_by_key(|o| o.peer);
            let _ = q.reply.send(Ok(IdentifyReport { query, peers }));
        }
        Ok(())
    }

    /// Marks peers that missed the deadline as timed out.
    pub(super) fn expire_queries(&mut self) -> Result<(), NodeError> {
        let now = Instant::now();
        let late: Vec<Handle> =
            self.queries.iter().filter(|(_, q)| q.deadline <= now && q.encrypted).map(|(h, _)| *h).collect();
        for query in late {
            let q = self.queries.get_mut(&query).expect("present");
            let waiting: Vec<(OutboundRequestId, (OrgId, AnswerForm))> = q.waiting.drain().collect();
            q.decrypting = 0;
            for (id, (peer, form)) in waiting {
                self.identify_requests.remove(&id);
                let q = self.queries.get_mut(&query).expect("present");
                q.outcomes.push(outcome(peer, "timeout", Some("no answer before the deadline".into()), form));
                self.audit(AuditEvent::QueryUnanswered { query, peer, reason: "timeout".into() })?;
            }
            self.finish_if_done(query)?;
        }
        Ok(())
    }
}

/// Decrypts an answer in the form asked: a column answer, or a row answer
/// at the stride of the split sent (another stride is refused).
fn decrypt_answer(
    key: &ProberKey,
    bytes: &[u8],
    form: AnswerForm,
    dim: usize,
    max: usize,
) -> Result<(Vec<bool>, usize), String> {
    let Some(chunks) = form.row_chunks() else {
        let a = EncryptedAnswer::from_bytes(bytes, max).map_err(|e| e.to_string())?;
        return key.decrypt(&a).map(|d| (d, a.count)).map_err(|e| e.to_string());
    };
    let a = RowAnswer::from_bytes(bytes, max).map_err(|e| e.to_string())?;
    let want = vigil_matcher::encrypted::stride(dim, chunks);
    if a.stride != want {
        return Err(format!("row answer at stride {}, the probe sent has stride {want}", a.stride));
    }
    key.decrypt_row(&a).map(|d| (d, a.count)).map_err(|e| e.to_string())
}

pub(super) fn job_channel() -> (mpsc::Sender<JobDone>, mpsc::Receiver<JobDone>) {
    mpsc::channel(JOB_QUEUE)
}

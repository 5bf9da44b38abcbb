//! The runtime's part of encrypted identification: the engine decides
//! (forms, deadlines, outcomes, `vigil_engine::query`); this encrypts
//! probes, answers queries and decrypts answers on blocking threads (never
//! on the async runtime), sends and receives the frames, and replies to the
//! operator when the engine says a query is over.

use super::{now_ms, NodeError, Reply, Runtime};
use crate::net::{self, Frame};
use libp2p::request_response::{self, ResponseChannel};
use tokio::sync::mpsc;
use vigil_engine::{DecryptJob, Decrypted, IdentifyJob, IdentifyReport, IdentifyStart, QueryResponse, QueryStart};
use vigil_matcher::encrypted::AnswerForm;
use vigil_matcher::Template;
use vigil_protocol::{encode, AlertId, Handle, IdentifyRequest, OrgId, Refusal, Request, Response, Tag};

/// Bound of the queue of finished blocking jobs.
pub(super) const JOB_QUEUE: usize = 64;

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
        job: Box<DecryptJob>,
        result: Decrypted,
    },
    /// A holder's answer pages to an encrypted alert.
    AlertAnswered {
        job: Box<vigil_engine::AlertJob>,
        pages: Result<Vec<vigil_engine::AnswerPage>, String>,
    },
    /// An issuer's column-form probe for a holder, with the channel to respond on.
    ProbeEncrypted {
        channel: ResponseChannel<Vec<u8>>,
        response: Response,
    },
    /// An issuer's decryption of one answer page, with the channel to respond on.
    AnswerDecrypted {
        job: Box<vigil_engine::AnswerJob>,
        channel: ResponseChannel<Vec<u8>>,
        result: Result<vigil_engine::Decisions, String>,
    },
}

impl Runtime {
    /// Operator command: encrypt `template` and ask every connected member.
    pub(super) fn start_identify(
        &mut self,
        template: Template,
        pad: Option<vigil_engine::PadClaim>,
        (purpose, legal_basis): (String, String),
        case: Option<AlertId>,
        reply: Reply<IdentifyReport>,
    ) {
        let connected = |org: &OrgId| net::peer_id(org).is_ok_and(|p| self.swarm.is_connected(&p));
        let capture = vigil_engine::Capture { template: &template, pad: pad.as_ref() };
        let started = case
            .map_or(Ok(()), |a| self.engine.own_case(a))
            .and_then(|()| self.engine.start_query(now_ms(), capture, purpose, legal_basis, connected));
        let mut start = match started {
            Ok(s) => s,
            Err(e) => {
                let _ = reply.send(Err(self.refused(e)));
                return;
            }
        };
        if let Some(alert) = case {
            start.actions.extend(self.engine.case_query(start.query, alert));
        }
        if let Err(e) = self.apply(start.actions) {
            self.engine.query_abandoned(start.query);
            let _ = reply.send(Err(e));
            return;
        }
        let QueryStart { query, key, request, forms, probe, .. } = start;
        // The query's later audit entries name the operator who made it.
        self.query_replies.insert(query, (reply, self.actor.clone()));
        let tx = self.jobs_tx.clone();
        let max = self.config.queries.max_query_bytes;
        self.spawn_blocking(move || {
            // One encryption per form, shared by the peers that get it.
            let requests = forms
                .into_iter()
                .map(|form| {
                    // Only the fingers the probe carries (`QueryStart::probe`).
                    let bytes = match form.row_chunks() {
                        None => key.encrypt(&probe.values).map(|p| p.to_bytes()),
                        Some(n) => key.encrypt_row_split(&probe.values, n).map(|p| p.to_bytes()),
                    }
                    .map_err(|e| e.to_string())?;
                    let bytes = vigil_matcher::encrypted::parts::wrap(probe.parts.as_deref(), bytes);
                    let req = IdentifyRequest { probe: bytes, ..request.clone() };
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
                let requests = match requests {
                    Ok(r) => r,
                    Err(e) => {
                        self.engine.query_abandoned(query);
                        if let Some((reply, _)) = self.query_replies.remove(&query) {
                            let _ = reply.send(Err(NodeError::Probe(e)));
                        }
                        return Ok(());
                    }
                };
                let forms: Vec<AnswerForm> = requests.iter().map(|(f, _)| *f).collect();
                let connected = |org: &OrgId| net::peer_id(org).is_ok_and(|p| self.swarm.is_connected(&p));
                let (send, actions) = self.engine.query_encrypted(query, &forms, connected);
                for (peer, form) in send {
                    let frame = requests.iter().find(|(f, _)| *f == form).map(|(_, frame)| frame.clone());
                    if let (Ok(pid), Some(frame)) = (net::peer_id(&peer), frame) {
                        let id = self.swarm.behaviour_mut().identify.send_request(&pid, Frame::Data(frame));
                        self.identify_requests.insert(id, (query, peer));
                    }
                }
                self.actor = self.query_replies.get(&query).and_then(|(_, by)| by.clone());
                let applied = self.apply(actions);
                self.actor = None;
                applied?;
                self.finish_if_done(query);
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
            JobDone::Decrypted { job, result } => {
                let actions = self.engine.query_decrypted(now_ms(), &job, result);
                self.apply(actions)?;
                self.finish_if_done(job.query);
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
                        let Some((query, peer)) = self.identify_requests.remove(&request_id) else { return Ok(()) };
                        match self.engine.query_response(query, peer, &response) {
                            QueryResponse::Decrypt(job) => {
                                let tx = self.jobs_tx.clone();
                                self.spawn_blocking(move || {
                                    let result = job.run();
                                    let _ = tx.blocking_send(JobDone::Decrypted { job, result });
                                });
                            }
                            QueryResponse::Done(actions) => self.apply(actions)?,
                        }
                        self.finish_if_done(query);
                    }
                }
            }
            request_response::Event::OutboundFailure { request_id, peer, error, .. } => {
                if let Some(alert) = self.fetch_requests.remove(&request_id) {
                    let actions = self.engine.probe_fetched(alert, Err(error.to_string()));
                    return self.apply(actions);
                }
                let Some((query, org)) = self.identify_requests.remove(&request_id) else { return Ok(()) };
                let timeout = matches!(error, request_response::OutboundFailure::Timeout);
                let actions = self.engine.query_failed(query, org, timeout, error.to_string());
                self.apply(actions)?;
                tracing::debug!(org = %self.name, %peer, "query failed: {error}");
                self.finish_if_done(query);
            }
            _ => {}
        }
        Ok(())
    }

    /// Replies to the operator once nothing more can arrive.
    fn finish_if_done(&mut self, query: Handle) {
        if let Some(report) = self.engine.take_finished_query(query) {
            if let Some((reply, _)) = self.query_replies.remove(&query) {
                let _ = reply.send(Ok(report));
            }
        }
    }

    /// Marks peers that missed the deadline as timed out.
    pub(super) fn expire_queries(&mut self) -> Result<(), NodeError> {
        let (late, actions) = self.engine.expire_queries(now_ms());
        if late.is_empty() {
            return Ok(());
        }
        self.identify_requests.retain(|_, q| !late.contains(q));
        self.apply(actions)?;
        let mut queries: Vec<Handle> = late.into_iter().map(|(q, _)| q).collect();
        queries.dedup();
        for query in queries {
            self.finish_if_done(query);
        }
        Ok(())
    }
}

pub(super) fn job_channel() -> (mpsc::Sender<JobDone>, mpsc::Receiver<JobDone>) {
    mpsc::channel(JOB_QUEUE)
}

//! The runtime's part of encrypted alerts: holders answer on blocking
//! threads and send the pages; issuers decrypt each page on a blocking
//! thread and respond once its hits are durable.

use super::identify::JobDone;
use super::{now_ms, NodeError, Runtime};
use libp2p::request_response::ResponseChannel;
use vigil_engine::{Action, AlertJob, RequestOutcome};
use vigil_protocol::{decode, encode, AlertId, FetchProbe, FetchSplit, OrgId, Request, Response, Tag};

impl Runtime {
    /// Runs a holder's answer job on the bulk pool, off the async runtime.
    pub(super) fn spawn_alert_job(&mut self, job: Box<AlertJob>) {
        self.metrics.alert_jobs.inc();
        let tx = self.jobs_tx.clone();
        super::heavy::spawn_heavy(move || {
            let pages = job.run();
            let _ = tx.blocking_send(JobDone::AlertAnswered { job, pages });
        });
    }

    /// Finished jobs: answer pages to store and send (holder) and decrypted
    /// pages whose hits to store before acknowledging them (issuer) are
    /// committed together, with one flush, before anything of theirs leaves
    /// the node; other jobs are handled one by one.
    pub(super) fn on_jobs_done(&mut self, batch: Vec<JobDone>) -> Result<(), NodeError> {
        let (mut actions, mut responses) = (Vec::new(), Vec::new());
        for done in batch {
            match done {
                JobDone::AlertAnswered { job, pages } => {
                    self.metrics.alert_jobs.dec();
                    if let Err(e) = &pages {
                        tracing::error!(org = %self.name, alert = %job.alert, "answering an encrypted alert failed: {e}");
                    }
                    actions.extend(self.engine.alert_answered(now_ms(), &job, pages));
                }
                JobDone::AnswerDecrypted { job, channel, result } => {
                    let (response, a) = self.engine.alert_answer_decrypted(now_ms(), &job, result);
                    actions.extend(a);
                    responses.push((channel, response));
                }
                other => self.on_job_done(other)?,
            }
        }
        // Writes first (in their order), then what leaves the node: `apply`
        // flushes once, before the first of those.
        let (mut writes, rest): (Vec<Action>, Vec<Action>) =
            actions.into_iter().partition(|a| matches!(a, Action::Store(_) | Action::Audit(_)));
        writes.extend(rest);
        self.apply(writes)?;
        for (channel, response) in responses {
            let frame = self.response_frame(&response, self.config.network.max_frame_bytes);
            let _ = self.swarm.behaviour_mut().req.send_response(channel, frame);
        }
        Ok(())
    }

    /// A request frame on `/vigil/req/1`: answered now, or after decryption.
    pub(super) fn on_request_frame(
        &mut self,
        from: OrgId,
        request: &[u8],
        channel: ResponseChannel<Vec<u8>>,
    ) -> Result<(), NodeError> {
        match self.engine.on_request_frame(now_ms(), from, request, self.config.network.max_frame_bytes) {
            RequestOutcome::Respond(response, actions) => {
                self.apply(actions)?;
                let frame = self.response_frame(&response, self.config.network.max_frame_bytes);
                let _ = self.swarm.behaviour_mut().req.send_response(channel, frame);
            }
            RequestOutcome::Decrypt(job, actions) => {
                self.apply(actions)?;
                let tx = self.jobs_tx.clone();
                self.spawn_blocking(move || {
                    let result = job.run();
                    let _ = tx.blocking_send(JobDone::AnswerDecrypted { job, channel, result });
                });
            }
        }
        Ok(())
    }

    /// A response frame within `limit`; a response that would not fit (a
    /// bug: pages are sized to fit) becomes a refusal, never a panic.
    pub(super) fn response_frame(&self, response: &Response, limit: usize) -> Vec<u8> {
        encode(Tag::Response, response, limit).unwrap_or_else(|e| {
            tracing::error!(org = %self.name, "response does not fit in a frame: {e}");
            encode(Tag::Response, &Response::Refused(vigil_protocol::Refusal::Unsupported), 64).expect("tiny")
        })
    }

    /// Asks `to` for the column-form probe (`chunks` = `None`) or a split
    /// row form of `alert` on the identify protocol.
    pub(super) fn send_fetch(&mut self, to: OrgId, alert: AlertId, chunks: Option<usize>) {
        let connected = crate::net::peer_id(&to).ok().filter(|p| self.swarm.is_connected(p));
        let request = match chunks {
            None => Request::FetchProbe(FetchProbe { alert }),
            Some(n) => Request::FetchSplit(FetchSplit { alert, chunks: n as u32 }),
        };
        let (Some(peer), Ok(frame)) = (connected, encode(Tag::Request, &request, self.config.queries.max_query_bytes))
        else {
            // Not connected now: the engine asks again on reconnection.
            let actions = self.engine.probe_fetched(alert, Err("issuer not connected".into()));
            if let Err(e) = self.apply(actions) {
                tracing::error!(org = %self.name, "cannot record a failed fetch: {e}");
            }
            return;
        };
        let id = self.swarm.behaviour_mut().identify.send_request(&peer, crate::net::Frame::Data(frame));
        self.fetch_requests.insert(id, alert);
    }

    /// The issuer answered a fetch: decoded under the answer limit.
    pub(super) fn probe_fetched(&mut self, alert: AlertId, from: OrgId, response: &[u8]) -> Result<(), NodeError> {
        let result = decode::<Response>(Tag::Response, response, self.config.queries.max_answer_bytes)
            .map_err(|e| format!("undecodable fetch response from {from}: {e}"));
        if let Err(e) = &result {
            tracing::warn!(org = %self.name, "{e}");
        }
        let actions = self.engine.probe_fetched(alert, result);
        self.apply(actions)
    }
}

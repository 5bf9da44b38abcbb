//! Alerts with encrypted probes (row form). As issuer: encrypt the probe
//! under this node's GLWE key, decrypt holders' answers and store the hits.
//! As holder: hand the runtime a job (probe + gallery snapshot) for every
//! new alert and every new record, keep each answer page until the issuer
//! acknowledges it, and resolve its positions when asked for disclosure.
//! Only the issuer learns which positions match; the holder learns nothing.
//! The homomorphic work itself runs in `alert_jobs`.

use super::alert_jobs::{AlertJob, AnswerJob, AnswerPage, Decisions, FetchJob, JobProbe};
use super::answered::Undo;
use super::identify::{handle_position, position_handle};
use super::{Action, Engine};
use crate::audit::AuditEvent;
use crate::model::{AlertStatus, HitRole, HitSource, StoreOp, StoredAnswer, StoredHit};
use std::sync::Arc;
use vigil_matcher::encrypted::parts;
use vigil_matcher::encrypted::{
    answer_forms, cheapest, per_group, present_parts, valid_chunks, valid_stride, AnswerForm, AnyAnswer,
    EncryptedAnswer, EncryptedProbe, ProberKey, RowAnswer, RowProbe, Thresholds, MAX_SPLIT_CHUNKS,
};
use vigil_matcher::Gallery;
use vigil_protocol::{AlertAnswer, AlertId, Handle, OrgId, Refusal, Request, Response, Role};

/// Answer positions an issuer takes from one holder for one alert (in
/// memory since start): 4 times the largest answer (`queries.max_answer_bytes`
/// at its limit), so a gallery and years of enrolments fit, and a member
/// sending pages without end is refused.
pub const MAX_POSITIONS_PER_HOLDER_ALERT: u64 = 16 << 20;

/// An encrypted alert's row-form probe under `ex`: unwrapped, checked, of
/// the dimension of the fingers it carries; and those fingers.
fn alert_probe(ex: &vigil_matcher::Extractor, row: &[u8]) -> Result<(RowProbe, Option<Vec<u8>>), String> {
    let (inner, carried) = parts::unwrap(ex, row, vigil_protocol::limits::MAX_ROW_PROBE_BYTES)
        .map_err(|e| format!("probe refused: {e}"))?;
    let p = RowProbe::from_bytes(&inner).map_err(|e| format!("probe refused: {e}"))?;
    let dim = parts::parts_dim(ex, carried.as_deref());
    if p.dim != dim {
        return Err(format!("probe has {} dimensions, {} has {dim}", p.dim, ex.id));
    }
    Ok((p, carried))
}

/// Fetched forms an issuer keeps (2 MiB each at most for d = 128 column
/// probes); beyond, forms of other alerts are dropped and re-encrypted if
/// asked for again.
const MAX_FETCHED_FORMS: usize = 16;

/// A holder's fetch of a column-form or split probe: the records it will
/// cover.
#[derive(Debug, Clone)]
pub(super) struct Fetching {
    issuer: OrgId,
    records: Vec<u64>,
    in_flight: bool,
    /// `None`: the column form.
    chunks: Option<usize>,
    undo: Undo,
}

/// Column-form or split probes an issuer encrypts per (holder, alert).
const MAX_FETCHES_PER_ALERT: u32 = 3;

/// What to do with a request frame: answer now, or decrypt first.
#[derive(Debug)]
pub enum RequestOutcome {
    Respond(Response, Vec<Action>),
    Decrypt(Box<AnswerJob>, Vec<Action>),
}

/// Retired GLWE keys kept for answers to older alerts.
const MAX_RETIRED_KEYS: usize = 8;

impl Engine {
    /// The key with id `id`: the current one or a retired one.
    fn key_by_id(&self, id: &[u8; 16]) -> Option<Arc<ProberKey>> {
        self.prober.iter().chain(self.retired.iter()).find(|k| k.id() == *id).cloned()
    }

    /// Keeps a replaced key (bounded) so answers under it stay readable.
    pub(super) fn retire_key(&mut self, key: Arc<ProberKey>) {
        self.meta.retired_prober_keys.push(key.to_bytes().to_vec());
        self.retired.push(key);
        while self.retired.len() > MAX_RETIRED_KEYS {
            self.retired.remove(0);
            self.meta.retired_prober_keys.remove(0);
        }
    }

    /// Jobs for encrypted alert `alert` over this node's records of its
    /// extractor not answered yet (`only`: just that record, for a new one).
    pub(super) fn encrypted_alert_jobs(&mut self, now_ms: u64, alert: AlertId, only: Option<u64>) -> Vec<Action> {
        let Some(a) = self.alerts.get(&alert) else { return vec![] };
        let (Some(enc), issuer) = (&a.alert.body.encrypted, a.alert.body.issuer) else { return vec![] };
        if issuer == self.org || a.status != AlertStatus::Active || a.alert.body.expires_at_ms <= now_ms {
            return vec![];
        }
        // Both forms, and this node matches the protected one instead.
        if self.policy.answer_protected && a.alert.body.probe.is_some() {
            return vec![];
        }
        let bio = self.biometric();
        let ex = match bio.active(&enc.extractor) {
            Ok(ex) => ex,
            Err(e) => return self.refuse_alert(now_ms, alert, issuer, e.to_string()),
        };
        if only.is_none() && self.fetching.contains_key(&alert) {
            return vec![];
        }
        let records: Vec<u64> = {
            let answered = self.answered_alerts.of(&alert);
            let eligible = |id: &u64, g: &super::GalleryEntry| g.extractor == ex.id && !answered(*id);
            match only {
                Some(o) => self
                    .gallery
                    .get_key_value(&o)
                    .filter(|(id, g)| eligible(id, g))
                    .map(|(id, _)| *id)
                    .into_iter()
                    .collect(),
                // Below the watermark everything was answered: start there.
                None => self
                    .gallery
                    .range(self.answered_alerts.below(&alert)..)
                    .filter(|(id, g)| eligible(id, g))
                    .map(|(id, _)| *id)
                    .collect(),
            }
        };
        if records.is_empty() {
            return vec![];
        }
        // Decoded only now: most alerts reach nodes with nothing to answer
        // (catch-up of thousands), and acceptance already checked it.
        let (probe, carried) = match alert_probe(ex, &enc.row) {
            Ok(p) => p,
            Err(reason) => return self.refuse_alert(now_ms, alert, issuer, reason),
        };
        let (probe, dim) = (Arc::new(probe), parts::parts_dim(ex, carried.as_deref()));
        // Each answer tells the issuer a threshold bit per record: an
        // issuer's encrypted alerts draw on a budget of their own (its
        // queries on another). Spent: refused, told, retried later.
        let mut actions = Vec::new();
        if only.is_none() {
            match self.spend_budget(now_ms, issuer, super::identify::Budget::Alerts) {
                Ok(flagged) => actions.extend(flagged),
                Err(reason) => {
                    self.deferred.insert(alert);
                    return self.refuse_alert(now_ms, alert, issuer, reason);
                }
            }
            if self.deferred.remove(&alert) {
                actions.extend(self.withdraw_refusal(alert, issuer));
            }
        }
        let undo = match only {
            Some(r) => self.answered_alerts.mark_one(alert, r),
            None => self.answered_alerts.mark_all(alert, &records),
        };
        // More than a few records: a split or column-form probe moves fewer
        // bytes; ask the issuer for it.
        let form = if only.is_some() { AnswerForm::Row } else { self.answer_form(records.len(), dim) };
        let chunks = match form {
            AnswerForm::Row => None,
            AnswerForm::Split(n) => Some(Some(n)),
            AnswerForm::Column => Some(None),
        };
        if let Some(chunks) = chunks {
            self.fetching.insert(alert, Fetching { issuer, records, in_flight: true, chunks, undo });
            actions.push(Action::FetchProbe { to: issuer, alert, chunks });
            return actions;
        }
        let mut seed = [0u8; 32];
        rand::RngCore::fill_bytes(&mut self.rng, &mut seed);
        let (rows, thresholds) = self.gallery_rows(&records, ex, carried.as_deref());
        let job = AlertJob {
            alert,
            issuer,
            page_records: self.row_page_records(probe.stride(), ex.thresholds.len()),
            probe: JobProbe::Row(probe),
            gallery: Gallery::new(dim, rows),
            records,
            thresholds,
            seed,
            undo,
            standing: only.is_some(),
        };
        actions.push(Action::AnswerAlert(Box::new(job)));
        actions
    }

    /// Holder: the issuer answered (or did not answer) our fetch of the
    /// column-form or split probe of `alert`: a job over the records it
    /// covers, or a retry later.
    pub fn probe_fetched(&mut self, alert: AlertId, result: Result<Response, String>) -> Vec<Action> {
        let Some(f) = self.fetching.get_mut(&alert) else { return vec![] };
        f.in_flight = false;
        let not_answered = |reason: String| vec![Action::Audit(AuditEvent::AlertNotAnswered { alert, reason })];
        let what = if f.chunks.is_some() { "split" } else { "column-form" };
        let form = match result {
            Ok(Response::Probe(p)) if p.alert == alert => p,
            // No answer, or a passing refusal: asked again on reconnection.
            Err(_) | Ok(Response::Refused(Refusal::RateLimited)) => return vec![],
            Ok(other) => {
                let issuer = f.issuer;
                self.fetching.remove(&alert);
                let reason = format!("the issuer did not give the {what} probe: {other:?}");
                return [
                    vec![Action::Audit(AuditEvent::MessageRejected { from: issuer.to_hex(), reason: reason.clone() })],
                    not_answered(reason),
                ]
                .concat();
            }
        };
        let Fetching { issuer, records, chunks, undo, .. } = self.fetching.remove(&alert).expect("present");
        let Some(a) = self.alerts.get(&alert) else { return vec![] };
        let enc = a.alert.body.encrypted.as_ref();
        let bio = self.biometric();
        let Some((ex, (row, carried))) =
            enc.and_then(|e| bio.active(&e.extractor).ok().and_then(|ex| Some((ex, alert_probe(ex, &e.row).ok()?))))
        else {
            return vec![];
        };
        let limit = self.queries.max_answer_bytes;
        let probe = match chunks {
            None => EncryptedProbe::from_bytes(&form.probe, limit)
                .map(|p| (p.key_id == row.key_id && p.dim == row.dim).then(|| JobProbe::Column(Arc::new(p)))),
            Some(n) => RowProbe::from_bytes_split(&form.probe, n).map(|p| {
                (p.key_id == row.key_id && p.dim == row.dim && p.chunks() == n).then(|| JobProbe::Row(Arc::new(p)))
            }),
        };
        let probe = match probe {
            Ok(Some(p)) => p,
            Ok(None) => {
                let reason = format!("{what} probe under another key, dimension or split than asked for");
                return [self.violation(issuer, &reason), not_answered(reason)].concat();
            }
            Err(e) => {
                let reason = format!("malformed {what} probe: {e}");
                return [self.violation(issuer, &reason), not_answered(reason)].concat();
            }
        };
        let records: Vec<u64> = records.into_iter().filter(|r| self.gallery.contains_key(r)).collect();
        let (rows, thresholds) = self.gallery_rows(&records, ex, carried.as_deref());
        let mut seed = [0u8; 32];
        rand::RngCore::fill_bytes(&mut self.rng, &mut seed);
        // Pages fill at most half a request frame: whole 16 KiB blocks
        // (column form) or whole groups (split).
        let page_records = match &probe {
            JobProbe::Column(_) => EncryptedAnswer::page_records(self.frame_limit / 2),
            JobProbe::Row(p) => self.row_page_records(p.stride(), ex.thresholds.len()),
        };
        let job = AlertJob {
            alert,
            issuer,
            probe,
            gallery: Gallery::new(row.dim, rows),
            records,
            thresholds,
            seed,
            page_records,
            undo,
            standing: false,
        };
        vec![Action::AnswerAlert(Box::new(job))]
    }

    /// The vectors of `records` (ascending, all in the gallery), one row
    /// each, over the fingers `carried` (all for `None`), and each row's
    /// thresholds (by the fingers it shares with the probe): one ordered
    /// pass over the gallery, not a lookup per record, and one copy.
    fn gallery_rows(
        &self,
        records: &[u64],
        ex: &vigil_matcher::Extractor,
        carried: Option<&[u8]>,
    ) -> (Vec<i8>, Thresholds) {
        debug_assert!(records.is_sorted());
        let mut rows = Vec::with_capacity(records.len() * parts::parts_dim(ex, carried));
        let counts = ex.counts_fingers();
        let mut present = Vec::with_capacity(if counts { records.len() } else { 0 });
        if let (Some(first), Some(last)) = (records.first(), records.last()) {
            let mut want = records.iter().peekable();
            for (id, g) in self.gallery.range(first..=last) {
                if want.next_if_eq(&id).is_some() {
                    parts::extend_parts(ex, &g.vector, carried, &mut rows);
                    if counts {
                        present.push(present_parts(ex, &g.vector));
                    }
                }
            }
            debug_assert!(want.next().is_none(), "a record is not in the gallery");
        }
        (rows, Thresholds::for_rows(ex, &present, carried))
    }

    /// Records per row-form answer page at result stride `stride` with
    /// `bands` answers per page: whole groups filling at most half a
    /// request frame.
    fn row_page_records(&self, stride: usize, bands: usize) -> usize {
        (self.frame_limit / 2 / (RowAnswer::group_bytes(stride) * bands.max(1))).max(1) * per_group(stride)
    }

    /// Holder: how to answer an alert over `records` records (config:
    /// `alerts.column_above`, `alerts.split_probes`).
    fn answer_form(&self, records: usize, dim: usize) -> AnswerForm {
        let mut forms = answer_forms(dim, if self.policy.split_probes { MAX_SPLIT_CHUNKS } else { 1 });
        match self.policy.column_above {
            Some(limit) if records > limit => return AnswerForm::Column,
            Some(_) => forms.retain(|f| *f != AnswerForm::Column),
            None => {}
        }
        cheapest(records, dim, &forms)
    }

    /// Holder: fetches to (re)send now, to issuers that are connected.
    pub fn pending_fetches(&mut self, connected: impl Fn(&OrgId) -> bool) -> Vec<Action> {
        self.fetching
            .iter_mut()
            .filter(|(_, f)| !f.in_flight && connected(&f.issuer))
            .map(|(alert, f)| {
                f.in_flight = true;
                Action::FetchProbe { to: f.issuer, alert: *alert, chunks: f.chunks }
            })
            .collect()
    }

    /// Issuer: a holder asks for the column form (`chunks` = `None`) or a
    /// split row form of one of our alerts.
    pub(super) fn on_fetch_probe(
        &mut self,
        from: OrgId,
        alert: AlertId,
        chunks: Option<usize>,
    ) -> Result<FetchJob, (Refusal, String)> {
        let a = self.alerts.get(&alert).ok_or((Refusal::UnknownAlert, "fetch of an unknown alert".into()))?;
        if a.alert.body.issuer != self.org {
            return Err((Refusal::NotIssuer, "fetch of an alert this node did not issue".into()));
        }
        if !self.has_role(&from, Role::Match) {
            return Err((Refusal::NotAllowed, "fetch from a member without the match role".into()));
        }
        let (Some(enc), Some(vector), AlertStatus::Active) = (&a.alert.body.encrypted, &a.probe_vector, a.status)
        else {
            return Err((Refusal::Unsupported, "fetch of an alert that is withdrawn or not encrypted".into()));
        };
        let bio = self.biometric();
        let ex = bio.active(&enc.extractor).map_err(|e| (Refusal::Unsupported, e.to_string()))?;
        // The fingers the alert's probe carries (the same function of the same vector).
        let vector = parts::probe_parts(ex, vector).values;
        if let Some(n) = chunks.filter(|n| !valid_chunks(vector.len(), *n)) {
            return Err((Refusal::Malformed, format!("{n} chunks do not cut a probe of {} dimensions", vector.len())));
        }
        let (row, _) = alert_probe(ex, &enc.row).map_err(|e| (Refusal::Unsupported, e))?;
        let key = self.key_by_id(&row.key_id).ok_or((Refusal::Unsupported, "alert key no longer held".into()))?;
        let n = self.fetches.entry((from, alert)).or_default();
        if *n >= MAX_FETCHES_PER_ALERT {
            return Err((Refusal::RateLimited, format!("more than {MAX_FETCHES_PER_ALERT} fetches of one alert")));
        }
        *n += 1;
        if !self.fetched_forms.contains_key(&(alert, chunks)) && self.fetched_forms.len() >= MAX_FETCHED_FORMS {
            self.fetched_forms.retain(|(a, _), _| *a == alert);
        }
        let form = self.fetched_forms.entry((alert, chunks)).or_default().clone();
        Ok(FetchJob { alert, from, key, vector, chunks, form })
    }

    /// Holder: encrypted alerts refused for a spent budget, tried again
    /// (on the upkeep tick); answered once the issuer's budget allows.
    pub fn retry_deferred_alerts(&mut self, now_ms: u64) -> Vec<Action> {
        let ids: Vec<AlertId> = self.deferred.iter().copied().collect();
        let mut actions = Vec::new();
        for id in ids {
            let Some(issuer) =
                self.alerts.get(&id).filter(|a| a.status == AlertStatus::Active).map(|a| a.alert.body.issuer)
            else {
                self.deferred.remove(&id);
                continue;
            };
            // Checked before the gallery is looked at: most retries find
            // the budget still spent.
            if self.budget_left(now_ms, issuer, super::identify::Budget::Alerts).is_ok() {
                actions.extend(self.encrypted_alert_jobs(now_ms, id, None));
            }
        }
        actions
    }

    /// Every answer still owed after a restart (jobs lost in flight).
    pub fn pending_alert_jobs(&mut self, now_ms: u64) -> Vec<Action> {
        let ids: Vec<AlertId> =
            self.alerts.values().filter(|a| a.alert.body.encrypted.is_some()).map(|a| a.id).collect();
        ids.into_iter().flat_map(|id| self.encrypted_alert_jobs(now_ms, id, None)).collect()
    }

    /// The runtime finished (or failed) a job: store and send its pages.
    pub fn alert_answered(
        &mut self,
        now_ms: u64,
        job: &AlertJob,
        pages: Result<Vec<AnswerPage>, String>,
    ) -> Vec<Action> {
        let pages = match pages {
            Ok(p) => p,
            Err(reason) => {
                self.answered_alerts.undo(&job.alert, job.undo);
                return vec![Action::Audit(AuditEvent::AlertNotAnswered { alert: job.alert, reason })];
            }
        };
        let mut actions = Vec::new();
        for p in pages {
            let stored = StoredAnswer {
                id: p.id,
                alert: job.alert,
                issuer: job.issuer,
                records: p.records,
                body: p.body.clone(),
                created_at_ms: now_ms,
                delivered: false,
            };
            let records = stored.records.iter().filter(|r| **r != 0).count();
            self.answers.insert(p.id, stored.clone());
            actions.push(Action::Store(StoreOp::PutAnswer(Box::new(stored))));
            if job.standing {
                self.tally.sent(now_ms, job.issuer, records);
                self.standing_pages.insert(p.id);
            } else {
                actions.push(Action::Audit(AuditEvent::AlertAnswerSent {
                    alert: job.alert,
                    answer: p.id,
                    issuer: job.issuer,
                    records,
                    column: matches!(job.probe, JobProbe::Column(_)),
                }));
            }
            let request = Request::AlertAnswer(AlertAnswer { alert: job.alert, answer: p.id, body: p.body });
            actions.push(Action::Send { to: job.issuer, request, key: p.id });
        }
        actions
    }

    pub(super) fn is_answer(&self, key: &Handle) -> bool {
        self.answers.contains_key(key)
    }

    /// The issuer answered one of our answer pages.
    pub(super) fn answer_response(&mut self, now_ms: u64, id: Handle, response: &Response) -> Vec<Action> {
        let Some(a) = self.answers.get_mut(&id) else { return vec![] };
        if a.delivered {
            return vec![];
        }
        let (accepted, reason) = match response {
            Response::Ack => (true, None),
            // Worth retrying later.
            Response::Refused(Refusal::RateLimited) => return vec![],
            Response::Refused(r) => (false, Some(format!("issuer refused an alert answer: {r:?}"))),
            Response::Answer(_)
            | Response::Probe(_)
            | Response::Heads(_)
            | Response::Entries(_)
            | Response::Policy(_) => {
                (false, Some("an identification answer or probe in reply to an alert answer".into()))
            }
        };
        a.delivered = true;
        a.body = Vec::new();
        let (stored, issuer) = (a.clone(), a.issuer);
        let mut actions = vec![Action::Store(StoreOp::PutAnswer(Box::new(stored)))];
        let standing = self.standing_pages.remove(&id);
        if let Some(reason) = reason {
            actions.push(Action::Audit(AuditEvent::MessageRejected { from: issuer.to_hex(), reason }));
        }
        if standing && accepted {
            // Counted: `AlertAnswersCounted`.
            self.tally.delivered(now_ms, issuer);
        } else {
            actions.push(Action::Audit(AuditEvent::AlertAnswerDelivered { answer: id, issuer, accepted }));
        }
        actions
    }

    /// Resolves position handle `hit` of answer `answer` sent to `from`.
    pub(super) fn resolve_answer(&self, from: OrgId, hit: Handle, answer: Handle) -> Option<u64> {
        let a = self.answers.get(&answer).filter(|a| a.issuer == from)?;
        let pos = handle_position(&hit);
        let record = *a.records.get(pos)?;
        (record != 0 && position_handle(&answer, pos) == hit).then_some(record)
    }

    /// Issuer: checks an answer page before it is decrypted.
    pub(super) fn on_alert_answer(&mut self, from: OrgId, a: AlertAnswer, max_frame_bytes: usize) -> RequestOutcome {
        let refuse = |refusal: Refusal, reason: String| {
            RequestOutcome::Respond(
                Response::Refused(refusal),
                vec![Action::Audit(AuditEvent::MessageRejected { from: from.to_hex(), reason })],
            )
        };
        let Some(alert) = self.alerts.get(&a.alert) else {
            return refuse(Refusal::UnknownAlert, "alert answer for an unknown alert".into());
        };
        if alert.alert.body.issuer != self.org {
            return refuse(Refusal::NotIssuer, "alert answer for an alert this node did not issue".into());
        }
        let Some(enc) = &alert.alert.body.encrypted else {
            return refuse(Refusal::Unsupported, "alert answer for an alert without an encrypted probe".into());
        };
        if !self.has_role(&from, Role::Match) {
            return refuse(Refusal::NotAllowed, "alert answer from a member without the match role".into());
        }
        if self.seen_answers.contains(&a.answer) {
            return RequestOutcome::Respond(Response::Ack, vec![]);
        }

        let probe = match parts::open(&enc.row, vigil_protocol::limits::MAX_ROW_PROBE_BYTES)
            .and_then(|(inner, _)| RowProbe::from_bytes(&inner))
        {
            Ok(p) => p,
            Err(e) => return refuse(Refusal::Unsupported, format!("own alert probe unreadable: {e}")),
        };
        let Some(key) = self.key_by_id(&probe.key_id) else {
            return refuse(Refusal::Unsupported, "alert answer under a key this node no longer holds".into());
        };
        // A row page at the stride of the alert's probe or of a split of it.
        let decoded = AnyAnswer::from_bytes(&a.body, max_frame_bytes).map(|ans| {
            let fits = ans.stride().is_none_or(|s| valid_stride(probe.dim, s));
            (ans.key_id() == probe.key_id && fits).then_some(ans)
        });
        let answer = match decoded {
            Ok(Some(ans)) => ans,
            Ok(None) => {
                let reason = "alert answer under another key or dimension than the alert's probe".to_string();
                return RequestOutcome::Respond(Response::Refused(Refusal::Malformed), self.violation(from, &reason));
            }
            Err(e) => {
                let reason = format!("malformed alert answer: {e}");
                return RequestOutcome::Respond(Response::Refused(Refusal::Malformed), self.violation(from, &reason));
            }
        };
        // The positions one holder answers for one alert are bounded: its
        // whole gallery, and every record it enrols later, fit many times.
        let positions = self.positions_received.entry((from, a.alert)).or_default();
        *positions = positions.saturating_add(answer.count() as u64);
        if *positions > MAX_POSITIONS_PER_HOLDER_ALERT {
            let reason = "more answer positions for one alert than a holder may send".to_string();
            return RequestOutcome::Respond(
                Response::Refused(Refusal::RateLimited),
                vec![Action::Audit(AuditEvent::MessageRejected { from: from.to_hex(), reason })],
            );
        }
        RequestOutcome::Decrypt(Box::new(AnswerJob { from, alert: a.alert, answer_id: a.answer, key, answer }), vec![])
    }

    /// Issuer: stores the hits of a decrypted page; the response to send.
    pub fn alert_answer_decrypted(
        &mut self,
        now_ms: u64,
        job: &AnswerJob,
        result: Result<Decisions, String>,
    ) -> (Response, Vec<Action>) {
        let (positives, positions) = match result {
            Ok(r) => r,
            Err(e) => {
                let reason = format!("alert answer does not decrypt: {e}");
                return (Response::Refused(Refusal::Malformed), self.violation(job.from, &reason));
            }
        };
        let (alert, answer, holder) = (job.alert, job.answer_id, job.from);
        let ex = self.alert_extractor(&alert);
        if let Some(ex) = ex {
            self.open_queries.note_alert_answer(holder, alert, ex, positions);
        }
        let mut actions = vec![
            Action::Audit(AuditEvent::AlertAnswerReceived {
                alert,
                answer,
                holder,
                positives: positives.len(),
                positions,
            }),
            self.count_answer_page(now_ms, alert, holder),
        ];
        for &(p, b) in &positives {
            let handle = position_handle(&answer, p);
            if self.hits.contains_key(&handle) {
                continue;
            }
            let band = ex.and_then(|ex| self.band_named(ex, b));
            let hit = StoredHit {
                handle,
                role: HitRole::Issuer,
                source: HitSource::EncryptedAlert { alert, answer },
                peer: holder,
                record: None,
                at_ms: now_ms,
                delivered: true,
                band,
                case: None,
            };
            self.hits.insert(handle, hit.clone());
            actions.push(Action::Store(StoreOp::PutHit(hit)));
            actions.push(Action::Audit(match band {
                Some(band) => AuditEvent::HitReceivedInBand { alert, holder, handle, band },
                None => AuditEvent::HitReceived { alert, holder, handle },
            }));
        }
        let n = positives.len();
        if positions > 0 && n > 1 && n as f64 > self.queries.flag_hit_fraction * positions as f64 {
            actions.push(Action::Audit(AuditEvent::QueryFlagged {
                query: answer,
                peer: holder,
                positives: n,
                positions,
            }));
        }
        self.seen_answers.insert(answer);
        (Response::Ack, actions)
    }
}

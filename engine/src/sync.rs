//! Catch-up: every issuer's alerts (publications and withdrawals) form a
//! signed, hash-chained log (issuer, seq, prev). Live gossip is accepted
//! only as the next link of its issuer's log; a gap starts a sync. On every
//! connection peers exchange their log heads and pull what they miss, in
//! bounded pages, from whoever has it: the issuer's signature and the chain
//! verify each entry whoever relays it. Forks and broken links are refused,
//! audited and count against the peer that sent them.

use super::alerts::alert_id;
use super::fault::{clock_fault, Fault};
use super::{Action, Engine};
use crate::audit::AuditEvent;
use crate::model::{AlertStatus, StoredAlert};
use std::collections::HashSet;
use vigil_crypto::{alert_header, header_id, sha256, verify_withdrawal};
use vigil_protocol::{
    encode, AlertBody, AlertEnvelope, AlertHeader, AlertId, Handle, LogHead, OrgId, PrunedAlert, Refusal, Request,
    Response, Role, SignedAlert, SignedWithdrawal, SyncPull, SyncState, Tag,
};

/// Most entries a node asks for, or sends, in one page.
pub const MAX_PAGE_ENTRIES: u32 = 256;

/// One entry of an issuer's log, as this node indexes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct LogRef {
    pub(super) hash: [u8; 32],
    pub(super) alert: AlertId,
    pub(super) withdrawal: bool,
}

/// How an entry relates to what this node holds of its issuer's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Link {
    /// Already held (same hash).
    Known,
    /// The next entry, linking to the head.
    Next,
    /// Beyond the next entry: entries are missing in between.
    Gap,
    /// Another entry is held at that position.
    Fork,
    /// At the next position, but not linking to the head.
    Broken,
}

/// What applying one pulled entry did.
enum Synced {
    Applied(Vec<Action>),
    /// Its issuer is over its alert bound: stop pulling its log.
    Throttled(Vec<Action>),
}

/// What a sync request this node sent was for.
#[derive(Debug, Clone, Copy)]
pub(super) enum SyncCtx {
    Heads { peer: OrgId },
    Pull { peer: OrgId, org: OrgId, target: u64 },
    Policy { peer: OrgId },
}

/// The hash of a log entry: an alert's id, or the hash of a withdrawal body.
pub fn entry_hash(env: &AlertEnvelope) -> [u8; 32] {
    match env {
        AlertEnvelope::Publish(a) => alert_id(&a.body).0,
        AlertEnvelope::Pruned(p) => header_id(&p.header).0,
        AlertEnvelope::Withdraw(w) => sha256(
            &encode(Tag::Body, &w.body, vigil_protocol::limits::MAX_GOSSIP_BYTES).expect("withdrawals are small"),
        ),
    }
}

fn position(env: &AlertEnvelope) -> (OrgId, u64, [u8; 32]) {
    match env {
        AlertEnvelope::Publish(a) => (a.body.issuer, a.body.seq, a.body.prev),
        AlertEnvelope::Withdraw(w) => (w.body.issuer, w.body.seq, w.body.prev),
        AlertEnvelope::Pruned(p) => (p.header.issuer, p.header.seq, p.header.prev),
    }
}

/// The header a stored alert was signed over (a purged one keeps only its
/// payload's hash).
pub(super) fn stored_header(a: &StoredAlert) -> AlertHeader {
    let mut h = alert_header(&a.alert.body);
    if let AlertStatus::Purged { payload } = a.status {
        h.payload = payload;
    }
    h
}

impl Engine {
    pub(super) fn link(&self, issuer: OrgId, seq: u64, prev: [u8; 32], hash: [u8; 32]) -> Link {
        if let Some(r) = self.log.get(&(issuer, seq)) {
            return if r.hash == hash { Link::Known } else { Link::Fork };
        }
        let (head, head_hash) = self.head(&issuer);
        match seq.cmp(&(head + 1)) {
            std::cmp::Ordering::Equal if prev == head_hash => Link::Next,
            std::cmp::Ordering::Equal => Link::Broken,
            std::cmp::Ordering::Greater => Link::Gap,
            // Below the head but not held: only a fork can explain it.
            std::cmp::Ordering::Less => Link::Fork,
        }
    }

    /// (seq, hash) of the last entry held of `issuer`'s log.
    pub(super) fn head(&self, issuer: &OrgId) -> (u64, [u8; 32]) {
        self.heads.get(issuer).copied().unwrap_or((0, [0; 32]))
    }

    /// Whether `issuer` already created `max_per_issuer_per_hour` alerts in
    /// the hour up to `created_at_ms`, or its per-minute bound in the minute
    /// up to it: `None` if not; `Some(audit)` if so, with the audit entry
    /// (naming the bound reached) the first time in an hour. Each further
    /// hourly bound's worth of distinct alerts (by log position) throttled
    /// within an hour is a strike against the issuer: after
    /// `max_strikes` it is blocked (disconnected), as for other violations.
    pub(super) fn flooding(&mut self, now_ms: u64, issuer: OrgId, seq: u64, created_at_ms: u64) -> Option<Vec<Action>> {
        const HOUR: u64 = 3600 * 1000;
        const MINUTE: u64 = 60 * 1000;
        let count = |span: u64| -> u64 {
            let window = created_at_ms.saturating_sub(span - 1)..=created_at_ms;
            self.created.get(&issuer).map_or(0, |m| m.range(window).map(|(_, c)| u64::from(*c)).sum())
        };
        let (hourly, per_minute) = (self.policy.max_per_issuer_per_hour, self.policy.per_issuer_per_minute());
        let event = if count(HOUR) >= hourly as u64 {
            AuditEvent::IssuerThrottled { issuer, limit: hourly }
        } else if count(MINUTE) >= per_minute as u64 {
            AuditEvent::IssuerThrottledPerMinute { issuer, limit: per_minute }
        } else {
            return None;
        };
        let mut actions = match self.throttled_at.get(&issuer) {
            Some(last) if now_ms < last + HOUR => vec![],
            _ => {
                self.throttled_at.insert(issuer, now_ms);
                vec![Action::Audit(event)]
            }
        };
        // Bounded: an issuer is blocked long before this many.
        let cap = hourly.saturating_mul(self.max_strikes as usize + 1);
        // An alert already in our log (a re-delivery) is not an excess one.
        let known = self.log.contains_key(&(issuer, seq));
        let (start, seen) = self.throttled.entry(issuer).or_insert_with(|| (now_ms, HashSet::new()));
        if now_ms >= *start + HOUR {
            (*start, *seen) = (now_ms, HashSet::new());
        }
        if !known && seen.len() < cap && seen.insert(seq) && seen.len().is_multiple_of(hourly.max(1)) {
            let reason = format!("flooding: {} alerts over its bound within an hour", seen.len());
            actions.extend(self.strike(issuer, &reason));
        }
        Some(actions)
    }

    /// Counts an accepted alert of `issuer` created at `created_at_ms`.
    pub(super) fn count_created(&mut self, issuer: OrgId, created_at_ms: u64) {
        *self.created.entry(issuer).or_default().entry(created_at_ms).or_default() += 1;
    }

    pub(super) fn record_entry(&mut self, issuer: OrgId, seq: u64, r: LogRef) {
        self.log.insert((issuer, seq), r);
        if seq > self.head(&issuer).0 {
            self.heads.insert(issuer, (seq, r.hash));
        }
    }

    /// Rebuilds the log index from stored alerts (at start).
    pub(super) fn index_alert(&mut self, a: &StoredAlert) {
        let b = &a.alert.body;
        self.record_entry(b.issuer, b.seq, LogRef { hash: a.id.0, alert: a.id, withdrawal: false });
        self.count_created(b.issuer, b.created_at_ms);
        if let Some(w) = &a.withdrawal {
            let hash = entry_hash(&AlertEnvelope::Withdraw(w.clone()));
            self.record_entry(w.body.issuer, w.body.seq, LogRef { hash, alert: a.id, withdrawal: true });
        }
    }

    /// The heads to send: all that fit in a third of a frame; when there are
    /// more issuers than that, a random subset each time, so every log is
    /// compared over a few exchanges.
    fn bounded_heads(&mut self) -> Vec<LogHead> {
        let mut heads = self.log_heads();
        let cap = (self.frame_limit / 3 / 80).max(1);
        if heads.len() > cap {
            rand::seq::SliceRandom::shuffle(heads.as_mut_slice(), &mut self.rng);
            heads.truncate(cap);
        }
        heads
    }

    /// The heads of every log this node holds.
    pub fn log_heads(&self) -> Vec<LogHead> {
        let mut v: Vec<LogHead> =
            self.heads.iter().map(|(org, (seq, hash))| LogHead { org: *org, seq: *seq, hash: *hash }).collect();
        v.sort_by_key(|h| h.org);
        v
    }

    /// Starts a catch-up with `peer`: send it our heads.
    pub fn sync_start(&mut self, peer: OrgId) -> Vec<Action> {
        if peer == self.org || !self.is_member(&peer) {
            return vec![];
        }
        let key = self.handle();
        self.sync_requests.insert(key, SyncCtx::Heads { peer });
        let heads = self.bounded_heads();
        let state = SyncState { roster_version: self.roster_version(), heads, roster: None };
        vec![Action::Send { to: peer, request: Request::SyncHeads(state), key }, self.policy_offer(peer)]
    }

    /// Pulls from `peer` every log it holds further than we do.
    fn plan_pulls(&mut self, peer: OrgId, theirs: &[LogHead]) -> Vec<Action> {
        let mut actions = Vec::new();
        for h in theirs {
            let (mine, _) = self.head(&h.org);
            if h.seq <= mine || self.pulling.contains(&h.org) || !self.is_member(&h.org) {
                continue;
            }
            // Members anchor this node's own log: theirs is further only if
            // this node's database lost entries (an older copy put back).
            if h.org == self.org && h.seq > self.own_log_seen {
                self.own_log_seen = h.seq;
                actions.push(Action::Audit(AuditEvent::OwnLogBehindPeers { peer, held: mine, peers: h.seq }));
            }
            self.pulling.insert(h.org);
            actions.push(self.pull(peer, h.org, mine + 1, h.seq));
        }
        actions
    }

    fn pull(&mut self, peer: OrgId, org: OrgId, from_seq: u64, target: u64) -> Action {
        let key = self.handle();
        self.sync_requests.insert(key, SyncCtx::Pull { peer, org, target });
        let max = MAX_PAGE_ENTRIES.min((target - from_seq + 1).min(u32::MAX as u64) as u32);
        Action::Send { to: peer, request: Request::SyncPull(SyncPull { org, from_seq, max }), key }
    }

    /// A peer sent its state: answer with ours (and our roster, if theirs
    /// is older), and pull the logs it has more of.
    pub(super) fn on_sync_heads(&mut self, from: OrgId, theirs: SyncState) -> (Response, Vec<Action>) {
        self.note_peer_heads(from, &theirs.heads);
        let mut actions = self.plan_pulls(from, &theirs.heads);
        // Its roster is newer: ask back, and its answer will carry it.
        if theirs.roster_version > self.roster_version() {
            actions.extend(self.sync_start(from));
        }
        // The answer must fit in a frame: heads up to a third of it, and the
        // roster only if it fits in another third (else the asker gets it
        // from an operator, or a member with a larger frame limit).
        let heads = self.bounded_heads();
        let roster = (theirs.roster_version < self.roster_version())
            .then(|| self.meta.roster.clone())
            .flatten()
            .filter(|r| encode(Tag::Roster, r, self.frame_limit / 3).is_ok());
        let mine = SyncState { roster_version: self.roster_version(), heads, roster };
        (Response::Heads(mine), actions)
    }

    fn roster_version(&self) -> u64 {
        self.roster.as_ref().map_or(0, |r| r.body().version)
    }

    /// A newer roster came with a peer's state: applied if the stewards
    /// signed it; a forged one counts against the peer.
    fn roster_from_peer(&mut self, now_ms: u64, peer: OrgId, roster: vigil_protocol::SignedRoster) -> Vec<Action> {
        if roster.body.version <= self.roster_version() {
            return vec![];
        }
        match self.apply_roster(now_ms, roster) {
            Ok(mut actions) => {
                actions.push(Action::FederationChanged);
                actions
            }
            Err(e) => {
                let reason = format!("roster from a peer refused: {e}");
                [vec![Action::Audit(AuditEvent::RosterRefused { reason: reason.clone() })], self.strike(peer, &reason)]
                    .concat()
            }
        }
    }

    /// A peer asks for a page of one log: consecutive entries from
    /// `from_seq`, as many as fit in half a frame.
    pub(super) fn on_sync_pull(&mut self, now_ms: u64, from: OrgId, p: SyncPull) -> (Response, Vec<Action>) {
        if !self.has_role(&from, Role::Match) && !self.has_role(&from, Role::Alert) {
            return (Response::Refused(Refusal::NotAllowed), vec![]);
        }
        const HOUR: u64 = 3600 * 1000;
        let (start, spent) = self.sync_served.get(&from).copied().unwrap_or((now_ms, 0));
        let (start, spent) = if now_ms >= start + HOUR { (now_ms, 0) } else { (start, spent) };
        if spent >= self.sync_budget {
            let reason = format!("catch-up budget of {} bytes per hour spent", self.sync_budget);
            let audit = Action::Audit(AuditEvent::MessageRejected { from: from.to_hex(), reason });
            // Audited once per window (marked by `u64::MAX`), not per refused page.
            self.sync_served.insert(from, (start, u64::MAX));
            return (Response::Refused(Refusal::RateLimited), if spent < u64::MAX { vec![audit] } else { vec![] });
        }
        let budget = self.frame_limit / 2;
        let mut entries = Vec::new();
        let mut size = 0;
        let mut seq = p.from_seq.max(1);
        while entries.len() < p.max.min(MAX_PAGE_ENTRIES) as usize {
            let Some(env) = self.log_entry(p.org, seq) else { break };
            let len = encode(Tag::Gossip, &env, usize::MAX).map(|b| b.len()).unwrap_or(usize::MAX);
            if size + len > budget && !entries.is_empty() {
                break;
            }
            size += len;
            entries.push(env);
            seq += 1;
        }
        self.sync_served.insert(from, (start, spent.saturating_add(size as u64)));
        (Response::Entries(entries), vec![])
    }

    fn log_entry(&self, org: OrgId, seq: u64) -> Option<AlertEnvelope> {
        let r = self.log.get(&(org, seq))?;
        let a = self.alerts.get(&r.alert)?;
        if r.withdrawal {
            a.withdrawal.clone().map(AlertEnvelope::Withdraw)
        } else if matches!(a.status, AlertStatus::Purged { .. }) {
            Some(AlertEnvelope::Pruned(PrunedAlert {
                header: stored_header(a),
                signature: a.alert.signature,
                withdrawal: a.withdrawal.clone(),
            }))
        } else {
            Some(AlertEnvelope::Publish(a.alert.clone()))
        }
    }

    /// A sync request we sent was answered.
    pub(super) fn on_sync_response(&mut self, now_ms: u64, ctx: SyncCtx, response: &Response) -> Vec<Action> {
        match (ctx, response) {
            (SyncCtx::Heads { peer }, Response::Heads(theirs)) => {
                self.note_peer_heads(peer, &theirs.heads);
                let mut actions = match theirs.roster.clone() {
                    Some(r) => self.roster_from_peer(now_ms, peer, r),
                    None => vec![],
                };
                actions.extend(self.plan_pulls(peer, &theirs.heads));
                actions
            }
            (SyncCtx::Pull { peer, org, target }, Response::Entries(entries)) => {
                let mut actions = Vec::new();
                for (i, env) in entries.iter().enumerate() {
                    match self.apply_synced(now_ms, peer, org, env.clone(), i == 0) {
                        Ok(Synced::Applied(more)) => actions.extend(more),
                        Ok(Synced::Throttled(audit)) => {
                            // Not the relay's fault: stop pulling this log for now.
                            self.pulling.remove(&org);
                            actions.extend(audit);
                            return actions;
                        }
                        Err(fault) => {
                            self.pulling.remove(&org);
                            actions.extend(super::fault::sync_refused(self, peer, org, fault));
                            return actions;
                        }
                    }
                }
                // An alert withdrawn later in the same page is not answered:
                // no homomorphic work, no fetch, for a closed case.
                let active = |a: &AlertId, e: &Engine| e.alerts.get(a).is_some_and(|x| x.status == AlertStatus::Active);
                actions.retain(|a| match a {
                    Action::AnswerAlert(job) => active(&job.alert, self),
                    Action::FetchProbe { alert, .. } => active(alert, self),
                    _ => true,
                });
                self.fetching
                    .retain(|alert, _| self.alerts.get(alert).is_some_and(|x| x.status == AlertStatus::Active));
                let (head, _) = self.head(&org);
                if !entries.is_empty() {
                    actions.push(Action::Audit(AuditEvent::SyncPulled { peer, org, entries: entries.len(), head }));
                }
                // This node's own log is further at a member only if the
                // member holds its signed entries: a claim it cannot back
                // cost an audit entry and a pause in publishing.
                if entries.is_empty() && org == self.org && head < target {
                    actions.extend(self.violation(peer, "claimed entries of this node's own log it does not hold"));
                }
                if entries.is_empty() || head >= target {
                    self.pulling.remove(&org);
                } else {
                    actions.push(self.pull(peer, org, head + 1, target));
                }
                actions
            }
            (SyncCtx::Pull { org, .. }, _) => {
                self.pulling.remove(&org);
                vec![]
            }
            (SyncCtx::Policy { peer }, Response::Policy(theirs)) => self.on_policy_response(peer, theirs),
            _ => vec![],
        }
    }

    /// A sync request we sent failed (timeout, disconnection, a stream the
    /// peer dropped when busy): catch up with that peer again soon
    /// (`take_sync_retries`), not only at the next periodic catch-up.
    pub fn request_failed(&mut self, key: Handle) {
        match self.sync_requests.remove(&key) {
            Some(SyncCtx::Pull { org, peer, .. }) => {
                self.pulling.remove(&org);
                self.sync_retry.insert(peer);
            }
            Some(SyncCtx::Heads { peer }) | Some(SyncCtx::Policy { peer }) => {
                self.sync_retry.insert(peer);
            }
            None => {}
        }
    }

    /// Peers whose catch-up failed since the last call.
    pub fn take_sync_retries(&mut self) -> Vec<OrgId> {
        self.sync_retry.drain().collect()
    }

    pub(super) fn take_sync(&mut self, key: &Handle) -> Option<SyncCtx> {
        self.sync_requests.remove(key)
    }

    /// One entry pulled from `peer` for `org`'s log: verified like gossip,
    /// except that old entries are welcome (catching up is the point). The
    /// page's first entry links to our head: if it does not, the issuer's
    /// log forked; later entries must link to the page's own, which the
    /// serving member could check.
    fn apply_synced(
        &mut self,
        now_ms: u64,
        peer: OrgId,
        org: OrgId,
        env: AlertEnvelope,
        first: bool,
    ) -> Result<Synced, Fault> {
        env.validate().map_err(|e| Fault::Sender(format!("malformed log entry: {e}")))?;
        let (issuer, seq, prev) = position(&env);
        if issuer != org {
            return Err(Fault::Sender(format!("log entry of {issuer} in a page of {org}")));
        }
        if !self.is_member(&issuer) {
            return Err(Fault::Local(format!("log entry of non-member {issuer}")));
        }
        let chain = |reason: String| if first { Fault::Issuer { issuer, reason } } else { Fault::Sender(reason) };
        match self.link(issuer, seq, prev, entry_hash(&env)) {
            Link::Known => return Ok(Synced::Applied(vec![])),
            Link::Next => {}
            Link::Gap => return Err(Fault::Sender(format!("gap in {issuer}'s log before seq {seq}"))),
            Link::Fork => return Err(chain(format!("fork: {issuer} signed two different log entries with seq {seq}"))),
            Link::Broken => {
                return Err(chain(format!("bad chain: {issuer}'s entry {seq} does not link to entry {}", seq - 1)))
            }
        }
        match env {
            AlertEnvelope::Publish(alert) => {
                self.check_synced_alert(now_ms, &alert)?;
                if let Some(audit) = self.flooding(now_ms, issuer, seq, alert.body.created_at_ms) {
                    return Ok(Synced::Throttled(audit));
                }
                Ok(Synced::Applied(self.accept_alert(now_ms, peer, alert)))
            }
            AlertEnvelope::Withdraw(w) => {
                if !verify_withdrawal(&w) {
                    return Err(Fault::Sender(format!(
                        "forged withdrawal: signature does not verify for {}",
                        w.body.issuer
                    )));
                }
                self.apply_withdrawal(w).map(Synced::Applied)
            }
            AlertEnvelope::Pruned(p) => self.apply_pruned(now_ms, p).map(Synced::Applied),
        }
    }

    /// A pruned entry (next in its log): verified by the issuer's signature
    /// over its header, and accepted only for an alert that is over by
    /// itself: expired by its header, or withdrawn by a withdrawal the
    /// issuer signed (a relay cannot hide an active alert this way).
    fn apply_pruned(&mut self, now_ms: u64, p: PrunedAlert) -> Result<Vec<Action>, Fault> {
        let h = &p.header;
        if !self.has_role(&h.issuer, Role::Alert) {
            return Err(Fault::Local(format!("issuer {} may not publish alerts", h.issuer)));
        }
        if !vigil_crypto::verify_alert(&h.issuer, h, &p.signature) {
            return Err(Fault::Sender(format!(
                "forged pruned entry: signature does not verify for issuer {}",
                h.issuer
            )));
        }
        let id = header_id(h);
        let withdrawn = match &p.withdrawal {
            Some(w) if w.body.alert != id => {
                return Err(Fault::Sender("a pruned entry's withdrawal names another alert".into()))
            }
            Some(w) if !verify_withdrawal(w) => {
                return Err(Fault::Sender(format!("forged withdrawal in a pruned entry of {}", h.issuer)))
            }
            Some(_) => true,
            None => false,
        };
        // Pruned a day after its expiry: the serving member's clock would
        // have to be that far off for an honest one to send this.
        if !withdrawn && h.expires_at_ms > now_ms {
            let reason = format!("pruned entry {} of {} for an alert neither expired nor withdrawn", h.seq, h.issuer);
            return Err(Fault::Sender(reason));
        }
        let body = AlertBody {
            issuer: h.issuer,
            seq: h.seq,
            prev: h.prev,
            category: h.category,
            created_at_ms: h.created_at_ms,
            expires_at_ms: h.expires_at_ms,
            probe: None,
            encrypted: None,
        };
        let stored = StoredAlert {
            id,
            alert: SignedAlert { body, signature: p.signature },
            status: AlertStatus::Purged { payload: h.payload },
            received_at_ms: now_ms,
            case_ref: None,
            probe_vector: None,
            // The withdrawal is its own log entry: recorded when it comes.
            withdrawal: None,
            pad: None,
        };
        self.record_entry(h.issuer, h.seq, LogRef { hash: id.0, alert: id, withdrawal: false });
        self.count_created(h.issuer, h.created_at_ms);
        self.alerts.insert(id, stored.clone());
        Ok(vec![Action::Store(crate::model::StoreOp::PutAlert(Box::new(stored)))])
    }

    fn check_synced_alert(&self, now_ms: u64, alert: &SignedAlert) -> Result<(), Fault> {
        let b = &alert.body;
        if !self.has_role(&b.issuer, Role::Alert) {
            return Err(Fault::Local(format!("issuer {} may not publish alerts", b.issuer)));
        }
        if !vigil_crypto::verify_alert(&b.issuer, &vigil_crypto::alert_header(b), &alert.signature) {
            return Err(Fault::Sender(format!("forged log entry: signature does not verify for issuer {}", b.issuer)));
        }
        let skew = self.policy.max_clock_skew.as_millis() as u64;
        if b.created_at_ms > now_ms + skew {
            return Err(clock_fault(b.created_at_ms > now_ms + 2 * skew, "future-dated log entry".into()));
        }
        if b.expires_at_ms - b.created_at_ms > self.policy.max_lifetime.as_millis() as u64 {
            return Err(Fault::Local("alert lifetime exceeds the federation maximum".into()));
        }
        self.check_encrypted_probe(b)?;
        // A local capacity limit: the pull stops, nobody is struck, and the
        // periodic catch-up tries again.
        if b.expires_at_ms > now_ms && self.active_alerts(now_ms) >= self.policy.max_active {
            return Err(Fault::Local("active alert limit reached".into()));
        }
        Ok(())
    }

    /// Applies a withdrawal whose signature the caller verified, and which
    /// is the next entry of its log.
    /// Both faults are the signer's: it withdrew, in its own log, what is
    /// not its alert.
    pub(super) fn apply_withdrawal(&mut self, w: SignedWithdrawal) -> Result<Vec<Action>, Fault> {
        let b = w.body.clone();
        let issuer = b.issuer;
        let Some(a) = self.alerts.get_mut(&b.alert) else {
            return Err(Fault::Issuer { issuer, reason: "withdrawal of an alert not in its issuer's log".into() });
        };
        if a.alert.body.issuer != b.issuer {
            return Err(Fault::Issuer { issuer, reason: "withdrawal by someone other than the issuer".into() });
        }
        if a.status == AlertStatus::Active {
            a.status = AlertStatus::Withdrawn;
        }
        a.withdrawal = Some(w.clone());
        let stored = a.clone();
        let hash = entry_hash(&AlertEnvelope::Withdraw(w));
        self.record_entry(b.issuer, b.seq, LogRef { hash, alert: b.alert, withdrawal: true });
        Ok(vec![
            Action::Store(crate::model::StoreOp::PutAlert(Box::new(stored))),
            Action::Audit(AuditEvent::AlertWithdrawn { alert: b.alert, by: b.issuer }),
        ])
    }
}

//! Store-and-forward: messages that wait for a peer (hit notices, encrypted
//! answer pages, disclosure messages, alert refusals) are durable in the store until the
//! peer acknowledges them; this is their retry schedule (exponential
//! backoff with jitter, reset when the peer reconnects) and their expiry.
//! Plain state: it takes `now` and returns decisions.

use super::{Action, Engine};
use crate::audit::AuditEvent;
use crate::model::{HitRole, HitSource, StoreOp};
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use vigil_protocol::{Handle, OrgId, Request};

/// First retry delay; doubles per attempt up to `MAX_DELAY_MS`.
pub(super) const BASE_DELAY_MS: u64 = 1_000;
pub(super) const MAX_DELAY_MS: u64 = 10 * 60 * 1000;
/// Most messages scheduled at once (beyond, the oldest schedules are
/// forgotten and simply retried at the next tick).
pub(super) const MAX_SCHEDULED: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Retry {
    attempts: u32,
    next_ms: u64,
}

/// When to (re)send each waiting message.
#[derive(Debug)]
pub struct RetrySchedule {
    retries: HashMap<Handle, Retry>,
    rng: rand_chacha::ChaCha8Rng,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        Self { retries: HashMap::new(), rng: rand_chacha::ChaCha8Rng::from_entropy() }
    }
}

impl RetrySchedule {
    pub fn with_seed(seed: u64) -> Self {
        Self { retries: HashMap::new(), rng: rand_chacha::ChaCha8Rng::seed_from_u64(seed) }
    }

    /// Whether `key` may be sent now; if so, schedules its next attempt
    /// `BASE·2^attempts` (capped) later, ±25 % jitter.
    pub fn due(&mut self, key: Handle, now_ms: u64) -> bool {
        if self.retries.len() >= MAX_SCHEDULED && !self.retries.contains_key(&key) {
            self.retries.clear();
        }
        let r = self.retries.entry(key).or_insert(Retry { attempts: 0, next_ms: 0 });
        if now_ms < r.next_ms {
            return false;
        }
        let delay = BASE_DELAY_MS.saturating_mul(1 << r.attempts.min(20)).min(MAX_DELAY_MS);
        let jitter = self.rng.gen_range(0.75..1.25);
        r.attempts += 1;
        r.next_ms = now_ms + (delay as f64 * jitter) as u64;
        true
    }

    /// The peer (re)connected: its messages may go at once.
    pub fn reset(&mut self, keys: impl IntoIterator<Item = Handle>) {
        for k in keys {
            if let Some(r) = self.retries.get_mut(&k) {
                r.next_ms = 0;
            }
        }
    }

    /// Delivered or given up: forget its schedule.
    pub fn forget(&mut self, key: &Handle) {
        self.retries.remove(key);
    }

    pub fn attempts(&self, key: &Handle) -> u32 {
        self.retries.get(key).map_or(0, |r| r.attempts)
    }
}

impl Engine {
    /// Every message waiting for a peer: (peer, request, key, created at).
    pub fn outbox(&self) -> Vec<(OrgId, Request, Handle, u64)> {
        self.outbox_entries()
            .into_iter()
            .filter_map(|(to, key, at)| self.outbox_request(&key).map(|r| (to, r, key, at)))
            .collect()
    }

    /// Every message waiting for a peer, without building it: (peer, key,
    /// created at). Listed on every redial tick and connection, so nothing
    /// is signed or copied here; `outbox_request` builds one when it is due.
    pub fn outbox_entries(&self) -> Vec<(OrgId, Handle, u64)> {
        let hits = self
            .hits
            .values()
            .filter(|h| h.role == HitRole::Holder && !h.delivered && matches!(h.source, HitSource::Alert(_)))
            .map(|h| (h.peer, h.handle, h.at_ms));
        let answers = self.answers.values().filter(|a| !a.delivered).map(|a| (a.issuer, a.id, a.created_at_ms));
        let disclosures = self.undelivered_disclosures().into_iter().map(|(to, _, key)| {
            let d = &self.disclosures[&key];
            (to, key, d.decided_at_ms.unwrap_or(d.requested_at_ms))
        });
        hits.chain(answers).chain(disclosures).chain(self.undelivered_receipts()).collect()
    }

    /// The request of outbox entry `key` (a hit notice is signed afresh).
    pub fn outbox_request(&self, key: &Handle) -> Option<Request> {
        if let Some(h) = self.hits.get(key).filter(|h| h.role == HitRole::Holder && !h.delivered) {
            let HitSource::Alert(alert) = h.source else { return None };
            return Some(super::hits::notice_request(&self.me, alert, h));
        }
        if let Some(a) = self.answers.get(key).filter(|a| !a.delivered) {
            let body = a.body.clone();
            return Some(Request::AlertAnswer(vigil_protocol::AlertAnswer { alert: a.alert, answer: a.id, body }));
        }
        if let Some(r) = self.receipt_request(key) {
            return Some(r);
        }
        self.undelivered_disclosures().into_iter().find(|(_, _, k)| k == key).map(|(_, r, _)| r)
    }

    /// Gives up on messages older than `ttl_ms`: no longer resent, audited.
    pub fn expire_outbox(&mut self, now_ms: u64, ttl_ms: u64) -> Vec<Action> {
        let mut actions = Vec::new();
        for (peer, key, at) in self.outbox_entries() {
            if at.saturating_add(ttl_ms) > now_ms {
                continue;
            }
            if let Some(h) = self.hits.get_mut(&key).filter(|h| h.role == HitRole::Holder) {
                debug_assert!(matches!(h.source, HitSource::Alert(_)));
                h.delivered = true;
                actions.push(Action::Store(StoreOp::PutHit(h.clone())));
            } else if let Some(a) = self.answers.get_mut(&key) {
                a.delivered = true;
                a.body = Vec::new();
                actions.push(Action::Store(StoreOp::PutAnswer(Box::new(a.clone()))));
            } else if let Some(d) = self.disclosures.get_mut(&key) {
                d.delivered = true;
                actions.push(Action::Store(StoreOp::PutDisclosure(Box::new(d.clone()))));
            } else if let Some(a) = self.expire_receipt(&key) {
                actions.push(a);
            }
            actions.push(Action::Audit(AuditEvent::OutboxExpired { key, peer }));
        }
        actions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_with_jitter_and_reset_on_reconnection() {
        let mut s = RetrySchedule::with_seed(1);
        let k = Handle([1; 16]);
        assert!(s.due(k, 0), "a new message goes at once");
        assert!(!s.due(k, 100), "not again right away");
        // Each wait is BASE·2^n ±25 %: find when it becomes due again.
        let mut t = 0;
        let mut waits = Vec::new();
        for _ in 0..12 {
            let start = t;
            while !s.due(k, t) {
                t += 10;
            }
            waits.push(t - start);
        }
        for (n, w) in waits.iter().enumerate() {
            let nominal = (BASE_DELAY_MS << n.min(20)).min(MAX_DELAY_MS) as f64;
            assert!((*w as f64) >= 0.75 * nominal - 10.0 && (*w as f64) <= 1.25 * nominal + 10.0, "wait {n}: {w}");
        }
        assert!(waits[11] <= (1.25 * MAX_DELAY_MS as f64) as u64 + 10, "capped");
        // Jitter: two schedules do not retry in lockstep.
        let mut other = RetrySchedule::with_seed(2);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for key in 0..20u8 {
            let (ka, mut ta) = (Handle([key; 16]), 0);
            s.due(ka, 0);
            while !s.due(ka, ta) {
                ta += 1;
            }
            a.push(ta);
            let mut tb = 0;
            other.due(ka, 0);
            while !other.due(ka, tb) {
                tb += 1;
            }
            b.push(tb);
        }
        assert_ne!(a, b);
        // Reconnection: due at once again, keeping the attempt count.
        let n = s.attempts(&k);
        s.reset([k]);
        assert!(s.due(k, t + 1));
        assert_eq!(s.attempts(&k), n + 1);
        s.forget(&k);
        assert_eq!(s.attempts(&k), 0);
    }
}

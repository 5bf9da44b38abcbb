//! Answer pages of standing matching, counted in memory and audited as one
//! aggregate entry per interval: a record enrolled against ten standing
//! encrypted alerts sends ten one-record pages, and each is acknowledged;
//! audited one by one that was 17 entries per record (254,810 for 14,640
//! records). The first answer to an alert (its whole gallery), refusals and
//! failed deliveries stay entries of their own.

use crate::audit::{AnswerCounts, AuditEvent};
use std::collections::BTreeMap;
use vigil_protocol::OrgId;

/// Pages sent and delivered since the last aggregate entry.
#[derive(Debug, Default)]
pub(crate) struct AnswerTally {
    every_ms: u64,
    since_ms: Option<u64>,
    /// Per issuer (members only: bounded by the roster).
    by_issuer: BTreeMap<OrgId, AnswerCounts>,
}

impl AnswerTally {
    /// Audited at most once every `every_ms`.
    pub(crate) fn new(every_ms: u64) -> Self {
        AnswerTally { every_ms, ..Default::default() }
    }

    fn counts(&mut self, now_ms: u64, issuer: OrgId) -> &mut AnswerCounts {
        self.since_ms.get_or_insert(now_ms);
        self.by_issuer.entry(issuer).or_insert(AnswerCounts {
            issuer,
            pages_sent: 0,
            records_sent: 0,
            pages_delivered: 0,
        })
    }

    /// A standing-matching page of `records` records went to `issuer`.
    pub(crate) fn sent(&mut self, now_ms: u64, issuer: OrgId, records: usize) {
        let c = self.counts(now_ms, issuer);
        c.pages_sent += 1;
        c.records_sent += records as u64;
    }

    /// `issuer` acknowledged one of our answer pages.
    pub(crate) fn delivered(&mut self, now_ms: u64, issuer: OrgId) {
        self.counts(now_ms, issuer).pages_delivered += 1;
    }

    /// The aggregate entry, once an interval has passed since the first
    /// page it counts; then counting starts again.
    /// With `now`, whatever the interval (on shutdown).
    pub(crate) fn due(&mut self, now_ms: u64, now: bool) -> Option<AuditEvent> {
        let since_ms = self.since_ms?;
        if !now && now_ms < since_ms + self.every_ms {
            return None;
        }
        let issuers = std::mem::take(&mut self.by_issuer).into_values().collect();
        *self = AnswerTally::new(self.every_ms);
        Some(AuditEvent::AlertAnswersCounted { since_ms, issuers })
    }
}

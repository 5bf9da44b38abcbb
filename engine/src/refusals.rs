//! Refused connections, counted in memory and audited as one aggregate
//! entry per interval: a non-member opening connections as fast as it can
//! (fresh keys or fresh ports every time) costs a counter increment each,
//! and at most one audit entry per interval, of bounded size.

use crate::audit::{AuditEvent, RefusedSource};
use std::collections::BTreeMap;

/// Sources named in one entry; refusals from further sources in the same
/// interval are only counted.
pub const MAX_REFUSED_SOURCES: usize = 32;

/// Refusals since the last audit entry.
#[derive(Debug, Default)]
pub struct Refusals {
    /// The interval (`network.refusals_audit_interval`).
    every_ms: u64,
    since_ms: Option<u64>,
    by_source: BTreeMap<String, (u64, String)>,
    /// Refusals from sources beyond the first `MAX_REFUSED_SOURCES`.
    other_refusals: u64,
}

impl Refusals {
    /// Audited at most once every `every_ms`.
    pub fn new(every_ms: u64) -> Self {
        Refusals { every_ms, ..Default::default() }
    }

    /// A connection from `source` (an IP address, not a port or key: both
    /// are fresh per connection) was refused for `reason`.
    pub fn note(&mut self, now_ms: u64, source: String, reason: String) {
        self.since_ms.get_or_insert(now_ms);
        if let Some((n, _)) = self.by_source.get_mut(&source) {
            *n += 1;
        } else if self.by_source.len() < MAX_REFUSED_SOURCES {
            self.by_source.insert(source, (1, reason));
        } else {
            self.other_refusals += 1;
        }
    }

    /// The aggregate entry, once an interval has passed since the first
    /// refusal it counts; then counting starts again.
    pub fn due(&mut self, now_ms: u64) -> Option<AuditEvent> {
        let since_ms = self.since_ms?;
        if now_ms < since_ms + self.every_ms {
            return None;
        }
        let sources = std::mem::take(&mut self.by_source)
            .into_iter()
            .map(|(source, (count, reason))| RefusedSource { source, count, reason })
            .collect();
        let event = AuditEvent::ConnectionsRefused { since_ms, sources, other_refusals: self.other_refusals };
        *self = Refusals::new(self.every_ms);
        Some(event)
    }
}

/// The source of a refused connection as audited: the IP address of a
/// TCP multiaddr (`/ip4/203.0.113.7/tcp/51234` gives `203.0.113.7`), else
/// the address without its last component.
pub fn refused_source(addr: &str) -> String {
    let parts: Vec<&str> = addr.split('/').collect();
    match parts.as_slice() {
        ["", "ip4" | "ip6", ip, ..] => ip.to_string(),
        _ => addr.rsplit_once('/').map_or(addr, |(head, _)| head).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thousand_refusals_make_one_bounded_entry_per_interval() {
        const EVERY: u64 = 60_000;
        let mut r = Refusals::new(EVERY);
        for i in 0..1000u64 {
            // Fresh ports (and keys) every time, from 100 addresses.
            let addr = format!("/ip4/198.51.100.{}/tcp/{}", i % 100, 40_000 + i);
            r.note(1_000 + i, refused_source(&addr), "not a roster member".into());
            assert!(r.due(1_000 + i).is_none(), "nothing before the interval ends");
        }
        let Some(AuditEvent::ConnectionsRefused { since_ms, sources, other_refusals }) = r.due(1_000 + EVERY) else {
            panic!("one entry after the interval")
        };
        assert_eq!(since_ms, 1_000);
        assert_eq!(sources.len(), MAX_REFUSED_SOURCES);
        let named: u64 = sources.iter().map(|s| s.count).sum();
        assert_eq!(named + other_refusals, 1000, "every refusal counted");
        assert_eq!(sources[0].count, 10, "one address, ten fresh ports");
        assert!(other_refusals > 0);
        assert!(r.due(10 * EVERY).is_none(), "nothing more until the next refusal");
        assert_eq!(refused_source("/ip6/2001:db8::1/tcp/7600"), "2001:db8::1");
        assert_eq!(refused_source("/memory/77"), "/memory");
    }
}

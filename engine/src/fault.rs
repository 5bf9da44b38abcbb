//! Who is to blame when a gossiped alert or a pulled log entry is refused.
//! Only what the sender could have checked itself costs it a strike and a
//! gossip penalty: decoding, structure, signatures, and clock checks that
//! fail beyond any skew an honest relay's own clock could explain. Two log
//! entries the issuer signed that cannot both be true (a fork, a broken
//! link) are the issuer's fault. What depends on this node alone (its
//! roster, policy, capacity, or a clock within the allowed skew) is
//! ignored without penalty: an honest relay cannot know it.

use super::{Action, Engine, Verdict};
use crate::audit::AuditEvent;
use vigil_protocol::OrgId;

/// Why an alert or log entry is not taken, by who could have known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fault {
    /// The sender (the forwarding peer, or the member serving a page)
    /// could have checked it: rejected, a strike against the sender.
    Sender(String),
    /// The issuer signed entries that contradict each other: a strike
    /// against the issuer; the relay that passed it on is not at fault.
    Issuer { issuer: OrgId, reason: String },
    /// Depends on this node's own roster, policy, capacity or clock:
    /// ignored, nobody penalised.
    Local(String),
}

impl Fault {
    pub(crate) fn reason(&self) -> &str {
        match self {
            Fault::Sender(r) | Fault::Local(r) | Fault::Issuer { reason: r, .. } => r,
        }
    }
}

impl Engine {
    /// The gossip verdict and the penalties for a refused message from `from`.
    pub(crate) fn blame(&mut self, from: OrgId, fault: Fault) -> (Verdict, Vec<Action>) {
        match fault {
            Fault::Sender(reason) => {
                let actions = self.violation(from, &reason);
                (Verdict::Reject(reason), actions)
            }
            Fault::Issuer { issuer, reason } => {
                let actions = self.issuer_fault(issuer, &reason);
                (Verdict::Ignore(reason), actions)
            }
            Fault::Local(reason) => (Verdict::Ignore(reason), vec![]),
        }
    }

    /// The issuer signed contradicting entries: audited and a strike
    /// against it (never against this node itself).
    pub(crate) fn issuer_fault(&mut self, issuer: OrgId, reason: &str) -> Vec<Action> {
        if issuer == self.org {
            return vec![];
        }
        self.violation(issuer, reason)
    }

    /// Alerts that are active and not yet expired: what `alerts.max_active` bounds.
    pub(crate) fn active_alerts(&self, now_ms: u64) -> usize {
        self.alerts
            .values()
            .filter(|a| a.status == crate::model::AlertStatus::Active && a.alert.body.expires_at_ms > now_ms)
            .count()
    }
}

/// A clock check that failed: the sender's fault only if it fails by
/// more than `max_clock_skew` (an honest relay checked the same window
/// on its own clock, at most that far from ours), else nobody's.
pub(crate) fn clock_fault(beyond_skew: bool, reason: String) -> Fault {
    if beyond_skew {
        Fault::Sender(reason)
    } else {
        Fault::Local(reason)
    }
}

/// The audit entry of a refused pull page, and the penalty.
pub(crate) fn sync_refused(e: &mut Engine, peer: OrgId, org: OrgId, fault: Fault) -> Vec<Action> {
    let mut actions = vec![Action::Audit(AuditEvent::SyncRefused { peer, org, reason: fault.reason().to_string() })];
    match fault {
        Fault::Sender(reason) => actions.extend(e.strike(peer, &reason)),
        Fault::Issuer { issuer, reason } => actions.extend(e.issuer_fault(issuer, &reason)),
        Fault::Local(_) => {}
    }
    actions
}

//! Holder: which gallery records each encrypted alert was answered for (or
//! is being answered for), so that none is answered twice. Compact: a
//! watermark per alert plus the records answered one by one after it, not
//! an entry per (alert, record): a million-record gallery costs a few bytes
//! per alert, not tens of megabytes, and no million inserts on the event loop.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use vigil_protocol::AlertId;

/// The records answered for one alert: every id below `below` that the
/// alert could be answered for (same extractor), and those in `extra`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Records {
    below: u64,
    extra: BTreeSet<u64>,
}

/// How to take back a mark when its job fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Undo {
    /// A whole-gallery answer: the watermark it replaced.
    Below(u64),
    /// A single record answered on its own.
    Record(u64),
}

#[derive(Debug, Default)]
pub(super) struct Answered(HashMap<AlertId, Records>);

impl Answered {
    /// Whether `record` was answered (or is being answered) for `alert`.
    #[cfg(test)]
    pub(super) fn contains(&self, alert: &AlertId, record: u64) -> bool {
        self.of(alert)(record)
    }

    /// `contains` for one alert, looked up once for a pass over a gallery.
    pub(super) fn of(&self, alert: &AlertId) -> impl Fn(u64) -> bool + '_ {
        let r = self.0.get(alert);
        move |record| r.is_some_and(|r| record < r.below || r.extra.contains(&record))
    }

    /// Every record id below this was answered for `alert` (or cannot be).
    pub(super) fn below(&self, alert: &AlertId) -> u64 {
        self.0.get(alert).map_or(0, |r| r.below)
    }

    /// Marks an answer to `alert` over every not yet answered record of the
    /// gallery that it can be answered for: `records`, ascending. Records
    /// below the last of them that are not in it were answered before.
    pub(super) fn mark_all(&mut self, alert: AlertId, records: &[u64]) -> Undo {
        let r = self.0.entry(alert).or_default();
        let before = r.below;
        if let Some(last) = records.last() {
            r.below = r.below.max(last + 1);
        }
        Undo::Below(before)
    }

    /// Marks an answer to `alert` over one record (enrolled after the
    /// alert was answered).
    pub(super) fn mark_one(&mut self, alert: AlertId, record: u64) -> Undo {
        self.0.entry(alert).or_default().extra.insert(record);
        Undo::Record(record)
    }

    /// A job failed: its records may be answered again.
    pub(super) fn undo(&mut self, alert: &AlertId, undo: Undo) {
        let Some(r) = self.0.get_mut(alert) else { return };
        match undo {
            Undo::Below(b) => r.below = b,
            Undo::Record(id) => {
                r.extra.remove(&id);
            }
        }
    }

    /// The alert is closed: it is answered no more.
    pub(super) fn forget(&mut self, alert: &AlertId) {
        self.0.remove(alert);
    }

    /// Rebuilt at start from the records of the stored answer pages of each
    /// alert: the watermark passes every eligible record (`eligible(alert,
    /// record)`, ascending in `gallery`) that an answer holds.
    pub(super) fn rebuild<V>(
        answered: HashMap<AlertId, BTreeSet<u64>>,
        gallery: &BTreeMap<u64, V>,
        eligible: impl Fn(&AlertId, &V) -> bool,
    ) -> Self {
        let mut out = HashMap::new();
        for (alert, mut set) in answered {
            let mut below = 0;
            for (id, _) in gallery.iter().filter(|(_, v)| eligible(&alert, v)) {
                if !set.contains(id) {
                    break;
                }
                below = id + 1;
            }
            set.retain(|r| *r >= below);
            out.insert(alert, Records { below, extra: set });
        }
        Self(out)
    }

    /// Alerts with answer state (tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_undo_and_rebuild_agree_with_a_set_of_pairs() {
        let (a, b) = (AlertId([1; 32]), AlertId([2; 32]));
        let mut s = Answered::default();
        assert!(!s.contains(&a, 1));
        s.mark_all(a, &[1, 2, 5]);
        assert!((1..=5).all(|r| s.contains(&a, r)) && !s.contains(&a, 6) && !s.contains(&b, 1));
        let one = s.mark_one(a, 9);
        assert!(s.contains(&a, 9) && !s.contains(&a, 8));
        // A later whole answer (records 6 and 7 enrolled since) keeps 9.
        let all = s.mark_all(a, &[6, 7]);
        assert!(s.contains(&a, 7) && !s.contains(&a, 8) && s.contains(&a, 9));
        s.undo(&a, all);
        assert!(!s.contains(&a, 6) && s.contains(&a, 5) && s.contains(&a, 9));
        s.undo(&a, one);
        assert!(!s.contains(&a, 9));
        s.forget(&a);
        assert!(!s.contains(&a, 1) && s.len() == 0);

        // Rebuild: records 1..=4 answered, 5 (another extractor) never, 7
        // answered alone, 6 not answered.
        let gallery: BTreeMap<u64, bool> =
            [(1, true), (2, true), (3, true), (4, true), (5, false), (6, true), (7, true)].into_iter().collect();
        let stored = HashMap::from([(a, BTreeSet::from([1, 2, 3, 4, 7]))]);
        let r = Answered::rebuild(stored, &gallery, |_, eligible| *eligible);
        let answered: Vec<u64> = (1..=8).filter(|x| r.contains(&a, *x)).collect();
        assert_eq!(answered, vec![1, 2, 3, 4, 7]);
        assert_eq!(r.0[&a].extra, BTreeSet::from([7]));
    }
}

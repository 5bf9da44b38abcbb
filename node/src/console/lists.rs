//! The rows of the cases and hits lists, shared by their pages and their
//! CSV exports: what each shows of an alert or a hit, ordered, indexed
//! once per request (linear in alerts, hits and disclosures) and paged.

use super::pages::{clock, name_of, when, word};
use super::*;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use vigil_engine::model::{DisclosureRole, DisclosureStatus, HitRole, HitSource, StoredDisclosure};
use vigil_protocol::OrgId;

pub(super) struct AlertRow {
    pub id: String,
    pub case_ref: String,
    pub category: String,
    pub status: String,
    pub created: String,
    pub expires: String,
    pub members: String,
    pub follow_up: String,
    pub overdue: bool,
    pub active: bool,
}

pub(super) struct HitRow {
    pub handle: String,
    /// The confidence band in the operator's words, or empty (one threshold).
    pub band: String,
    pub when: String,
    pub case_ref: String,
    pub holder: String,
    pub source: String,
    /// The liveness attestation of this node's probe (its alert's), if any.
    pub liveness: Option<String>,
    pub follow_up: String,
    pub overdue: bool,
    pub disclosure: Option<String>,
}

/// Rows per page of the cases and hits lists (the CSV exports have all).
pub(super) const PAGE_ROWS: usize = 200;

/// `?page=N` of a list (from 0).
#[derive(Debug, Deserialize, Default)]
pub(super) struct PageNo {
    /// Text, as in `Done`.
    page: Option<String>,
}

impl PageNo {
    pub(super) fn skip(&self) -> usize {
        self.page.as_deref().and_then(|p| p.parse::<usize>().ok()).unwrap_or(0).saturating_mul(PAGE_ROWS)
    }
}

/// Where a list's page stands: rows `first..=last` of `total`, and the
/// page numbers before and after it.
pub(super) struct Paging {
    pub first: usize,
    pub last: usize,
    pub total: usize,
    pub newer: Option<usize>,
    pub older: Option<usize>,
}

impl Paging {
    pub(super) fn new(skip: usize, shown: usize, total: usize) -> Self {
        let page = skip / PAGE_ROWS;
        Paging {
            first: if shown == 0 { 0 } else { skip + 1 },
            last: skip + shown,
            total,
            newer: page.checked_sub(1),
            older: (skip + shown < total).then_some(page + 1),
        }
    }
}

/// The disclosures this node asked for, by hit, indexed once per page so
/// that rows cost O(hits + disclosures), not their product (10,000 hits
/// and 1,000 disclosures took 445 ms for the hits page before).
pub(super) struct Asked<'a> {
    first: HashMap<vigil_protocol::Handle, &'a StoredDisclosure>,
    answered: HashSet<vigil_protocol::Handle>,
}

impl<'a> Asked<'a> {
    pub(super) fn new(disclosures: &'a [StoredDisclosure]) -> Self {
        let mut first = HashMap::new();
        let mut answered = HashSet::new();
        for d in disclosures.iter().filter(|d| d.role == DisclosureRole::Requester) {
            first.entry(d.hit).or_insert(d);
            if matches!(d.status, DisclosureStatus::Approved | DisclosureStatus::Refused) {
                answered.insert(d.hit);
            }
        }
        Self { first, answered }
    }

    /// Whether the disclosure asked for hit `handle` has its answer.
    fn finished(&self, handle: &vigil_protocol::Handle) -> bool {
        self.answered.contains(handle)
    }
}

/// This node's alerts, newest first, with their members and clocks:
/// `take` rows after the first `skip`, and how many there are.
pub(super) fn alert_rows(
    c: &Console,
    tr: &Tr,
    (alerts, hits, disclosures): &CaseData,
    skip: usize,
    take: usize,
) -> (Vec<AlertRow>, usize) {
    let asked = Asked::new(disclosures);
    // Per alert, the oldest hit whose follow-up is not finished (else the oldest).
    let mut open: HashMap<vigil_protocol::AlertId, (bool, u64)> = HashMap::new();
    for h in hits.iter().filter(|h| h.role == HitRole::Issuer) {
        let Some(a) = h.source.alert() else { continue };
        let key = (asked.finished(&h.handle), h.at_ms);
        open.entry(a).and_modify(|k| *k = (*k).min(key)).or_insert(key);
    }
    let own: Vec<&crate::AlertView> = alerts.iter().rev().filter(|a| a.own).collect();
    let rows = own
        .iter()
        .skip(skip)
        .take(take)
        .map(|a| {
            let m = a.members.clone().unwrap_or_default();
            let members = format!(
                "{} {} · {} {} · {} {} · {} {} · {} {}",
                m.hit,
                tr.hit,
                m.answered,
                tr.answered,
                m.delivered,
                tr.delivered,
                m.refused,
                tr.refused,
                m.pending,
                tr.pending
            );
            let (follow_up, overdue) = match open.get(&a.id) {
                Some(&(done, at)) => clock(tr, at, c.settings.follow_up, done),
                None => (String::new(), false),
            };
            let active = a.status == vigil_engine::model::AlertStatus::Active && !a.expired;
            AlertRow {
                id: a.id.to_hex(),
                case_ref: a.case_ref.clone().unwrap_or_default(),
                category: word(&a.category),
                status: if a.expired { "expired".into() } else { word(&a.status) },
                created: when(a.created_at_ms),
                expires: when(a.expires_at_ms),
                members,
                follow_up,
                overdue,
                active,
            }
        })
        .collect();
    (rows, own.len())
}

/// A band in the operator's words.
pub(super) fn band_word(tr: &Tr, band: Option<vigil_protocol::policy::Band>) -> String {
    use vigil_protocol::policy::Band;
    match band {
        Some(Band::Strong) => tr.band_strong,
        Some(Band::Probable) => tr.band_probable,
        Some(Band::Possible) => tr.band_possible,
        None => "",
    }
    .to_string()
}

/// What the cases and hits pages both show: alerts, hits, disclosures.
pub(super) type CaseData = (Vec<crate::AlertView>, Vec<vigil_engine::model::StoredHit>, Vec<StoredDisclosure>);

pub(super) async fn case_data(c: &Console) -> Result<CaseData, crate::NodeError> {
    Ok((c.node.alerts().await?, c.node.hits().await?, c.node.disclosures().await?))
}

/// Hits of this node's alerts and queries, overdue first, then by band
/// (strong first; hits of one threshold last), then newest:
/// `take` rows after the first `skip`, and how many there are.
pub(super) fn hit_rows(
    c: &Console,
    tr: &Tr,
    (alerts, hits, disclosures): &CaseData,
    names: &HashMap<OrgId, String>,
    skip: usize,
    take: usize,
) -> (Vec<HitRow>, usize) {
    let case_of: HashMap<_, _> = alerts.iter().filter(|a| a.own).map(|a| (a.id, a.case_ref.as_deref())).collect();
    let liveness_of: HashMap<_, _> = alerts.iter().filter_map(|a| Some((a.id, a.liveness.as_deref()?))).collect();
    let asked = Asked::new(disclosures);
    let now = crate::now_ms();
    let due = c.settings.follow_up.as_millis() as u64;
    // Ordered on what is cheap to know; only the rows shown are written out.
    let mut mine: Vec<&vigil_engine::model::StoredHit> =
        hits.iter().rev().filter(|h| matches!(h.role, HitRole::Issuer | HitRole::Prober)).collect();
    mine.sort_by_key(|h| {
        let overdue = !asked.finished(&h.handle) && now > h.at_ms.saturating_add(due);
        (!overdue, std::cmp::Reverse(h.band))
    });
    let rows = mine
        .iter()
        .skip(skip)
        .take(take)
        .map(|h| {
            let (follow_up, overdue) = clock(tr, h.at_ms, c.settings.follow_up, asked.finished(&h.handle));
            let disclosure = asked.first.get(&h.handle).map(|d| match d.status {
                DisclosureStatus::Approved => format!("{}: {}", tr.approved, d.contact.clone().unwrap_or_default()),
                DisclosureStatus::Refused => tr.refused.to_string(),
                _ => tr.requested.to_string(),
            });
            let (case_ref, source) = match &h.source {
                HitSource::Query(_) => (
                    h.case.and_then(|a| case_of.get(&a).copied().flatten()).unwrap_or_default().to_string(),
                    "identify".to_string(),
                ),
                s => (
                    s.alert().and_then(|a| case_of.get(&a).copied().flatten()).unwrap_or_default().to_string(),
                    if matches!(s, HitSource::Alert(_)) {
                        "alert (protected)".into()
                    } else {
                        "alert (encrypted)".into()
                    },
                ),
            };
            HitRow {
                handle: h.handle.to_hex(),
                band: band_word(tr, h.band),
                when: when(h.at_ms),
                case_ref,
                holder: name_of(names, &h.peer),
                source,
                liveness: h.source.alert().and_then(|a| liveness_of.get(&a)).map(|l| l.to_string()),
                follow_up,
                overdue,
                disclosure,
            }
        })
        .collect();
    (rows, mine.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_protocol::Handle;

    #[test]
    fn pages_say_where_they_stand() {
        let p = Paging::new(0, PAGE_ROWS, 450);
        assert_eq!((p.first, p.last, p.total, p.newer, p.older), (1, 200, 450, None, Some(1)));
        let p = Paging::new(400, 50, 450);
        assert_eq!((p.first, p.last, p.newer, p.older), (401, 450, Some(1), None));
        let p = Paging::new(0, 0, 0);
        assert_eq!((p.first, p.last, p.older), (0, 0, None));
        let q = |s: &str| PageNo { page: Some(s.into()) }.skip();
        assert_eq!((q("2"), q("x"), q("-1")), (400, 0, 0), "a bad page number is the first page");
        assert_eq!(PageNo { page: Some(u64::MAX.to_string()) }.skip(), usize::MAX, "no overflow");
    }

    #[test]
    fn a_hit_is_finished_by_any_answered_request_and_shows_its_first() {
        let d = |hit: u8, status: DisclosureStatus, role: DisclosureRole| StoredDisclosure {
            id: Handle([hit.wrapping_add(100); 16]),
            role,
            peer: OrgId([1; 32]),
            hit: Handle([hit; 16]),
            query: None,
            record: None,
            reason: "r".into(),
            status,
            contact: None,
            requested_at_ms: 0,
            decided_at_ms: None,
            delivered: true,
            first_approval: None,
        };
        let all = vec![
            d(1, DisclosureStatus::Requested, DisclosureRole::Requester),
            d(1, DisclosureStatus::Refused, DisclosureRole::Requester),
            d(2, DisclosureStatus::Approved, DisclosureRole::Holder),
        ];
        let asked = Asked::new(&all);
        assert!(asked.finished(&Handle([1; 16])), "the second request was answered");
        assert_eq!(asked.first[&Handle([1; 16])].status, DisclosureStatus::Requested);
        assert!(!asked.finished(&Handle([2; 16])), "a request made to this node is not this node's");
    }
}

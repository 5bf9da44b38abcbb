//! What a drill observed: deliveries, hits, queries, disclosures, outages,
//! audit chains and durability, gathered from the nodes themselves (their
//! receipt times, hit stores and audit logs), plus the plain matcher's
//! decisions on the same data as the reference.

use crate::population::Population;
use crate::scenario::Scenario;
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};
use vigil_engine::model::{DisclosureRole, DisclosureStatus, HitRole};
use vigil_engine::{IdentifyReport, OutcomeStatus};
use vigil_matcher::Template;
use vigil_node::{NodeError, NodeHandle};
use vigil_protocol::{AlertId, OrgId};
use vigil_testkit::LocalFederation;

/// An alert the drill published.
#[derive(Debug, Clone)]
pub struct Published {
    pub label: String,
    pub id: AlertId,
    pub issuer: usize,
    pub person: usize,
    pub at_s: f64,
    /// The alert's creation time at its issuer.
    pub created_ms: u64,
    pub withdrawn_at_s: Option<f64>,
    /// Members that were up and on the issuer's side when it was published.
    pub live: Vec<bool>,
}

/// One identification query and how it went.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Query {
    pub event: usize,
    pub org: usize,
    pub person: usize,
    pub latency_ms: u64,
    pub answered: usize,
    pub refused: usize,
    pub timeouts: usize,
    pub error: Option<String>,
    /// Members that hold the person (ground truth).
    pub holders: Vec<usize>,
    /// Members that reported a match.
    pub hits: Vec<usize>,
}

impl Query {
    pub(crate) fn from_report(
        event: usize,
        org: usize,
        person: usize,
        holders: Vec<usize>,
        latency_ms: u64,
        r: Result<IdentifyReport, NodeError>,
        orgs: &[OrgId],
    ) -> Self {
        let mut q = Query {
            event,
            org,
            person,
            latency_ms,
            answered: 0,
            refused: 0,
            timeouts: 0,
            error: None,
            holders,
            hits: vec![],
        };
        match r {
            Ok(r) => {
                for p in r.peers {
                    match p.status {
                        OutcomeStatus::Answered => q.answered += 1,
                        OutcomeStatus::Refused => q.refused += 1,
                        OutcomeStatus::Timeout | OutcomeStatus::Failed => q.timeouts += 1,
                    }
                    if !p.hits.is_empty() {
                        q.hits.extend(orgs.iter().position(|o| *o == p.peer));
                    }
                }
                q.hits.sort_unstable();
            }
            Err(e) => q.error = Some(e.to_string()),
        }
        q
    }
}

/// A disclosure round after an alert's hits.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Disclosure {
    pub alert: String,
    pub approve: bool,
    /// Holders asked (one per holder that hit).
    pub requested: usize,
    /// Answers received by the issuer (contact, or refusal).
    pub answered: usize,
    /// Contacts received before approval (must be 0).
    pub early: usize,
    pub max_ms: u64,
    pub error: Option<String>,
}

/// Work that finishes after its timeline event.
#[derive(Debug)]
pub enum Task {
    Query(Query),
    Disclosure(Disclosure),
    Attack(AttackOutcome),
}

/// A logged timeline step.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Logged {
    pub at_s: f64,
    pub line: usize,
    pub what: String,
    pub outcome: String,
}

/// An attack and how the federation took it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AttackOutcome {
    pub org: String,
    pub behaviour: crate::scenario::Behaviour,
    pub sent: usize,
    /// Members that penalised (struck) the attacker.
    pub penalised_by: usize,
    /// Members that blocked it.
    pub blocked_by: usize,
    /// Identification queries refused by budgets.
    pub refused: usize,
    /// Most flood alerts any member accepted.
    pub accepted_max: usize,
    pub throttled: bool,
    #[serde(skip)]
    pub flood_alerts: Vec<AlertId>,
}

/// Everything a drill saw.
#[derive(Debug)]
pub struct Observed {
    pub nodes: usize,
    pub orgs: Vec<OrgId>,
    pub pop: Population,
    pub start_ms: u64,
    /// Phases: starting and connecting the nodes, enrolling the population,
    /// the timeline, waiting for delivery and hits.
    pub setup_s: f64,
    pub enrol_s: f64,
    pub timeline_s: f64,
    pub settle_s: f64,
    pub wall_s: f64,
    pub published: Vec<Published>,
    /// (org, person, at_s) of acknowledged enrolments of named persons.
    pub enrolments: Vec<(usize, usize, f64)>,
    pub outages: Vec<(usize, u64, Option<u64>)>,
    pub partitions: Vec<(u64, Option<u64>, Vec<String>)>,
    pub log: Vec<Logged>,
    /// Per alert, per member: when it received it.
    pub received: Vec<Vec<Option<u64>>>,
    /// Per alert: whether each member should have it at the end.
    pub reachable: Vec<Vec<bool>>,
    /// Per alert: the members the plain matcher says match its probe.
    pub plain: Vec<BTreeSet<usize>>,
    /// Per alert: the members the protected matcher says match (offline).
    pub protected: Vec<BTreeSet<usize>>,
    /// Per alert: hits at the issuer (member, at_ms), first per member.
    pub hits: Vec<Vec<(usize, u64)>>,
    pub queries: Vec<Query>,
    pub disclosures: Vec<Disclosure>,
    pub attacks: Vec<AttackOutcome>,
    /// Alerts the attackers published (not counted as honest alerts).
    pub attack_alerts: BTreeSet<AlertId>,
    /// When the first attack started (seconds into the timeline).
    pub first_attack_s: Option<f64>,
    pub chains_ok: usize,
    pub lost_writes: usize,
    pub duplicate_writes: usize,
    pub traffic: Vec<std::collections::BTreeMap<String, crate::wire::Traffic>>,
    /// The nodes' own metrics, summed over nodes (since each last started).
    pub node_metrics: NodeMetricsSum,
    pub template_bytes_on_wire: u64,
    pub leaks: Vec<String>,
}

/// Counters of every node's metrics (`GET /v1/metrics`), summed: where the
/// nodes' event loops waited on the disk, and what gossip brought them.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct NodeMetricsSum {
    /// Durable commits (each a flush the event loop waits for).
    pub commits: u64,
    pub commit_ms_total: f64,
    /// Mean lateness of the event loops' 200 ms timer, over all nodes.
    pub loop_lag_ms_mean: f64,
    pub gossip_accepted: u64,
    pub gossip_ignored: u64,
    pub gossip_rejected: u64,
}

impl NodeMetricsSum {
    pub(crate) fn of(fed: &vigil_testkit::LocalFederation) -> Self {
        use vigil_node::metrics::{encode, sample};
        let mut sum = Self::default();
        let mut lag = (0.0, 0.0);
        for n in &fed.nodes {
            let text = encode(&n.handle.metrics.registry);
            let verdict = |v: &str| sample(&text, &format!("vigil_gossip_messages_total{{verdict=\"{v}\"}}")) as u64;
            sum.commits += sample(&text, "vigil_commit_seconds_count") as u64;
            sum.commit_ms_total += sample(&text, "vigil_commit_seconds_sum") * 1000.0;
            lag.0 += sample(&text, "vigil_event_loop_lag_seconds_sum") * 1000.0;
            lag.1 += sample(&text, "vigil_event_loop_lag_seconds_count");
            sum.gossip_accepted += verdict("accept");
            sum.gossip_ignored += verdict("ignore");
            sum.gossip_rejected += verdict("reject");
        }
        sum.loop_lag_ms_mean = if lag.1 > 0.0 { lag.0 / lag.1 } else { 0.0 };
        sum
    }
}

impl Observed {
    pub(crate) fn new(s: &Scenario, orgs: Vec<OrgId>, pop: Population) -> Self {
        Self {
            nodes: s.orgs.len(),
            orgs,
            pop,
            start_ms: 0,
            setup_s: 0.0,
            enrol_s: 0.0,
            timeline_s: 0.0,
            settle_s: 0.0,
            wall_s: 0.0,
            published: vec![],
            enrolments: vec![],
            outages: vec![],
            partitions: vec![],
            log: vec![],
            received: vec![],
            reachable: vec![],
            plain: vec![],
            protected: vec![],
            hits: vec![],
            queries: vec![],
            disclosures: vec![],
            attacks: vec![],
            attack_alerts: BTreeSet::new(),
            first_attack_s: None,
            chains_ok: 0,
            lost_writes: 0,
            duplicate_writes: 0,
            traffic: vec![],
            node_metrics: NodeMetricsSum::default(),
            template_bytes_on_wire: 0,
            leaks: vec![],
        }
    }

    pub(crate) fn log(&mut self, at_s: f64, line: usize, what: String, r: anyhow::Result<String>) {
        let outcome = match r {
            Ok(o) => o,
            Err(e) => format!("failed: {e}"),
        };
        self.log.push(Logged { at_s, line, what, outcome });
    }
    pub(crate) fn enrolled(&mut self, org: usize, person: usize, at_s: f64) {
        self.enrolments.push((org, person, at_s));
    }
    /// Members other than `except` holding `person` now.
    pub(crate) fn holders_of(&self, person: usize, except: usize) -> Vec<usize> {
        let set: BTreeSet<usize> =
            self.enrolments.iter().filter(|(o, p, _)| *p == person && *o != except).map(|(o, _, _)| *o).collect();
        set.into_iter().collect()
    }
    pub(crate) fn outage_start(&mut self, org: usize, at: u64) {
        self.outages.push((org, at, None));
    }
    pub(crate) fn outage_end(&mut self, org: usize, at: u64) {
        if let Some(o) = self.outages.iter_mut().rev().find(|o| o.0 == org && o.2.is_none()) {
            o.2 = Some(at);
        }
    }
    pub(crate) fn partition_start(&mut self, at: u64, regions: Vec<String>) {
        self.partition_end(at);
        self.partitions.push((at, None, regions));
    }
    pub(crate) fn partition_end(&mut self, at: u64) {
        if let Some(p) = self.partitions.last_mut().filter(|p| p.1.is_none()) {
            p.1 = Some(at);
        }
    }
    pub(crate) fn task(&mut self, t: Task) {
        match t {
            Task::Query(q) => self.queries.push(q),
            Task::Disclosure(d) => self.disclosures.push(d),
            Task::Attack(a) => {
                self.attack_alerts.extend(a.flood_alerts.iter().copied());
                self.attacks.push(a);
            }
        }
    }

    /// Members (not the issuer) that hold the alert's person by ground
    /// truth: enrolled before any withdrawal.
    pub fn mates(&self, a: &Published) -> BTreeSet<usize> {
        self.enrolments
            .iter()
            .filter(|(o, p, at)| *p == a.person && *o != a.issuer && a.withdrawn_at_s.is_none_or(|w| *at < w))
            .map(|(o, _, _)| *o)
            .collect()
    }
}

/// What the reference decisions are computed from: the population, the
/// alerts published, the named enrolments and each member's records.
struct Reference {
    pop: Population,
    published: Vec<Published>,
    enrolments: Vec<(usize, usize, f64)>,
    background: Vec<std::ops::Range<usize>>,
}

impl Reference {
    /// The plain and protected matchers' decisions, computed on threads of
    /// the lowest priority: alerts and hits may still be on their way, and
    /// the harness must not take the cores from the nodes it measures.
    async fn decide(self) -> anyhow::Result<(Vec<BTreeSet<usize>>, Vec<BTreeSet<usize>>)> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new().name("drill-reference".into()).spawn(move || {
            // The closure runs on the pool's threads; this one only waits.
            let pool = vigil_node::runtime::low_priority_pool("drill-reference");
            let _ = tx.send(pool.map(|p| p.install(|| (self.plain(), self.protected()))));
        })?;
        Ok(rx.await??)
    }

    /// A matcher's decisions on the drill's data: for every alert, the
    /// members whose gallery (population records plus named enrolments
    /// before any withdrawal) holds a record `matching` says matches it.
    /// `matching(state, record)` lists the alerts (by index) a record
    /// matches; each worker thread gets its own `state` from `init`.
    fn decisions<S>(
        &self,
        init: impl Fn() -> S + Sync + Send,
        matching: impl Fn(&mut S, &Template) -> Vec<usize> + Sync + Send,
    ) -> Vec<BTreeSet<usize>> {
        use rayon::prelude::*;
        let per_org: Vec<Vec<usize>> = self
            .background
            .par_iter()
            .map_init(&init, |state, range| {
                let mut hit: BTreeSet<usize> = BTreeSet::new();
                for i in range.clone() {
                    hit.extend(matching(state, &self.pop.template(i, 1)));
                }
                hit.into_iter().collect()
            })
            .collect();
        let mut out = vec![BTreeSet::new(); self.published.len()];
        for (o, alerts) in per_org.iter().enumerate() {
            for &k in alerts {
                if self.published[k].issuer != o {
                    out[k].insert(o);
                }
            }
        }
        // Named enrolments, capture by order of enrolment of that person.
        let mut state = init();
        let mut count: HashMap<usize, u64> = HashMap::new();
        for (o, person, at) in &self.enrolments {
            let n = count.entry(*person).or_insert(0);
            *n += 1;
            for k in matching(&mut state, &self.pop.template(*person, *n)) {
                let a = &self.published[k];
                if a.issuer != *o && a.withdrawn_at_s.is_none_or(|w| *at < w) {
                    out[k].insert(*o);
                }
            }
        }
        out
    }

    /// The plain matcher's decisions (cosine at the extractor's threshold).
    fn plain(&self) -> Vec<BTreeSet<usize>> {
        let t = self.pop.threshold();
        let probes: Vec<Template> = self.published.iter().map(|a| self.pop.template(a.person, 0)).collect();
        self.decisions(
            || (),
            |_, rec| (0..probes.len()).filter(|&k| probes[k].cosine(rec).unwrap_or(0.0) >= t).collect(),
        )
    }

    /// The protected matcher's decisions (keyed sign-random projections,
    /// the Hamming threshold of the extractor) under a secret derived from
    /// the population's seed: what protected alerts would find on the same
    /// data.
    fn protected(&self) -> Vec<BTreeSet<usize>> {
        use vigil_matcher::{EpochSecret, ProtectedMatcher};
        let secret: [u8; 32] = sha2::Digest::finalize(sha2::Digest::chain_update(
            <sha2::Sha256 as sha2::Digest>::new(),
            format!("vigil/drill/protected/{}", self.pop.seed()),
        ))
        .into();
        let mut pm = ProtectedMatcher::new(EpochSecret::new(secret));
        let ex = vigil_matcher::extractor(crate::population::EXTRACTOR).expect("the synthetic extractor");
        let probes: Vec<_> = self
            .published
            .iter()
            .map(|a| pm.protect(ex, &self.pop.template(a.person, 0)).expect("drill templates"))
            .collect();
        self.decisions(
            || pm.clone(),
            |pm, rec| {
                let r = pm.protect(ex, rec).expect("drill templates");
                (0..probes.len()).filter(|&k| ProtectedMatcher::compare(ex, &probes[k], &r).unwrap_or(false)).collect()
            },
        )
    }
}

/// Waits (up to `patience`) until every alert has reached every member that
/// can reach its issuer and every hit the plain matcher predicts is at the
/// issuer; then collects receipt times and hits.
pub(crate) async fn settle(
    fed: &LocalFederation,
    obs: &mut Observed,
    background: &[std::ops::Range<usize>],
    reachable: &dyn Fn(usize, usize, f64) -> bool,
    patience: Duration,
) -> anyhow::Result<()> {
    let reference = Reference {
        pop: obs.pop.clone(),
        published: obs.published.clone(),
        enrolments: obs.enrolments.clone(),
        background: background.to_vec(),
    };
    (obs.plain, obs.protected) = reference.decide().await?;
    let n = obs.nodes;
    obs.reachable = obs
        .published
        .iter()
        .map(|a| (0..n).map(|m| m != a.issuer && reachable(m, a.issuer, a.at_s)).collect())
        .collect();
    obs.received = vec![vec![None; n]; obs.published.len()];
    obs.hits = vec![vec![]; obs.published.len()];
    let deadline = Instant::now() + patience;
    let mut extra_wait = true;
    loop {
        let mut missing = 0;
        for m in 0..n {
            let want: Vec<usize> =
                (0..obs.published.len()).filter(|&k| obs.reachable[k][m] && obs.received[k][m].is_none()).collect();
            if want.is_empty() {
                continue;
            }
            let views = fed.nodes[m].handle.alerts().await.unwrap_or_default();
            for k in want {
                match views.iter().find(|v| v.id == obs.published[k].id) {
                    Some(v) => obs.received[k][m] = Some(v.received_at_ms),
                    None => missing += 1,
                }
            }
        }
        for issuer in 0..n {
            let mine: Vec<usize> = (0..obs.published.len()).filter(|&k| obs.published[k].issuer == issuer).collect();
            if mine.is_empty() {
                continue;
            }
            let hits = fed.nodes[issuer].handle.hits().await.unwrap_or_default();
            for k in mine {
                let id = obs.published[k].id;
                let mut found: Vec<(usize, u64)> = Vec::new();
                for h in hits.iter().filter(|h| h.role == HitRole::Issuer) {
                    let on = h.source.alert() == Some(id);
                    if let (true, Some(o)) = (on, obs.orgs.iter().position(|x| *x == h.peer)) {
                        match found.iter_mut().find(|f| f.0 == o) {
                            Some(f) => f.1 = f.1.min(h.at_ms),
                            None => found.push((o, h.at_ms)),
                        }
                    }
                }
                found.sort_unstable();
                let expected = obs.plain[k].iter().filter(|&&o| obs.reachable[k][o]);
                missing += expected.filter(|o| !found.iter().any(|f| f.0 == **o)).count();
                obs.hits[k] = found;
            }
        }
        if missing == 0 {
            // Once everything expected is there, give late (false) hits a moment.
            if extra_wait {
                extra_wait = false;
                tokio::time::sleep(Duration::from_millis(1_000)).await;
                continue;
            }
            return Ok(());
        }
        if Instant::now() > deadline {
            tracing::warn!("{missing} deliveries or hits still missing after {patience:?}");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Audit chains and durability of acknowledged writes.
pub(crate) async fn finish(fed: &LocalFederation, obs: &mut Observed, acked: &[Vec<u64>]) -> anyhow::Result<()> {
    for (i, node) in fed.nodes.iter().enumerate() {
        obs.chains_ok += usize::from(matches!(node.handle.audit_verify().await, Ok(Ok(_))));
        let records = match node.handle.records().await {
            Ok(r) => r,
            Err(e) => {
                let at = obs.timeline_s;
                obs.log(at, 0, format!("final check of {}", node.name), Err(e.into()));
                continue;
            }
        };
        let ids: BTreeSet<u64> = records.iter().map(|r| r.id).collect();
        obs.lost_writes += acked[i].iter().filter(|id| !ids.contains(id)).count();
        obs.duplicate_writes += records.len() - ids.len();
        let own: BTreeSet<AlertId> =
            node.handle.alerts().await.unwrap_or_default().iter().filter(|a| a.own).map(|a| a.id).collect();
        obs.lost_writes += obs.published.iter().filter(|a| a.issuer == i && !own.contains(&a.id)).count();
    }
    obs.attacks.sort_by(|a, b| a.org.cmp(&b.org));
    crate::attack::assess(fed, obs).await
}

/// Requests disclosure from every holder that hit `alert`, has each holder
/// decide, and waits for the answers at the issuer.
pub(crate) async fn disclose(
    nodes: Vec<NodeHandle>,
    issuer: usize,
    alert: AlertId,
    label: String,
    approve: bool,
    patience: Duration,
) -> Task {
    let t0 = Instant::now();
    let mut d = Disclosure { alert: label, approve, requested: 0, answered: 0, early: 0, max_ms: 0, error: None };
    let deadline = Instant::now() + patience;
    // Wait for the first hit, then ask each holder once (its first hit).
    let hits = loop {
        let hits: Vec<_> = nodes[issuer]
            .hits()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|h| h.role == HitRole::Issuer && h.source.alert() == Some(alert))
            .collect();
        if !hits.is_empty() || Instant::now() > deadline {
            break hits;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut asked = Vec::new();
    for h in hits {
        if asked.iter().any(|(p, _)| *p == h.peer) {
            continue;
        }
        match nodes[issuer].request_disclosure(h.handle, "drill: the family asks for the case contact".into()).await {
            Ok(id) => asked.push((h.peer, id)),
            Err(e) => d.error = Some(e.to_string()),
        }
    }
    d.requested = asked.len();
    for (peer, id) in asked {
        let Some(holder) = nodes.iter().find(|n| n.org == peer) else { continue };
        let arrived = loop {
            let pending = holder.disclosures().await.unwrap_or_default();
            if pending.iter().any(|x| x.id == id && x.role == DisclosureRole::Holder) {
                break true;
            }
            if Instant::now() > deadline {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        if !arrived {
            d.error = Some("a disclosure request did not reach its holder".into());
            continue;
        }
        // Nothing may have reached the issuer before the decision.
        let before = nodes[issuer].disclosures().await.unwrap_or_default();
        d.early += before.iter().filter(|x| x.id == id && x.contact.is_some()).count();
        let contact = approve.then(|| "drill duty desk, +00 555 0100".to_string());
        if let Err(e) = holder.decide_disclosure_by(id, contact, ["drill-desk", "drill-supervisor"]).await {
            d.error = Some(e.to_string());
            continue;
        }
        loop {
            let mine = nodes[issuer].disclosures().await.unwrap_or_default();
            let done = mine.iter().any(|x| {
                x.id == id
                    && x.role == DisclosureRole::Requester
                    && (x.contact.is_some() || x.status == DisclosureStatus::Refused)
            });
            if done {
                d.answered += 1;
                break;
            }
            if Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    d.max_ms = t0.elapsed().as_millis() as u64;
    Task::Disclosure(d)
}

//! The drill report: figures and named invariants computed from what the
//! drill observed (`report.json`), and the same for people (`report.md`).
//! Plots for `report.html` live in `plots`.

use crate::measure::{AttackOutcome, Disclosure, Logged, Observed, Query};
use crate::population::Calibration;
use crate::scenario::{Form, Scenario};
use crate::wire::Traffic;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// A named check, pass or fail.
#[derive(Debug, Clone, Serialize)]
pub struct Invariant {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

/// Per-alert figures.
#[derive(Debug, Clone, Serialize)]
pub struct AlertFigures {
    pub alert: String,
    pub issuer: String,
    pub delivered: usize,
    pub reachable: usize,
    pub delivery_p50_ms: u64,
    pub delivery_p95_ms: u64,
    pub delivery_p99_ms: u64,
    pub delivery_max_ms: u64,
    /// Members that hold the person (ground truth).
    pub mates: Vec<String>,
    /// Members the plain matcher says match.
    pub plain: Vec<String>,
    /// Members whose hit reached the issuer.
    pub found: Vec<String>,
    pub time_to_first_hit_ms: Option<u64>,
}

/// Bytes and messages one node sent.
#[derive(Debug, Clone, Serialize)]
pub struct NodeTraffic {
    pub node: String,
    pub bytes: u64,
    pub messages: u64,
    pub by_protocol: BTreeMap<String, Traffic>,
}

/// ISO/IEC 19795-1 style identification error rates.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Rates {
    /// Mated (alert, holder) pairs whose hit did not arrive.
    pub fnir: Option<f64>,
    /// Non-mated searches that returned at least one hit.
    pub fpir: Option<f64>,
    pub true_hits: usize,
    pub false_hits: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub seed: u64,
    pub form: Form,
    pub nodes: usize,
    pub records: usize,
    pub alerts: usize,
    pub deliveries: usize,
    /// Deliveries to members that were up and reachable when the alert was published.
    pub delivery_p50_ms: u64,
    pub delivery_p95_ms: u64,
    pub delivery_p99_ms: u64,
    pub delivery_max_ms: u64,
    /// Deliveries to members that were down or cut off then (catch-up).
    /// Honest alerts' live delivery p99 before the first attack and from it on
    /// (only when the scenario has attacks).
    pub p99_before_attacks_ms: Option<u64>,
    pub p99_during_attacks_ms: Option<u64>,
    pub catchup_deliveries: usize,
    pub catchup_max_ms: u64,
    pub simulated_latency_ms: u64,
    pub time_to_hit_p50_ms: u64,
    pub time_to_hit_max_ms: u64,
    pub hits_expected: usize,
    pub hits_found: usize,
    pub false_hits: usize,
    /// The federation's rates (the alerts' form, over the network), and the
    /// plain and protected matchers' on the same data (computed by the
    /// harness; encrypted decisions equal the plain ones outside the band,
    /// an invariant of encrypted drills).
    pub federation: Rates,
    pub plain: Rates,
    pub protected: Rates,
    /// Alerts whose hits differ from the plain matcher's decisions.
    pub disagreements_with_plain: usize,
    pub queries: Vec<Query>,
    pub query_p50_ms: u64,
    pub query_max_ms: u64,
    pub budget_refusals: usize,
    pub disclosures: Vec<Disclosure>,
    pub attacks: Vec<AttackOutcome>,
    pub template_bytes_on_wire: u64,
    pub bytes_sent: u64,
    pub messages_sent: u64,
    pub invariants: Vec<Invariant>,
    pub invariants_failed: usize,
    pub calibration: Calibration,
    pub per_alert: Vec<AlertFigures>,
    pub per_node: Vec<NodeTraffic>,
    pub events: Vec<Logged>,
    /// SHA-256 over the events and outcomes that a seed determines (not timings).
    pub outcome_digest: String,
    pub setup_s: f64,
    pub enrol_s: f64,
    pub timeline_s: f64,
    pub settle_s: f64,
    pub wall_s: f64,
    pub peak_rss_mb: f64,
    /// The nodes' own metrics, summed.
    pub node_metrics: crate::measure::NodeMetricsSum,
    /// (seconds since the timeline started, hits so far) at the issuers.
    #[serde(skip)]
    pub hits_over_time: Vec<(f64, usize)>,
    #[serde(skip)]
    pub live_delays: Vec<u64>,
}

pub(crate) fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn rate(num: usize, den: usize) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

/// One matcher's decisions counted against the ground truth.
#[derive(Default)]
struct Tally {
    true_hits: usize,
    false_hits: usize,
    /// Non-mated alerts it found anything for.
    nonmated_hit: usize,
}

impl Tally {
    /// The members `decided` for one alert whose mated holders are `mates`.
    fn add<'a>(&mut self, decided: impl IntoIterator<Item = &'a usize>, mates: &BTreeSet<usize>) {
        let (mut t, mut f) = (0, 0);
        for o in decided {
            if mates.contains(o) {
                t += 1;
            } else {
                f += 1;
            }
        }
        self.true_hits += t;
        self.false_hits += f;
        self.nonmated_hit += usize::from(mates.is_empty() && t + f > 0);
    }

    fn rates(&self, expected: usize, nonmated: usize) -> Rates {
        Rates {
            fnir: rate(expected - self.true_hits.min(expected), expected),
            fpir: rate(self.nonmated_hit, nonmated),
            true_hits: self.true_hits,
            false_hits: self.false_hits,
        }
    }
}

/// What the honest alerts' deliveries and hits add up to.
#[derive(Default)]
struct AlertTotals {
    /// Delivery delays: live, by catch-up, and live before and during attacks.
    live: Vec<u64>,
    catchup: Vec<u64>,
    before: Vec<u64>,
    during: Vec<u64>,
    undelivered: usize,
    per_alert: Vec<AlertFigures>,
    /// Mated holders in all, and alerts without any.
    expected: usize,
    nonmated: usize,
    federation: Tally,
    plain: Tally,
    protected: Tally,
    /// Alerts whose federation hits differ from the plain matcher's.
    disagreements: usize,
    /// From creation to each true hit.
    to_hit: Vec<u64>,
    /// From the timeline's start to each hit.
    hit_times: Vec<u64>,
}

impl AlertTotals {
    fn of(s: &Scenario, obs: &Observed, honest: &[usize]) -> Self {
        let mut t = AlertTotals::default();
        for &k in honest {
            t.add(s, obs, k);
        }
        for v in [&mut t.live, &mut t.catchup, &mut t.before, &mut t.during, &mut t.to_hit, &mut t.hit_times] {
            v.sort_unstable();
        }
        t
    }

    /// Alert `k`'s deliveries, hits and figures.
    fn add(&mut self, s: &Scenario, obs: &Observed, k: usize) {
        let names = |set: &mut dyn Iterator<Item = usize>| set.map(|o| s.orgs[o].name.clone()).collect::<Vec<_>>();
        let a = &obs.published[k];
        let created = a.created_ms;
        let mut delays = Vec::new();
        for m in (0..obs.nodes).filter(|m| obs.reachable[k][*m]) {
            let Some(at) = obs.received[k][m] else {
                self.undelivered += 1;
                continue;
            };
            // Receipt times are the members' own clocks (one process, one clock).
            let d = at.saturating_sub(created);
            delays.push(d);
            if !a.live[m] {
                self.catchup.push(d);
                continue;
            }
            self.live.push(d);
            match obs.first_attack_s {
                Some(t) if a.at_s >= t => self.during.push(d),
                Some(_) => self.before.push(d),
                None => {}
            }
        }
        delays.sort_unstable();
        let mates = obs.mates(a);
        let found: Vec<usize> = obs.hits[k].iter().map(|h| h.0).collect();
        let plain = &obs.plain[k];
        self.expected += mates.len();
        self.federation.add(&found, &mates);
        self.plain.add(plain, &mates);
        self.protected.add(&obs.protected[k], &mates);
        self.nonmated += usize::from(mates.is_empty());
        let reachable_plain: Vec<usize> = plain.iter().copied().filter(|o| obs.reachable[k][*o]).collect();
        self.disagreements += usize::from(reachable_plain != found);
        for h in &obs.hits[k] {
            self.hit_times.push(h.1.saturating_sub(obs.start_ms));
            if mates.contains(&h.0) {
                self.to_hit.push(h.1.saturating_sub(created));
            }
        }
        let first = obs.hits[k].iter().map(|h| h.1.saturating_sub(created)).min();
        self.per_alert.push(AlertFigures {
            alert: a.label.clone(),
            issuer: s.orgs[a.issuer].name.clone(),
            delivered: delays.len(),
            reachable: obs.reachable[k].iter().filter(|r| **r).count(),
            delivery_p50_ms: percentile(&delays, 0.5),
            delivery_p95_ms: percentile(&delays, 0.95),
            delivery_p99_ms: percentile(&delays, 0.99),
            delivery_max_ms: delays.last().copied().unwrap_or(0),
            mates: names(&mut mates.iter().copied()),
            plain: names(&mut plain.iter().copied()),
            found: names(&mut found.iter().copied()),
            time_to_first_hit_ms: first,
        });
    }
}

/// The drill's invariants, each with what was seen.
fn invariants(s: &Scenario, obs: &Observed, honest: &[usize], t: &AlertTotals, queries: &[Query]) -> Vec<Invariant> {
    let mut inv = Vec::new();
    let mut check = |name: &str, passed: bool, detail: String| {
        inv.push(Invariant { name: name.into(), passed, detail });
    };
    let deliveries: usize = honest.iter().map(|&k| obs.reachable[k].iter().filter(|r| **r).count()).sum();
    check(
        "every alert reaches every reachable member",
        t.undelivered == 0,
        format!("{} of {deliveries} deliveries missing after {} s", t.undelivered, s.patience_s),
    );
    check(
        "no plaintext template or probe bytes on the wire",
        obs.template_bytes_on_wire == 0,
        if obs.leaks.is_empty() { "tap saw none".into() } else { obs.leaks.join("; ") },
    );
    check("every audit chain verifies", obs.chains_ok == obs.nodes, format!("{} of {}", obs.chains_ok, obs.nodes));
    check(
        "every acknowledged write survives",
        obs.lost_writes == 0 && obs.duplicate_writes == 0,
        format!("{} lost, {} duplicated", obs.lost_writes, obs.duplicate_writes),
    );
    if s.form == Form::Encrypted {
        check(
            "encrypted decisions equal the plain matcher's",
            t.disagreements == 0,
            format!("{} of {} alerts differ", t.disagreements, honest.len()),
        );
    }
    let failed_queries = queries.iter().filter(|q| q.error.is_some()).count();
    if !queries.is_empty() {
        check(
            "every identification query completes",
            failed_queries == 0,
            format!("{failed_queries} of {} failed", queries.len()),
        );
    }
    if !obs.disclosures.is_empty() {
        let early: usize = obs.disclosures.iter().map(|d| d.early).sum();
        let open: usize = obs.disclosures.iter().map(|d| d.requested - d.answered.min(d.requested)).sum();
        check(
            "nothing is disclosed before approval, every decision arrives",
            early == 0 && open == 0 && obs.disclosures.iter().all(|d| d.error.is_none()),
            format!("{early} early, {open} unanswered"),
        );
    }
    for a in &obs.attacks {
        check(
            &format!("{} ({:?}) is throttled or cut off", a.org, a.behaviour),
            a.throttled,
            format!(
                "sent {}, penalised by {}, blocked by {}, refused {}, flood alerts accepted at most {}",
                a.sent, a.penalised_by, a.blocked_by, a.refused, a.accepted_max
            ),
        );
    }
    let failed_events = obs.log.iter().filter(|l| l.outcome.starts_with("failed")).count();
    check("every timeline event ran", failed_events == 0, format!("{failed_events} failed"));
    inv
}

/// SHA-256 over the events and outcomes that a seed determines (not timings).
fn outcome_digest(obs: &Observed, per_alert: &[AlertFigures], queries: &[Query], inv: &[Invariant]) -> String {
    let mut digest = Sha256::new();
    for l in &obs.log {
        digest.update(format!("{}|{}|{}\n", l.at_s, l.what, l.outcome));
    }
    for f in per_alert {
        digest.update(format!("{}|{:?}|{:?}|{:?}\n", f.alert, f.mates, f.plain, f.found));
    }
    for q in queries {
        digest.update(format!("{}|{:?}|{:?}\n", q.event, q.holders, q.hits));
    }
    for i in inv {
        digest.update(format!("{}|{}\n", i.name, i.passed));
    }
    hex(&digest.finalize())
}

impl Report {
    pub fn new(s: &Scenario, obs: Observed) -> Self {
        let honest: Vec<usize> =
            (0..obs.published.len()).filter(|&k| !obs.attack_alerts.contains(&obs.published[k].id)).collect();
        let t = AlertTotals::of(s, &obs, &honest);
        let p99 = |v: &[u64]| (!v.is_empty()).then(|| percentile(v, 0.99));
        let hits_over_time = t.hit_times.iter().enumerate().map(|(i, at)| (*at as f64 / 1000.0, i + 1)).collect();
        let mut queries = obs.queries.clone();
        queries.sort_by_key(|q| q.event);
        let mut qlat: Vec<u64> = queries.iter().map(|q| q.latency_ms).collect();
        qlat.sort_unstable();
        let budget_refusals =
            queries.iter().map(|q| q.refused).sum::<usize>() + obs.attacks.iter().map(|a| a.refused).sum::<usize>();
        let per_node: Vec<NodeTraffic> = obs
            .traffic
            .iter()
            .enumerate()
            .map(|(i, t)| NodeTraffic {
                node: s.orgs[i].name.clone(),
                bytes: t.values().map(|x| x.bytes).sum(),
                messages: t.values().map(|x| x.messages).sum(),
                by_protocol: t.clone(),
            })
            .collect();
        let inv = invariants(s, &obs, &honest, &t, &queries);
        let outcome_digest = outcome_digest(&obs, &t.per_alert, &queries, &inv);
        let calibration = obs.pop.calibrate(obs.pop_identities(s), 20_000);
        Report {
            scenario: s.name.clone(),
            seed: s.seed,
            form: s.form,
            nodes: obs.nodes,
            records: s.records() + obs.enrolments.len(),
            alerts: honest.len(),
            deliveries: t.live.len() + t.catchup.len(),
            delivery_p50_ms: percentile(&t.live, 0.5),
            delivery_p95_ms: percentile(&t.live, 0.95),
            delivery_p99_ms: percentile(&t.live, 0.99),
            delivery_max_ms: t.live.last().copied().unwrap_or(0),
            p99_before_attacks_ms: p99(&t.before),
            p99_during_attacks_ms: p99(&t.during),
            catchup_deliveries: t.catchup.len(),
            catchup_max_ms: t.catchup.last().copied().unwrap_or(0),
            simulated_latency_ms: s.latency_ms,
            time_to_hit_p50_ms: percentile(&t.to_hit, 0.5),
            time_to_hit_max_ms: t.to_hit.last().copied().unwrap_or(0),
            hits_expected: t.expected,
            hits_found: t.federation.true_hits,
            false_hits: t.federation.false_hits,
            federation: t.federation.rates(t.expected, t.nonmated),
            plain: t.plain.rates(t.expected, t.nonmated),
            protected: t.protected.rates(t.expected, t.nonmated),
            disagreements_with_plain: t.disagreements,
            query_p50_ms: percentile(&qlat, 0.5),
            query_max_ms: qlat.last().copied().unwrap_or(0),
            queries,
            budget_refusals,
            disclosures: obs.disclosures.clone(),
            attacks: obs.attacks.clone(),
            template_bytes_on_wire: obs.template_bytes_on_wire,
            bytes_sent: per_node.iter().map(|n| n.bytes).sum(),
            messages_sent: per_node.iter().map(|n| n.messages).sum(),
            invariants_failed: inv.iter().filter(|i| !i.passed).count(),
            invariants: inv,
            calibration,
            per_alert: t.per_alert,
            per_node,
            events: obs.log.clone(),
            outcome_digest,
            setup_s: obs.setup_s,
            enrol_s: obs.enrol_s,
            timeline_s: obs.timeline_s,
            settle_s: obs.settle_s,
            wall_s: obs.wall_s,
            peak_rss_mb: vigil_testkit::peak_rss_mb(),
            node_metrics: obs.node_metrics,
            hits_over_time,
            live_delays: t.live,
        }
    }

    /// The report for people.
    pub fn markdown(&self) -> String {
        let mut m = String::new();
        let ms = |v: Option<f64>| v.map_or("n/a".to_string(), |x| format!("{:.2} %", x * 100.0));
        m += &format!("# Drill report: {}\n\n", self.scenario);
        m += &format!(
            "Seed {}, alert form {:?}, {} organisations, {} records, {} alerts. Wall time {:.1} s (start {:.1} s, \
             enrolment {:.1} s, timeline {:.1} s, settling {:.1} s), peak memory {:.0} MB.\n\n",
            self.seed,
            self.form,
            self.nodes,
            self.records,
            self.alerts,
            self.wall_s,
            self.setup_s,
            self.enrol_s,
            self.timeline_s,
            self.settle_s,
            self.peak_rss_mb
        );
        let nm = &self.node_metrics;
        m += &format!(
            "Nodes' metrics, summed: {} durable commits ({:.0} ms waited on the disk), event loops {:.1} ms late \
             on average, gossip {} accepted, {} ignored, {} rejected.\n\n",
            nm.commits,
            nm.commit_ms_total,
            nm.loop_lag_ms_mean,
            nm.gossip_accepted,
            nm.gossip_ignored,
            nm.gossip_rejected
        );
        m += "## Invariants\n\n| | invariant | detail |\n|---|---|---|\n";
        for i in &self.invariants {
            m += &format!("| {} | {} | {} |\n", if i.passed { "pass" } else { "**FAIL**" }, i.name, i.detail);
        }
        m += "\n## Alert delivery\n\n";
        m += &format!(
            "Live deliveries: {} (p50 {} ms, p95 {} ms, p99 {} ms, max {} ms). Catch-up deliveries (member down or \
             cut off at publication): {} (max {} ms). Simulated network latency: {} ms.\n\n",
            self.deliveries - self.catchup_deliveries,
            self.delivery_p50_ms,
            self.delivery_p95_ms,
            self.delivery_p99_ms,
            self.delivery_max_ms,
            self.catchup_deliveries,
            self.catchup_max_ms,
            self.simulated_latency_ms
        );
        m += "## Hits\n\n| | expected (mated) | found | false | FNIR | FPIR |\n|---|---|---|---|---|---|\n";
        let federation = format!("federation ({:?})", self.form);
        for (who, r) in [
            (federation.as_str(), &self.federation),
            ("plain matcher, same data", &self.plain),
            ("protected matcher, same data", &self.protected),
        ] {
            m += &format!(
                "| {who} | {} | {} | {} | {} | {} |\n",
                self.hits_expected,
                r.true_hits,
                r.false_hits,
                ms(r.fnir),
                ms(r.fpir)
            );
        }
        m += "\n";
        m += &format!(
            "Time to hit: p50 {} ms, max {} ms. Alerts whose hits differ from the plain matcher's: {}.\n\n",
            self.time_to_hit_p50_ms, self.time_to_hit_max_ms, self.disagreements_with_plain
        );
        let c = &self.calibration;
        m += &format!(
            "Population ({} sampled pairs): genuine cosine {:.3} ± {:.3}, impostor {:.3} ± {:.3} (max {:.3}); at the \
             {:.2} threshold FNMR {:.3} %, FMR {:.4} %.\n\n",
            c.pairs,
            c.genuine_mean,
            c.genuine_sd,
            c.impostor_mean,
            c.impostor_sd,
            c.impostor_max,
            c.threshold,
            c.fnmr * 100.0,
            c.fmr * 100.0
        );
        m += "| alert | issuer | delivered | p99 ms | mates | plain | found | first hit ms |\n|---|---|---|---|---|---|---|---|\n";
        for a in &self.per_alert {
            m += &format!(
                "| {} | {} | {}/{} | {} | {} | {} | {} | {} |\n",
                a.alert,
                a.issuer,
                a.delivered,
                a.reachable,
                a.delivery_p99_ms,
                a.mates.join(", "),
                a.plain.join(", "),
                a.found.join(", "),
                a.time_to_first_hit_ms.map_or("-".into(), |t| t.to_string())
            );
        }
        if !self.queries.is_empty() {
            m += "\n## Identification queries\n\n| event | latency ms | answered | refused | timeouts | holders | hits |\n|---|---|---|---|---|---|---|\n";
            for q in &self.queries {
                m += &format!(
                    "| {} | {} | {} | {} | {} | {:?} | {:?} |\n",
                    q.event, q.latency_ms, q.answered, q.refused, q.timeouts, q.holders, q.hits
                );
            }
        }
        if !self.attacks.is_empty() {
            m += &format!(
                "\n## Malicious members\n\nHonest alerts' live delivery p99: {} ms before the first attack, {} ms from \
                 it on.\n\n",
                self.p99_before_attacks_ms.map_or("-".into(), |v| v.to_string()),
                self.p99_during_attacks_ms.map_or("-".into(), |v| v.to_string())
            );
            m += "| member | behaviour | sent | penalised by | blocked by | refused | throttled |\n|---|---|---|---|---|---|---|\n";
            for a in &self.attacks {
                m += &format!(
                    "| {} | {:?} | {} | {} | {} | {} | {} |\n",
                    a.org, a.behaviour, a.sent, a.penalised_by, a.blocked_by, a.refused, a.throttled
                );
            }
        }
        m += &format!(
            "\n## Traffic\n\n{} messages, {} bytes sent in all; plaintext template bytes seen by the tap: {}.\n",
            self.messages_sent, self.bytes_sent, self.template_bytes_on_wire
        );
        m += "\n## Timeline\n\n| at s | line | event | outcome |\n|---|---|---|---|\n";
        for e in &self.events {
            m += &format!("| {:.3} | {} | {} | {} |\n", e.at_s, e.line, e.what, e.outcome);
        }
        m
    }
}

impl Observed {
    /// Identities the drill used (persons and population).
    fn pop_identities(&self, s: &Scenario) -> usize {
        (s.persons.len() + s.records()).max(100)
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

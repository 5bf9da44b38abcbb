//! Runs a scenario: starts one real node per organisation over libp2p's
//! in-memory transport, enrols the seeded population, plays the timeline
//! (with partitions, outages and crashes), then waits for the federation to
//! settle and hands what it saw to `measure`.

use crate::attack;
use crate::measure::{self, Observed, Published, Query};
use crate::population::Population;
use crate::scenario::{Action, Form, Scenario};
use crate::wire::Wire;
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vigil_engine::Enrolment;
use vigil_matcher::Template;
use vigil_node::now_ms;
use vigil_testkit::{FederationOptions, LocalFederation, OrgSpec};

/// Records enrolled per call while the population is loaded.
const ENROL_BATCH: usize = 1_000;
/// Capture index of a person's alert probe; enrolments use 1, 2, ...;
/// identification queries use `QUERY_CAPTURE + n`.
const PROBE_CAPTURE: u64 = 0;
const QUERY_CAPTURE: u64 = 50;

/// One step of the timeline: a scenario event, or the end of an outage.
#[derive(Debug, Clone)]
enum Step {
    Event(usize),
    Restart(usize),
}

/// Everything that can be known before the run: who holds which template.
pub(crate) struct Plan {
    pub pop: Population,
    /// Background records per organisation: identity indices.
    pub background: Vec<std::ops::Range<usize>>,
    /// Capture index per enrol event (by event index).
    pub enrol_capture: HashMap<usize, u64>,
    /// Capture index per identify event.
    pub query_capture: HashMap<usize, u64>,
}

impl Plan {
    pub(crate) fn new(s: &Scenario) -> Self {
        let pop = Population::new(s.seed, s.population);
        let mut next = s.persons.len();
        let background = s
            .orgs
            .iter()
            .map(|o| {
                let r = next..next + o.records;
                next += o.records;
                r
            })
            .collect();
        let (mut enrol_capture, mut query_capture) = (HashMap::new(), HashMap::new());
        let mut enrolments: HashMap<usize, u64> = HashMap::new();
        let mut queries = 0;
        for (i, e) in s.events.iter().enumerate() {
            match &e.action {
                Action::Enrol { person, .. } => {
                    let k = enrolments.entry(*person).or_insert(0);
                    *k += 1;
                    enrol_capture.insert(i, *k);
                }
                Action::Identify { .. } => {
                    query_capture.insert(i, QUERY_CAPTURE + queries);
                    queries += 1;
                }
                _ => {}
            }
        }
        Self { pop, background, enrol_capture, query_capture }
    }

    /// Every template the drill will put into a node: the tap looks for them.
    fn all_templates<'a>(&'a self, s: &'a Scenario) -> impl Iterator<Item = Vec<i8>> + 'a {
        let bg = self.background.iter().flat_map(|r| r.clone()).map(|i| self.pop.template(i, 1).vector);
        let named = s.events.iter().enumerate().filter_map(|(i, e)| match &e.action {
            Action::Enrol { person, .. } => Some(self.pop.template(*person, self.enrol_capture[&i]).vector),
            Action::Publish { person, .. } => Some(self.pop.template(*person, PROBE_CAPTURE).vector),
            Action::Identify { person, .. } => Some(self.pop.template(*person, self.query_capture[&i]).vector),
            _ => None,
        });
        bg.chain(named)
    }
}

fn enrolment(template: Template, case: String) -> Enrolment {
    Enrolment {
        pad: None,
        template,
        category: vigil_protocol::Category::Found,
        case_ref: case,
        consent: "drill".into(),
        retain_until_ms: now_ms() + 365 * 24 * 3600 * 1000,
        regime: None,
    }
}

/// Which side of the current partition each region is on.
fn component(region: &str, partition: &Option<Vec<String>>) -> String {
    match partition {
        Some(rs) if rs.iter().any(|r| r == region) => region.to_string(),
        _ => "\u{0}rest".into(),
    }
}

fn progress(enabled: bool, len: u64) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb
}

/// Plays `s` and returns what was observed.
pub(crate) async fn play(s: &Scenario, show_progress: bool) -> anyhow::Result<Observed> {
    let t0 = Instant::now();
    let plan = Plan::new(s);
    let n = s.orgs.len();
    let pb = progress(show_progress, (s.records() + s.events.len()) as u64);
    pb.set_message("indexing templates for the wire tap");
    let wire = Arc::new(Wire::new(n, plan.all_templates(s)));
    pb.set_message(format!("starting {n} nodes"));
    let fed = start_federation(s, wire.clone()).await?;
    let orgs: Vec<vigil_protocol::OrgId> = fed.nodes.iter().map(|x| x.handle.org).collect();
    let mut obs = Observed::new(s, orgs.clone(), plan.pop.clone());
    obs.setup_s = t0.elapsed().as_secs_f64();
    let t_enrol = Instant::now();
    pb.set_message("enrolling the population");
    let acked = enrol_background(&fed, &plan, &pb).await?;
    obs.enrol_s = t_enrol.elapsed().as_secs_f64();

    let mut play = Play {
        s,
        plan: &plan,
        fed,
        obs,
        orgs,
        acked,
        down: vec![false; n],
        partition: None,
        tasks: tokio::task::JoinSet::new(),
    };
    let start = Instant::now();
    play.obs.start_ms = now_ms();
    pb.set_message("playing the timeline");
    for (at, step) in timeline(s) {
        tokio::time::sleep_until((start + Duration::from_secs_f64(at)).into()).await;
        match step {
            Step::Restart(o) => play.restart(at, o).await,
            Step::Event(i) => {
                pb.inc(1);
                let result = play.event(at, i).await;
                play.obs.log(at, s.events[i].line, describe(s, &s.events[i].action), result);
            }
        }
    }
    // A node restarted after a partition started must honour it too.
    if play.partition.is_some() {
        cut(&play.fed, s, &play.partition, &play.down).await?;
    }
    pb.set_message("waiting for delivery and hits");
    play.obs.timeline_s = start.elapsed().as_secs_f64();
    let (mut obs, fed) = play.settle().await?;
    obs.wall_s = t0.elapsed().as_secs_f64();
    obs.traffic = wire.traffic();
    obs.template_bytes_on_wire = wire.template_bytes();
    obs.leaks = wire.leaks();
    pb.finish_and_clear();
    fed.shutdown().await;
    Ok(obs)
}

/// One node per organisation on the in-memory transport, every payload
/// tapped, attackers on low-priority threads, the scenario's settings.
async fn start_federation(s: &Scenario, wire: Arc<Wire>) -> anyhow::Result<LocalFederation> {
    let specs: Vec<OrgSpec> = s.orgs.iter().map(|o| OrgSpec::new(&o.name, o.kind)).collect();
    let (form, budget, flood) = (s.form, s.query_budget_per_hour, s.alerts_per_issuer_per_hour);
    let attackers_of = |only_oversized: bool| -> Vec<usize> {
        let of = |e: &crate::scenario::Event| match e.action {
            Action::Attack { org, behaviour, .. }
                if !only_oversized || behaviour == crate::scenario::Behaviour::Oversized =>
            {
                Some(org)
            }
            _ => None,
        };
        s.events.iter().filter_map(of).collect()
    };
    // A member that sends oversized frames runs a node modified to send them.
    let oversized = attackers_of(true);
    // Attackers run on low-priority threads: in a deployment their work
    // (making and sending a flood, decrypting its answers) runs on their own
    // machines, not on the cores of the members whose latency is measured.
    let attackers = if s.attackers_share_cpu { vec![] } else { attackers_of(false) };
    let opts = FederationOptions {
        low_priority: Box::new(move |i| attackers.contains(&i)),
        memory: true,
        latency: Duration::from_millis(s.latency_ms),
        tap: Box::new(move |i| Some(wire.tap(i))),
        tweak: Box::new(move |i, c| {
            if oversized.contains(&i) {
                c.network.max_frame_bytes = attack::OVERSIZED_SENDER_LIMIT;
            }
            if form == Form::Protected {
                c.alerts.form = vigil_config::AlertForm::Protected;
            }
            if let Some(b) = budget {
                c.queries.per_hour = b;
                c.alerts.answers_per_hour = b;
            }
            if let Some(f) = flood {
                c.alerts.max_per_issuer_per_hour = f;
            }
        }),
    };
    let fed = LocalFederation::start(&specs, opts).await?;
    let all: Vec<usize> = (0..s.orgs.len()).collect();
    let patience = Duration::from_secs_f64(s.patience_s);
    fed.wait_connected(&all, patience).await?;
    // Drills match under a steward-signed policy, as a federation does: the
    // synthetic extractor as v1.
    let policy = vigil_matcher::Policy { version: 1, ..vigil_matcher::builtin().clone() };
    fed.apply_policy(policy, 0, patience).await?;
    Ok(fed)
}

/// Every organisation's background records, in batches; the ids acknowledged per node.
async fn enrol_background(fed: &LocalFederation, plan: &Plan, pb: &ProgressBar) -> anyhow::Result<Vec<Vec<u64>>> {
    let mut acked: Vec<Vec<u64>> = vec![Vec::new(); fed.nodes.len()];
    for (o, range) in plan.background.iter().enumerate() {
        let ids: Vec<usize> = range.clone().collect();
        for chunk in ids.chunks(ENROL_BATCH) {
            let batch =
                chunk.iter().map(|&i| enrolment(plan.pop.template(i, 1), format!("BG-{i}"))).collect::<Vec<_>>();
            acked[o].extend(fed.nodes[o].handle.enrol_many(batch).await?);
            pb.inc(chunk.len() as u64);
        }
    }
    Ok(acked)
}

/// The timeline: every event, and the end of each outage.
fn timeline(s: &Scenario) -> Vec<(f64, Step)> {
    let mut steps: Vec<(f64, Step)> = Vec::new();
    for (i, e) in s.events.iter().enumerate() {
        steps.push((e.at_s, Step::Event(i)));
        if let Action::Offline { org, for_s } | Action::Crash { org, for_s } = &e.action {
            steps.push((e.at_s + for_s, Step::Restart(*org)));
        }
    }
    steps.sort_by(|a, b| a.0.total_cmp(&b.0));
    steps
}

/// A drill in play: the federation, what was seen so far, who is down,
/// the current partition and the queries and attacks still running.
struct Play<'a> {
    s: &'a Scenario,
    plan: &'a Plan,
    fed: LocalFederation,
    obs: Observed,
    orgs: Vec<vigil_protocol::OrgId>,
    acked: Vec<Vec<u64>>,
    down: Vec<bool>,
    partition: Option<Vec<String>>,
    tasks: tokio::task::JoinSet<measure::Task>,
}

impl Play<'_> {
    async fn restart(&mut self, at: f64, o: usize) {
        let r = self.fed.start_again(o).await;
        self.down[o] = false;
        self.obs.outage_end(o, now_ms());
        self.obs.log(at, 0, format!("restart {}", self.s.orgs[o].name), r.map(|_| "ok".to_string()));
    }

    /// Plays event `i` at `at` seconds; what it gave, for the log.
    async fn event(&mut self, at: f64, i: usize) -> anyhow::Result<String> {
        let (s, plan) = (self.s, self.plan);
        let e = &s.events[i];
        match &e.action {
            Action::Enrol { org, person } => {
                let t = plan.pop.template(*person, plan.enrol_capture[&i]);
                let id = self.fed.nodes[*org].handle.enrol(enrolment(t, s.persons[*person].clone())).await?;
                self.acked[*org].push(id);
                self.obs.enrolled(*org, *person, at);
                Ok("ok".into())
            }
            Action::Publish { org, person, alert, category } => self.publish(at, *org, *person, alert, *category).await,
            Action::Withdraw { alert } => match self.obs.published.iter_mut().find(|p| p.label == *alert) {
                Some(p) => {
                    p.withdrawn_at_s = Some(at);
                    self.fed.nodes[p.issuer].handle.withdraw(p.id).await?;
                    Ok("ok".into())
                }
                None => Err(anyhow::anyhow!("alert {alert:?} was not published (its publication failed)")),
            },
            Action::Identify { org, person, purpose } => {
                let t = plan.pop.template(*person, plan.query_capture[&i]);
                let h = self.fed.nodes[*org].handle.clone();
                let (org, person, purpose) = (*org, *person, purpose.clone());
                let orgs = self.orgs.clone();
                let holders = self.obs.holders_of(person, org);
                self.tasks.spawn(async move {
                    let t1 = Instant::now();
                    let r = h.identify(t, purpose, "drill rehearsal".into()).await;
                    let latency_ms = t1.elapsed().as_millis() as u64;
                    measure::Task::Query(Query::from_report(i, org, person, holders, latency_ms, r, &orgs))
                });
                Ok("sent".into())
            }
            Action::Disclose { alert, approve } => match self.obs.published.iter().find(|p| p.label == *alert) {
                Some(p) => {
                    let handles: Vec<_> = self.fed.nodes.iter().map(|x| x.handle.clone()).collect();
                    let patience = Duration::from_secs_f64(s.patience_s);
                    self.tasks.spawn(measure::disclose(handles, p.issuer, p.id, alert.clone(), *approve, patience));
                    Ok("requested".into())
                }
                None => Err(anyhow::anyhow!("alert {alert:?} was not published")),
            },
            Action::Partition { regions } => {
                self.partition = Some(regions.clone());
                self.obs.partition_start(now_ms(), regions.clone());
                cut(&self.fed, s, &self.partition, &self.down).await
            }
            Action::Heal => {
                self.partition = None;
                self.obs.partition_end(now_ms());
                cut(&self.fed, s, &self.partition, &self.down).await
            }
            Action::Offline { org, .. } | Action::Crash { org, .. } => {
                if self.down[*org] {
                    return Err(anyhow::anyhow!("{} is already down", s.orgs[*org].name));
                }
                if matches!(e.action, Action::Crash { .. }) {
                    self.fed.nodes[*org].handle.crash().await;
                } else {
                    self.fed.stop(*org).await;
                }
                self.down[*org] = true;
                self.obs.outage_start(*org, now_ms());
                Ok("down".into())
            }
            Action::Attack { org, behaviour, count } => {
                self.obs.first_attack_s.get_or_insert(at);
                let attack = attack::launch(&self.fed, *org, *behaviour, *count, &plan.pop)?;
                self.tasks.spawn(attack);
                Ok("started".into())
            }
        }
    }

    /// Publishes `person`'s alert from `org`, noting which members it can
    /// reach live (up, and on the issuer's side of any partition).
    async fn publish(
        &mut self,
        at: f64,
        org: usize,
        person: usize,
        alert: &str,
        category: vigil_protocol::Category,
    ) -> anyhow::Result<String> {
        let t = self.plan.pop.template(person, PROBE_CAPTURE);
        let expires = now_ms() + 7 * 24 * 3600 * 1000;
        let handle = &self.fed.nodes[org].handle;
        let id = handle.publish_alert(t, category, alert.to_string(), expires).await?;
        let views = handle.alerts().await.unwrap_or_default();
        let created_ms = views.iter().find(|v| v.id == id).map_or_else(now_ms, |v| v.created_at_ms);
        let regions = &self.s.orgs;
        let side = |m: usize| component(&regions[m].region, &self.partition);
        let live: Vec<bool> = (0..regions.len()).map(|m| !self.down[m] && side(m) == side(org)).collect();
        self.obs.published.push(Published {
            label: alert.to_string(),
            id,
            issuer: org,
            person,
            at_s: at,
            created_ms,
            withdrawn_at_s: None,
            live,
        });
        Ok("ok".into())
    }

    /// Waits for delivery and hits (members that attacked are not owed the
    /// alerts published after their attack), collects the tasks, measures.
    async fn settle(mut self) -> anyhow::Result<(Observed, LocalFederation)> {
        let s = self.s;
        let patience = Duration::from_secs_f64(s.patience_s);
        let attacked_at = |m: usize| {
            s.events.iter().find_map(|e| match e.action {
                Action::Attack { org, .. } if org == m => Some(e.at_s),
                _ => None,
            })
        };
        let partition = self.partition.clone();
        let reachable = |m: usize, issuer: usize, at_s: f64| {
            component(&s.orgs[m].region, &partition) == component(&s.orgs[issuer].region, &partition)
                && attacked_at(m).is_none_or(|t| t > at_s)
        };
        let t_settle = Instant::now();
        measure::settle(&self.fed, &mut self.obs, &self.plan.background, &reachable, patience).await?;
        self.obs.settle_s = t_settle.elapsed().as_secs_f64();
        while let Some(t) = self.tasks.join_next().await {
            match t {
                Ok(t) => self.obs.task(t),
                Err(e) => tracing::error!("a drill task failed: {e}"),
            }
        }
        measure::finish(&self.fed, &mut self.obs, &self.acked).await?;
        self.obs.node_metrics = measure::NodeMetricsSum::of(&self.fed);
        Ok((self.obs, self.fed))
    }
}

/// Applies the current partition to every running node.
async fn cut(
    fed: &LocalFederation,
    s: &Scenario,
    partition: &Option<Vec<String>>,
    down: &[bool],
) -> anyhow::Result<String> {
    let comps: Vec<String> = s.orgs.iter().map(|o| component(&o.region, partition)).collect();
    for (i, node) in fed.nodes.iter().enumerate().filter(|(i, _)| !down[*i]) {
        let away = fed.nodes.iter().enumerate().filter(|(j, _)| comps[*j] != comps[i]).map(|(_, x)| x.handle.org);
        node.handle.cut(away.collect()).await?;
    }
    Ok("ok".into())
}

fn describe(s: &Scenario, a: &Action) -> String {
    let org = |i: &usize| s.orgs[*i].name.as_str();
    let person = |i: &usize| s.persons[*i].as_str();
    match a {
        Action::Enrol { org: o, person: p } => format!("enrol {} at {}", person(p), org(o)),
        Action::Publish { org: o, person: p, alert, .. } => format!("publish {alert} ({}) from {}", person(p), org(o)),
        Action::Withdraw { alert } => format!("withdraw {alert}"),
        Action::Identify { org: o, person: p, .. } => format!("identify {} from {}", person(p), org(o)),
        Action::Disclose { alert, approve } => {
            format!("disclose the holders of {alert} ({})", if *approve { "approved" } else { "refused" })
        }
        Action::Partition { regions } => format!("partition {}", regions.join(", ")),
        Action::Heal => "heal".into(),
        Action::Offline { org: o, for_s } => format!("{} offline for {for_s} s", org(o)),
        Action::Crash { org: o, for_s } => format!("{} crashes, back after {for_s} s", org(o)),
        Action::Attack { org: o, behaviour, count } => format!("{} attacks: {behaviour:?} x{count}", org(o)),
    }
}

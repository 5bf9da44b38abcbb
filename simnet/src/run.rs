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
use vigil_node::runtime::now_ms;
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
    let specs: Vec<OrgSpec> = s.orgs.iter().map(|o| OrgSpec::new(&o.name, o.kind)).collect();
    let (form, budget, flood) = (s.form, s.query_budget_per_hour, s.alerts_per_issuer_per_hour);
    // A member that sends oversized frames runs a node modified to send them.
    let oversized: Vec<usize> = s
        .events
        .iter()
        .filter_map(|e| match e.action {
            Action::Attack { org, behaviour: crate::scenario::Behaviour::Oversized, .. } => Some(org),
            _ => None,
        })
        .collect();
    // Attackers run on low-priority threads: in a deployment their work
    // (making and sending a flood, decrypting its answers) runs on their own
    // machines, not on the cores of the members whose latency is measured.
    let attackers: Vec<usize> = if s.attackers_share_cpu {
        vec![]
    } else {
        s.events
            .iter()
            .filter_map(|e| match e.action {
                Action::Attack { org, .. } => Some(org),
                _ => None,
            })
            .collect()
    };
    let tap_wire = wire.clone();
    let opts = FederationOptions {
        low_priority: Box::new(move |i| attackers.contains(&i)),
        memory: true,
        latency: Duration::from_millis(s.latency_ms),
        tap: Box::new(move |i| Some(tap_wire.tap(i))),
        tweak: Box::new(move |i, c| {
            if oversized.contains(&i) {
                c.network.max_frame_bytes = attack::OVERSIZED_SENDER_LIMIT;
            }
            if form == Form::Protected {
                c.alerts.form = vigil_config::AlertForm::Protected;
            }
            if let Some(b) = budget {
                c.queries.per_hour = b;
            }
            if let Some(f) = flood {
                c.alerts.max_per_issuer_per_hour = f;
            }
        }),
    };
    let mut fed = LocalFederation::start(&specs, opts).await?;
    let all: Vec<usize> = (0..n).collect();
    fed.wait_connected(&all, Duration::from_secs_f64(s.patience_s)).await?;
    let orgs: Vec<vigil_protocol::OrgId> = fed.nodes.iter().map(|x| x.handle.org).collect();

    let setup_s = t0.elapsed().as_secs_f64();
    let t_enrol = Instant::now();
    pb.set_message("enrolling the population");
    let mut acked: Vec<Vec<u64>> = vec![Vec::new(); n];
    for (o, range) in plan.background.iter().enumerate() {
        let ids: Vec<usize> = range.clone().collect();
        for chunk in ids.chunks(ENROL_BATCH) {
            let batch =
                chunk.iter().map(|&i| enrolment(plan.pop.template(i, 1), format!("BG-{i}"))).collect::<Vec<_>>();
            acked[o].extend(fed.nodes[o].handle.enrol_many(batch).await?);
            pb.inc(chunk.len() as u64);
        }
    }

    // The timeline, outages' ends included.
    let mut steps: Vec<(f64, Step)> = Vec::new();
    for (i, e) in s.events.iter().enumerate() {
        steps.push((e.at_s, Step::Event(i)));
        if let Action::Offline { org, for_s } | Action::Crash { org, for_s } = &e.action {
            steps.push((e.at_s + for_s, Step::Restart(*org)));
        }
    }
    steps.sort_by(|a, b| a.0.total_cmp(&b.0));

    let mut obs = Observed::new(s, orgs.clone(), plan.pop.clone());
    obs.setup_s = setup_s;
    obs.enrol_s = t_enrol.elapsed().as_secs_f64();
    let mut down = vec![false; n];
    let mut partition: Option<Vec<String>> = None;
    let mut tasks = tokio::task::JoinSet::new();
    let start = Instant::now();
    obs.start_ms = now_ms();
    pb.set_message("playing the timeline");
    for (at, step) in steps {
        let due = start + Duration::from_secs_f64(at);
        tokio::time::sleep_until(due.into()).await;
        let i = match step {
            Step::Restart(o) => {
                let r = fed.start_again(o).await;
                down[o] = false;
                obs.outage_end(o, now_ms());
                obs.log(at, 0, format!("restart {}", s.orgs[o].name), r.map(|_| "ok".to_string()));
                continue;
            }
            Step::Event(i) => i,
        };
        let e = &s.events[i];
        pb.inc(1);
        let result: anyhow::Result<String> = match &e.action {
            Action::Enrol { org, person } => {
                let t = plan.pop.template(*person, plan.enrol_capture[&i]);
                match fed.nodes[*org].handle.enrol(enrolment(t, s.persons[*person].clone())).await {
                    Ok(id) => {
                        acked[*org].push(id);
                        obs.enrolled(*org, *person, at);
                        Ok("ok".into())
                    }
                    Err(e) => Err(e.into()),
                }
            }
            Action::Publish { org, person, alert, category } => {
                let t = plan.pop.template(*person, PROBE_CAPTURE);
                let expires = now_ms() + 7 * 24 * 3600 * 1000;
                match fed.nodes[*org].handle.publish_alert(t, *category, alert.clone(), expires).await {
                    Ok(id) => {
                        let views = fed.nodes[*org].handle.alerts().await.unwrap_or_default();
                        let created_ms = views.iter().find(|v| v.id == id).map_or_else(now_ms, |v| v.created_at_ms);
                        let live: Vec<bool> = (0..n)
                            .map(|m| {
                                !down[m]
                                    && component(&s.orgs[m].region, &partition)
                                        == component(&s.orgs[*org].region, &partition)
                            })
                            .collect();
                        obs.published.push(Published {
                            label: alert.clone(),
                            id,
                            issuer: *org,
                            person: *person,
                            at_s: at,
                            created_ms,
                            withdrawn_at_s: None,
                            live,
                        });
                        Ok("ok".into())
                    }
                    Err(e) => Err(e.into()),
                }
            }
            Action::Withdraw { alert } => match obs.published.iter_mut().find(|p| p.label == *alert) {
                Some(p) => {
                    p.withdrawn_at_s = Some(at);
                    fed.nodes[p.issuer].handle.withdraw(p.id).await.map(|_| "ok".into()).map_err(Into::into)
                }
                None => Err(anyhow::anyhow!("alert {alert:?} was not published (its publication failed)")),
            },
            Action::Identify { org, person, purpose } => {
                let t = plan.pop.template(*person, plan.query_capture[&i]);
                let h = fed.nodes[*org].handle.clone();
                let (org, person, purpose) = (*org, *person, purpose.clone());
                let orgs = orgs.clone();
                let holders = obs.holders_of(person, org);
                tasks.spawn(async move {
                    let t1 = Instant::now();
                    let r = h.identify(t, purpose, "drill rehearsal".into()).await;
                    let latency_ms = t1.elapsed().as_millis() as u64;
                    measure::Task::Query(Query::from_report(i, org, person, holders, latency_ms, r, &orgs))
                });
                Ok("sent".into())
            }
            Action::Disclose { alert, approve } => match obs.published.iter().find(|p| p.label == *alert) {
                Some(p) => {
                    let handles: Vec<_> = fed.nodes.iter().map(|x| x.handle.clone()).collect();
                    let patience = Duration::from_secs_f64(s.patience_s);
                    tasks.spawn(measure::disclose(handles, p.issuer, p.id, alert.clone(), *approve, patience));
                    Ok("requested".into())
                }
                None => Err(anyhow::anyhow!("alert {alert:?} was not published")),
            },
            Action::Partition { regions } => {
                partition = Some(regions.clone());
                obs.partition_start(now_ms(), regions.clone());
                cut(&fed, s, &partition, &down).await
            }
            Action::Heal => {
                partition = None;
                obs.partition_end(now_ms());
                cut(&fed, s, &partition, &down).await
            }
            Action::Offline { org, .. } | Action::Crash { org, .. } => {
                if down[*org] {
                    Err(anyhow::anyhow!("{} is already down", s.orgs[*org].name))
                } else {
                    if matches!(e.action, Action::Crash { .. }) {
                        fed.nodes[*org].handle.crash().await;
                    } else {
                        fed.stop(*org).await;
                    }
                    down[*org] = true;
                    obs.outage_start(*org, now_ms());
                    Ok("down".into())
                }
            }
            Action::Attack { org, behaviour, count } => {
                obs.first_attack_s.get_or_insert(at);
                attack::launch(&fed, *org, *behaviour, *count, &plan.pop).map(|f| {
                    tasks.spawn(f);
                    "started".to_string()
                })
            }
        };
        obs.log(at, e.line, describe(s, &e.action), result);
    }
    // A node restarted after a partition started must honour it too.
    if partition.is_some() {
        cut(&fed, s, &partition, &down).await?;
    }
    pb.set_message("waiting for delivery and hits");
    obs.timeline_s = start.elapsed().as_secs_f64();
    let patience = Duration::from_secs_f64(s.patience_s);
    // Members that attacked are not owed the alerts published after their attack.
    let attacked_at = |m: usize| {
        s.events.iter().find_map(|e| match e.action {
            Action::Attack { org, .. } if org == m => Some(e.at_s),
            _ => None,
        })
    };
    let reachable = |m: usize, issuer: usize, at_s: f64| {
        component(&s.orgs[m].region, &partition) == component(&s.orgs[issuer].region, &partition)
            && attacked_at(m).is_none_or(|t| t > at_s)
    };
    let t_settle = Instant::now();
    measure::settle(&fed, &mut obs, &plan.background, &reachable, patience).await?;
    obs.settle_s = t_settle.elapsed().as_secs_f64();
    while let Some(t) = tasks.join_next().await {
        match t {
            Ok(t) => obs.task(t),
            Err(e) => tracing::error!("a drill task failed: {e}"),
        }
    }
    measure::finish(&fed, &mut obs, &acked).await?;
    obs.wall_s = t0.elapsed().as_secs_f64();
    obs.traffic = wire.traffic();
    obs.node_metrics = measure::NodeMetricsSum::of(&fed);
    obs.template_bytes_on_wire = wire.template_bytes();
    obs.leaks = wire.leaks();
    pb.finish_and_clear();
    fed.shutdown().await;
    Ok(obs)
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

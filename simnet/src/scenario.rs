//! Drill scenario files (TOML): the organisations, the synthetic population
//! and the timeline of events. Parsing is strict (unknown keys are errors)
//! and every semantic error names the line of the offending entry.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use toml::Spanned;
use vigil_protocol::{Category, OrgKind};

/// Largest scenario file read.
pub const MAX_SCENARIO_BYTES: usize = 1024 * 1024;
/// Upper bounds that keep a drill inside one machine.
pub const MAX_NODES: usize = 500;
pub const MAX_RECORDS: usize = 2_000_000;
pub const MAX_EVENTS: usize = 100_000;

/// A scenario error, with the line it points at when there is one.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{0}")]
    Syntax(String),
    #[error("line {line}: {message}")]
    At { line: usize, message: String },
    #[error("{0}")]
    Whole(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    drill: Spanned<RawDrill>,
    #[serde(default)]
    population: Option<Spanned<RawPopulation>>,
    #[serde(default)]
    org: Vec<Spanned<RawOrg>>,
    #[serde(default)]
    cases: Vec<Spanned<RawCases>>,
    #[serde(default)]
    event: Vec<Spanned<RawEvent>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDrill {
    name: String,
    #[serde(default = "default_seed")]
    seed: u64,
    #[serde(default)]
    form: Form,
    #[serde(default = "default_patience")]
    patience_s: f64,
    #[serde(default)]
    description: String,
    /// Simulated one-way latency of every link, in milliseconds.
    #[serde(default)]
    latency_ms: u64,
    /// Overrides `queries.per_hour` and `alerts.answers_per_hour` (the two
    /// answer budgets per member) at every node.
    #[serde(default)]
    query_budget_per_hour: Option<u32>,
    /// Overrides `alerts.max_per_issuer_per_hour` at every node.
    #[serde(default)]
    alerts_per_issuer_per_hour: Option<usize>,
    /// Attackers' nodes run at normal CPU priority, sharing the cores with
    /// the honest members on equal terms (default: at the lowest priority,
    /// as if on machines of their own).
    #[serde(default)]
    attackers_share_cpu: bool,
}

fn default_seed() -> u64 {
    1
}
fn default_patience() -> f64 {
    60.0
}

/// The form of the alerts' probes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Form {
    #[default]
    Encrypted,
    Protected,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPopulation {
    #[serde(default)]
    poor_capture_rate: Option<f64>,
    #[serde(default)]
    groups: Option<usize>,
    #[serde(default)]
    group_weight: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOrg {
    name: String,
    kind: KindName,
    #[serde(default = "one")]
    count: usize,
    #[serde(default = "default_region")]
    region: String,
    #[serde(default)]
    records: usize,
}

fn one() -> usize {
    1
}
fn default_region() -> String {
    "default".into()
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum KindName {
    Ngo,
    Police,
    Border,
    Other,
}

/// Generated cases: each a missing person enrolled at `holders` random
/// organisations and an alert from another one, `every_s` apart.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCases {
    count: usize,
    #[serde(default)]
    at_s: f64,
    #[serde(default)]
    every_s: f64,
    #[serde(default = "one")]
    holders: usize,
    /// Alerts about persons nobody holds (non-mated searches), beside the cases.
    #[serde(default)]
    unknown: usize,
    /// Only members of this region publish and hold the cases.
    #[serde(default)]
    region: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent {
    at_s: f64,
    action: String,
    #[serde(default)]
    org: Option<String>,
    #[serde(default)]
    person: Option<String>,
    #[serde(default)]
    alert: Option<String>,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    regions: Option<Vec<String>>,
    #[serde(default)]
    for_s: Option<f64>,
    #[serde(default)]
    approve: Option<bool>,
    #[serde(default)]
    purpose: Option<String>,
    #[serde(default)]
    behaviour: Option<String>,
    #[serde(default)]
    count: Option<usize>,
}

/// Population model parameters (see `population`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct PopulationParams {
    pub poor_capture_rate: f64,
    pub groups: usize,
    pub group_weight: f64,
}

impl Default for PopulationParams {
    fn default() -> Self {
        Self { poor_capture_rate: 0.08, groups: 16, group_weight: 0.3 }
    }
}

/// One organisation (groups with `count` > 1 are expanded: `name-01` ...).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Org {
    pub name: String,
    pub kind: OrgKind,
    pub region: String,
    pub records: usize,
}

/// What a malicious member does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Behaviour {
    /// Publishes `count` valid alerts as fast as it can.
    Flood,
    /// Publishes alerts claiming to be another organisation.
    Forge,
    /// Sends an old alert again.
    Replay,
    /// Sends request frames over the size limit.
    Oversized,
    /// Sends undecodable gossip and request frames.
    Malformed,
    /// Sends identification queries with chosen vectors until refused.
    Probe,
}

/// A timeline action, with names resolved to indices.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    Enrol { org: usize, person: usize },
    Publish { org: usize, person: usize, alert: String, category: Category },
    Withdraw { alert: String },
    Identify { org: usize, person: usize, purpose: String },
    Disclose { alert: String, approve: bool },
    Partition { regions: Vec<String> },
    Heal,
    Offline { org: usize, for_s: f64 },
    Crash { org: usize, for_s: f64 },
    Attack { org: usize, behaviour: Behaviour, count: usize },
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Event {
    pub at_s: f64,
    /// The line of the scenario entry it came from (0 for generated cases).
    pub line: usize,
    #[serde(flatten)]
    pub action: Action,
}

/// A validated scenario.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub seed: u64,
    pub form: Form,
    pub patience_s: f64,
    pub latency_ms: u64,
    pub query_budget_per_hour: Option<u32>,
    pub alerts_per_issuer_per_hour: Option<usize>,
    /// See `RawDrill::attackers_share_cpu`.
    pub attackers_share_cpu: bool,
    pub population: PopulationParams,
    pub orgs: Vec<Org>,
    /// Labels of the named persons; person `i` is identity `i` of the population.
    pub persons: Vec<String>,
    /// Events in time order (stable for equal times).
    pub events: Vec<Event>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|b| *b == b'\n').count() + 1
}

impl Scenario {
    pub fn load(path: &std::path::Path, seed: Option<u64>) -> anyhow::Result<Self> {
        let meta = std::fs::metadata(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        anyhow::ensure!(
            meta.len() as usize <= MAX_SCENARIO_BYTES,
            "{}: {} bytes, larger than the {MAX_SCENARIO_BYTES}-byte limit for scenarios",
            path.display(),
            meta.len()
        );
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text, seed).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    /// Parses and validates a scenario; `seed` overrides the file's.
    pub fn parse(text: &str, seed: Option<u64>) -> Result<Self, ScenarioError> {
        if text.len() > MAX_SCENARIO_BYTES {
            return Err(ScenarioError::Whole(format!("larger than the {MAX_SCENARIO_BYTES}-byte limit")));
        }
        let raw: RawScenario = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start));
            match line {
                Some(line) => ScenarioError::At { line, message: e.message().to_string() },
                None => ScenarioError::Syntax(e.message().to_string()),
            }
        })?;
        let mut p = Parse { text, persons: Vec::new(), alerts: BTreeMap::new() };
        let drill = p.drill(raw.drill)?;
        let seed = seed.unwrap_or(drill.seed);
        let population = p.population(raw.population)?;
        let orgs = p.orgs(raw.org)?;
        let mut events = raw.event.into_iter().map(|e| p.event(e, &orgs)).collect::<Result<Vec<_>, _>>()?;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_ca5e);
        for c in raw.cases {
            p.cases(c, &orgs, &mut rng, &mut events)?;
        }
        if events.len() > MAX_EVENTS {
            return Err(ScenarioError::Whole(format!("more than {MAX_EVENTS} events")));
        }
        events.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
        check_order(&events)?;
        Ok(Self {
            name: drill.name,
            description: drill.description,
            seed,
            form: drill.form,
            patience_s: drill.patience_s,
            latency_ms: drill.latency_ms,
            query_budget_per_hour: drill.query_budget_per_hour,
            alerts_per_issuer_per_hour: drill.alerts_per_issuer_per_hour,
            attackers_share_cpu: drill.attackers_share_cpu,
            population,
            orgs,
            persons: p.persons,
            events,
        })
    }

    pub fn records(&self) -> usize {
        self.orgs.iter().map(|o| o.records).sum()
    }

    /// A generated scenario: `nodes` organisations with `records` records each
    /// and `alerts` cases of one holder, all published at once.
    pub fn quick(nodes: usize, records: usize, alerts: usize, seed: u64) -> Result<Self, ScenarioError> {
        let text = format!(
            "[drill]\nname = \"quick\"\nseed = {seed}\n\n[[org]]\nname = \"org\"\nkind = \"ngo\"\ncount = \
             {nodes}\nrecords = {records}\n\n[[cases]]\ncount = {alerts}\nat_s = 0.5\n"
        );
        Self::parse(&text, None)
    }
}

/// Parsing state: the text (for line numbers), the persons named so far
/// (events and generated cases share them) and the alerts published by
/// events.
struct Parse<'t> {
    text: &'t str,
    persons: Vec<String>,
    alerts: BTreeMap<String, usize>,
}

impl Parse<'_> {
    fn at(&self, span: std::ops::Range<usize>, message: String) -> ScenarioError {
        ScenarioError::At { line: line_of(self.text, span.start), message }
    }

    /// The index of the person labelled `label`, named now if new.
    fn person(&mut self, label: &str) -> usize {
        match self.persons.iter().position(|p| p == label) {
            Some(i) => i,
            None => {
                self.persons.push(label.to_string());
                self.persons.len() - 1
            }
        }
    }

    fn drill(&self, d: Spanned<RawDrill>) -> Result<RawDrill, ScenarioError> {
        let span = d.span();
        let drill = d.into_inner();
        if drill.name.trim().is_empty() {
            return Err(self.at(span, "drill.name is empty".into()));
        }
        if !(drill.patience_s > 0.0 && drill.patience_s <= 3600.0) {
            return Err(self.at(span, format!("drill.patience_s = {} is outside (0, 3600]", drill.patience_s)));
        }
        if drill.latency_ms > 10_000 {
            return Err(self.at(span, format!("drill.latency_ms = {} is over 10000", drill.latency_ms)));
        }
        Ok(drill)
    }

    fn population(&self, raw: Option<Spanned<RawPopulation>>) -> Result<PopulationParams, ScenarioError> {
        let mut population = PopulationParams::default();
        let Some(p) = raw else { return Ok(population) };
        let span = p.span();
        let p = p.into_inner();
        if let Some(r) = p.poor_capture_rate {
            if !(0.0..=1.0).contains(&r) {
                return Err(self.at(span, format!("population.poor_capture_rate = {r} is not in [0, 1]")));
            }
            population.poor_capture_rate = r;
        }
        if let Some(g) = p.groups {
            if g == 0 || g > 10_000 {
                return Err(self.at(span, format!("population.groups = {g} is not in [1, 10000]")));
            }
            population.groups = g;
        }
        if let Some(w) = p.group_weight {
            if !(0.0..=1.0).contains(&w) {
                return Err(self.at(span, format!("population.group_weight = {w} is not in [0, 1]")));
            }
            population.group_weight = w;
        }
        Ok(population)
    }

    fn orgs(&self, raw: Vec<Spanned<RawOrg>>) -> Result<Vec<Org>, ScenarioError> {
        let (mut orgs, mut names, mut records) = (Vec::new(), HashSet::new(), 0usize);
        for o in raw {
            let span = o.span();
            let o = o.into_inner();
            if o.name.trim().is_empty() || o.count == 0 {
                return Err(self.at(span, "an organisation needs a name and a count of at least 1".into()));
            }
            let kind = match o.kind {
                KindName::Ngo => OrgKind::Ngo,
                KindName::Police => OrgKind::Police,
                KindName::Border => OrgKind::Border,
                KindName::Other => OrgKind::Other,
            };
            for i in 0..o.count {
                let name = if o.count == 1 { o.name.clone() } else { format!("{}-{:02}", o.name, i + 1) };
                if !names.insert(name.clone()) {
                    return Err(self.at(span.clone(), format!("organisation {name:?} is defined twice")));
                }
                records += o.records;
                orgs.push(Org { name, kind, region: o.region.clone(), records: o.records });
            }
            if orgs.len() > MAX_NODES {
                return Err(self.at(span, format!("more than {MAX_NODES} organisations")));
            }
            if records > MAX_RECORDS {
                return Err(self.at(span, format!("more than {MAX_RECORDS} records in all")));
            }
        }
        if orgs.len() < 2 {
            return Err(ScenarioError::Whole("a drill needs at least two organisations ([[org]] entries)".into()));
        }
        Ok(orgs)
    }

    /// One `[[event]]`.
    fn event(&mut self, e: Spanned<RawEvent>, orgs: &[Org]) -> Result<Event, ScenarioError> {
        let span = e.span();
        let e = e.into_inner();
        let err = |m: String| self.at(span.clone(), m);
        if !(e.at_s >= 0.0 && e.at_s <= 7.0 * 24.0 * 3600.0) {
            return Err(err(format!("at_s = {} is outside [0, one week]", e.at_s)));
        }
        let org = || -> Result<usize, ScenarioError> {
            let name = e.org.as_deref().ok_or_else(|| err(format!("{:?} needs org = \"...\"", e.action)))?;
            orgs.iter().position(|o| o.name == name).ok_or_else(|| err(format!("unknown organisation {name:?}")))
        };
        let need = |v: &Option<String>, key: &str| -> Result<String, ScenarioError> {
            v.clone().ok_or_else(|| err(format!("{:?} needs {key} = \"...\"", e.action)))
        };
        let duration = |v: Option<f64>| -> Result<f64, ScenarioError> {
            match v {
                Some(d) if d > 0.0 && d <= 7.0 * 24.0 * 3600.0 => Ok(d),
                Some(d) => Err(err(format!("for_s = {d} is outside (0, one week]"))),
                None => Err(err(format!("{:?} needs for_s", e.action))),
            }
        };
        let action = match e.action.as_str() {
            "enrol" => Action::Enrol { org: org()?, person: self.person(&need(&e.person, "person")?) },
            "publish" => {
                let org = org()?;
                let label = need(&e.person, "person")?;
                let alert = e.alert.clone().unwrap_or_else(|| label.clone());
                if self.alerts.insert(alert.clone(), org).is_some() {
                    return Err(self.at(span, format!("alert {alert:?} is published twice")));
                }
                let category = match e.category.as_deref().unwrap_or("missing") {
                    "missing" => Category::Missing,
                    "victim" => Category::Victim,
                    "other" => Category::Other,
                    c => return Err(self.at(span, format!("unknown category {c:?} (missing, victim or other)"))),
                };
                Action::Publish { org, person: self.person(&label), alert, category }
            }
            "withdraw" | "disclose" => {
                let alert = need(&e.alert, "alert")?;
                if !self.alerts.contains_key(&alert) {
                    return Err(err(format!("alert {alert:?} is not published before this event")));
                }
                if e.action == "withdraw" {
                    Action::Withdraw { alert }
                } else {
                    Action::Disclose { alert, approve: e.approve.unwrap_or(true) }
                }
            }
            "identify" => Action::Identify {
                org: org()?,
                person: self.person(&need(&e.person, "person")?),
                purpose: e.purpose.clone().unwrap_or_else(|| "drill".into()),
            },
            "partition" => {
                let rs = e.regions.clone().ok_or_else(|| err("partition needs regions = [...]".into()))?;
                if rs.is_empty() {
                    return Err(err("partition needs at least one region".into()));
                }
                if let Some(r) = rs.iter().find(|r| !orgs.iter().any(|o| o.region == **r)) {
                    return Err(err(format!("unknown region {r:?}")));
                }
                Action::Partition { regions: rs }
            }
            "heal" => Action::Heal,
            "offline" => Action::Offline { org: org()?, for_s: duration(e.for_s)? },
            "crash" => Action::Crash { org: org()?, for_s: duration(e.for_s.or(Some(1.0)))? },
            "attack" => {
                let count = e.count.unwrap_or(10);
                if count == 0 || count > 10_000 {
                    return Err(err(format!("count = {count} is not in [1, 10000]")));
                }
                Action::Attack { org: org()?, behaviour: behaviour(e.behaviour.as_deref()).map_err(err)?, count }
            }
            other => {
                return Err(err(format!(
                    "unknown action {other:?} (enrol, publish, withdraw, identify, disclose, partition, heal, \
                     offline, crash or attack)"
                )))
            }
        };
        Ok(Event { at_s: e.at_s, line: line_of(self.text, span.start), action })
    }

    /// The events of one `[[cases]]` block: for each case, enrolments at
    /// `holders` random honest members and an alert from another one.
    fn cases(
        &mut self,
        c: Spanned<RawCases>,
        orgs: &[Org],
        rng: &mut rand_chacha::ChaCha8Rng,
        events: &mut Vec<Event>,
    ) -> Result<(), ScenarioError> {
        let span = c.span();
        let c = c.into_inner();
        if c.count + c.unknown == 0 || c.count + c.unknown > 10_000 {
            return Err(self.at(span, "cases.count + cases.unknown must be in [1, 10000]".into()));
        }
        // Generated cases involve honest members only.
        let attacker = |o: usize| events.iter().any(|e| matches!(e.action, Action::Attack { org, .. } if org == o));
        let honest: Vec<usize> = match &c.region {
            Some(r) if !orgs.iter().any(|o| o.region == *r) => {
                return Err(self.at(span, format!("unknown region {r:?}")));
            }
            Some(r) => (0..orgs.len()).filter(|o| !attacker(*o) && orgs[*o].region == *r).collect(),
            None => (0..orgs.len()).filter(|o| !attacker(*o)).collect(),
        };
        if c.holders == 0 || c.holders + 1 > honest.len() {
            return Err(self.at(span, format!("cases.holders = {} needs more (honest) organisations", c.holders)));
        }
        if c.at_s < 0.0 || c.every_s < 0.0 {
            return Err(self.at(span, "cases.at_s and cases.every_s must not be negative".into()));
        }
        for k in 0..c.count + c.unknown {
            let mut order = honest.clone();
            order.shuffle(rng);
            let label = format!("case-{}", self.persons.len());
            let p = self.person(&label);
            let t = c.at_s + k as f64 * c.every_s;
            if k < c.count {
                for &h in &order[1..=c.holders] {
                    events.push(Event { at_s: t, line: 0, action: Action::Enrol { org: h, person: p } });
                }
            }
            // Publish a little after the enrolments of the same case.
            let jitter: f64 = rng.gen_range(0.0..0.001);
            let action = Action::Publish { org: order[0], person: p, alert: label, category: Category::Missing };
            events.push(Event { at_s: t + jitter, line: 0, action });
        }
        Ok(())
    }
}

fn behaviour(name: Option<&str>) -> Result<Behaviour, String> {
    Ok(match name {
        Some("flood") => Behaviour::Flood,
        Some("forge") => Behaviour::Forge,
        Some("replay") => Behaviour::Replay,
        Some("oversized") => Behaviour::Oversized,
        Some("malformed") => Behaviour::Malformed,
        Some("probe") => Behaviour::Probe,
        Some(b) => {
            return Err(format!("unknown behaviour {b:?} (flood, forge, replay, oversized, malformed or probe)"))
        }
        None => return Err("attack needs behaviour = \"...\"".into()),
    })
}

/// Withdrawals and disclosures must come after their alert.
fn check_order(events: &[Event]) -> Result<(), ScenarioError> {
    let mut published = HashSet::new();
    for e in events {
        match &e.action {
            Action::Publish { alert, .. } => {
                published.insert(alert.clone());
            }
            Action::Withdraw { alert } | Action::Disclose { alert, .. } if !published.contains(alert) => {
                return Err(ScenarioError::At {
                    line: e.line,
                    message: format!("alert {alert:?} is used at {} s, before it is published", e.at_s),
                });
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[drill]\nname = \"t\"\n\n[[org]]\nname = \"a\"\nkind = \"ngo\"\ncount = 2\nregion = \"r\"\n";

    fn err(extra: &str) -> String {
        Scenario::parse(&format!("{BASE}{extra}"), None).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_problem_and_its_line() {
        assert!(Scenario::parse(BASE, None).is_ok());
        let e = err("\n[[event]]\nat_s = 1\naction = \"publish\"\norg = \"nobody\"\nperson = \"x\"\n");
        assert!(e.starts_with("line 10:") && e.contains("unknown organisation \"nobody\""), "{e}");
        let e = err("\n[[event]]\nat_s = 1\naction = \"dance\"\n");
        assert!(e.starts_with("line 10:") && e.contains("unknown action \"dance\""), "{e}");
        let e = err("\n[[event]]\nat_s = 1\naction = \"withdraw\"\nalert = \"never\"\n");
        assert!(e.contains("line 10") && e.contains("not published"), "{e}");
        let e = err("\n[[event]]\nat_s = 1\naction = \"partition\"\nregions = [\"mars\"]\n");
        assert!(e.contains("unknown region \"mars\""), "{e}");
        let e = err("\n[[event]]\nat_s = 1\naction = \"offline\"\norg = \"a-01\"\n");
        assert!(e.contains("needs for_s"), "{e}");
        let e = err("\n[[event]]\nat_s = 1\naction = \"attack\"\norg = \"a-01\"\nbehaviour = \"charm\"\n");
        assert!(e.contains("unknown behaviour \"charm\""), "{e}");
        // Syntax and schema errors point at their line too.
        let e = err("\n[[org]]\nname = \"b\"\nkind = \"pirate\"\n");
        assert!(e.starts_with("line 12:") && e.contains("pirate"), "{e}");
        let e = err("\n[[org]]\nname = \"c\"\nkind = \"ngo\"\ncolour = \"red\"\n");
        assert!(e.contains("line 1") && e.contains("colour"), "{e}");
        let e = err("\n[[org]]\nname = \"a-01\"\nkind = \"ngo\"\n");
        assert!(e.contains("defined twice"), "{e}");
        let e = Scenario::parse("[drill]\nname = \"t\"\n", None).unwrap_err().to_string();
        assert!(e.contains("at least two organisations"), "{e}");
        let e = Scenario::parse("[drill\n", None).unwrap_err().to_string();
        assert!(e.starts_with("line 1:"), "{e}");
        let big = "#".repeat(MAX_SCENARIO_BYTES + 1);
        assert!(Scenario::parse(&big, None).unwrap_err().to_string().contains("limit"));
    }

    #[test]
    fn cases_are_seeded_and_ordered() {
        let text = format!("{BASE}\n[[org]]\nname = \"b\"\nkind = \"police\"\ncount = 3\n\n[[cases]]\ncount = 4\nat_s = 1\nevery_s = 0.5\n");
        let a = Scenario::parse(&text, Some(1)).unwrap();
        assert_eq!(a.events, Scenario::parse(&text, Some(1)).unwrap().events);
        assert_ne!(a.events, Scenario::parse(&text, Some(2)).unwrap().events);
        assert_eq!(a.events.iter().filter(|e| matches!(e.action, Action::Publish { .. })).count(), 4);
        assert!(a.events.windows(2).all(|w| w[0].at_s <= w[1].at_s));
        // Each case's holder enrols before its alert is published.
        for e in &a.events {
            if let Action::Publish { person, org, .. } = &e.action {
                let enrol = a
                    .events
                    .iter()
                    .position(|x| matches!(x.action, Action::Enrol { person: p, org: o } if p == *person && o != *org));
                assert!(enrol.is_some());
            }
        }
    }
}

//! Small drills as tests: real nodes over the in-memory transport, real
//! database files, real TFHE. Each asserts the report's invariants and
//! outcomes: a partition that heals, a crash and an outage, every malicious
//! behaviour, determinism of a seed, and the committed scenario files.

use vigil_simnet::{drill, Report, Scenario};

fn assert_invariants(r: &Report) {
    for i in &r.invariants {
        assert!(i.passed, "invariant {:?} failed: {}\n{}", i.name, i.detail, r.markdown());
    }
    assert_eq!(r.invariants_failed, 0);
    assert_eq!(r.template_bytes_on_wire, 0);
}

#[test]
fn every_committed_scenario_is_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let s = Scenario::load(&path, None).unwrap_or_else(|e| panic!("{e:#}"));
            names.push(s.name.clone());
        }
    }
    names.sort();
    assert_eq!(names, ["border-drill", "flood", "malicious-member", "offline-week", "partition", "regional-100"]);
    let regional = Scenario::load(&dir.join("regional-100.toml"), None).unwrap();
    assert_eq!(regional.orgs.len(), 100);
    assert!(regional.records() >= 99_900, "{}", regional.records());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_heals_and_alerts_and_hits_cross_it_afterwards() {
    let s = Scenario::parse(
        r#"
[drill]
name = "partition-test"
seed = 3
latency_ms = 80
[[org]]
name = "east"
kind = "police"
count = 2
region = "east"
records = 10
[[org]]
name = "west"
kind = "ngo"
count = 2
region = "west"
records = 10
[[event]]
at_s = 0.0
action = "enrol"
org = "west-02"
person = "p"
[[event]]
at_s = 0.5
action = "partition"
regions = ["east"]
[[event]]
at_s = 1.0
action = "publish"
org = "east-01"
person = "p"
[[event]]
at_s = 4.0
action = "heal"
"#,
        None,
    )
    .unwrap();
    let r = drill(&s, false).await.unwrap();
    assert_invariants(&r);
    // east-02 got it live; both west members only after the heal.
    assert_eq!((r.deliveries, r.catchup_deliveries), (3, 2), "{}", r.markdown());
    // Every link adds the simulated 80 ms.
    assert_eq!(r.simulated_latency_ms, 80);
    assert!(r.delivery_p50_ms >= 80, "live delivery faster than the link latency: {}", r.delivery_p50_ms);
    assert!(r.catchup_max_ms >= 2_500, "delivered across the cut before the heal: {}", r.catchup_max_ms);
    assert_eq!((r.hits_expected, r.hits_found, r.false_hits), (1, 1, 0));
    assert!(r.time_to_hit_max_ms >= 2_500);
    // The other matchers, on the same data: the mated record is a good
    // capture, far above both thresholds.
    assert_eq!((r.plain.true_hits, r.plain.false_hits), (1, 0));
    assert_eq!((r.protected.true_hits, r.protected.false_hits), (1, 0), "{}", r.markdown());
}

/// A crash, an outage, a query, a disclosure, a withdrawal; run twice with
/// one seed and once with another.
fn eventful(seed: u64) -> Scenario {
    let text = r#"
[drill]
name = "eventful"
seed = 1
[[org]]
name = "org"
kind = "ngo"
count = 5
records = 8
[[cases]]
count = 2
at_s = 2.2
every_s = 0.3
unknown = 1
[[event]]
at_s = 0.0
action = "enrol"
org = "org-03"
person = "q"
[[event]]
at_s = 0.1
action = "crash"
org = "org-04"
for_s = 1.0
[[event]]
at_s = 0.3
action = "offline"
org = "org-05"
for_s = 1.5
[[event]]
at_s = 0.5
action = "publish"
org = "org-01"
person = "q"
alert = "Q"
[[event]]
at_s = 0.8
action = "identify"
org = "org-02"
person = "q"
[[event]]
at_s = 2.0
action = "disclose"
alert = "Q"
[[event]]
at_s = 3.0
action = "withdraw"
alert = "Q"
"#;
    Scenario::parse(text, Some(seed)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_gives_the_same_events_and_outcomes() {
    let a = drill(&eventful(21), false).await.unwrap();
    assert_invariants(&a);
    assert_eq!(a.alerts, 4);
    assert!(a.catchup_deliveries >= 2, "the crashed and the offline member caught up: {}", a.markdown());
    assert_eq!(a.queries.len(), 1);
    assert_eq!(a.queries[0].hits, a.queries[0].holders);
    assert_eq!(a.disclosures.len(), 1);
    assert_eq!(a.disclosures[0].answered, 1);
    let b = drill(&eventful(21), false).await.unwrap();
    assert_invariants(&b);
    assert_eq!(a.outcome_digest, b.outcome_digest, "\n{}\n{}", a.markdown(), b.markdown());
    let events = |r: &Report| r.events.iter().map(|e| (e.what.clone(), e.outcome.clone())).collect::<Vec<_>>();
    assert_eq!(events(&a), events(&b));
    // Another seed draws other holders and issuers.
    assert_ne!(eventful(22).events, eventful(21).events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_malicious_behaviour_is_throttled_or_cut_off_and_honest_alerts_still_flow() {
    let mut text = String::from(
        r#"
[drill]
name = "rogues"
seed = 4
query_budget_per_hour = 2
alerts_per_issuer_per_hour = 5
[[org]]
name = "honest"
kind = "police"
count = 4
records = 10
[[org]]
name = "rogue"
kind = "other"
count = 6
records = 2
[[event]]
at_s = 3.0
action = "enrol"
org = "honest-02"
person = "h"
[[event]]
at_s = 3.2
action = "publish"
org = "honest-01"
person = "h"
"#,
    );
    for (i, (b, n)) in
        [("flood", 8), ("forge", 4), ("replay", 4), ("oversized", 3), ("malformed", 4), ("probe", 4)].iter().enumerate()
    {
        text += &format!(
            "[[event]]\nat_s = 1.0\naction = \"attack\"\norg = \"rogue-0{}\"\nbehaviour = \"{b}\"\ncount = {n}\n",
            i + 1
        );
    }
    let s = Scenario::parse(&text, None).unwrap();
    let r = drill(&s, false).await.unwrap();
    assert_invariants(&r);
    assert_eq!(r.attacks.len(), 6);
    let by = |b: &str| r.attacks.iter().find(|a| format!("{:?}", a.behaviour).to_lowercase() == b).unwrap();
    assert!(by("flood").accepted_max <= 5, "flood bound not applied: {:?}", by("flood"));
    assert!(by("forge").blocked_by >= 3 && by("replay").penalised_by >= 3 && by("malformed").penalised_by >= 3);
    assert!(by("oversized").penalised_by >= 1);
    assert!(by("probe").refused >= 1, "{:?}", by("probe"));
    // The honest alert published after the attacks reached the honest members and found its holder.
    assert_eq!((r.hits_expected, r.hits_found, r.false_hits), (1, 1, 0));
    assert_eq!(r.per_alert[0].delivered, 3);
    // The nodes' metrics saw it too: forged, replayed and malformed gossip
    // rejected, flood alerts beyond the bound ignored, commits made.
    let m = r.node_metrics;
    assert!(m.gossip_rejected >= 3 && m.gossip_ignored >= 1 && m.gossip_accepted >= 3, "{m:?}");
    assert!(m.commits > 0 && m.commit_ms_total > 0.0 && m.loop_lag_ms_mean > 0.0, "{m:?}");
}

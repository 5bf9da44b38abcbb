//! `vigil calibrate` as a steward runs it: labelled vectors of an extractor
//! whose raw cosines are all high, a policy entry and a report out, refusals
//! with the line and the reason; then the entry goes into a signed policy
//! file (`vigil policy new|sign|verify|retire|show`).

mod common;

use common::*;
use vigil_matcher::synth::Population;

fn line(pop: &Population, common: &[f32], subject: usize, k: u64) -> String {
    let v: Vec<f32> = pop.sample_file(subject, k).vector.iter().zip(common).map(|(x, c)| x + 3.0 * c).collect();
    serde_json::json!({"subject": format!("p{subject}"), "vector": v}).to_string()
}

#[test]
fn calibrate_writes_a_policy_entry_and_a_report_and_refuses_what_it_cannot_support() {
    let tmp = tempfile::tempdir().unwrap();
    let s = |x: &str| tmp.path().join(x).to_str().unwrap().to_string();
    let pop = Population::new(5, "vigil-synth-128", 300);
    let common = Population::new(6, "vigil-synth-128", 1).sample_file(0, 0).vector;
    let all: Vec<String> =
        (0..150).flat_map(|p| (0..2).map(move |k| (p, k))).map(|(p, k)| line(&pop, &common, p, k)).collect();
    std::fs::write(s("labelled.jsonl"), all.join("\n")).unwrap();
    let out = ok(&[
        "calibrate",
        "--labelled",
        &s("labelled.jsonl"),
        "--target-fmr",
        "1e-2,1e-3,2e-4",
        "--id",
        "acme-face-128",
        "--out",
        &s("acme.toml"),
    ]);
    assert!(out.contains("Possible: cosine >=") && out.contains("Strong: cosine >="), "{out}");
    assert!(out.contains("Held out:"), "{out}");
    let entry = std::fs::read_to_string(s("acme.toml")).unwrap();
    assert!(entry.contains("[[extractor]]") && entry.contains("centre = [") && entry.contains("band = \"strong\""));
    let report = tmp.path().join("acme-face-128-report");
    let html = std::fs::read_to_string(report.join("report.html")).unwrap();
    assert!(html.matches("<svg").count() == 2, "two plots inline");
    for f in ["det.svg", "scores.svg"] {
        assert!(std::fs::read_to_string(report.join(f)).unwrap().starts_with("<svg"), "{f}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["points"].as_array().unwrap().len(), 3);
    assert!(json["points"][1]["fmr"]["rate"].as_f64().unwrap() <= 1e-3);

    // Refusals, each naming why.
    std::fs::write(s("small.jsonl"), all[..40].join("\n")).unwrap();
    let args = |file: &str, fmr: &str| {
        vec![
            "calibrate".to_string(),
            "--labelled".into(),
            s(file),
            "--target-fmr".into(),
            fmr.into(),
            "--id".into(),
            "x".into(),
            "--out".into(),
            s("x.toml"),
        ]
    };
    let run_fail = |a: Vec<String>| fails(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(run_fail(args("small.jsonl", "1e-4")).contains("rule of three"));
    std::fs::write(s("mixed.jsonl"), format!("{}\n{{\"subject\":\"q\",\"vector\":[1,2]}}", all[0])).unwrap();
    assert!(run_fail(args("mixed.jsonl", "1e-3")).contains("line 2 has 2 values, line 1 has 128"));
    let dup = format!("{}\n{}", all[0], all[0].replace("\"p0\"", "\"p9\""));
    std::fs::write(s("dup.jsonl"), dup).unwrap();
    assert!(run_fail(args("dup.jsonl", "1e-3")).contains("same vector under two subjects"));

    // Into a signed policy.
    let k1 = pubkey(&ok(&["roster", "keygen", "--out", &s("steward1.key")]));
    let policy = s("policy.json");
    ok(&["policy", "new", "--federation", "north", "--extractors", &s("acme.toml"), "--out", &policy]);
    ok(&["policy", "sign", "--policy", &policy, "--key", &s("steward1.key")]);
    ok(&["policy", "verify", "--policy", &policy, "--steward", &k1, "--threshold", "1"]);
    let shown = ok(&["policy", "show", "--policy", &policy]);
    assert!(shown.contains("acme-face-128\tFace\t128\tActive\tyes"), "{shown}");
    assert!(ok(&["policy", "retire", "--policy", &policy, "--id", "acme-face-128"]).contains("policy is now v2"));
    let err = fails(&["policy", "verify", "--policy", &policy, "--steward", &k1, "--threshold", "1"]);
    assert!(err.contains("0 valid steward signatures"), "{err}");
    assert!(ok(&["policy", "show", "--policy", &policy]).contains("Retired"));
}

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

/// A fingerprint extractor calibrated from standard records: labelled
/// lines name ISO/IEC 19794-2 files; the entry holds one centre part per
/// finger and thresholds on the sum over fingers. A damaged record is
/// refused naming the line and the file, before any node is asked.
#[test]
fn calibrate_a_fingerprint_extractor_from_standard_records() {
    use vigil_matcher::synth::FingerPopulation;
    use vigil_records::{write_fmr, FmrFlavour};
    let tmp = tempfile::tempdir().unwrap();
    let s = |x: &str| tmp.path().join(x).to_str().unwrap().to_string();
    std::fs::create_dir(tmp.path().join("prints")).unwrap();
    let pop = FingerPopulation::new(3, 120);
    let fingers = [1u8, 2, 6, 7];
    let mut lines = Vec::new();
    for p in 0..pop.len() {
        for k in 0..2 {
            let iso = write_fmr(FmrFlavour::Iso2005, (400, 500), 197, &pop.record(p, &fingers, k).views);
            std::fs::write(tmp.path().join(format!("prints/{p}-{k}.ist")), iso).unwrap();
            lines.push(format!(r#"{{"subject": "p{p}", "record": "prints/{p}-{k}.ist"}}"#));
        }
    }
    std::fs::write(s("prints.jsonl"), lines.join("\n")).unwrap();
    let args = |labelled: &str| {
        vec![
            "calibrate".to_string(),
            "--labelled".into(),
            s(labelled),
            "--target-fmr".into(),
            "1e-2,1e-3".into(),
            "--id".into(),
            "smr-four".into(),
            "--modality".into(),
            "finger".into(),
            "--fingers".into(),
            "1,2,6,7".into(),
            "--representation".into(),
            "spectral-minutiae-v1".into(),
            "--out".into(),
            s("smr.toml"),
        ]
    };
    let out = ok(&args("prints.jsonl").iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.contains("on 192 samples") || out.contains("samples of"), "{out}");
    assert!(out.contains("Probable: cosine >="), "{out}");
    let entry = std::fs::read_to_string(s("smr.toml")).unwrap();
    assert!(
        entry.contains("representation = \"spectral-minutiae-v1\"") && entry.contains("fingers = [1, 2, 6, 7]"),
        "{entry}"
    );
    let table: toml::Value = toml::from_str(&entry).unwrap();
    let ex = &table["extractor"][0];
    assert_eq!(ex["dim"].as_integer(), Some(768));
    assert_eq!(ex["centre"].as_array().unwrap().len(), 768);
    // The sum threshold of four fingers lies above any single cosine.
    assert!(ex["thresholds"][1]["cosine"].as_float().unwrap() > 1.0, "{entry}");
    // And each threshold has those for 1, 2 and 3 shared fingers, rising
    // with the count; the entry makes a format 3 policy that shows them.
    for t in ex["thresholds"].as_array().unwrap() {
        let fewer: Vec<f64> = t["fewer_fingers"].as_array().unwrap().iter().map(|x| x.as_float().unwrap()).collect();
        assert_eq!(fewer.len(), 3, "{entry}");
        assert!(fewer.windows(2).all(|w| w[1] > w[0]) && fewer[2] < t["cosine"].as_float().unwrap(), "{fewer:?}");
    }
    assert!(out.contains("sharing 2 finger(s): cosine sum >="), "{out}");
    ok(&["policy", "new", "--federation", "north", "--extractors", &s("smr.toml"), "--out", &s("policy.json")]);
    assert!(std::fs::read_to_string(s("policy.json")).unwrap().contains("\"format\": 3"));
    let shown = ok(&["policy", "show", "--policy", &s("policy.json")]);
    assert!(shown.contains("(sharing 1..: "), "{shown}");

    // A record cut short: the line and the file are named.
    let bytes = std::fs::read(tmp.path().join("prints/5-1.ist")).unwrap();
    std::fs::write(tmp.path().join("prints/5-1.ist"), &bytes[..40]).unwrap();
    let err = fails(&args("prints.jsonl").iter().map(String::as_str).collect::<Vec<_>>());
    assert!(err.contains("line 12") && err.contains("5-1.ist") && err.contains("truncated"), "{err}");
    // The same record given to enrol fails before any node is asked.
    let err = fails(&[
        "enrol",
        "--data",
        &s("no-node"),
        "--template",
        &s("prints/5-1.ist"),
        "--category",
        "found",
        "--case",
        "x",
        "--consent",
        "y",
        "--retain-until",
        "2030-01-01",
    ]);
    assert!(err.contains("ISO/IEC 19794-2:2005 record truncated"), "{err}");
}

//! The README's quick start, run as real processes: stewards make keys and a
//! 2-of-2 roster, two organisations `vigil init` and `vigil serve`, one
//! enrols, the other publishes an alert, and both see the hit. Bad input
//! fails with a precise message and a non-zero exit, and stores nothing.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use vigil_matcher::synth::Population;

#[test]
fn quick_start_two_nodes_find_a_missing_person() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |s: &str| tmp.path().join(s);
    let s = |s: &str| tmp.path().join(s).to_str().unwrap().to_string();
    let k1 = pubkey(&ok(&["roster", "keygen", "--out", &s("steward1.key")]));
    let k2 = pubkey(&ok(&["roster", "keygen", "--out", &s("steward2.key")]));
    let epoch_file = s("epoch.hex");
    std::fs::write(&epoch_file, "ab".repeat(32)).unwrap();
    let mut daemons = Vec::new();
    let mut nodes = Vec::new();
    for (name, kind) in [("Shelter North", "ngo"), ("Metro Police", "police")] {
        let dir = s(&format!("{kind}-data"));
        let (port, api) = (free_port(), free_port());
        ok(&[
            "init",
            "--org",
            name,
            "--kind",
            kind,
            "--data",
            &dir,
            "--listen",
            &format!("/ip4/127.0.0.1/tcp/{port}"),
            "--api",
            &format!("127.0.0.1:{api}"),
            "--steward",
            &k1,
            "--steward",
            &k2,
            "--threshold",
            "2",
            "--epoch-secret-file",
            &epoch_file,
        ]);
        nodes.push(dir);
    }
    let init_again = fails(&["init", "--org", "X", "--kind", "ngo", "--data", &nodes[0]]);
    assert!(init_again.contains("refusing to overwrite"), "{init_again}");

    let roster = s("roster.json");
    ok(&["roster", "new", "--federation", "drill-north", "--out", &roster]);
    for n in &nodes {
        ok(&["roster", "add", "--roster", &roster, "--member-file", &format!("{n}/org.json")]);
    }
    // Steward keys are sealed under the steward's passphrase: the file is
    // no key in the clear, and another passphrase does not sign with it.
    let key_text = std::fs::read_to_string(p("steward1.key")).unwrap();
    assert!(key_text.contains("vigil-steward-key/1") && key_text.contains("argon2id"), "{key_text}");
    let wrong = vigil()
        .args(["roster", "sign", "--roster", &roster, "--key", &s("steward1.key")])
        .env("VIGIL_STEWARD_PASSPHRASE", "another passphrase 2")
        .output()
        .unwrap();
    assert!(!wrong.status.success() && String::from_utf8_lossy(&wrong.stderr).contains("wrong passphrase"));
    ok(&["roster", "sign", "--roster", &roster, "--key", &s("steward1.key")]);
    let one = fails(&["roster", "verify", "--roster", &roster, "--steward", &k1, "--steward", &k2, "--threshold", "2"]);
    assert!(one.contains("1 valid steward signatures, 2 required"), "{one}");
    ok(&["roster", "sign", "--roster", &roster, "--key", &s("steward2.key")]);
    ok(&["roster", "verify", "--roster", &roster, "--steward", &k1, "--steward", &k2, "--threshold", "2"]);
    for n in &nodes {
        std::fs::copy(&roster, format!("{n}/roster.json")).unwrap();
        // Police units approve disclosures with two operators in the
        // console by default; this one lets the CLI's token approve alone.
        if n.contains("police") {
            let cfg_path = Path::new(n).join("vigil.toml");
            let mut cfg = vigil_config::NodeConfig::load(&cfg_path).unwrap();
            cfg.console.four_eyes = Some(false);
            std::fs::write(&cfg_path, cfg.to_commented_toml()).unwrap();
        }
        daemons.push(serve(Path::new(n)));
    }
    let (ngo, police) = (&nodes[0], &nodes[1]);

    // Bad templates: precise errors, non-zero exit, nothing stored.
    let pop = Population::new(11, "vigil-synth-128", 10);
    let mut wrong_dim = pop.sample_file(5, 1);
    wrong_dim.vector.truncate(100);
    write_template(&p("wrong.json"), &wrong_dim);
    let mut unknown = pop.sample_file(5, 1);
    unknown.extractor = "mystery-net".into();
    write_template(&p("unknown.json"), &unknown);
    std::fs::write(p("empty.json"), r#"{"modality":"face","extractor":"vigil-synth-128","vector":[]}"#).unwrap();
    std::fs::write(p("garbage.json"), "not json at all").unwrap();
    std::fs::write(p("nan.json"), r#"{"modality":"face","extractor":"vigil-synth-128","vector":[0.5, NaN]}"#).unwrap();
    std::fs::write(p("huge.json"), vec![b' '; 300 * 1024]).unwrap();
    let enrol = |file: &str| {
        vec![
            "enrol".to_string(),
            "--data".into(),
            police.clone(),
            "--template".into(),
            s(file),
            "--category".into(),
            "found".into(),
            "--case".into(),
            "MP-2026-7788".into(),
            "--consent".into(),
            "LED art. 8".into(),
            "--retain-until".into(),
            "2031-01-01".into(),
        ]
    };
    for (file, expected) in [
        ("wrong.json", "produces 128-dimensional vectors, the file has 100"),
        ("unknown.json", "\"mystery-net\" is not in the federation's biometric policy; active: vigil-synth-128"),
        ("empty.json", "template vector is empty"),
        ("garbage.json", "not valid JSON"),
        ("nan.json", "NaN or Infinity"),
        ("huge.json", "the limit is 262144"),
        ("missing.json", "cannot read template file"),
    ] {
        let args = enrol(file);
        let err = fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(err.contains(expected), "{file}: {err}");
    }
    let status: serde_json::Value = serde_json::from_str(&ok(&["status", "--data", police])).unwrap();
    assert_eq!(status["gallery"], 0, "a bad enrolment stored something");

    write_template(&p("person.json"), &pop.sample_file(5, 1));
    let args = enrol("person.json");
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    write_template(&p("probe.json"), &pop.sample_file(5, 0));
    let published = ok(&[
        "alert",
        "publish",
        "--data",
        ngo,
        "--template",
        &s("probe.json"),
        "--case",
        "SN-2026-0141",
        "--expires",
        "30d",
    ]);
    assert!(published.starts_with("Published alert "));

    let hits =
        |dir: &str| -> serde_json::Value { serde_json::from_str(&ok(&["hits", "--data", dir, "--json"])).unwrap() };
    // The alert carries an encrypted probe: the police node answers it
    // without learning the outcome; only the NGO decrypts the hit.
    eventually("hit at the issuer", || hits(ngo).as_array().unwrap().iter().any(|h| h["role"] == "issuer"));
    let delivered = s("police-audit.json");
    eventually("answer delivered by the holder", || {
        ok(&["audit", "export", "--data", police, "--out", &delivered]);
        std::fs::read_to_string(&delivered).unwrap().contains("alert_answer_delivered")
    });
    assert!(hits(police).as_array().unwrap().is_empty(), "the holder learns nothing from an encrypted alert");
    let alerts: serde_json::Value = serde_json::from_str(&ok(&["alert", "list", "--data", police, "--json"])).unwrap();
    assert_eq!(alerts.as_array().unwrap().len(), 1);
    assert!(alerts[0]["case_ref"].is_null(), "the case reference left the issuer");

    // Metrics for the operator: the police node holds the alert (by gossip
    // or by catch-up: two nodes form no gossip mesh at first) and its one
    // record, sees one peer, committed durably (the answer pages), and
    // exposes gossipsub's own metrics; without the token, nothing.
    let (base, token) = vigil_node::datadir::api_access(Path::new(police.as_str())).unwrap();
    let metrics = ureq::get(&format!("{base}/v1/metrics"))
        .set("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let value = |name: &str| -> f64 {
        assert!(metrics.lines().any(|l| l.starts_with(&format!("{name} "))), "no {name}:\n{metrics}");
        vigil_node::metrics::sample(&metrics, name)
    };
    assert_eq!(value("vigil_peers_connected"), 1.0);
    assert_eq!(value("vigil_alerts_held"), 1.0);
    assert_eq!(value("vigil_gossip_messages_total{verdict=\"reject\"}"), 0.0);
    assert_eq!(value("vigil_gallery_records"), 1.0);
    assert!(value("vigil_commit_seconds_count") >= 1.0);
    assert!(value("vigil_event_loop_lag_seconds_count") >= 1.0, "the loop's timer was sampled");
    assert!(metrics.contains("vigil_gossipsub_"), "gossipsub's metrics are missing");
    let refused = ureq::get(&format!("{base}/v1/metrics")).call().unwrap_err();
    assert!(matches!(refused, ureq::Error::Status(401, _)), "{refused:?}");

    // Encrypted identification: the police unit answers with one hit.
    let report: serde_json::Value = serde_json::from_str(&ok(&[
        "identify",
        "--data",
        ngo,
        "--template",
        &s("probe.json"),
        "--purpose",
        "family report SN-0141",
        "--legal-basis",
        "GDPR 6(1)(d)",
        "--json",
    ]))
    .unwrap();
    let peers = report["peers"].as_array().unwrap();
    assert_eq!(peers.len(), 1, "{report}");
    assert_eq!(peers[0]["status"], "answered");
    assert_eq!(peers[0]["hits"].as_array().unwrap().len(), 1, "{report}");
    let err =
        fails(&["identify", "--data", ngo, "--template", &s("wrong.json"), "--purpose", "x", "--legal-basis", "y"]);
    assert!(err.contains("128-dimensional"), "{err}");

    // Disclosure: the NGO asks, a person at the police unit approves, the contact arrives.
    let issuer_hit = hits(ngo).as_array().unwrap().iter().find(|h| h["role"] == "issuer").unwrap()["handle"]
        .as_str()
        .unwrap()
        .to_string();
    let asked =
        ok(&["disclose", "request", "--data", ngo, &issuer_hit, "--reason", "family asks for the case contact"]);
    let id = asked.split_whitespace().nth(3).unwrap().trim_end_matches(';').to_string();
    let pending = |dir: &str| -> serde_json::Value {
        serde_json::from_str(&ok(&["disclose", "pending", "--data", dir, "--json"])).unwrap()
    };
    eventually("the request pending at the holder", || {
        pending(police).as_array().unwrap().iter().any(|d| d["id"] == id.as_str())
    });
    ok(&["disclose", "approve", "--data", police, &id, "--contact", "Desk officer, +00 555 0199"]);
    eventually("the approved contact at the requester", || {
        let all: serde_json::Value = serde_json::from_str(&ok(&["disclose", "list", "--data", ngo, "--json"])).unwrap();
        all.as_array().unwrap().iter().any(|d| {
            d["id"] == id.as_str() && d["status"] == "approved" && d["contact"] == "Desk officer, +00 555 0199"
        })
    });
    let err = fails(&["disclose", "approve", "--data", police, &id, "--contact", "again"]);
    assert!(err.contains("not waiting for this node's decision"), "{err}");

    // Audit: verify live, export, verify offline, and catch an edit.
    for n in &nodes {
        assert!(ok(&["audit", "verify", "--data", n]).contains("Audit chain OK"));
    }
    let export = s("audit.json");
    ok(&["audit", "export", "--data", ngo, "--out", &export]);
    let org: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{ngo}/org.json")).unwrap()).unwrap();
    let org = org["org"].as_str().unwrap();
    assert!(ok(&["audit", "verify", "--data", ngo, "--export", &export, "--org", org]).contains("Audit chain OK"));
    let mut chain: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&export).unwrap()).unwrap();
    chain[1]["entry"]["at_ms"] = serde_json::json!(1);
    std::fs::write(&export, chain.to_string()).unwrap();
    let err = fails(&["audit", "verify", "--data", ngo, "--export", &export, "--org", org]);
    assert!(err.contains("entry 2 does not hash"), "{err}");

    // A newer roster (v2) applies to the running node; the old one does not.
    let v1 = s("roster-v1.json");
    std::fs::copy(&roster, &v1).unwrap();
    ok(&["roster", "bump", "--roster", &roster]);
    ok(&["roster", "sign", "--roster", &roster, "--key", &s("steward1.key")]);
    ok(&["roster", "sign", "--roster", &roster, "--key", &s("steward2.key")]);
    assert!(ok(&["roster", "apply", "--data", ngo, "--roster", &roster]).contains("applied roster v2"));
    let err = fails(&["roster", "apply", "--data", ngo, "--roster", &v1]);
    assert!(err.contains("not newer than the current version 2"), "{err}");
    let status: serde_json::Value = serde_json::from_str(&ok(&["status", "--data", ngo])).unwrap();
    assert_eq!(status["roster_version"], 2);

    // A biometric policy (the synthetic extractor, recalibrated) signed by
    // both stewards: applied at one node, it reaches the other.
    let entry = s("synth.toml");
    face_entry(&entry, "vigil-synth-128", 0.45);
    let policy = s("policy.json");
    ok(&["policy", "new", "--federation", "drill-north", "--extractors", &entry, "--out", &policy]);
    ok(&["policy", "sign", "--policy", &policy, "--key", &s("steward1.key")]);
    let err = fails(&["policy", "apply", "--data", ngo, "--policy", &policy]);
    assert!(err.contains("1 valid steward signatures, 2 required"), "{err}");
    ok(&["policy", "sign", "--policy", &policy, "--key", &s("steward2.key")]);
    ok(&["policy", "verify", "--policy", &policy, "--steward", &k1, "--steward", &k2, "--threshold", "2"]);
    assert!(ok(&["policy", "apply", "--data", ngo, "--policy", &policy]).contains("applied policy v1"));
    eventually("the policy at the other node", || {
        ok(&["policy", "show", "--data", police]).contains("Policy v1 of \"drill-north\", issued")
    });
    assert!(
        ok(&["policy", "show", "--data", police]).contains("vigil-synth-128\tFace\t128\tActive\tno\tpossible 0.4500")
    );

    // Records, a backup, and erasure (the README's last quick-start lines).
    let records: serde_json::Value = serde_json::from_str(&ok(&["records", "--data", police, "--json"])).unwrap();
    assert_eq!(records.as_array().unwrap().len(), 1);
    assert!(records[0].get("template").is_none() && records[0]["case_ref"] == "MP-2026-7788");
    assert!(ok(&["records", "--data", police, "--stale"]).contains("(none)"));
    let id = records[0]["id"].to_string();
    assert!(ok(&["backup", "--data", police, "--out", &s("police.vgbak")]).contains("sealed backup"));
    // Never over an existing file (it replaced identity.sealed once).
    let identity = format!("{police}/identity.sealed");
    let before = std::fs::read(&identity).unwrap();
    assert!(fails(&["backup", "--data", police, "--out", &identity]).contains("exists already"));
    assert!(fails(&["backup", "--data", police, "--out", &s("police.vgbak")]).contains("exists already"));
    assert_eq!(std::fs::read(&identity).unwrap(), before);
    let err = fails(&["erase", "--data", police, &id, "--reason", ""]);
    assert!(err.contains("reason"), "{err}");
    assert!(ok(&["erase", "--data", police, &id, "--reason", "erasure request"]).contains("Erased record"));
    let records: serde_json::Value = serde_json::from_str(&ok(&["records", "--data", police, "--json"])).unwrap();
    assert!(records.as_array().unwrap().is_empty());
    assert!(fails(&["erase", "--data", police, &id, "--reason", "again"]).contains(&format!("no record {id}")));

    // Wrong token: refused.
    std::fs::write(format!("{police}/api.token"), "0000").unwrap();
    let err = fails(&["status", "--data", police]);
    assert!(err.contains("401") && err.contains("bearer token"), "{err}");

    // Ctrl-C: graceful shutdown with exit code 0.
    for mut d in daemons.drain(..) {
        let pid = d.0.id().to_string();
        assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(st) = d.0.try_wait().unwrap() {
                assert!(st.success(), "serve exited with {st}");
                break;
            }
            assert!(Instant::now() < deadline, "serve did not stop on SIGINT");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

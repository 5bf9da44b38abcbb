//! Liveness (PAD) attestations through the CLI and real nodes: stewards
//! add a capture key and require attestations for enrolment and alerts
//! (a format 2 policy that spreads to the other member); a capture key
//! signs results; missing, forged, stale, attack and other-sample
//! attestations are refused with their reason (and audited); accepted ones
//! are shown with the record, the alert and its hit.

mod common;

use common::*;
use vigil_matcher::synth::Population;

#[test]
fn stewards_require_liveness_and_nodes_hold_captures_to_it() {
    let tmp = tempfile::tempdir().unwrap();
    let s = |x: &str| tmp.path().join(x).to_str().unwrap().to_string();
    let dirs = federation(tmp.path(), &[("Shelter North", "ngo"), ("Metro Police", "police")]);
    let (ngo, police) = (&dirs[0], &dirs[1]);
    let _daemons: Vec<Daemon> = dirs.iter().map(|d| serve(std::path::Path::new(d))).collect();

    let cam = pubkey(&ok(&["pad", "keygen", "--out", &s("cam.key")]));
    let entry = s("synth.toml");
    face_entry(&entry, "vigil-synth-128", 0.5);
    let finger = s("finger.toml");
    std::fs::write(
        &finger,
        "[[extractor]]\nid = \"smr-index\"\nmodality = \"finger\"\nfingers = [2]\n\
         representation = \"spectral-minutiae-v1\"\ndim = 192\nprotected_bits = 512\n\
         [[extractor.thresholds]]\nband = \"possible\"\ncosine = 0.5\nfmr = 1e-4\n",
    )
    .unwrap();
    let policy = s("policy.json");
    ok(&["policy", "new", "--federation", "drill", "--extractors", &entry, "--extractors", &finger, "--out", &policy]);
    let set = ok(&[
        "policy",
        "liveness",
        "--policy",
        &policy,
        "--capture-key",
        &format!("field-cam={cam}"),
        "--sdk",
        "FieldPAD 3.1",
        "--require",
        "enrolment,alert",
        "--max-age",
        "1h",
    ]);
    assert!(set.contains("v2 (format 2, unsigned): 1 capture key(s), required for: enrolment, alert"), "{set}");
    for k in ["steward1.key", "steward2.key"] {
        ok(&["policy", "sign", "--policy", &policy, "--key", &s(k)]);
    }
    assert!(ok(&["policy", "apply", "--data", ngo, "--policy", &policy]).contains("applied policy v2"));
    eventually("the liveness rules at the other member", || {
        ok(&["policy", "show", "--data", police]).contains("Liveness (PAD): required for enrolment, alert")
    });

    let pop = Population::new(7, "vigil-synth-128", 10);
    let (person, probe, stranger) = (s("person.json"), s("probe.json"), s("stranger.json"));
    write_template(&person.clone().into(), &pop.sample_file(2, 1));
    write_template(&probe.clone().into(), &pop.sample_file(2, 0));
    write_template(&stranger.clone().into(), &pop.sample_file(6, 0));
    let cam_key = s("cam.key");
    let sign = |template: &str, out: &str, extra: &[&str]| {
        let mut args = vec!["pad", "sign", "--key", &cam_key];
        args.extend(["--key-id", "field-cam", "--sdk", "FieldPAD 3.1", "--template", template]);
        args.extend(["--score", "0.03", "--out"]);
        let out = s(out);
        args.push(&out);
        args.extend(extra);
        ok(&args);
        out
    };
    let enrol = |template: &str, pad: Option<&str>| {
        let mut args = vec!["enrol", "--data", police, "--template", template, "--category", "found"];
        args.extend(["--case", "MP-1", "--consent", "intake form", "--retain-until", "2099-01-01"]);
        if let Some(p) = pad {
            args.extend(["--pad", p]);
        }
        run(&args)
    };
    let refused = |template: &str, pad: Option<&str>| {
        let out = enrol(template, pad);
        assert!(!out.status.success(), "enrolment with {pad:?} should be refused");
        String::from_utf8(out.stderr).unwrap()
    };

    let err = refused(&person, None);
    assert!(err.contains("requires a liveness (PAD) attestation for enrolment"), "{err}");
    let other = sign(&stranger, "other.json", &[]);
    assert!(refused(&person, Some(&other)).contains("for another sample"));
    let attack = sign(&person, "attack.json", &["--decision", "attack"]);
    assert!(refused(&person, Some(&attack)).contains("decided this was an attack presentation"));
    let stale = sign(&person, "stale.json", &["--captured-at", "2026-01-01"]);
    assert!(refused(&person, Some(&stale)).contains("PAD attestation is stale"));
    let forged = s("forged.json");
    let mut f: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&other).unwrap()).unwrap();
    let good = sign(&person, "good.json", &[]);
    let g: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&good).unwrap()).unwrap();
    f["body"]["sample"] = g["body"]["sample"].clone();
    std::fs::write(&forged, f.to_string()).unwrap();
    assert!(refused(&person, Some(&forged)).contains("does not verify with capture key \"field-cam\""));
    let status = api_get(police, "/v1/status");
    assert_eq!(status["gallery"], 0, "a refused enrolment stored something");

    assert!(enrol(&person, Some(&good)).status.success());
    let records = api_get(police, "/v1/records");
    let liveness = records[0]["liveness"].as_str().unwrap();
    assert!(
        liveness.starts_with("bona fide (FieldPAD 3.1, key field-cam, captured ") && liveness.contains("score 0.03")
    );
    let table = ok(&["records", "--data", police]);
    assert!(table.lines().nth(1).is_some_and(|l| l.ends_with(liveness)), "{table}");

    // A standard record: the attestation covers its bytes, so the CLI
    // sends the record itself and the node checks the digest of what came.
    let prints = vigil_matcher::synth::FingerPopulation::new(3, 4);
    let views = prints.record(1, &[2], 0).views;
    let record = s("index.ist");
    std::fs::write(&record, vigil_records::write_fmr(vigil_records::FmrFlavour::Iso2005, (400, 500), 197, &views))
        .unwrap();
    assert!(refused(&record, Some(&good)).contains("for another sample"), "an attestation of another sample");
    let record_pad = sign(&record, "index.pad.json", &[]);
    let out = enrol(&record, Some(&record_pad));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let records = api_get(police, "/v1/records");
    assert_eq!((records[1]["extractor"].as_str(), records[1]["liveness"].is_string()), (Some("smr-index"), true));

    // The alert: required too, and the probe's liveness shows with its hit.
    let publish = |pad: Option<&str>| {
        let mut args = vec!["alert", "publish", "--data", ngo, "--template", &probe, "--case", "SN-1"];
        if let Some(p) = pad {
            args.extend(["--pad", p]);
        }
        run(&args)
    };
    let out = publish(None);
    assert!(String::from_utf8_lossy(&out.stderr).contains("attestation for alert"), "{out:?}");
    let probe_pad = sign(&probe, "probe-pad.json", &[]);
    assert!(publish(Some(&probe_pad)).status.success());
    eventually("the hit at the issuer", || api_get(ngo, "/v1/hits").as_array().is_some_and(|h| !h.is_empty()));
    let hits = api_get(ngo, "/v1/hits");
    assert_eq!(hits[0]["role"], "issuer");
    assert!(hits[0]["liveness"].as_str().unwrap().starts_with("bona fide (FieldPAD 3.1"), "{hits}");
    assert!(ok(&["hits", "--data", ngo]).contains("\tbona fide (FieldPAD 3.1, key field-cam"));
    let alerts = api_get(ngo, "/v1/alerts");
    assert!(alerts[0]["liveness"].as_str().unwrap().contains("key field-cam"));
    assert!(api_get(police, "/v1/alerts")[0]["liveness"].is_null(), "the attestation stays at the issuer");

    // Both ends audited what they accepted and refused.
    let audit = s("audit.json");
    ok(&["audit", "export", "--data", police, "--out", &audit]);
    let text = std::fs::read_to_string(&audit).unwrap();
    assert_eq!(text.matches("\"pad_refused\"").count(), 6, "{text}");
    assert_eq!(text.matches("\"pad_accepted\"").count(), 2);
    ok(&["audit", "export", "--data", ngo, "--out", &audit]);
    let text = std::fs::read_to_string(&audit).unwrap();
    assert!(text.contains("\"pad_refused\"") && text.contains("\"pad_accepted\""));
}

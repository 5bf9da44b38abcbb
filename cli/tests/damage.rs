//! A damaged database with real processes: after the file is cut short,
//! `vigil serve` refuses to start (naming the newest backup), `vigil backup`
//! refuses the directory, and `vigil doctor` says what is damaged and what
//! a restore of the newest backup brings back; the backup restores.

mod common;

use common::*;
use std::path::Path;

#[test]
fn a_damaged_database_stops_the_node_and_doctor_names_what_a_restore_brings_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dirs = federation(tmp.path(), &[("Metro Police", "police")]);
    let dir = &dirs[0];
    let daemon = serve(Path::new(dir));
    let (base, token) = vigil_node::datadir::api_access(Path::new(dir)).unwrap();
    let pop = vigil_matcher::synth::Population::new(8, "vigil-synth-128", 12);
    for i in 0..12 {
        let body = serde_json::json!({
            "template": pop.sample_file(i, 1), "category": "found", "case_ref": format!("D-{i}"),
            "consent": "intake form", "retain_until": "2099-01-01",
        });
        ureq::post(&format!("{base}/v1/records"))
            .set("Authorization", &format!("Bearer {token}"))
            .send_json(body)
            .unwrap();
    }
    ureq::post(&format!("{base}/v1/backup"))
        .set("Authorization", &format!("Bearer {token}"))
        .send_json(serde_json::json!({ "name": "nightly.vgbak" }))
        .unwrap();
    drop(daemon);
    ok(&["doctor", "--data", dir]);

    // The disk damages the database: the file is cut in half.
    let db = Path::new(dir).join("vigil.redb");
    let f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    f.set_len(f.metadata().unwrap().len() / 2).unwrap();
    drop(f);

    let out = vigil().args(["serve", "--data", dir]).env("VIGIL_PASSPHRASE", PASSPHRASE).output().unwrap();
    assert!(!out.status.success(), "serve started on a damaged database");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is damaged") && err.contains("nightly.vgbak"), "{err}");

    let err = fails(&["backup", "--data", dir, "--out", tmp.path().join("copy.vgbak").to_str().unwrap()]);
    assert!(err.contains("is damaged"), "{err}");
    assert!(!tmp.path().join("copy.vgbak").exists());

    let out = run(&["doctor", "--data", dir]);
    assert!(!out.status.success(), "doctor must fail on damage");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("is damaged"), "{report}");
    assert!(report.contains("nightly.vgbak") && report.contains("records 12"), "{report}");

    // The backup it names restores, with every record.
    let fresh = tmp.path().join("restored");
    let backup = Path::new(dir).join("backups").join("nightly.vgbak");
    ok(&["restore", "--from", backup.to_str().unwrap(), "--data", fresh.to_str().unwrap()]);
    let report = ok(&["doctor", "--data", fresh.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&report).unwrap();
    let records = v["tables"].as_array().unwrap().iter().find(|t| t["table"] == "records").unwrap();
    assert_eq!((records["intact"].as_u64(), records["unreadable"].as_u64()), (Some(12), Some(0)), "{report}");
}

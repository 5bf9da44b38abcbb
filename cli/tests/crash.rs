//! Crash safety with real processes: a police node is killed with SIGKILL
//! again and again in the middle of a burst of enrolments through its API
//! while a shelter keeps publishing alerts to it. After every restart each
//! acknowledged record is there, none twice, the audit chain verifies, and
//! the node catches up on every alert it missed while down.

mod common;

use common::*;
use rand::{Rng, SeedableRng};
use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use vigil_matcher::synth::Population;

fn api(dir: &str) -> (String, String) {
    vigil_node::datadir::api_access(Path::new(dir)).unwrap()
}

/// POSTs `body`; `Some(id)` only if the node acknowledged it.
fn post(base: &str, token: &str, path: &str, body: serde_json::Value) -> Option<String> {
    let r = ureq::post(&format!("{base}{path}"))
        .timeout(Duration::from_secs(10))
        .set("Authorization", &format!("Bearer {token}"))
        .send_json(body)
        .ok()?;
    r.into_json::<serde_json::Value>().ok()?["id"].as_str().map(String::from)
}

/// What a SIGKILL loop found: printed by both tests, asserted by both.
#[derive(Debug, Default, serde::Serialize)]
struct KillReport {
    kills: usize,
    enrolments_tried: usize,
    acknowledged: usize,
    lost: usize,
    duplicated: usize,
    /// Stored though never acknowledged (the request in flight at a kill).
    unacknowledged_stored: usize,
    audit_failures: usize,
    alerts_acknowledged: usize,
    restart_ms_median: f64,
    restart_ms_max: f64,
}

/// Kills the police node `rounds` times with SIGKILL in the middle of an
/// enrolment burst through its API while the shelter publishes alerts to
/// it, restarting it after each kill and checking what it holds.
fn kill_loop(police: &str, ngo: &str, rounds: usize, alerts_acked: &mut Vec<String>) -> (KillReport, Daemon) {
    let mut police_d = serve(Path::new(police));
    let pop = Arc::new(Population::new(3, "vigil-synth-128", 60));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let (mut acked, mut report, mut restarts) = (Vec::<String>::new(), KillReport::default(), Vec::new());
    for round in 0..rounds {
        let stop = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (base, token) = api(police);
        let (p, s, done) = (pop.clone(), stop.clone(), progress.clone());
        let enrols = std::thread::spawn(move || {
            let (mut ok, mut n) = (Vec::new(), 0);
            for i in 0..2000 {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                let case = format!("R{round}-{i}");
                let body = serde_json::json!({
                    "template": p.sample_file(i % 60, round as u64 + 1), "category": "found", "case_ref": case,
                    "consent": "intake", "retain_until": "2031-01-01",
                });
                n += 1;
                match post(&base, &token, "/v1/records", body) {
                    Some(_) => ok.push(case),
                    None => break,
                }
                done.store(ok.len(), Ordering::Relaxed);
            }
            (ok, n)
        });
        let (nbase, ntoken) = api(ngo);
        let (p, s) = (pop.clone(), stop.clone());
        let publish = std::thread::spawn(move || {
            let mut ok = Vec::new();
            for i in 0..30 {
                if s.load(Ordering::Relaxed) && i > 3 {
                    break;
                }
                let body = serde_json::json!({
                    "template": p.sample_file(i % 60, 0), "case_ref": format!("SN-{round}-{i}"), "expires": "30d",
                });
                ok.extend(post(&nbase, &ntoken, "/v1/alerts", body));
                std::thread::sleep(Duration::from_millis(30));
            }
            ok
        });
        // Kill the police node in the middle of it all: some way into the burst.
        eventually("the burst is under way", || progress.load(Ordering::Relaxed) >= 10);
        std::thread::sleep(Duration::from_millis(rng.gen_range(50..600)));
        police_d.0.kill().unwrap();
        police_d.0.wait().unwrap();
        report.kills += 1;
        stop.store(true, Ordering::Relaxed);
        let (ok, n) = enrols.join().unwrap();
        assert!(ok.len() >= 5, "round {round}: the burst was too short to mean anything");
        acked.extend(ok.iter().cloned());
        report.enrolments_tried += n;
        alerts_acked.extend(publish.join().unwrap());

        let t = std::time::Instant::now();
        police_d = serve(Path::new(police));
        restarts.push(t.elapsed().as_secs_f64() * 1e3);
        let h = held(police, &acked);
        (report.duplicated, report.lost, report.unacknowledged_stored) =
            (h.duplicated, h.lost, h.unacknowledged_stored);
        report.audit_failures += usize::from(!h.audit_ok);
    }
    report.acknowledged = acked.len();
    report.alerts_acknowledged = alerts_acked.len();
    restarts.sort_by(f64::total_cmp);
    report.restart_ms_median = restarts[restarts.len() / 2];
    report.restart_ms_max = *restarts.last().unwrap();
    eprintln!("{}", serde_json::to_string(&report).unwrap());
    // Nothing acknowledged is lost or doubled, the audit always verifies,
    // and at most the one request in flight at each kill was stored
    // without its answer.
    assert_eq!((report.lost, report.duplicated, report.audit_failures), (0, 0, 0), "{report:?}");
    assert!(report.unacknowledged_stored <= report.kills, "{report:?}");
    (report, police_d)
}

/// The long run: `VIGIL_KILLS` (default 100) kills. Run with
/// `cargo test -p vigil-cli --release --test crash -- --ignored`.
#[test]
#[ignore = "long: about 3 s per kill"]
fn a_hundred_sigkills_during_bursts_lose_nothing_acknowledged() {
    let rounds = std::env::var("VIGIL_KILLS").ok().and_then(|k| k.parse().ok()).unwrap_or(100);
    let tmp = tempfile::tempdir().unwrap();
    let dirs = federation(tmp.path(), &[("Metro Police", "police"), ("Shelter North", "ngo")]);
    let _ngo_d = serve(Path::new(&dirs[1]));
    let (report, _police_d) = kill_loop(&dirs[0], &dirs[1], rounds, &mut Vec::new());
    assert_eq!(report.kills, rounds);
}

#[test]
fn acknowledged_writes_survive_repeated_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let dirs = federation(tmp.path(), &[("Metro Police", "police"), ("Shelter North", "ngo")]);
    let (police, ngo) = (dirs[0].clone(), dirs[1].clone());
    let _ngo_d = serve(Path::new(&ngo));
    {
        let probe = serve(Path::new(&police));
        eventually("the two nodes connect", || {
            api_get(&police, "/v1/status")["connected"].as_array().unwrap().len() == 1
        });
        drop(probe);
    }
    let mut alerts_acked = Vec::new();
    let (_, police_d) = kill_loop(&police, &ngo, 3, &mut alerts_acked);
    // Every alert the shelter acknowledged reaches the police node, caught up after restarts.
    eventually("the police node holds every alert", || {
        let held: HashSet<String> = api_get(&police, "/v1/alerts")
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_string())
            .collect();
        alerts_acked.iter().all(|a| held.contains(a))
    });

    // Backups: through the running node, then directly from the stopped
    // directory; the restored copy serves every record.
    let path = |n: &str| tmp.path().join(n).to_str().unwrap().to_string();
    let records = api_get(&police, "/v1/records").as_array().unwrap().len();
    assert!(ok(&["backup", "--data", &police, "--out", &path("live.vgbak")]).contains("sealed backup"));
    drop(police_d);
    assert!(ok(&["backup", "--data", &police, "--out", &path("stopped.vgbak")]).contains("sealed backup"));
    let err = fails(&["restore", "--from", &path("live.vgbak"), "--data", &police]);
    assert!(err.contains("restore into an empty directory"), "{err}");
    for (b, dir) in [("live.vgbak", "restored-live"), ("stopped.vgbak", "restored-stopped")] {
        ok(&["restore", "--from", &path(b), "--data", &path(dir)]);
        let _d = serve(Path::new(&path(dir)));
        assert_eq!(api_get(&path(dir), "/v1/records").as_array().unwrap().len(), records, "{b}");
        assert_eq!(api_get(&path(dir), "/v1/audit/verify")["ok"], true, "{b}");
    }
}

#[test]
fn sigterm_stops_the_node_cleanly_with_its_final_flush() {
    let tmp = tempfile::tempdir().unwrap();
    let dirs = federation(tmp.path(), &[("Metro Police", "police")]);
    let dir = &dirs[0];
    let mut daemon = serve(Path::new(dir));
    let (base, token) = api(dir);
    let pop = Population::new(4, "vigil-synth-128", 4);
    let body = serde_json::json!({
        "template": pop.sample_file(1, 1), "category": "found", "case_ref": "T-1", "consent": "intake form",
        "retain_until": "2099-01-01",
    });
    assert!(post(&base, &token, "/v1/records", body).is_some(), "enrolment acknowledged");
    // What a service manager does to stop a service.
    let killed = std::process::Command::new("kill").args(["-TERM", &daemon.0.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = daemon.0.try_wait().unwrap() {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "vigil serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    // A clean exit (0), not death by the signal (no exit code).
    assert_eq!(status.code(), Some(0), "{status:?}");
    drop(daemon);
    // It starts again with its record and a verifying audit chain.
    let _again = serve(Path::new(dir));
    let records = api_get(dir, "/v1/records");
    assert_eq!(records.as_array().unwrap().len(), 1, "{records}");
    assert!(ok(&["audit", "verify", "--data", dir]).contains("OK"));
}

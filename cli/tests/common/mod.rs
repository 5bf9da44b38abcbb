//! Helpers for tests that run the `vigil` binary as real processes.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

pub(crate) const PASSPHRASE: &str = "correct horse battery";

pub(crate) fn vigil() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vigil"));
    c.env_remove("VIGIL_DATA").env("RUST_LOG", "warn").env("VIGIL_STEWARD_PASSPHRASE", "steward passphrase 1");
    c
}

pub(crate) fn run(args: &[&str]) -> Output {
    vigil().args(args).env("VIGIL_PASSPHRASE", PASSPHRASE).output().unwrap()
}

pub(crate) fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(out.status.success(), "vigil {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

pub(crate) fn fails(args: &[&str]) -> String {
    let out = run(args);
    assert!(!out.status.success(), "vigil {args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running `vigil serve`; killed (SIGKILL) when dropped.
pub(crate) struct Daemon(pub(crate) Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn serve(dir: &Path) -> Daemon {
    let child = vigil()
        .args(["serve", "--data", dir.to_str().unwrap()])
        .env("VIGIL_PASSPHRASE", PASSPHRASE)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let d = Daemon(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !run(&["status", "--data", dir.to_str().unwrap()]).status.success() {
        assert!(Instant::now() < deadline, "daemon in {} did not come up", dir.display());
        std::thread::sleep(Duration::from_millis(100));
    }
    d
}

/// GET `path` at the running node of `dir`, with its token, as JSON.
pub(crate) fn api_get(dir: &str, path: &str) -> serde_json::Value {
    let (base, token) = vigil_node::datadir::api_access(Path::new(dir)).unwrap();
    ureq::get(&format!("{base}{path}"))
        .set("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap()
        .into_json()
        .unwrap()
}

/// What the running node of `dir` holds of the records whose case
/// references `acked` it acknowledged.
pub(crate) struct Held {
    pub(crate) records: serde_json::Value,
    pub(crate) duplicated: usize,
    pub(crate) lost: usize,
    /// Stored though never acknowledged (requests in flight at a crash).
    pub(crate) unacknowledged_stored: usize,
    pub(crate) audit_ok: bool,
}

pub(crate) fn held(dir: &str, acked: &[String]) -> Held {
    let records = api_get(dir, "/v1/records");
    let cases: Vec<&str> = records.as_array().unwrap().iter().map(|r| r["case_ref"].as_str().unwrap()).collect();
    let unique: std::collections::HashSet<&str> = cases.iter().copied().collect();
    let lost = acked.iter().filter(|c| !unique.contains(c.as_str())).count();
    Held {
        duplicated: cases.len() - unique.len(),
        unacknowledged_stored: unique.len() - (acked.len() - lost),
        lost,
        audit_ok: api_get(dir, "/v1/audit/verify")["ok"] == true,
        records,
    }
}

pub(crate) fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub(crate) fn pubkey(keygen_stdout: &str) -> String {
    keygen_stdout.lines().find_map(|l| l.split(": ").nth(1).filter(|k| k.len() == 64)).unwrap().trim().to_string()
}

/// Writes a policy entry file (`[[extractor]]`, as `vigil calibrate`
/// writes them) for a 128-d face extractor `id` with one threshold.
pub(crate) fn face_entry(path: &str, id: &str, cosine: f32) {
    let entry = format!(
        "[[extractor]]\nid = \"{id}\"\nmodality = \"face\"\ndim = 128\nprotected_bits = 512\n\
         [[extractor.thresholds]]\nband = \"possible\"\ncosine = {cosine}\nfmr = 1e-6\n"
    );
    std::fs::write(path, entry).unwrap();
}

pub(crate) fn write_template(path: &PathBuf, file: &vigil_matcher::TemplateFile) {
    std::fs::write(path, serde_json::to_string(file).unwrap()).unwrap();
}

/// `vigil init`s one data directory per (name, kind) under `root`, and a
/// roster of all of them signed by two stewards, copied into each.
pub(crate) fn federation(root: &Path, orgs: &[(&str, &str)]) -> Vec<String> {
    let s = |x: &str| root.join(x).to_str().unwrap().to_string();
    let k1 = pubkey(&ok(&["roster", "keygen", "--out", &s("steward1.key")]));
    let k2 = pubkey(&ok(&["roster", "keygen", "--out", &s("steward2.key")]));
    let epoch_file = s("epoch.hex");
    std::fs::write(&epoch_file, "cd".repeat(32)).unwrap();
    let mut dirs = Vec::new();
    for (name, kind) in orgs {
        let dir = s(&format!("{kind}-data"));
        let (port, api) = (free_port(), free_port());
        let (listen, api) = (format!("/ip4/127.0.0.1/tcp/{port}"), format!("127.0.0.1:{api}"));
        ok(&[
            "init",
            "--org",
            name,
            "--kind",
            kind,
            "--data",
            &dir,
            "--listen",
            &listen,
            "--api",
            &api,
            "--steward",
            &k1,
            "--steward",
            &k2,
            "--threshold",
            "2",
            "--epoch-secret-file",
            &epoch_file,
        ]);
        dirs.push(dir);
    }
    let roster = s("roster.json");
    ok(&["roster", "new", "--federation", "drill", "--out", &roster]);
    for d in &dirs {
        ok(&["roster", "add", "--roster", &roster, "--member-file", &format!("{d}/org.json")]);
    }
    ok(&["roster", "sign", "--roster", &roster, "--key", &s("steward1.key")]);
    ok(&["roster", "sign", "--roster", &roster, "--key", &s("steward2.key")]);
    for d in &dirs {
        std::fs::copy(&roster, format!("{d}/roster.json")).unwrap();
    }
    dirs
}

//! The local API's authentication, as real `vigil serve` processes: one
//! check in front of every route and unknown path, before any body is
//! read, and no daemon at all without a token fit to be a secret.

mod common;

use common::*;
use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The status code of a request (ureq reports 4xx/5xx as errors).
fn status(r: Result<ureq::Response, ureq::Error>) -> u16 {
    match r {
        Ok(resp) => resp.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("no answer: {e}"),
    }
}

/// Runs `vigil serve` on `dir` and returns its stderr if it exits (with
/// failure) within 20 s; panics if it keeps running.
fn serve_refuses(dir: &str) -> String {
    let mut child = vigil()
        .args(["serve", "--data", dir])
        .env("VIGIL_PASSPHRASE", PASSPHRASE)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let mut err = String::new();
            child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            assert!(!st.success(), "serve must fail: {err}");
            return err;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`vigil serve` kept running with the token of {dir}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn every_route_and_unknown_path_needs_the_token_before_the_body_is_read() {
    let root = tempfile::tempdir().unwrap();
    let dirs = federation(root.path(), &[("Shelter North", "ngo")]);
    let daemon = serve(Path::new(&dirs[0]));
    let (base, token) = vigil_node::datadir::api_access(Path::new(&dirs[0])).unwrap();
    let bearer = format!("Bearer {token}");
    // No header, a wrong token, an empty one: 401, whatever the route.
    for auth in [None, Some("Bearer wrong-token-wrong-token-wrong-token"), Some("Bearer "), Some("Basic abc")] {
        let get = |path: &str| {
            let r = ureq::get(&format!("{base}{path}"));
            status(match auth {
                Some(a) => r.set("Authorization", a).call(),
                None => r.call(),
            })
        };
        assert_eq!(get("/v1/status"), 401, "{auth:?}");
        assert_eq!(get("/v1/records"), 401, "{auth:?}");
        assert_eq!(get("/v1/metrics"), 401, "{auth:?}");
        assert_eq!(get("/v1/no-such-route"), 401, "an unknown path says nothing either ({auth:?})");
        // A malformed body is not parsed (was 422 with the parser's text).
        let post = ureq::post(&format!("{base}/v1/records")).set("Content-Type", "application/json");
        let post = match auth {
            Some(a) => post.set("Authorization", a),
            None => post,
        };
        assert_eq!(status(post.send_string("{not json")), 401, "{auth:?}");
    }
    // With the token: served, and the body is checked.
    assert_eq!(status(ureq::get(&format!("{base}/v1/status")).set("Authorization", &bearer).call()), 200);
    assert_eq!(status(ureq::get(&format!("{base}/v1/no-such-route")).set("Authorization", &bearer).call()), 404);
    let bad = ureq::post(&format!("{base}/v1/records"))
        .set("Authorization", &bearer)
        .set("Content-Type", "application/json")
        .send_string("{not json");
    assert_eq!(status(bad), 400);
    drop(daemon);
}

#[test]
fn serve_refuses_a_missing_empty_short_or_unreadable_token() {
    let root = tempfile::tempdir().unwrap();
    let dirs = federation(root.path(), &[("Metro Police", "police")]);
    let dir = &dirs[0];
    let token = Path::new(dir).join("api.token");
    std::fs::write(&token, "").unwrap();
    assert!(serve_refuses(dir).contains("is empty"), "empty");
    std::fs::write(&token, "  \n\t \n").unwrap();
    assert!(serve_refuses(dir).contains("is empty"), "whitespace only");
    std::fs::write(&token, "x").unwrap();
    let err = serve_refuses(dir);
    assert!(err.contains("1 characters; at least 32"), "{err}");
    std::fs::remove_file(&token).unwrap();
    let err = serve_refuses(dir);
    assert!(err.contains("cannot read the API token"), "{err}");
    std::fs::create_dir(&token).unwrap();
    let err = serve_refuses(dir);
    assert!(err.contains("cannot read the API token"), "a directory in its place: {err}");
    // A good token again: the daemon serves.
    std::fs::remove_dir(&token).unwrap();
    std::fs::write(&token, "ab".repeat(32)).unwrap();
    drop(serve(Path::new(dir)));
}

#[test]
fn idle_and_trickling_connections_are_closed_and_their_number_is_bounded() {
    use std::io::Write;
    use std::net::TcpStream;
    let root = tempfile::tempdir().unwrap();
    let dirs = federation(root.path(), &[("Eastgate Border Post", "border")]);
    let dir = &dirs[0];
    let cfg_path = Path::new(dir).join("vigil.toml");
    let mut cfg = vigil_config::NodeConfig::load(&cfg_path).unwrap();
    cfg.api.max_connections = 8;
    cfg.api.idle_timeout = Duration::from_secs(2);
    cfg.api.connection_lifetime = Duration::from_secs(4);
    std::fs::write(&cfg_path, cfg.to_commented_toml()).unwrap();
    let daemon = serve(Path::new(dir));
    let addr = cfg.api.listen.clone();
    // Closed (by the server) within `within`: a read gives EOF or an error.
    let closed_within = |s: &mut TcpStream, within: Duration| {
        s.set_read_timeout(Some(within)).unwrap();
        let mut b = [0u8; 64];
        loop {
            match s.read(&mut b) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    return false
                }
                Err(_) => return true,
            }
        }
    };
    // Twelve idle connections against a cap of eight: the ones beyond the
    // cap are closed at once (a permit may still be held for a moment by
    // the status probes that saw the daemon up, so count, not pick).
    let mut conns: Vec<TcpStream> = (0..12).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut open = Vec::new();
    for mut s in conns.drain(..) {
        if !closed_within(&mut s, Duration::from_millis(100)) {
            open.push(s);
        }
    }
    assert!(open.len() <= 8, "{} connections open, cap 8", open.len());
    // The idle ones are closed after the idle timeout, and the API serves again.
    for s in &mut open {
        assert!(closed_within(s, Duration::from_secs(4)), "an idle connection stays open");
    }
    assert!(run(&["status", "--data", dir]).status.success());
    // A request trickling in a byte every 0.5 s (never idle for 2 s) is
    // closed by the lifetime bound (4 s).
    let mut slow = TcpStream::connect(&addr).unwrap();
    let start = Instant::now();
    let mut closed = false;
    for b in b"GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaa".iter() {
        if slow.write_all(&[*b]).is_err() || closed_within(&mut slow, Duration::from_millis(500)) {
            closed = true;
            break;
        }
    }
    assert!(closed, "a trickling connection stays open");
    assert!(start.elapsed() < Duration::from_secs(8), "closed after {:?}", start.elapsed());
    drop(daemon);
}

//! A non-member opening connections as fast as it can, with a fresh key
//! (and a fresh port) every time, against a real `vigil serve`: the audit
//! log grows by a bounded number of aggregate entries, not one per
//! handshake (it grew by 1,003 entries for 1,000 handshakes before).

mod common;

use common::*;
use libp2p::core::transport::{DialOpts, PortUse};
use libp2p::core::{upgrade, Endpoint, Transport};
use libp2p::{identity, noise, tcp, yamux, Multiaddr};
use std::path::Path;
use std::time::{Duration, Instant};
use vigil_engine::audit::AuditEvent;
use vigil_node::store::AuditRecord;

const HANDSHAKES: usize = 1_000;
const INTERVAL: Duration = Duration::from_secs(2);

fn audit(dir: &str) -> Vec<AuditEvent> {
    let (base, token) = vigil_node::datadir::api_access(Path::new(dir)).unwrap();
    let records: Vec<AuditRecord> = ureq::get(&format!("{base}/v1/audit/export"))
        .set("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    records.into_iter().map(|r| r.entry.event).collect()
}

/// One Noise + Yamux handshake with a key made for it; whether it completed.
async fn handshake(addr: Multiaddr) -> bool {
    let key = identity::Keypair::generate_ed25519();
    let mut transport = tcp::tokio::Transport::new(tcp::Config::default())
        .upgrade(upgrade::Version::V1)
        .authenticate(noise::Config::new(&key).unwrap())
        .multiplex(yamux::Config::default());
    let dial = transport.dial(addr, DialOpts { role: Endpoint::Dialer, port_use: PortUse::New }).unwrap();
    matches!(tokio::time::timeout(Duration::from_secs(10), dial).await, Ok(Ok(_)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_fresh_identity_handshakes_add_a_bounded_number_of_audit_entries() {
    let root = tempfile::tempdir().unwrap();
    let dirs = federation(root.path(), &[("Metro Police", "police")]);
    let dir = dirs[0].clone();
    let cfg_path = Path::new(&dir).join("vigil.toml");
    let mut cfg = vigil_config::NodeConfig::load(&cfg_path).unwrap();
    cfg.network.refusals_audit_interval = INTERVAL;
    std::fs::write(&cfg_path, cfg.to_commented_toml()).unwrap();
    let addr: Multiaddr = cfg.network.listen[0].parse().unwrap();
    let daemon = serve(Path::new(&dir));
    let before = audit(&dir).len();

    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let addr = addr.clone();
        tasks.spawn(async move {
            let mut done = 0;
            for _ in 0..HANDSHAKES / 8 {
                done += usize::from(handshake(addr.clone()).await);
            }
            done
        });
    }
    let mut completed = 0;
    while let Some(n) = tasks.join_next().await {
        completed += n.unwrap();
    }
    let flood = start.elapsed();
    // Let the last interval's aggregate entry be written.
    tokio::time::sleep(INTERVAL * 2).await;
    let events = audit(&dir);
    let added = events.len() - before;
    let refused: Vec<(u64, u64)> = events
        .iter()
        .filter_map(|e| match e {
            AuditEvent::ConnectionsRefused { sources, other_refusals, .. } => {
                Some((sources.iter().map(|s| s.count).sum(), *other_refusals))
            }
            _ => None,
        })
        .collect();
    let counted: u64 = refused.iter().map(|(named, other)| named + other).sum();
    println!(
        "{HANDSHAKES} handshakes ({completed} completed Noise) in {flood:?}: {added} audit entries, \
         {counted} refusals counted in {} aggregate entries",
        refused.len()
    );
    // One entry per interval at most (plus one for the interval in progress).
    let bound = (start.elapsed().as_secs_f64() / INTERVAL.as_secs_f64()).ceil() as usize + 1;
    assert!(added <= bound, "{added} audit entries for {HANDSHAKES} handshakes (bound {bound})");
    assert!(!refused.is_empty(), "the refusals are audited");
    assert!(counted as usize >= HANDSHAKES / 2, "refusals are counted, not dropped: {counted}");
    assert!(events.iter().all(|e| !matches!(e, AuditEvent::ConnectionRefused { .. })), "no entry per connection");
    drop(daemon);
}

/// Keeps about `n` idle TCP connections (no handshake bytes) from
/// `source` to `addr` open until `stop` is set, each for about 3 s.
fn idle_sockets(
    source: &str,
    addr: std::net::SocketAddr,
    n: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let source: std::net::IpAddr = source.parse().unwrap();
    let open = || {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
        s.bind(&std::net::SocketAddr::new(source, 0).into()).ok()?;
        s.connect_timeout(&addr.into(), Duration::from_secs(1)).ok()?;
        Some((Instant::now(), s))
    };
    let mut socks = std::collections::VecDeque::new();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        while socks.front().is_some_and(|(t, _): &(Instant, socket2::Socket)| t.elapsed() > Duration::from_secs(3)) {
            socks.pop_front();
        }
        while socks.len() < n {
            match open() {
                Some(s) => socks.push_back(s),
                None => break,
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_from_one_address_do_not_keep_others_out() {
    let root = tempfile::tempdir().unwrap();
    let dirs = federation(root.path(), &[("Metro Police", "police")]);
    let dir = dirs[0].clone();
    let cfg = vigil_config::NodeConfig::load(&Path::new(&dir).join("vigil.toml")).unwrap();
    let addr: Multiaddr = cfg.network.listen[0].parse().unwrap();
    let port = addr.iter().find_map(|p| if let libp2p::multiaddr::Protocol::Tcp(p) = p { Some(p) } else { None });
    let socket = std::net::SocketAddr::from(([127, 0, 0, 1], port.unwrap()));
    let daemon = serve(Path::new(&dir));
    // 300 idle sockets, held open all the time, from another loopback
    // address (all of 127.0.0.0/8 is loopback): more than libp2p's 256
    // handshake slots in all.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = {
        let stop = stop.clone();
        std::thread::spawn(move || idle_sockets("127.0.0.2", socket, 300, stop))
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Handshakes from elsewhere still complete: the idle address holds at
    // most network.max_pending_per_ip (8) slots.
    let mut completed = 0;
    for _ in 0..5 {
        completed += usize::from(handshake(addr.clone()).await);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flood.join().unwrap();
    assert_eq!(completed, 5, "handshakes from 127.0.0.1 were kept out by idle sockets from 127.0.0.2");
    drop(daemon);
}

//! End-to-end tests with real nodes: libp2p over loopback TCP, sealed redb
//! stores on disk, the real roster, matchers and audit log.

use std::time::Duration;
use vigil_config::NodeConfig;
use vigil_crypto::{sign_body, Identity};
use vigil_engine::audit::AuditEvent;
use vigil_engine::model::{AlertStatus, HitRole};
use vigil_engine::{alert_id, Enrolment};
use vigil_matcher::{synth::Population, EpochSecret, ProtectedMatcher};
use vigil_node::now_ms;
use vigil_node::NodeHandle;
use vigil_protocol::{
    domain, encode, AlertBody, AlertEnvelope, Category, OrgKind, SignedAlert, SignedWithdrawal, Tag, Withdrawal,
};
use vigil_testkit::*;

const DAY: u64 = 24 * 3600 * 1000;

fn pop() -> Population {
    Population::new(42, "vigil-synth-128", 50)
}

async fn enrol(h: &NodeHandle, pop: &Population, person: usize, capture: u64, case: &str) -> u64 {
    h.enrol(Enrolment {
        pad: None,
        template: pop.sample(person, capture),
        category: Category::Found,
        case_ref: case.into(),
        consent: "consent form 7b".into(),
        retain_until_ms: now_ms() + 30 * DAY,
        regime: None,
    })
    .await
    .unwrap()
}

async fn publish(h: &NodeHandle, pop: &Population, person: usize, case: &str) -> vigil_protocol::AlertId {
    h.publish_alert(pop.sample(person, 0), Category::Missing, case.into(), now_ms() + 7 * DAY).await.unwrap()
}

async fn has_alert(h: &NodeHandle, id: vigil_protocol::AlertId) -> bool {
    h.alerts().await.unwrap().iter().any(|a| a.id == id)
}

async fn wait_alert(h: &NodeHandle, id: vigil_protocol::AlertId) -> bool {
    wait_for(PATIENCE, || async move { has_alert(h, id).await.then_some(()) }).await.is_some()
}

fn three() -> Vec<OrgSpec> {
    vec![
        OrgSpec::new("Shelter North", OrgKind::Ngo),
        OrgSpec::new("Metro Police", OrgKind::Police),
        OrgSpec::new("Eastgate Border", OrgKind::Border),
    ]
}

fn epoch_of(fed: &LocalFederation) -> EpochSecret {
    // Sealed in the data directory, not in vigil.toml.
    let on_disk = NodeConfig::load(&fed.nodes[0].dir.join("vigil.toml")).unwrap();
    assert!(on_disk.federation.epoch_secret.is_none());
    let cfg = fed.nodes[0].open().unwrap().config;
    let bytes = hex::decode(cfg.federation.epoch_secret.unwrap()).unwrap();
    EpochSecret::new(bytes.try_into().unwrap())
}

/// An alert signed by `signer` but claiming `issuer`, created at `created`.
fn hand_made_alert(
    fed: &LocalFederation,
    signer: &Identity,
    issuer: vigil_protocol::OrgId,
    seq: u64,
    created: u64,
) -> Vec<u8> {
    let probe = ProtectedMatcher::new(epoch_of(fed))
        .protect(vigil_matcher::extractor(vigil_matcher::SYNTH).unwrap(), &pop().sample(3, 0))
        .unwrap();
    let body = AlertBody {
        issuer,
        seq,
        // The first entry of the issuer's log.
        prev: [0; 32],
        category: Category::Missing,
        created_at_ms: created,
        expires_at_ms: created + 7 * DAY,
        probe: Some(probe),
        encrypted: None,
    };
    let signature = vigil_crypto::sign_alert(signer, &body).unwrap();
    encode(Tag::Gossip, &AlertEnvelope::Publish(SignedAlert { body, signature }), 16 * 1024).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_alert_reaches_all_and_hits_reach_issuer_and_holder_and_survive_restart() {
    // Alerts with protected templates: the holder decides the match itself.
    let opts = FederationOptions {
        tweak: Box::new(|_, c| c.alerts.form = vigil_config::AlertForm::Protected),
        ..Default::default()
    };
    let mut fed = LocalFederation::start(&three(), opts).await.unwrap();
    fed.wait_connected(&[0, 1, 2], PATIENCE).await.unwrap();
    let pop = pop();
    let (ngo, police, border) = (0, 1, 2);
    // Border holds person 5 and some others before the alert exists.
    for p in 10..20 {
        enrol(&fed.nodes[border].handle, &pop, p, 1, "EG-x").await;
    }
    let held = enrol(&fed.nodes[border].handle, &pop, 5, 1, "EG-5").await;
    let alert = publish(&fed.nodes[ngo].handle, &pop, 5, "SN-0001").await;
    assert!(wait_alert(&fed.nodes[police].handle, alert).await, "alert did not reach police");
    assert!(wait_alert(&fed.nodes[border].handle, alert).await, "alert did not reach border");

    // New alert vs existing gallery: a hit at the holder and the issuer.
    let at_issuer = wait_hits(&fed.nodes[ngo].handle, HitRole::Issuer, 1).await.expect("issuer got no hit");
    let at_holder = wait_hits(&fed.nodes[border].handle, HitRole::Holder, 1).await.expect("holder has no hit");
    assert_eq!(at_issuer.len(), 1, "exactly one record matches");
    assert_eq!(at_issuer[0].handle, at_holder[0].handle);
    assert_eq!(at_issuer[0].peer, fed.nodes[border].handle.org);
    assert_eq!(at_holder[0].peer, fed.nodes[ngo].handle.org);
    assert_eq!(at_holder[0].record, Some(held));
    assert!(wait_for(PATIENCE, || async {
        fed.nodes[border].handle.hits().await.ok()?.iter().all(|h| h.delivered).then_some(())
    })
    .await
    .is_some());
    // Police holds nothing matching.
    assert!(fed.nodes[police].handle.hits().await.unwrap().is_empty());

    // New record vs standing alert.
    let later = enrol(&fed.nodes[police].handle, &pop, 5, 2, "MP-5").await;
    let at_issuer = wait_hits(&fed.nodes[ngo].handle, HitRole::Issuer, 2).await.expect("standing alert did not match");
    assert!(at_issuer.iter().any(|h| h.peer == fed.nodes[police].handle.org));
    let police_hits = fed.nodes[police].handle.hits().await.unwrap();
    assert_eq!(police_hits.len(), 1);
    assert_eq!(police_hits[0].record, Some(later));

    // Restart the issuer and a holder from their data directories.
    let before: Vec<_> = fed.nodes.iter().map(|n| n.handle.clone()).collect();
    let mut snapshot = Vec::new();
    for h in &before {
        let s = h.status().await.unwrap();
        snapshot.push((s.gallery, h.alerts().await.unwrap().len(), h.hits().await.unwrap().len()));
    }
    fed.restart(ngo).await.unwrap();
    fed.restart(border).await.unwrap();
    for (i, n) in fed.nodes.iter().enumerate() {
        let s = n.handle.status().await.unwrap();
        let now = (s.gallery, n.handle.alerts().await.unwrap().len(), n.handle.hits().await.unwrap().len());
        assert_eq!(now, snapshot[i], "node {i} lost state across restart");
        assert_eq!(s.roster_version, Some(1));
        assert!(n.handle.audit_verify().await.unwrap().is_ok(), "audit chain of node {i} broken");
    }
    // The standing alert still matches at the restarted holder.
    fed.wait_connected(&[0, 1, 2], PATIENCE).await.unwrap();
    enrol(&fed.nodes[border].handle, &pop, 5, 3, "EG-5b").await;
    let at_issuer = wait_hits(&fed.nodes[ngo].handle, HitRole::Issuer, 3).await.expect("no hit after restart");
    assert_eq!(at_issuer.len(), 3);
    // No false hits anywhere: every holder hit is a record of person 5.
    let border_hits = fed.nodes[border].handle.hits().await.unwrap();
    assert_eq!(border_hits.len(), 2);
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_member_is_refused_at_connection_time() {
    let mut specs = three();
    let mut outsider = OrgSpec::new("Unlisted Org", OrgKind::Other);
    outsider.member = false;
    specs.push(outsider);
    const EVERY: Duration = Duration::from_millis(300);
    let opts =
        FederationOptions { tweak: Box::new(|_, c| c.network.refusals_audit_interval = EVERY), ..Default::default() };
    let started = std::time::Instant::now();
    let fed = LocalFederation::start(&specs, opts).await.unwrap();
    fed.wait_connected(&[0, 1, 2], PATIENCE).await.unwrap();
    let refused = |e: &AuditEvent| {
        matches!(e, AuditEvent::ConnectionsRefused { sources, .. }
            if sources.iter().any(|s| s.reason == "not a roster member" && s.source == "127.0.0.1"))
    };
    for i in 0..3 {
        wait_audit(&fed.nodes[i].handle, refused).await.unwrap_or_else(|| panic!("node {i} did not audit the refusal"));
        let s = fed.nodes[i].handle.status().await.unwrap();
        assert!(!s.connected.contains(&fed.nodes[3].handle.org));
    }
    let alert = publish(&fed.nodes[0].handle, &pop(), 1, "SN-7").await;
    assert!(wait_alert(&fed.nodes[2].handle, alert).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!has_alert(&fed.nodes[3].handle, alert).await, "a non-member received an alert");
    assert!(fed.nodes[3].handle.status().await.unwrap().connected.is_empty());
    // It keeps dialing; each member counts its refusals and audits them
    // in one entry per interval at most (an attempt must not cost an
    // audit entry).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let bound = (started.elapsed().as_secs_f64() / EVERY.as_secs_f64()).ceil() as usize + 1;
    for i in 0..3 {
        let events = audit_events(&fed.nodes[i].handle).await;
        let entries = events.iter().filter(|e| matches!(e, AuditEvent::ConnectionsRefused { .. })).count();
        assert!(entries >= 1 && entries <= bound, "node {i}: {entries} entries, bound {bound}");
    }
    fed.shutdown().await;
}

/// A (hub, listed) <- C (unlisted) and A <- M (unlisted, malicious member):
/// C can only learn what M sends through A's forwarding.
fn hub_specs() -> Vec<OrgSpec> {
    let mut c = OrgSpec::new("Coast Guard", OrgKind::Border);
    c.listed_addr = false;
    let mut m = OrgSpec::new("Compromised Member", OrgKind::Ngo);
    m.listed_addr = false;
    vec![OrgSpec::new("Hub Police", OrgKind::Police), c, m]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_stale_and_replayed_alerts_are_rejected_and_not_forwarded() {
    let fed = LocalFederation::start(&hub_specs(), FederationOptions::default()).await.unwrap();
    let (a, c, m) = (0, 1, 2);
    fed.wait_connected(&[a, c], PATIENCE).await.unwrap();
    fed.wait_connected(&[a, m], PATIENCE).await.unwrap();
    let m_id = fed.nodes[m].identity.clone();
    let a_org = fed.nodes[a].handle.org;
    let m_org = fed.nodes[m].handle.org;

    // 1. Forged: claims to be the hub's alert, signed by M.
    let forged = hand_made_alert(&fed, &m_id, a_org, 1, now_ms());
    fed.nodes[m].handle.raw_publish(forged.clone()).await.unwrap();
    let ev = wait_audit(
        &fed.nodes[a].handle,
        |e| matches!(e, AuditEvent::MessageRejected { reason, .. } if reason.starts_with("forged alert")),
    )
    .await
    .expect("hub did not reject the forged alert");
    assert!(matches!(ev, AuditEvent::MessageRejected { from, .. } if from == m_org.to_hex()));

    // 2. Stale (a replay of an old alert): outside the replay window.
    let stale = hand_made_alert(&fed, &m_id, m_org, 1, now_ms() - 2 * DAY);
    fed.nodes[m].handle.raw_publish(stale).await.unwrap();
    wait_audit(
        &fed.nodes[a].handle,
        |e| matches!(e, AuditEvent::MessageRejected { reason, .. } if reason.starts_with("stale or replayed")),
    )
    .await
    .expect("hub did not reject the stale alert");

    // 3. A valid alert from M does travel through the hub to C, so the
    //    absence of the bad ones at C is due to validation, not topology.
    let good = hand_made_alert(&fed, &m_id, m_org, 1, now_ms());
    fed.nodes[m].handle.raw_publish(good.clone()).await.unwrap();
    let env: AlertEnvelope = vigil_protocol::decode(Tag::Gossip, &good, 1 << 20).unwrap();
    let AlertEnvelope::Publish(good_alert) = env else { unreachable!() };
    let good_id = alert_id(&good_alert.body);
    assert!(wait_alert(&fed.nodes[c].handle, good_id).await, "a valid alert was not forwarded by the hub");
    let c_alerts = fed.nodes[c].handle.alerts().await.unwrap();
    assert_eq!(c_alerts.len(), 1, "C received a rejected alert: {c_alerts:?}");
    let c_events = audit_events(&fed.nodes[c].handle).await;
    assert!(!c_events.iter().any(|e| matches!(e, AuditEvent::MessageRejected { .. })), "C saw the bad alerts");

    // 4. Replay of a withdrawn alert does not bring it back: M withdraws
    //    its alert, then publishes the original bytes again.
    let body = Withdrawal { issuer: m_org, seq: 2, prev: good_id.0, alert: good_id, withdrawn_at_ms: now_ms() };
    let signature = sign_body(&m_id, domain::WITHDRAWAL, &body).unwrap();
    let withdraw =
        encode(Tag::Gossip, &AlertEnvelope::Withdraw(SignedWithdrawal { body, signature }), 16 * 1024).unwrap();
    fed.nodes[m].handle.raw_publish(withdraw).await.unwrap();
    let withdrawn = |h: NodeHandle| async move {
        h.alerts().await.ok()?.iter().find(|v| v.id == good_id && v.status == AlertStatus::Withdrawn).map(|_| ())
    };
    assert!(wait_for(PATIENCE, || withdrawn(fed.nodes[c].handle.clone())).await.is_some(), "withdrawal not forwarded");
    // Either M's own gossipsub refuses the duplicate, or the receivers ignore it.
    let _ = fed.nodes[m].handle.raw_publish(good).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in [a, c] {
        assert!(withdrawn(fed.nodes[i].handle.clone()).await.is_some(), "replay re-activated the alert at node {i}");
    }
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_malformed_frames_penalise_the_sender_and_the_node_keeps_serving() {
    let opts = FederationOptions {
        // The attacker allows itself frames of 1 MiB; the others keep 256 KiB.
        tweak: Box::new(|i, cfg| {
            if i == 2 {
                cfg.network.max_frame_bytes = 1 << 20;
            }
        }),
        ..Default::default()
    };
    let mut fed = LocalFederation::start(&hub_specs(), opts).await.unwrap();
    let (a, c, m) = (0, 1, 2);
    fed.wait_connected(&[a, c], PATIENCE).await.unwrap();
    fed.wait_connected(&[a, m], PATIENCE).await.unwrap();
    let a_org = fed.nodes[a].handle.org;
    let m_hex = fed.nodes[m].handle.org.to_hex();

    fed.nodes[m].handle.raw_request(a_org, b"not a vigil frame".to_vec()).await.unwrap();
    wait_audit(&fed.nodes[a].handle, |e| matches!(e, AuditEvent::PeerPenalised { peer, strikes: 1, reason } if *peer == m_hex && reason.starts_with("undecodable request")))
        .await
        .expect("malformed frame not penalised");
    for k in 2..=3u32 {
        fed.nodes[m].handle.raw_request(a_org, vec![7u8; 300_000]).await.unwrap();
        wait_audit(&fed.nodes[a].handle, |e| matches!(e, AuditEvent::PeerPenalised { peer, strikes, reason } if *peer == m_hex && *strikes == k && reason.contains("oversized frame")))
            .await
            .unwrap_or_else(|| panic!("oversized frame {k} not penalised"));
    }
    wait_audit(&fed.nodes[a].handle, |e| matches!(e, AuditEvent::PeerBlocked { peer } if *peer == m_hex))
        .await
        .expect("attacker not blocked after 3 strikes");
    let m_org = fed.nodes[m].handle.org;
    let cut = wait_for(PATIENCE, || async {
        (!fed.nodes[a].handle.status().await.ok()?.connected.contains(&m_org)).then_some(())
    })
    .await;
    assert!(cut.is_some(), "blocked attacker still connected");
    let blocked = fed.nodes[a].handle.status().await.unwrap().blocked;
    assert_eq!(blocked.iter().map(|(o, _)| *o).collect::<Vec<_>>(), vec![m_org]);
    assert!(blocked[0].1 > now_ms() + 23 * 3600 * 1000, "blocked for network.block_for (24 h)");

    // A restart of the hub does not lift the block (it did: strikes and
    // blocks lived in memory only).
    fed.restart(a).await.unwrap();
    fed.wait_connected(&[a, c], PATIENCE).await.unwrap();
    assert_eq!(fed.nodes[a].handle.status().await.unwrap().blocked, blocked);
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert!(!fed.nodes[a].handle.status().await.unwrap().connected.contains(&m_org), "blocked attacker reconnected");

    // The hub still serves: an alert from C reaches it and hits flow.
    let pop = pop();
    enrol(&fed.nodes[a].handle, &pop, 4, 1, "HP-4").await;
    let alert = publish(&fed.nodes[c].handle, &pop, 4, "CG-4").await;
    assert!(wait_alert(&fed.nodes[a].handle, alert).await);
    assert!(wait_hits(&fed.nodes[c].handle, HitRole::Issuer, 1).await.is_some());
    assert!(fed.nodes[a].handle.audit_verify().await.unwrap().is_ok());
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_template_or_case_detail_on_the_wire_or_unsealed_on_disk() {
    let logs: Vec<WireLog> = (0..3).map(|_| WireLog::default()).collect();
    let taps = logs.clone();
    let opts = FederationOptions { tap: Box::new(move |i| Some(taps[i].tap())), ..Default::default() };
    let mut fed = LocalFederation::start(&three(), opts).await.unwrap();
    fed.wait_connected(&[0, 1, 2], PATIENCE).await.unwrap();
    let pop = pop();
    let cases = ["CASE-SECRET-ALPHA", "CASE-SECRET-BRAVO", "CASE-SECRET-CHARLIE"];
    enrol(&fed.nodes[2].handle, &pop, 6, 1, cases[0]).await;
    enrol(&fed.nodes[1].handle, &pop, 8, 1, cases[1]).await;
    publish(&fed.nodes[0].handle, &pop, 6, cases[2]).await;
    wait_hits(&fed.nodes[0].handle, HitRole::Issuer, 1).await.expect("no hit");
    // Every template that took part, as quantised bytes and as float bytes.
    let templates = [pop.sample(6, 1), pop.sample(8, 1), pop.sample(6, 0)];
    let files = [pop.sample_file(6, 1), pop.sample_file(8, 1), pop.sample_file(6, 0)];
    let mut needles: Vec<Vec<u8>> = Vec::new();
    for t in &templates {
        let bytes: Vec<u8> = t.vector.iter().map(|x| *x as u8).collect();
        needles.extend(bytes.chunks(16).map(|c| c.to_vec()));
    }
    for f in &files {
        let bytes: Vec<u8> = f.vector.iter().flat_map(|x| x.to_le_bytes()).collect();
        needles.extend(bytes.chunks(16).map(|c| c.to_vec()));
    }
    for c in cases {
        needles.push(c.as_bytes().to_vec());
    }
    needles.push(b"consent form 7b".to_vec());
    let mut sent = 0;
    for (i, log) in logs.iter().enumerate() {
        for (proto, bytes) in log.payloads() {
            sent += 1;
            for n in &needles {
                assert!(!contains(&bytes, n), "node {i} sent template or case bytes on {proto}");
            }
        }
    }
    assert!(sent >= 2, "the tap saw too little traffic ({sent}) to mean anything");
    // The tap does see protocol bytes: the alert's own id bytes would be found.
    for i in 0..3 {
        fed.stop(i).await;
    }
    let mut scanned = 0;
    for n in &fed.nodes {
        for entry in walk(&n.dir) {
            let bytes = std::fs::read(&entry).unwrap();
            scanned += bytes.len();
            for needle in &needles {
                assert!(!contains(&bytes, needle), "{} holds template or case bytes unsealed", entry.display());
            }
        }
    }
    assert!(scanned > 10_000, "scanned only {scanned} bytes of data files");
    // Sanity check of the scanner itself: a plaintext copy would be caught.
    let canary = fed.nodes[0].dir.join("canary");
    std::fs::write(&canary, [b"xx".as_slice(), cases[0].as_bytes()].concat()).unwrap();
    assert!(walk(&fed.nodes[0].dir).iter().any(|p| contains(&std::fs::read(p).unwrap(), cases[0].as_bytes())));
    fed.start_again(0).await.unwrap();
    fed.nodes[0].handle.shutdown().await;
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

//! Confidence bands end to end, with real nodes: the stewards sign a
//! policy whose extractor has three thresholds (possible, probable,
//! strong); a holder answers an encrypted alert with one answer per band;
//! the issuer's hits carry the highest band each record reached, exactly
//! as the plain matcher puts them, and no score; an identification query
//! answered in row form reports bands too; audit and store keep them. A
//! protected alert's hit notices carry the band of their Hamming distance.

use std::collections::BTreeMap;
use std::time::Duration;
use vigil_engine::audit::AuditEvent;
use vigil_engine::model::HitRole;
use vigil_matcher::synth::Population;
use vigil_matcher::{Band, Policy, Threshold};
use vigil_protocol::{Category, OrgKind};
use vigil_testkit::*;

const DAY: u64 = 24 * 3600 * 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_encrypted_alert_reports_each_hit_in_the_band_its_record_reached() {
    let pop = Population::new(17, "vigil-synth-128", 60);
    let target = 7;
    let probe = pop.sample(target, 0);
    // Six captures of the missing person at the holder and 40 other people.
    let held: Vec<_> = (1..7).map(|k| pop.sample(target, k)).chain((20..60).map(|p| pop.sample(p, 1))).collect();
    let mut genuine: Vec<i32> = held[..6].iter().map(|t| vigil_matcher::dot(&probe.vector, &t.vector)).collect();
    genuine.sort_unstable();
    let impostor_max = held[6..].iter().map(|t| vigil_matcher::dot(&probe.vector, &t.vector)).max().unwrap();
    // Thresholds between the genuine scores, so that every band is reached
    // and no record sits on a threshold (the encrypted error stays far below 1).
    let cut = |a: i32, b: i32| (a + b) as f32 / 2.0 / (127.0 * 127.0);
    assert!(genuine[0] > impostor_max, "{genuine:?} against {impostor_max}");
    let mut ex = vigil_matcher::builtin().extractors[0].clone();
    ex.thresholds = vec![
        Threshold { band: Band::Possible, cosine: cut(impostor_max, genuine[0]), fmr: 1e-3, fewer_fingers: vec![] },
        Threshold { band: Band::Probable, cosine: cut(genuine[1], genuine[2]), fmr: 1e-4, fewer_fingers: vec![] },
        Threshold { band: Band::Strong, cosine: cut(genuine[3], genuine[4]), fmr: 1e-5, fewer_fingers: vec![] },
    ];
    let scores = ex.score_thresholds();
    let band_of = |s: i32| scores.iter().rposition(|t| s >= *t).map(|b| ex.thresholds[b].band);
    let mut want: BTreeMap<Band, usize> = BTreeMap::new();
    for t in &held {
        if let Some(b) = band_of(vigil_matcher::dot(&probe.vector, &t.vector)) {
            *want.entry(b).or_default() += 1;
        }
    }
    assert_eq!(want.values().sum::<usize>(), 6, "{want:?}");
    assert_eq!(want.len(), 3, "every band is reached: {want:?}");

    let specs = [OrgSpec::new("Shelter North", OrgKind::Ngo), OrgSpec::new("Eastgate Border Post", OrgKind::Border)];
    let mut fed = LocalFederation::start(&specs, FederationOptions::default()).await.unwrap();
    fed.wait_connected(&[0, 1], PATIENCE).await.unwrap();
    let policy = Policy { version: 1, extractors: vec![ex.clone()] };
    policy.validate().unwrap();
    fed.apply_policy(policy, 0, PATIENCE).await.unwrap();
    let (issuer, holder) = (fed.nodes[0].handle.clone(), fed.nodes[1].handle.clone());
    for (i, t) in held.iter().enumerate() {
        holder.enrol(found(t.clone(), format!("EG-{i}"))).await.unwrap();
    }
    issuer.publish_alert(probe.clone(), Category::Missing, "SN-77".into(), now() + DAY).await.unwrap();
    let hits = wait_hits(&issuer, HitRole::Issuer, 6).await.expect("six hits at the issuer");
    let got = |hits: &[vigil_engine::model::StoredHit]| {
        let mut got: BTreeMap<Band, usize> = BTreeMap::new();
        for h in hits.iter().filter(|h| h.role == HitRole::Issuer) {
            *got.entry(h.band.expect("every hit has its band")).or_default() += 1;
        }
        got
    };
    assert_eq!(got(&hits), want, "bands as the plain matcher puts them");
    // Nothing more arrives (no impostor reached the first threshold).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(issuer.hits().await.unwrap().iter().filter(|h| h.role == HitRole::Issuer).count(), 6);
    // The audit names each hit's band; the holder learnt none.
    let audited = audit_events(&issuer).await;
    let banded = audited.iter().filter(|e| matches!(e, AuditEvent::HitReceivedInBand { .. })).count();
    assert_eq!(banded, 6);
    assert!(holder.hits().await.unwrap().iter().all(|h| h.band.is_none()));
    // An identification query: the member knows the gallery's size now,
    // answers in row form, with bands.
    let report = issuer.identify(probe.clone(), "second sighting".into(), "GDPR art. 6(1)(d)".into()).await.unwrap();
    let outcome = &report.peers[0];
    assert_ne!(outcome.form, "column", "{outcome:?}");
    let mut by_query: BTreeMap<Band, usize> = BTreeMap::new();
    for b in &outcome.bands {
        *by_query.entry(b.expect("a banded answer")).or_default() += 1;
    }
    assert_eq!((outcome.hits.len(), by_query), (6, want.clone()), "{outcome:?}");
    // The bands are stored: a restart reads them back.
    fed.restart(0).await.unwrap();
    let stored = fed.nodes[0].handle.hits().await.unwrap();
    let alert_hits: Vec<_> = stored.iter().filter(|h| h.source.alert().is_some()).cloned().collect();
    assert_eq!(got(&alert_hits), want);
    let query_hits: Vec<_> = stored.into_iter().filter(|h| h.role == HitRole::Prober).collect();
    assert_eq!(query_hits.iter().filter(|h| h.band.is_some()).count(), 6);
    fed.shutdown().await;
}

/// The same with protected templates: the holder compares in the clear
/// (keyed projections) and its hit notice names the band the Hamming
/// distance reaches (`vigil/v1/hit-band`); the issuer stores and audits it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_protected_alert_reports_each_hit_in_the_band_its_distance_reached() {
    use vigil_matcher::{EpochSecret, ProtectedMatcher};
    let pop = Population::new(23, "vigil-synth-128", 60);
    let probe = pop.sample(7, 0);
    let held: Vec<_> = (1..7).map(|k| pop.sample(7, k)).chain((20..60).map(|p| pop.sample(p, 1))).collect();
    let epoch = [0xab; 32];
    let mut m = ProtectedMatcher::new(EpochSecret::new(epoch));
    let mut ex = vigil_matcher::builtin().extractors[0].clone();
    let bits = ex.protected_bits as f32;
    let protect = |m: &mut ProtectedMatcher, t| m.protect(&ex, t).unwrap();
    let p = protect(&mut m, &probe);
    let distance = |m: &mut ProtectedMatcher, t| {
        let h = protect(m, t);
        p.bits.iter().zip(&h.bits).map(|(a, b)| (a ^ b).count_ones()).sum::<u32>()
    };
    let mut genuine: Vec<u32> = held[..6].iter().map(|t| distance(&mut m, t)).collect();
    genuine.sort_unstable();
    let nearest_impostor = held[6..].iter().map(|t| distance(&mut m, t)).min().unwrap();
    assert!(genuine[5] + 1 < nearest_impostor, "{genuine:?} against {nearest_impostor}");
    // A cosine whose Hamming bound is `d` exactly.
    let at = |d: u32| (std::f32::consts::PI * (d as f32 + 0.5) / bits).cos();
    let between = |a: u32, b: u32| at(a + (b - a) / 2);
    assert!(genuine[0] < genuine[1] && genuine[2] < genuine[3], "distinct distances: {genuine:?}");
    ex.thresholds = vec![
        Threshold {
            band: Band::Possible,
            cosine: between(genuine[5], nearest_impostor),
            fmr: 1e-3,
            fewer_fingers: vec![],
        },
        Threshold { band: Band::Probable, cosine: between(genuine[2], genuine[3]), fmr: 1e-4, fewer_fingers: vec![] },
        Threshold { band: Band::Strong, cosine: between(genuine[0], genuine[1]), fmr: 1e-5, fewer_fingers: vec![] },
    ];
    let p = m.protect(&ex, &probe).unwrap();
    let mut want: BTreeMap<Band, usize> = BTreeMap::new();
    for t in &held {
        if let Some(b) = ProtectedMatcher::band(&ex, &p, &m.protect(&ex, t).unwrap()).unwrap() {
            *want.entry(ex.thresholds[b].band).or_default() += 1;
        }
    }
    assert_eq!(want.values().sum::<usize>(), 6, "{want:?}");
    assert_eq!(want.len(), 3, "every band is reached: {want:?}");

    let specs = [OrgSpec::new("Shelter North", OrgKind::Ngo), OrgSpec::new("Eastgate Border Post", OrgKind::Border)];
    let opts = FederationOptions {
        tweak: Box::new(move |_, cfg| {
            cfg.federation.epoch_secret = Some(hex::encode(epoch));
            cfg.alerts.form = vigil_config::AlertForm::Protected;
        }),
        ..Default::default()
    };
    let fed = LocalFederation::start(&specs, opts).await.unwrap();
    fed.wait_connected(&[0, 1], PATIENCE).await.unwrap();
    fed.apply_policy(Policy { version: 1, extractors: vec![ex.clone()] }, 0, PATIENCE).await.unwrap();
    let (issuer, holder) = (fed.nodes[0].handle.clone(), fed.nodes[1].handle.clone());
    for (i, t) in held.iter().enumerate() {
        holder.enrol(found(t.clone(), format!("EG-{i}"))).await.unwrap();
    }
    issuer.publish_alert(probe.clone(), Category::Missing, "SN-78".into(), now() + DAY).await.unwrap();
    let hits = wait_hits(&issuer, HitRole::Issuer, 6).await.expect("six hits at the issuer");
    let bands = |hits: &[vigil_engine::model::StoredHit], role| {
        let mut got: BTreeMap<Band, usize> = BTreeMap::new();
        for h in hits.iter().filter(|h| h.role == role) {
            *got.entry(h.band.expect("every hit has its band")).or_default() += 1;
        }
        got
    };
    assert_eq!(bands(&hits, HitRole::Issuer), want, "bands as the Hamming distances put them");
    assert_eq!(bands(&holder.hits().await.unwrap(), HitRole::Holder), want, "the holder keeps what it told");
    let audited = audit_events(&issuer).await;
    assert_eq!(audited.iter().filter(|e| matches!(e, AuditEvent::HitReceivedInBand { .. })).count(), 6);
    fed.shutdown().await;
}

fn now() -> u64 {
    vigil_node::now_ms()
}

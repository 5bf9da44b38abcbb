//! Fingerprints end to end, with real nodes and encrypted matching: a
//! steward-signed policy lists a five-finger spectral-minutiae extractor;
//! the holder enrols ISO/IEC 19794-2 records (sent to its API in base64),
//! the issuer alerts with ANSI/NIST-ITL transactions of three of those
//! fingers (decoded minutiae, as the CLI sends them). The same capture
//! exchanged in the other standard is found; a stranger's is not. Probes
//! of some fingers carry only those and decide as the plain matcher does;
//! ten-finger extractors judge each pair by the fingers both hold.

use std::time::Duration;
use vigil_engine::model::{HitRole, HitSource};
use vigil_engine::receipts::MemberState;
use vigil_matcher::calibrate;
use vigil_matcher::minutiae::uncalibrated;
use vigil_matcher::synth::FingerPopulation;
use vigil_matcher::{Band, Extractor, Policy, Threshold};
use vigil_node::api::TemplateInput;
use vigil_node::now_ms;
use vigil_protocol::policy::Representation;
use vigil_protocol::{Category, OrgKind};
use vigil_records::{write_an2k, write_fmr, An2kFinger, FmrFlavour};
use vigil_testkit::*;

const DAY: u64 = 24 * 3600 * 1000;
const FINGERS: [u8; 5] = [1, 2, 3, 6, 7];

/// The extractor, centred (as `vigil calibrate` centres) on a separate
/// population's records.
fn extractor() -> Extractor {
    let train = FingerPopulation::new(77, 60);
    let reader = uncalibrated("smr-five", &FINGERS, Representation::SpectralMinutiaeV1);
    Extractor {
        model: "spectral minutiae over five fingers".into(),
        centre: Some(calibrate::centre(&train.samples(&FINGERS, &[0]), FINGERS.len())),
        thresholds: vec![Threshold { band: Band::Possible, cosine: 2.5, fmr: 1e-4, fewer_fingers: vec![] }],
        ..reader
    }
}

/// An NGO and a police unit, connected.
async fn shelter_and_police() -> LocalFederation {
    let specs = [OrgSpec::new("Shelter North", OrgKind::Ngo), OrgSpec::new("Metro Police", OrgKind::Police)];
    let fed = LocalFederation::start(&specs, FederationOptions::default()).await.unwrap();
    fed.wait_connected(&[0, 1], PATIENCE).await.unwrap();
    fed
}

/// A person's fingers as an ISO/IEC 19794-2 record, in base64 as the API takes it.
fn iso_input(pop: &FingerPopulation, person: usize, fingers: &[u8]) -> TemplateInput {
    use base64::Engine;
    let iso = write_fmr(FmrFlavour::Iso2005, (400, 500), 197, &pop.record(person, fingers, 0).views);
    TemplateInput { record: Some(base64::engine::general_purpose::STANDARD.encode(iso)), ..Default::default() }
}

fn an2k_input(pop: &FingerPopulation, person: usize, fingers: &[u8]) -> TemplateInput {
    let rec = pop.record(person, fingers, 0);
    let f: Vec<An2kFinger<'_>> =
        rec.views.iter().map(|v| An2kFinger { position: v.position, minutiae: &v.minutiae }).collect();
    let image = vec![0x1d; 5000]; // a Type-14 image, carried unread
    let decoded = vigil_records::decode(&write_an2k(&f, &[&image])).unwrap();
    assert_eq!(decoded.carried.len(), 1);
    TemplateInput { minutiae: Some(decoded), ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_record_in_one_standard_finds_the_same_capture_in_another() {
    let pop = FingerPopulation::new(21, 40);
    let fed = shelter_and_police().await;
    let policy = Policy { version: 1, extractors: vec![extractor()] };
    policy.validate().unwrap();
    let (issuer, holder) = (&fed.nodes[0].handle, &fed.nodes[1].handle);
    fed.apply_policy(policy, 1, PATIENCE).await.unwrap();

    // 20 people at the holder, five fingers each, as base64 ISO records.
    let held = holder.biometric().await.unwrap();
    for person in 0..20 {
        let template = iso_input(&pop, person, &FINGERS).to_capture(&held).unwrap().template;
        assert_eq!(template.vector.len(), 960);
        holder.enrol(found(template, format!("case {person}"))).await.unwrap();
    }
    // A record with none of the policy's fingers is refused with the reason.
    let none = an2k_input(&pop, 3, &[4, 9]).to_capture(&issuer.biometric().await.unwrap()).unwrap_err();
    assert!(none.contains("none of the positions extractor smr-five holds (1, 2, 3, 6, 7)"), "{none}");

    // Person 7's right thumb, index and middle finger, as ANSI/NIST-ITL.
    let policy = issuer.biometric().await.unwrap();
    let probe = an2k_input(&pop, 7, &[1, 2, 3]).to_capture(&policy).unwrap().template;
    issuer.publish_alert(probe, Category::Missing, "case M-7".into(), now_ms() + 7 * DAY).await.unwrap();
    let hits = || async move { issuer.hits().await.unwrap().iter().filter(|h| h.role == HitRole::Issuer).count() };
    assert!(wait_for(PATIENCE, || async move { (hits().await >= 1).then_some(()) }).await.is_some(), "no hit");
    // Someone the holder does not know: answered, no hit.
    let stranger = an2k_input(&pop, 33, &[1, 2, 3, 6, 7]).to_capture(&policy).unwrap().template;
    let a2 = issuer.publish_alert(stranger, Category::Missing, "case M-33".into(), now_ms() + 7 * DAY).await.unwrap();
    let holder_org = holder.org;
    let answered = wait_for(PATIENCE, || async move {
        let m = issuer.alert_members(a2).await.ok()?;
        m.iter().any(|s| s.member == holder_org && s.state == MemberState::Answered).then_some(())
    });
    assert!(answered.await.is_some(), "the holder did not answer the stranger's alert");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(hits().await, 1, "only person 7 matches");
    fed.shutdown().await;
}

/// Five fingers held, probes of some: an alert of two fingers and a query
/// of four carry only those (`PartsProbe`), the holder computes over the
/// same fingers of its records, and both find exactly the records the
/// plain matcher finds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn probes_of_some_fingers_carry_only_those_and_decide_as_the_plain_matcher() {
    let pop = FingerPopulation::new(29, 24);
    let mut ex = extractor();
    ex.thresholds[0].cosine = 1.0;
    let policy = Policy { version: 1, extractors: vec![ex.clone()] };
    let template =
        |person: usize, fingers: &[u8]| iso_input(&pop, person, fingers).to_capture(&policy).unwrap().template;
    let held: Vec<_> = (0..20).map(|p| template(p, &FINGERS)).collect();
    // The captures the holder enrolled, of some fingers (synthetic single
    // fingers do not separate people across impressions; see README).
    let alert_probe = template(7, &[2, 7]);
    let query_probe = template(11, &[1, 3, 6, 7]);
    let carried = |t: &vigil_matcher::Template| vigil_matcher::encrypted::parts::probe_parts(&ex, &t.vector).parts;
    assert_eq!((carried(&alert_probe), carried(&query_probe)), (Some(vec![1, 4]), Some(vec![0, 2, 3, 4])));
    // A threshold between the person's record and everyone else's, for each probe.
    let scores = |v: &[i8]| held.iter().map(|t| vigil_matcher::dot(v, &t.vector)).collect::<Vec<i32>>();
    let (a, q) = (scores(&alert_probe.vector), scores(&query_probe.vector));
    let cut = |s: &[i32], who: usize| {
        let others = s.iter().enumerate().filter(|(i, _)| *i != who).map(|(_, s)| *s).max().unwrap();
        assert!(s[who] > others, "{} against {others}", s[who]);
        ex.cosine_of((s[who] + others) / 2)
    };
    ex.thresholds[0].cosine = cut(&a, 7).min(cut(&q, 11));
    let t = ex.score_threshold();
    let want = |s: &[i32]| s.iter().filter(|x| **x >= t).count();
    let (want_alert, want_query) = (want(&a), want(&q));
    assert!(want_alert >= 1 && want_query >= 1, "{want_alert} {want_query}");

    let fed = shelter_and_police().await;
    fed.apply_policy(Policy { version: 1, extractors: vec![ex] }, 1, PATIENCE).await.unwrap();
    let (issuer, holder) = (&fed.nodes[0].handle, &fed.nodes[1].handle);
    for (i, t) in held.iter().enumerate() {
        holder.enrol(found(t.clone(), format!("case {i}"))).await.unwrap();
    }
    issuer.publish_alert(alert_probe, Category::Missing, "case M-7".into(), now_ms() + 7 * DAY).await.unwrap();
    let hits = wait_hits(issuer, HitRole::Issuer, want_alert).await.expect("the alert's hits");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(issuer.hits().await.unwrap().len(), hits.len(), "no more than the plain matcher finds");
    assert_eq!(hits.len(), want_alert);
    let report = issuer.identify(query_probe, "four prints".into(), "art. 6(1)(d)".into()).await.unwrap();
    assert_eq!(report.peers[0].hits.len(), want_query, "{report:?}");
    fed.shutdown().await;
}

/// Ten fingers (1,920 dimensions) with thresholds by shared finger count:
/// police ten-prints and field captures of two fingers at the holder; an
/// alert of three fingers (row form, parts) and a ten-print query
/// (column form, a 30 MiB probe) find exactly what the plain matcher finds
/// with the same per-count thresholds, the two-finger records included,
/// which a single ten-finger threshold could never reach.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_prints_and_two_finger_captures_match_by_the_fingers_both_hold() {
    use vigil_matcher::{Matcher, PlainMatcher};
    let all: Vec<u8> = (1..=10).collect();
    let pop = FingerPopulation::new(31, 16);
    let train = FingerPopulation::new(78, 60);
    let per = |c: usize| 0.6 * c as f32;
    let ex = Extractor {
        id: "smr-ten".into(),
        model: "spectral minutiae over ten fingers".into(),
        centre: Some(calibrate::centre(&train.samples(&all, &[0]), all.len())),
        thresholds: vec![Threshold {
            band: Band::Possible,
            cosine: per(10),
            fmr: 1e-4,
            fewer_fingers: (1..10).map(per).collect(),
        }],
        ..uncalibrated("smr-ten", &all, Representation::SpectralMinutiaeV1)
    };
    let policy = Policy { version: 1, extractors: vec![ex.clone()] };
    policy.validate().unwrap();
    let template = |person: usize, fingers: &[u8], k: u64| {
        // Impression k of the person's fingers, as an ISO/IEC 19794-2 record.
        use base64::Engine;
        let iso = write_fmr(FmrFlavour::Iso2005, (400, 500), 197, &pop.record(person, fingers, k).views);
        let input =
            TemplateInput { record: Some(base64::engine::general_purpose::STANDARD.encode(iso)), ..Default::default() };
        input.to_capture(&policy).unwrap().template
    };
    // Ten-prints of people 0..12, two-finger captures of people 4..16.
    let mut held: Vec<_> = (0..12).map(|p| template(p, &all, 0)).collect();
    held.extend((4..16).map(|p| template(p, &[2, 7], 0)));
    assert_eq!(held[0].vector.len(), 1920);
    // The captures enrolled, of other fingers (synthetic single fingers do
    // not separate people across impressions; `vigil bench accuracy`
    // measures that).
    let alert_probe = template(5, &[1, 2, 7], 0);
    let query_probe = template(9, &all, 0);
    let plain = PlainMatcher(&policy);
    let want = |probe: &vigil_matcher::Template| -> Vec<usize> {
        (0..held.len()).filter(|i| plain.decide(probe, &held[*i]).unwrap()).collect()
    };
    let (want_alert, want_query) = (want(&alert_probe), want(&query_probe));
    // Each finds the person's ten-print and two-finger capture (rows i and
    // 8 + i): a threshold of five cosines would find neither capture.
    assert!(want_alert.contains(&5) && want_alert.contains(&13), "{want_alert:?}");
    assert!(want_query.contains(&9) && want_query.contains(&17), "{want_query:?}");
    let ten = ex.score_threshold();
    assert!(held[13..].iter().all(|t| vigil_matcher::dot(&alert_probe.vector, &t.vector) < ten));

    let fed = shelter_and_police().await;
    fed.apply_policy(policy.clone(), 1, PATIENCE).await.unwrap();
    let (issuer, holder) = (&fed.nodes[0].handle, &fed.nodes[1].handle);
    for (i, t) in held.iter().enumerate() {
        holder.enrol(found(t.clone(), format!("case {i}"))).await.unwrap();
    }
    // The holder's gallery size is not known yet: the column form.
    let report = issuer.identify(query_probe, "ten-print".into(), "art. 6(1)(d)".into()).await.unwrap();
    assert_eq!(report.peers[0].form, "column", "{report:?}");
    assert_eq!(report.peers[0].hits.len(), want_query.len(), "{report:?}");
    let alert =
        issuer.publish_alert(alert_probe, Category::Missing, "case M-5".into(), now_ms() + 7 * DAY).await.unwrap();
    let of_alert = || async move {
        let hits = issuer.hits().await.unwrap();
        hits.iter().filter(|h| matches!(h.source, HitSource::EncryptedAlert { alert: a, .. } if a == alert)).count()
    };
    let n = want_alert.len();
    let found = wait_for(PATIENCE, || async move { (of_alert().await >= n).then_some(()) }).await;
    assert!(found.is_some(), "the alert's hits");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(of_alert().await, n, "no more than the plain matcher finds");
    fed.shutdown().await;
}

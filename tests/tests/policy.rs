//! The biometric policy end to end, with real nodes: an extractor whose
//! raw cosines are all high (like the real face extractor that matched
//! every record) is calibrated, put in a steward-signed policy, applied at
//! one node, spreads to the others, finds exactly the right person, and
//! when retired stops matching and lists its records as stale.

use std::time::Duration;
use vigil_crypto::{sign_policy, Identity};
use vigil_engine::audit::AuditEvent;
use vigil_engine::model::HitRole;
use vigil_engine::receipts::MemberState;
use vigil_engine::Enrolment;
use vigil_matcher::calibrate::{self, Sample, Settings};
use vigil_matcher::{synth::Population, Policy, Status, TemplateFile};
use vigil_node::{now_ms, NodeHandle};
use vigil_protocol::{Category, Modality, OrgKind, PolicyBody, SignedPolicy};
use vigil_testkit::*;

const DAY: u64 = 24 * 3600 * 1000;
const ID: &str = "acme-face-128";

/// A capture as an extractor with a large component common to everyone
/// writes it: raw cosines 0.9 (impostors) to 0.98 (genuine).
fn capture(pop: &Population, common: &[f32], person: usize, k: u64) -> Vec<f32> {
    let v = pop.sample_file(person, k).vector;
    v.iter().zip(common).map(|(x, c)| x + 3.0 * c).collect()
}

fn file(vector: Vec<f32>) -> TemplateFile {
    TemplateFile { modality: Modality::Face, extractor: ID.into(), quality: None, vector, pad: None }
}

fn signed(stewards: &[&Identity], federation: &str, policy: Policy) -> SignedPolicy {
    let mut p = SignedPolicy {
        body: PolicyBody {
            federation: federation.into(),
            issued_at_ms: now_ms(),
            policy,
            liveness: Default::default(),
        },
        signatures: vec![],
    };
    for s in stewards {
        sign_policy(&mut p, s).unwrap();
    }
    p
}

async fn wait_version(h: &NodeHandle, v: u64) -> bool {
    wait_for(PATIENCE, || async move { (h.policy().await.ok()?.policy.version == v).then_some(()) }).await.is_some()
}

async fn issuer_hits(h: &NodeHandle) -> usize {
    h.hits().await.unwrap().iter().filter(|x| x.role == HitRole::Issuer).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_signed_policy_spreads_and_a_calibrated_extractor_finds_only_the_right_person() {
    let pop = Population::new(11, "vigil-synth-128", 400);
    let common = Population::new(99, "vigil-synth-128", 1).sample_file(0, 0).vector;
    // Calibration: 200 subjects with two captures each.
    let samples: Vec<Sample> = (0..200)
        .flat_map(|s| (0..2).map(move |k| (s, k)))
        .map(|(s, k)| Sample { subject: format!("s{s}"), vector: capture(&pop, &common, s, k), quality: None })
        .collect();
    let settings = Settings {
        id: ID.into(),
        model: "test extractor with a common offset".into(),
        modality: Modality::Face,
        target_fmrs: vec![1e-4],
        holdout: 0.0,
        centre: true,
        protected_bits: 512,
        fingers: vec![],
        representation: None,
    };
    // Raw, these captures are all alike: a fixed threshold such as 0.6
    // matches everyone with everyone.
    let raw = |p, k| vigil_matcher::quantise(&capture(&pop, &common, p, k)).unwrap();
    let impostor = vigil_matcher::dot(&raw(305, 1), &raw(310, 0)) as f32 / (127.0 * 127.0);
    assert!(impostor > 0.85, "raw impostor cosine {impostor}");
    let cal = calibrate::calibrate(&samples, &settings).unwrap();
    assert!(cal.points[0].cosine < 0.6, "centred threshold {}", cal.points[0].cosine);
    assert!(cal.points[0].fnmr.rate < 0.02, "{:?}", cal.points[0]);

    let mut fed = LocalFederation::start(
        &[
            OrgSpec::new("Shelter North", OrgKind::Ngo),
            OrgSpec::new("Metro Police", OrgKind::Police),
            OrgSpec::new("Eastgate Border", OrgKind::Border),
        ],
        FederationOptions::default(),
    )
    .await
    .unwrap();
    fed.wait_connected(&[0, 1, 2], PATIENCE).await.unwrap();
    let federation = fed.roster.body.federation.clone();
    let issuer = &fed.nodes[0].handle;

    // Under the built-in policy the extractor is unknown, with the reason.
    let builtin = issuer.biometric().await.unwrap();
    let e = file(capture(&pop, &common, 300, 0)).to_template(&builtin).unwrap_err();
    assert!(e.to_string().contains("not in the federation's biometric policy"), "{e}");

    // One steward's signature is not enough; refused and audited.
    let v1 = Policy { version: 1, extractors: vec![cal.extractor.clone()] };
    let weak = signed(&[&fed.stewards[0]], &federation, v1.clone());
    assert!(issuer.apply_policy(weak).await.unwrap_err().to_string().contains("valid steward signatures"));
    let audit = issuer.audit_export().await.unwrap();
    assert!(audit.iter().any(|r| matches!(&r.entry.event, AuditEvent::PolicyRefused { .. })));

    // Two stewards: applied at node 0, and it spreads to 1 and 2.
    let good = signed(&[&fed.stewards[0], &fed.stewards[2]], &federation, v1.clone());
    assert_eq!(issuer.apply_policy(good).await.unwrap(), 1);
    for n in &fed.nodes[1..] {
        assert!(wait_version(&n.handle, 1).await, "{} did not get policy v1", n.name);
    }

    // The holder restarts and keeps the policy.
    fed.restart(1).await.unwrap();
    let holder_h = &fed.nodes[1].handle;
    assert!(wait_version(holder_h, 1).await);
    let policy = holder_h.biometric().await.unwrap();
    // 20 people at the holder (subjects never seen in calibration).
    let mut records = Vec::new();
    for person in 300..320 {
        let template = file(capture(&pop, &common, person, 0)).to_template(&policy).unwrap();
        let id = holder_h
            .enrol(Enrolment {
                pad: None,
                template,
                category: Category::Found,
                case_ref: format!("case {person}"),
                consent: "consent form 7b".into(),
                retain_until_ms: now_ms() + 30 * DAY,
                regime: None,
            })
            .await
            .unwrap();
        records.push(id);
    }
    fed.wait_connected(&[0, 1, 2], PATIENCE).await.unwrap();
    let issuer = &fed.nodes[0].handle;
    // An alert for person 305 (another capture): exactly one hit.
    let probe = file(capture(&pop, &common, 305, 1)).to_template(&issuer.biometric().await.unwrap()).unwrap();
    issuer.publish_alert(probe, Category::Missing, "case M-305".into(), now_ms() + 7 * DAY).await.unwrap();
    assert!(wait_for(PATIENCE, || async move { (issuer_hits(issuer).await >= 1).then_some(()) }).await.is_some());
    // An alert for someone the holder does not know: no hit.
    let stranger = file(capture(&pop, &common, 390, 1)).to_template(&issuer.biometric().await.unwrap()).unwrap();
    let a2 = issuer.publish_alert(stranger, Category::Missing, "case M-390".into(), now_ms() + 7 * DAY).await.unwrap();
    let holder_org = fed.nodes[1].handle.org;
    let answered = wait_for(PATIENCE, || async move {
        let m = issuer.alert_members(a2).await.ok()?;
        m.iter().any(|s| s.member == holder_org && s.state == MemberState::Answered).then_some(())
    })
    .await;
    assert!(answered.is_some(), "the holder did not answer the second alert");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(issuer_hits(issuer).await, 1, "only person 305 matches");

    // Retired (v2, applied at node 2): spreads; the holder's records are
    // stale and enrolment with the extractor is refused.
    let mut v2 = v1.clone();
    v2.version = 2;
    v2.extractors[0].status = Status::Retired;
    let retire = signed(&[&fed.stewards[1], &fed.stewards[2]], &federation, v2);
    assert_eq!(fed.nodes[2].handle.apply_policy(retire).await.unwrap(), 2);
    let holder_h = &fed.nodes[1].handle;
    assert!(wait_version(holder_h, 2).await);
    let views = holder_h.records().await.unwrap();
    assert_eq!(views.len(), 20);
    assert!(views.iter().all(|r| r.stale.as_deref().is_some_and(|s| s.contains("retired"))), "{views:?}");
    let note = vigil_node::views::stale_note(&views, 2).expect("stale records are reported at start");
    assert!(note.contains("20 records") && note.contains("(acme-face-128: 20)"), "{note}");
    let policy = holder_h.biometric().await.unwrap();
    let e = file(capture(&pop, &common, 330, 0)).to_template(&policy).unwrap_err();
    assert!(e.to_string().contains("retired"), "{e}");
    // A successor that reshapes a kept id is refused.
    let mut v3 = v1;
    v3.version = 3;
    v3.extractors[0].centre = None;
    let reshaped = signed(&[&fed.stewards[0], &fed.stewards[1]], &federation, v3);
    let e = holder_h.apply_policy(reshaped).await.unwrap_err();
    assert!(e.to_string().contains("give it a new id"), "{e}");
    fed.shutdown().await;
}

//! Writes the initial seed inputs of the fuzz corpus (valid objects of
//! every kind). Run once by hand: `cargo test -p vigil-fuzzing --test seeds
//! -- --ignored`; the fuzzers grow the corpus from there.

use std::path::Path;
use vigil_matcher::encrypted::{respond, respond_row, respond_row_bands, row_bands_to_bytes, ProberKey, RunLayout};
use vigil_matcher::{synth::Population, Gallery};
use vigil_protocol::*;

fn put(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

#[test]
#[ignore = "writes fuzz/corpus seeds; run by hand"]
fn write_seeds() {
    let org = OrgId([3; 32]);
    let probe = ProtectedProbe {
        epoch_id: [1; 8],
        modality: Modality::Face,
        extractor: "vigil-synth-128".into(),
        bits: vec![0xa5; 64],
    };
    let enc = EncryptedAlertProbe { modality: Modality::Face, extractor: "vigil-synth-128".into(), row: vec![7; 40] };
    let body = AlertBody {
        issuer: org,
        seq: 1,
        prev: [0; 32],
        category: Category::Missing,
        created_at_ms: 1,
        expires_at_ms: 2,
        probe: Some(probe),
        encrypted: Some(enc),
    };
    let alert = SignedAlert { body, signature: Sig([9; 64]) };
    let env = AlertEnvelope::Publish(alert.clone());
    put("gossip", "publish", &encode(Tag::Gossip, &env, usize::MAX).unwrap());
    let w = Withdrawal { issuer: org, seq: 2, prev: [1; 32], alert: AlertId([4; 32]), withdrawn_at_ms: 5 };
    let wenv = AlertEnvelope::Withdraw(SignedWithdrawal { body: w, signature: Sig([8; 64]) });
    put("gossip", "withdraw", &encode(Tag::Gossip, &wenv, usize::MAX).unwrap());

    let reqs = [
        Request::Hit(SignedHitNotice {
            body: HitNotice { alert: AlertId([1; 32]), holder: org, handle: Handle([2; 16]), detected_at_ms: 3 },
            signature: Sig([1; 64]),
        }),
        Request::Identify(IdentifyRequest {
            query: Handle([5; 16]),
            purpose: "p".into(),
            legal_basis: "l".into(),
            extractor: "vigil-synth-128".into(),
            probe: vec![1, 2, 3],
        }),
        Request::Disclose(DisclosureRequest {
            id: Handle([6; 16]),
            hit: Handle([7; 16]),
            query: None,
            reason: "r".into(),
        }),
        Request::DisclosureAnswer(DisclosureAnswer { id: Handle([6; 16]), approved: true, contact: Some("c".into()) }),
        Request::AlertAnswer(AlertAnswer { alert: AlertId([1; 32]), answer: Handle([2; 16]), body: vec![1; 20] }),
        Request::FetchProbe(FetchProbe { alert: AlertId([1; 32]) }),
        Request::SyncHeads(SyncState {
            roster_version: 1,
            heads: vec![LogHead { org, seq: 4, hash: [2; 32] }],
            roster: None,
        }),
        Request::SyncPull(SyncPull { org, from_seq: 1, max: 10 }),
        Request::FetchSplit(FetchSplit { alert: AlertId([1; 32]), chunks: 8 }),
    ];
    for (i, r) in reqs.iter().enumerate() {
        put("request", &format!("r{i}"), &encode(Tag::Request, r, usize::MAX).unwrap());
    }
    let resps = [
        Response::Ack,
        Response::Refused(Refusal::Malformed),
        Response::Answer(IdentifyAnswer { query: Handle([1; 16]), answer: vec![3; 10] }),
        Response::Probe(ProbeForm { alert: AlertId([1; 32]), probe: vec![4; 10] }),
        Response::Heads(SyncState {
            roster_version: 1,
            heads: vec![LogHead { org, seq: 1, hash: [0; 32] }],
            roster: None,
        }),
        Response::Entries(vec![env, wenv]),
    ];
    for (i, r) in resps.iter().enumerate() {
        put("response", &format!("r{i}"), &encode(Tag::Response, r, usize::MAX).unwrap());
    }

    let roster = SignedRoster {
        body: RosterBody {
            federation: "f".into(),
            version: 1,
            issued_at_ms: 0,
            members: vec![Member {
                org,
                name: "Shelter".into(),
                kind: OrgKind::Ngo,
                addrs: vec!["/ip4/127.0.0.1/tcp/1".into()],
                roles: vec![Role::Alert, Role::Match],
            }],
        },
        signatures: vec![StewardSignature { steward: org, signature: Sig([2; 64]) }],
    };
    put("roster", "json", RosterFile::to_json(&roster).as_bytes());
    put("roster", "binary", &encode(Tag::Roster, &roster, usize::MAX).unwrap());

    let pop = Population::new(1, "vigil-synth-128", 2);
    put("template", "synth", serde_json::to_string(&pop.sample_file(0, 0)).unwrap().as_bytes());
    put("template", "small", br#"{"modality":"face","extractor":"vigil-synth-128","quality":80,"vector":[0.1,-0.2]}"#);

    let key = ProberKey::generate();
    let q: Vec<i8> = (0..4).map(|i| i as i8).collect();
    let g = Gallery::new(4, vec![1; 4 * 3]);
    let p = key.encrypt(&q).unwrap();
    let (a, _) = respond(&p, &RunLayout::new(&g), 1, [1; 32]).unwrap();
    put("ciphertext", "probe", &p.to_bytes());
    put("ciphertext", "answer", &a.to_bytes());
    let rp = key.encrypt_row(&q).unwrap();
    let (ra, _) = respond_row(&rp, &g, 1, [2; 32]).unwrap();
    put("ciphertext", "row-probe", &rp.to_bytes());
    put("ciphertext", "row-answer", &ra.to_bytes());
    let sp = key.encrypt_row_split(&q, 2).unwrap();
    let (sa, _) = respond_row(&sp, &g, 1, [3; 32]).unwrap();
    put("ciphertext", "split-probe", &sp.to_bytes());
    put("ciphertext", "split-answer", &sa.to_bytes());
    write_band_seed();
    write_policy_seeds();
    write_banded_hit_seed();
    write_parts_seed();
}

#[test]
#[ignore = "writes the fuzz/corpus probe-of-some-fingers seed; run by hand"]
fn write_parts_seed() {
    let key = ProberKey::generate();
    let row = key.encrypt_row(&[3i8; 384]).unwrap();
    put("ciphertext", "parts-probe", &vigil_matcher::encrypted::parts::wrap(Some(&[1, 6]), row.to_bytes()));
}

#[test]
#[ignore = "writes the fuzz/corpus banded hit notice seed; run by hand"]
fn write_banded_hit_seed() {
    let notice =
        HitNotice { alert: AlertId([1; 32]), holder: OrgId([3; 32]), handle: Handle([2; 16]), detected_at_ms: 3 };
    let body = BandedHitNotice { notice, band: policy::Band::Probable };
    let r = Request::BandedHit(SignedBandedHit { body, signature: Sig([1; 64]) });
    put("request", "banded-hit", &encode(Tag::Request, &r, usize::MAX).unwrap());
}

#[test]
#[ignore = "writes fuzz/corpus/policy seeds; run by hand"]
fn write_policy_seeds() {
    use vigil_protocol::pad::{CaptureKey, Liveness, PadAttestation, PadBody, PadDecision, PadUse};
    let policy = vigil_matcher::builtin().clone();
    let body = PolicyBody {
        federation: "f".into(),
        issued_at_ms: 1,
        policy: vigil_protocol::policy::Policy { version: 1, ..policy },
        liveness: Liveness::default(),
    };
    let sig = StewardSignature { steward: OrgId([3; 32]), signature: Sig([2; 64]) };
    let v1 = SignedPolicy { body, signatures: vec![sig] };
    put("policy", "format-1.json", PolicyFile::to_json(&v1).as_bytes());
    put("policy", "format-1.bin", &encode(Tag::Body, &v1, usize::MAX).unwrap());
    let key = CaptureKey { id: "cam".into(), sdk: "s".into(), key: PublicKey([4; 32]), status: Default::default() };
    let mut v2 = v1.clone();
    v2.body.liveness = Liveness { capture_keys: vec![key], require: vec![PadUse::Enrolment], max_age_s: 3600 };
    put("policy", "format-2.json", PolicyFile::to_json(&v2).as_bytes());
    put("policy", "format-2.bin", &encode(Tag::Body, &v2, usize::MAX).unwrap());
    // Format 3: a ten-finger extractor with thresholds by shared count.
    let mut ten = v1.body.policy.extractors[0].clone();
    (ten.id, ten.modality, ten.fingers, ten.dim) =
        ("ten".into(), vigil_protocol::Modality::Finger, (1..=10).collect(), 1920);
    (ten.input_dim, ten.centre, ten.projection, ten.representation) = (None, None, None, None);
    ten.thresholds = vec![vigil_protocol::policy::Threshold {
        band: vigil_protocol::policy::Band::Possible,
        cosine: 2.5,
        fmr: 1e-3,
        fewer_fingers: (1..10).map(|c| 0.6 * c as f32).collect(),
    }];
    ten.validate().unwrap();
    let mut v3 = v2.clone();
    v3.body.policy.extractors.push(ten);
    assert_eq!(v3.body.format(), 3);
    put("policy", "format-3.json", PolicyFile::to_json(&v3).as_bytes());
    put("policy", "format-3.bin", &encode(Tag::Body, &v3, usize::MAX).unwrap());
    let pad = PadAttestation {
        body: PadBody {
            key: "cam".into(),
            sdk: "s 1".into(),
            decision: PadDecision::BonaFide,
            score: Some(0.1),
            captured_at_ms: 5,
            sample: Digest([6; 32]),
        },
        signature: Sig([7; 64]),
    };
    put("policy", "pad.json", serde_json::to_string(&pad).unwrap().as_bytes());
}

#[test]
#[ignore = "writes the fuzz/corpus band-answer seed; run by hand"]
fn write_band_seed() {
    let key = ProberKey::generate();
    let q: Vec<i8> = (0..4).map(|i| i as i8).collect();
    let g = Gallery::new(4, vec![1; 4 * 3]);
    let (bands, _) = respond_row_bands(&key.encrypt_row(&q).unwrap(), &g, &vec![1, 5, 9].into(), [4; 32]).unwrap();
    put("ciphertext", "row-bands", &row_bands_to_bytes(&bands));
}

#[test]
#[ignore = "writes fuzz/corpus/record seeds; run by hand"]
fn write_record_seeds() {
    use vigil_records::{write_an2k, write_fmr, An2kFinger, FmrFlavour};
    let pop = vigil_matcher::synth::FingerPopulation::new(5, 2);
    let rec = pop.record(0, &[2, 7], 0);
    put("record", "iso", &write_fmr(FmrFlavour::Iso2005, (400, 500), 197, &rec.views));
    put("record", "ansi", &write_fmr(FmrFlavour::Ansi2004, (400, 500), 197, &rec.views));
    let fingers: Vec<An2kFinger<'_>> =
        rec.views.iter().map(|v| An2kFinger { position: v.position, minutiae: &v.minutiae }).collect();
    put("record", "an2k", &write_an2k(&fingers, &[b"\x1c\x1d\x1e\x1f image bytes"]));
}

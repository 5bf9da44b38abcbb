//! Property tests: every wire type survives encode/decode unchanged, and
//! decoding never panics on arbitrary or mutated bytes.

use proptest::prelude::*;
use vigil_protocol::*;

fn org() -> impl Strategy<Value = OrgId> {
    any::<[u8; 32]>().prop_map(OrgId)
}
fn sig() -> impl Strategy<Value = Sig> {
    (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(a, b)| {
        let mut s = [0u8; 64];
        s[..32].copy_from_slice(&a);
        s[32..].copy_from_slice(&b);
        Sig(s)
    })
}
fn modality() -> impl Strategy<Value = Modality> {
    prop_oneof![Just(Modality::Face), Just(Modality::Finger), Just(Modality::Iris)]
}
fn category() -> impl Strategy<Value = Category> {
    prop_oneof![Just(Category::Missing), Just(Category::Found), Just(Category::Victim), Just(Category::Other)]
}
fn probe() -> impl Strategy<Value = ProtectedProbe> {
    (any::<[u8; 8]>(), modality(), "[a-z0-9-]{1,40}", prop::collection::vec(any::<u8>(), 1..128))
        .prop_map(|(epoch_id, modality, extractor, bits)| ProtectedProbe { epoch_id, modality, extractor, bits })
}
fn encrypted() -> impl Strategy<Value = EncryptedAlertProbe> {
    (modality(), "[a-z0-9-]{1,40}", prop::collection::vec(any::<u8>(), 1..600))
        .prop_map(|(modality, extractor, row)| EncryptedAlertProbe { modality, extractor, row })
}
fn envelope() -> impl Strategy<Value = AlertEnvelope> {
    let probes = prop_oneof![
        probe().prop_map(|p| (Some(p), None)),
        encrypted().prop_map(|e| (None, Some(e))),
        (probe(), encrypted()).prop_map(|(p, e)| (Some(p), Some(e))),
    ];
    let alert = (org(), 1u64.., any::<[u8; 32]>(), category(), any::<u64>(), any::<u64>(), probes, sig()).prop_map(
        |(issuer, seq, prev, category, created_at_ms, expires_at_ms, (probe, encrypted), signature)| {
            AlertEnvelope::Publish(SignedAlert {
                body: AlertBody { issuer, seq, prev, category, created_at_ms, expires_at_ms, probe, encrypted },
                signature,
            })
        },
    );
    let withdraw = (org(), 1u64.., any::<[u8; 32]>(), any::<[u8; 32]>(), any::<u64>(), sig()).prop_map(
        |(issuer, seq, prev, a, t, signature)| {
            AlertEnvelope::Withdraw(SignedWithdrawal {
                body: Withdrawal { issuer, seq, prev, alert: AlertId(a), withdrawn_at_ms: t },
                signature,
            })
        },
    );
    prop_oneof![alert, withdraw]
}
fn request() -> impl Strategy<Value = Request> {
    (any::<[u8; 32]>(), org(), any::<[u8; 16]>(), any::<u64>(), sig()).prop_map(|(a, holder, h, t, signature)| {
        Request::Hit(SignedHitNotice {
            body: HitNotice { alert: AlertId(a), holder, handle: Handle(h), detected_at_ms: t },
            signature,
        })
    })
}
fn alert_answer() -> impl Strategy<Value = (Request, Request, Response)> {
    (any::<[u8; 32]>(), any::<[u8; 16]>(), prop::collection::vec(any::<u8>(), 0..600)).prop_map(|(a, h, body)| {
        (
            Request::AlertAnswer(AlertAnswer { alert: AlertId(a), answer: Handle(h), body: body.clone() }),
            Request::FetchProbe(FetchProbe { alert: AlertId(a) }),
            Response::Probe(ProbeForm { alert: AlertId(a), probe: body }),
        )
    })
}
fn identify() -> impl Strategy<Value = (Request, Response)> {
    (any::<[u8; 16]>(), "[a-z ]{1,40}", "[A-Z0-9 ]{1,20}", prop::collection::vec(any::<u8>(), 0..300)).prop_map(
        |(q, purpose, legal_basis, probe)| {
            let req = Request::Identify(IdentifyRequest {
                query: Handle(q),
                purpose,
                legal_basis,
                extractor: "vigil-synth-128".into(),
                probe: probe.clone(),
            });
            (req, Response::Answer(IdentifyAnswer { query: Handle(q), answer: probe }))
        },
    )
}
fn disclosure() -> impl Strategy<Value = Vec<Request>> {
    (any::<[u8; 16]>(), any::<[u8; 16]>(), any::<Option<[u8; 16]>>(), "[a-z ]{1,40}", any::<bool>()).prop_map(
        |(id, hit, query, text, approved)| {
            vec![
                Request::Disclose(DisclosureRequest {
                    id: Handle(id),
                    hit: Handle(hit),
                    query: query.map(Handle),
                    reason: text.clone(),
                }),
                Request::DisclosureAnswer(DisclosureAnswer {
                    id: Handle(id),
                    approved,
                    contact: approved.then_some(text),
                }),
            ]
        },
    )
}
fn response() -> impl Strategy<Value = Response> {
    prop_oneof![
        Just(Response::Refused(Refusal::BudgetExceeded)),
        Just(Response::Ack),
        Just(Response::Refused(Refusal::BadSignature)),
        Just(Response::Refused(Refusal::UnknownAlert)),
        Just(Response::Refused(Refusal::RateLimited)),
    ]
}
fn roster() -> impl Strategy<Value = SignedRoster> {
    let member = (org(), "[A-Za-z ]{1,30}", prop::collection::vec("/ip4/127.0.0.1/tcp/[0-9]{1,5}", 0..3)).prop_map(
        |(org, name, addrs)| Member { org, name, kind: OrgKind::Ngo, addrs, roles: vec![Role::Alert, Role::Match] },
    );
    (
        "[a-z]{1,20}",
        any::<u64>(),
        any::<u64>(),
        prop::collection::vec(member, 0..5),
        prop::collection::vec((org(), sig()), 0..3),
    )
        .prop_map(|(federation, version, issued_at_ms, members, sigs)| SignedRoster {
            body: RosterBody { federation, version, issued_at_ms, members },
            signatures: sigs.into_iter().map(|(steward, signature)| StewardSignature { steward, signature }).collect(),
        })
}

const LIMIT: usize = limits::MAX_FRAME_BYTES;

proptest! {
    #[test]
    fn envelope_roundtrip(v in envelope()) {
        let bytes = encode(Tag::Gossip, &v, LIMIT).unwrap();
        prop_assert_eq!(decode::<AlertEnvelope>(Tag::Gossip, &bytes, LIMIT).unwrap(), v);
    }

    #[test]
    fn request_response_roundtrip(q in request(), r in response()) {
        let bytes = encode(Tag::Request, &q, LIMIT).unwrap();
        prop_assert_eq!(decode::<Request>(Tag::Request, &bytes, LIMIT).unwrap(), q);
        let bytes = encode(Tag::Response, &r, LIMIT).unwrap();
        prop_assert_eq!(decode::<Response>(Tag::Response, &bytes, LIMIT).unwrap(), r);
    }

    #[test]
    fn identify_roundtrip((q, r) in identify()) {
        let bytes = encode(Tag::Request, &q, LIMIT).unwrap();
        prop_assert_eq!(decode::<Request>(Tag::Request, &bytes, LIMIT).unwrap(), q);
        let bytes = encode(Tag::Response, &r, LIMIT).unwrap();
        prop_assert_eq!(decode::<Response>(Tag::Response, &bytes, LIMIT).unwrap(), r);
    }

    #[test]
    fn alert_answer_roundtrip((answer, fetch, probe) in alert_answer()) {
        for q in [answer, fetch] {
            let bytes = encode(Tag::Request, &q, LIMIT).unwrap();
            prop_assert_eq!(decode::<Request>(Tag::Request, &bytes, LIMIT).unwrap(), q);
        }
        let bytes = encode(Tag::Response, &probe, LIMIT).unwrap();
        prop_assert_eq!(decode::<Response>(Tag::Response, &bytes, LIMIT).unwrap(), probe);
    }

    #[test]
    fn sync_roundtrip(heads in prop::collection::vec((org(), any::<u64>(), any::<[u8; 32]>()), 0..5),
                      entries in prop::collection::vec(envelope(), 0..4), from_seq in any::<u64>(), max in any::<u32>()) {
        let heads: Vec<LogHead> = heads.into_iter().map(|(org, seq, hash)| LogHead { org, seq, hash }).collect();
        let org = heads.first().map(|h| h.org).unwrap_or(OrgId([0; 32]));
        let state = SyncState { roster_version: from_seq, heads: heads.clone(), roster: None };
        for q in [Request::SyncHeads(state.clone()), Request::SyncPull(SyncPull { org, from_seq, max })] {
            let bytes = encode(Tag::Request, &q, LIMIT).unwrap();
            prop_assert_eq!(decode::<Request>(Tag::Request, &bytes, LIMIT).unwrap(), q);
        }
        for r in [Response::Heads(state), Response::Entries(entries)] {
            let bytes = encode(Tag::Response, &r, LIMIT).unwrap();
            prop_assert_eq!(decode::<Response>(Tag::Response, &bytes, LIMIT).unwrap(), r);
        }
    }

    #[test]
    fn disclosure_roundtrip(v in disclosure()) {
        for q in v {
            let bytes = encode(Tag::Request, &q, LIMIT).unwrap();
            prop_assert_eq!(decode::<Request>(Tag::Request, &bytes, LIMIT).unwrap(), q);
        }
    }

    #[test]
    fn roster_roundtrip_binary_and_json(v in roster()) {
        let bytes = encode(Tag::Roster, &v, LIMIT).unwrap();
        prop_assert_eq!(decode::<SignedRoster>(Tag::Roster, &bytes, LIMIT).unwrap(), v.clone());
        let json = serde_json::to_string(&v).unwrap();
        prop_assert_eq!(serde_json::from_str::<SignedRoster>(&json).unwrap(), v.clone());
        if v.body.validate().is_ok() {
            prop_assert_eq!(RosterFile::parse(RosterFile::to_json(&v).as_bytes()).unwrap(), v);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode::<AlertEnvelope>(Tag::Gossip, &bytes, LIMIT);
        let _ = decode::<Request>(Tag::Request, &bytes, LIMIT);
        let _ = decode::<SignedRoster>(Tag::Roster, &bytes, LIMIT);
    }

    #[test]
    fn truncation_is_an_error(v in envelope(), cut in 1usize..64) {
        let bytes = encode(Tag::Gossip, &v, LIMIT).unwrap();
        let cut = cut.min(bytes.len());
        prop_assert!(decode::<AlertEnvelope>(Tag::Gossip, &bytes[..bytes.len() - cut], LIMIT).is_err());
    }
}

#[test]
fn alerts_need_a_probe_and_bounded_encrypted_probes() {
    let body = |probe, encrypted| {
        AlertEnvelope::Publish(SignedAlert {
            body: AlertBody {
                issuer: OrgId([1; 32]),
                seq: 1,
                prev: [0; 32],
                category: Category::Missing,
                created_at_ms: 1,
                expires_at_ms: 2,
                probe,
                encrypted,
            },
            signature: Sig([0; 64]),
        })
    };
    assert!(matches!(body(None, None).validate(), Err(WireError::Invalid(m)) if m.contains("no probe")));
    let e = |n| EncryptedAlertProbe { modality: Modality::Face, extractor: "vigil-synth-128".into(), row: vec![0; n] };
    assert!(body(None, Some(e(100))).validate().is_ok());
    assert!(matches!(body(None, Some(e(0))).validate(), Err(WireError::Invalid(_))));
    assert!(matches!(body(None, Some(e(limits::MAX_ROW_PROBE_BYTES + 1))).validate(), Err(WireError::Invalid(_))));
}

#[test]
fn header_errors_are_precise() {
    let v = Response::Ack;
    let bytes = encode(Tag::Response, &v, LIMIT).unwrap();
    assert_eq!(decode::<Response>(Tag::Request, &bytes, LIMIT), Err(WireError::WrongTag { expected: 2, found: 3 }));
    let mut old = bytes.clone();
    old[2] = 9;
    assert_eq!(decode::<Response>(Tag::Response, &old, LIMIT), Err(WireError::Version { found: 9 }));
    assert_eq!(decode::<Response>(Tag::Response, b"XX\x01\x03\x00", LIMIT), Err(WireError::BadMagic));
    assert_eq!(decode::<Response>(Tag::Response, &bytes, 2), Err(WireError::TooLarge { len: bytes.len(), limit: 2 }));
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(matches!(decode::<Response>(Tag::Response, &trailing, LIMIT), Err(WireError::Malformed(_))));
}

#[test]
fn oversized_encode_is_refused() {
    let big = ProtectedProbe { epoch_id: [0; 8], modality: Modality::Face, extractor: "x".into(), bits: vec![0; 4096] };
    assert!(matches!(encode(Tag::Stored, &big, 1000), Err(WireError::TooLarge { .. }) | Err(WireError::Malformed(_))));
}

#[test]
fn roster_files_need_a_known_format() {
    let r = SignedRoster {
        body: RosterBody { federation: "f".into(), version: 1, issued_at_ms: 0, members: vec![] },
        signatures: vec![],
    };
    let bare = serde_json::to_string(&r).unwrap();
    assert!(RosterFile::parse(bare.as_bytes()).unwrap_err().to_string().contains("no \"format\" field"));
    let future = RosterFile::to_json(&r).replace("\"format\": 1", "\"format\": 9");
    assert!(RosterFile::parse(future.as_bytes()).unwrap_err().to_string().contains("unsupported roster file format 9"));
    assert!(matches!(RosterFile::parse(&vec![b' '; limits::MAX_ROSTER_BYTES + 1]), Err(WireError::TooLarge { .. })));
}

/// Every value has one encoding: a varint longer than needed is refused
/// (it gave the same alert several gossip message ids, and another
/// implementation hashing received bytes would decide differently).
#[test]
fn non_minimal_varints_are_refused() {
    let pull = Request::SyncPull(SyncPull { org: OrgId([3; 32]), from_seq: 1, max: 10 });
    let canonical = encode(Tag::Request, &pull, 1024).unwrap();
    assert_eq!(decode::<Request>(Tag::Request, &canonical, 1024).unwrap(), pull);
    // `max` = 10 is its last byte; 251 marks a two-byte varint: 10 in three bytes.
    assert_eq!(*canonical.last().unwrap(), 10);
    let mut long = canonical[..canonical.len() - 1].to_vec();
    long.extend_from_slice(&[251, 10, 0]);
    assert_eq!(decode::<Request>(Tag::Request, &long, 1024), Err(WireError::NonCanonical));
    // The same for the sequence number (1 as a u16 varint).
    let mut seq = canonical[..canonical.len() - 2].to_vec();
    seq.extend_from_slice(&[251, 1, 0, 10]);
    assert_eq!(decode::<Request>(Tag::Request, &seq, 1024), Err(WireError::NonCanonical));
}

//! One entry point per decoder that reads untrusted bytes: wire messages,
//! roster and policy files, PAD attestations, template files, fingerprint
//! records and ciphertexts. `fuzz/libfuzzer/` drives them with
//! libFuzzer; `tests/corpus.rs` replays the kept corpus on stable Rust, so
//! every input that once crashed stays a regression test.
//!
//! Each function must return normally for any input: an `Err` is fine, a
//! panic is a bug. Whatever decodes must encode back to something that
//! decodes to the same value.

use vigil_matcher::encrypted::{
    parts, row_bands_to_bytes, AnyAnswer, EncryptedAnswer, EncryptedProbe, RowAnswer, RowProbe, MAX_SPLIT_CHUNKS,
};
use vigil_protocol::{
    decode, encode, limits, AlertEnvelope, PolicyFile, Request, Response, RosterFile, SignedPolicy, SignedRoster, Tag,
};

/// A decoder entry point: must return normally for any input.
pub type Target = fn(&[u8]);

/// The fuzz targets, by name (as in `fuzz/libfuzzer/fuzz_targets/` and `fuzz/corpus/`).
pub const TARGETS: &[(&str, Target)] = &[
    ("gossip", gossip),
    ("request", request),
    ("response", response),
    ("roster", roster),
    ("template", template),
    ("ciphertext", ciphertext),
    ("record", record),
    ("policy", policy),
];

fn roundtrip<T>(tag: Tag, data: &[u8], limit: usize) -> Option<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let v: T = decode(tag, data, limit).ok()?;
    let again = encode(tag, &v, usize::MAX).expect("a decoded value encodes");
    // Compared as bytes: a float field may decode to NaN, which is not
    // equal to itself (validation refuses it where it matters).
    let back = decode::<T>(tag, &again, usize::MAX).expect("re-encoded value decodes");
    assert_eq!(encode(tag, &back, usize::MAX).expect("encodes again"), again);
    Some(v)
}

/// A gossiped alert envelope, then its structural checks.
pub fn gossip(data: &[u8]) {
    if let Some(env) = roundtrip::<AlertEnvelope>(Tag::Gossip, data, limits::MAX_GOSSIP_BYTES) {
        let _ = env.validate();
    }
}

/// A request frame on either request-response protocol.
pub fn request(data: &[u8]) {
    if let Some(Request::Identify(q)) = roundtrip::<Request>(Tag::Request, data, limits::MAX_FRAME_BYTES) {
        let _ = q.validate();
    }
}

/// A response frame.
pub fn response(data: &[u8]) {
    let _ = roundtrip::<Response>(Tag::Response, data, limits::MAX_FRAME_BYTES);
}

/// A roster file (JSON) and a binary roster.
pub fn roster(data: &[u8]) {
    if let Ok(r) = RosterFile::parse(data) {
        let _ = r.body.validate();
    }
    let _ = roundtrip::<SignedRoster>(Tag::Roster, data, limits::MAX_ROSTER_BYTES);
}

/// A policy file (JSON, format 1 or 2) written back and read again, a
/// binary signed policy (both body formats), and a PAD attestation (JSON).
pub fn policy(data: &[u8]) {
    if let Ok(p) = PolicyFile::parse(data) {
        assert_eq!(PolicyFile::parse(PolicyFile::to_json(&p).as_bytes()).expect("a parsed policy writes back"), p);
    }
    if let Some(p) = roundtrip::<SignedPolicy>(Tag::Body, data, limits::MAX_FRAME_BYTES) {
        let _ = p.body.validate();
    }
    if data.len() <= 64 * 1024 {
        if let Ok(a) = serde_json::from_slice::<vigil_protocol::pad::PadAttestation>(data) {
            let _ = a.body.validate();
        }
    }
}

/// A template file (JSON from a capture SDK), then quantisation.
pub fn template(data: &[u8]) {
    if let Ok(f) = vigil_matcher::TemplateFile::parse(data) {
        let _ = f.to_template(vigil_matcher::builtin());
    }
}

/// A standard fingerprint record (ISO/IEC 19794-2, ANSI INCITS 378,
/// ANSI/NIST-ITL): its structure (below), then every view's vector.
pub fn record(data: &[u8]) {
    for v in record_structure(data).iter().flat_map(|r| &r.views) {
        assert_eq!(vigil_matcher::minutiae::spectral_v1(&v.minutiae).len(), 192);
    }
}

/// The decoders alone: what decodes keeps the bounds `check()` enforces,
/// and an ISO or ANSI record writes back to the same views.
pub fn record_structure(data: &[u8]) -> Option<vigil_records::Record> {
    let r = vigil_records::decode(data).ok()?;
    r.check().expect("a decoded record is within the bounds check() enforces");
    if r.format != vigil_records::Format::AnsiNistItl {
        let flavour = match r.format {
            vigil_records::Format::Ansi378_2004 => vigil_records::FmrFlavour::Ansi2004,
            _ => vigil_records::FmrFlavour::Iso2005,
        };
        let again = vigil_records::decode(&vigil_records::write_fmr(flavour, (16383, 16383), 197, &r.views));
        let counts = |r: &vigil_records::Record| r.views.iter().map(|v| v.minutiae.len()).collect::<Vec<_>>();
        assert_eq!(counts(&again.expect("a decoded record writes back")), counts(&r));
    }
    Some(r)
}

/// Encrypted probes and answers in both forms (and band answers); the first byte after the
/// header picks nothing: every decoder sees every input.
pub fn ciphertext(data: &[u8]) {
    let limit = 1 << 20;
    if let Ok(p) = EncryptedProbe::from_bytes(data, limit) {
        assert!(EncryptedProbe::from_bytes(&p.to_bytes(), limit).is_ok());
    }
    if let Ok(a) = EncryptedAnswer::from_bytes(data, limit) {
        assert!(EncryptedAnswer::from_bytes(&a.to_bytes(), limit).is_ok());
    }
    if let Ok(p) = RowProbe::from_bytes(data) {
        assert!(RowProbe::from_bytes(&p.to_bytes()).is_ok_and(|q| q == p));
    }
    if let Ok(p) = RowProbe::from_bytes_split(data, MAX_SPLIT_CHUNKS) {
        assert!(RowProbe::from_bytes_split(&p.to_bytes(), MAX_SPLIT_CHUNKS).is_ok_and(|q| q == p));
    }
    if let Ok(a) = RowAnswer::from_bytes(data, limit) {
        assert!(RowAnswer::from_bytes(&a.to_bytes(), limit).is_ok_and(|b| b == a));
    }
    if let Ok(AnyAnswer::RowBands(a)) = AnyAnswer::from_bytes(data, limit) {
        let again = AnyAnswer::from_bytes(&row_bands_to_bytes(&a), limit);
        assert!(matches!(again, Ok(AnyAnswer::RowBands(b)) if b == a));
    }
    // A probe of some fingers: its wrapper writes back to the same bytes,
    // and parts a five-finger extractor accepts are some of its five.
    if let Ok((inner, Some(carried))) = parts::open(data, limit) {
        assert_eq!(parts::wrap(Some(&carried), inner.clone()), data);
        let five = vigil_matcher::minutiae::uncalibrated(
            "five",
            &[1, 2, 3, 6, 7],
            vigil_protocol::policy::Representation::SpectralMinutiaeV1,
        );
        if parts::check(&five, &carried).is_ok() {
            assert!(!carried.is_empty() && carried.len() < 5);
        }
    }
}

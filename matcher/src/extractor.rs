//! The extractors a node knows without a signed policy: the built-in
//! policy (version 0) holds only the synthetic extractor of the demo and
//! drills. Real extractors come from the federation's signed policy.

use std::sync::OnceLock;
pub use vigil_protocol::policy::{Band, Extractor, NotActive, Policy, PolicyError, Projection, Status, Threshold};

/// Id of the synthetic extractor of the demo and drills.
pub const SYNTH: &str = "vigil-synth-128";

/// The built-in policy: the synthetic extractor of the demo and drills only.
pub fn builtin() -> &'static Policy {
    static BUILTIN: OnceLock<Policy> = OnceLock::new();
    BUILTIN.get_or_init(|| Policy {
        version: 0,
        extractors: vec![Extractor {
            id: SYNTH.into(),
            model: "synthetic identities of the demo and drills (see synth)".into(),
            modality: vigil_protocol::Modality::Face,
            fingers: vec![],
            input_dim: None,
            dim: 128,
            centre: None,
            projection: None,
            thresholds: vec![Threshold { band: Band::Possible, cosine: 0.5, fmr: 1e-6, fewer_fingers: vec![] }],
            protected_bits: 512,
            status: Status::Active,
            representation: None,
        }],
    })
}

/// The built-in extractor `id` (the synthetic one), for the demo, drills and tests.
pub fn extractor(id: &str) -> Option<&'static Extractor> {
    builtin().get(id)
}

/// A `'static` copy of an extractor id, made once per distinct id (ids
/// come only from steward-signed policies, at most 64 bytes each, so the
/// set stays small): lets galleries and per-peer tables key on a plain
/// `&str` without a heap string per record.
pub fn intern(id: &str) -> &'static str {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static IDS: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut ids = IDS.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = ids.get(id) {
        return s;
    }
    let s: &'static str = Box::leak(id.to_owned().into_boxed_str());
    ids.insert(s);
    s
}

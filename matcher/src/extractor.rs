//! The feature extractors Vigil knows: dimension, modality and the cosine
//! threshold calibrated for its target false-match rate.

use vigil_protocol::Modality;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Extractor {
    pub id: &'static str,
    pub modality: Modality,
    pub dim: usize,
    /// Cosine similarity at or above which two templates match.
    pub threshold: f32,
    /// Protected-template length in bits.
    pub protected_bits: usize,
}

/// Known extractors. Thresholds are the operating points published for each
/// model family at FMR around 1e-4; `vigil-synth-128` is the synthetic
/// extractor of the demo and drills (see `synth`).
pub const EXTRACTORS: &[Extractor] = &[
    Extractor { id: "vigil-synth-128", modality: Modality::Face, dim: 128, threshold: 0.5, protected_bits: 512 },
    Extractor { id: "facenet-128", modality: Modality::Face, dim: 128, threshold: 0.6, protected_bits: 512 },
    Extractor { id: "arcface-r100-512", modality: Modality::Face, dim: 512, threshold: 0.36, protected_bits: 1024 },
    Extractor { id: "finger-fixed-256", modality: Modality::Finger, dim: 256, threshold: 0.55, protected_bits: 512 },
];

impl Extractor {
    /// The decision threshold on the integer score of two quantised
    /// templates (unit vectors at scale 127): what the plain, protected and
    /// encrypted matchers compare inner products with.
    pub fn score_threshold(&self) -> i32 {
        crate::template::score_threshold(self.threshold)
    }
}

pub fn extractor(id: &str) -> Option<&'static Extractor> {
    EXTRACTORS.iter().find(|e| e.id == id)
}

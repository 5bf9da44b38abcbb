//! Template files (JSON float vectors from a capture SDK) and quantised
//! templates: L2-normalised, scaled to i8, tagged with modality and extractor.

use crate::extractor::{Extractor, Policy};
use serde::{Deserialize, Serialize};
use vigil_protocol::Modality;

/// Largest template file accepted, in bytes.
pub const MAX_TEMPLATE_FILE_BYTES: usize = 256 * 1024;
const SCALE: f32 = 127.0;
/// Largest magnitude of a template value accepted.
pub const MAX_TEMPLATE_VALUE: f32 = 1e6;

/// A cosine threshold as a threshold on the inner product of two quantised
/// templates (each a unit vector at scale 127).
pub fn score_threshold(cosine: f32) -> i32 {
    (cosine * SCALE * SCALE).round() as i32
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum TemplateError {
    #[error("template file is {0} bytes, the limit is {MAX_TEMPLATE_FILE_BYTES}")]
    TooLarge(usize),
    #[error("template file is not valid JSON of the expected shape: {0}")]
    Json(String),
    #[error(transparent)]
    Extractor(#[from] crate::NotActive),
    #[error("extractor {extractor} produces {expected}-dimensional vectors, the file has {found}")]
    Dimension { extractor: String, expected: usize, found: usize },
    #[error("modality {found:?} does not match extractor {extractor} ({expected:?})")]
    Modality { extractor: String, expected: Modality, found: Modality },
    #[error("template vector is empty")]
    Empty,
    #[error("template vector has a non-finite value (NaN or infinity) at index {0}")]
    NotFinite(usize),
    #[error("template vector contains NaN or Infinity (the capture SDK produced no valid embedding)")]
    NotFiniteLiteral,
    #[error("template vector is all zeros and cannot be normalised")]
    Zero,
    #[error("template vector value {value:e} at index {index} is not an embedding value (subnormal, or beyond ±{MAX_TEMPLATE_VALUE:e})")]
    OutOfRange { index: usize, value: f32 },
    #[error("{0}")]
    Minutiae(String),
    #[error(
        "extractor {0} combines several fingers, which protected templates cannot compare; use encrypted matching"
    )]
    NotProtectable(String),
    #[error("templates from different extractors ({0} and {1}) cannot be compared")]
    Mismatch(String, String),
}

/// The JSON file a capture SDK or export tool produces.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateFile {
    pub modality: Modality,
    pub extractor: String,
    #[serde(default)]
    pub quality: Option<u8>,
    pub vector: Vec<f32>,
    /// The capture SDK's signed liveness (PAD) result over `vector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad: Option<vigil_protocol::pad::PadAttestation>,
}

/// A quantised template: unit vector scaled by 127 and rounded to i8.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    pub modality: Modality,
    pub extractor: String,
    pub quality: Option<u8>,
    pub vector: Vec<i8>,
}

impl std::fmt::Debug for Template {
    // Never print template contents (logs are not sealed).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Template({}, {} dims)", self.extractor, self.vector.len())
    }
}

impl TemplateFile {
    pub fn parse(bytes: &[u8]) -> Result<Self, TemplateError> {
        if bytes.len() > MAX_TEMPLATE_FILE_BYTES {
            return Err(TemplateError::TooLarge(bytes.len()));
        }
        serde_json::from_slice(bytes).map_err(|e| {
            // Python's json module writes NaN and Infinity, which JSON forbids.
            let text = String::from_utf8_lossy(bytes);
            if ["NaN", "Infinity"].iter().any(|t| text.contains(t)) {
                TemplateError::NotFiniteLiteral
            } else {
                TemplateError::Json(e.to_string())
            }
        })
    }

    /// What a PAD attestation over this file's sample signs: SHA-256 of the
    /// vector's values as little-endian f32.
    pub fn sample_digest(&self) -> vigil_protocol::Digest {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        self.vector.iter().for_each(|x| h.update(x.to_le_bytes()));
        vigil_protocol::Digest(h.finalize().into())
    }

    /// Validates against the policy's active extractor, normalises as it
    /// says and quantises.
    pub fn to_template(&self, policy: &Policy) -> Result<Template, TemplateError> {
        let ex = policy.active(&self.extractor)?;
        self.to_template_with(ex)
    }

    /// As `to_template`, with the extractor already looked up.
    pub fn to_template_with(&self, ex: &Extractor) -> Result<Template, TemplateError> {
        if self.extractor != ex.id {
            return Err(TemplateError::Mismatch(self.extractor.clone(), ex.id.clone()));
        }
        if self.modality != ex.modality {
            return Err(TemplateError::Modality {
                extractor: ex.id.clone(),
                expected: ex.modality,
                found: self.modality,
            });
        }
        if self.vector.is_empty() {
            return Err(TemplateError::Empty);
        }
        if self.vector.len() != ex.input_dim() {
            return Err(TemplateError::Dimension {
                extractor: ex.id.clone(),
                expected: ex.input_dim(),
                found: self.vector.len(),
            });
        }
        check_values(&self.vector)?;
        if self.vector.iter().all(|x| *x == 0.0) {
            return Err(TemplateError::Zero);
        }
        Ok(Template {
            modality: self.modality,
            extractor: ex.id.clone(),
            quality: self.quality,
            vector: scale_parts(&ex.normalise(&self.vector), ex.parts())?,
        })
    }
}

/// Quantises each of `parts` equal parts on its own (one per finger of a
/// multi-finger extractor) as a unit vector at scale 127/√parts, so that a
/// whole template never exceeds the norm the encrypted matcher's error
/// budget assumes; an all-zero part (an absent finger) stays zero.
pub(crate) fn scale_parts(v: &[f32], parts: usize) -> Result<Vec<i8>, TemplateError> {
    if parts <= 1 {
        return scale(v);
    }
    let mut out = Vec::with_capacity(v.len());
    let at = SCALE / (parts as f32).sqrt();
    for part in v.chunks(v.len() / parts) {
        match scale_to(part, at) {
            Ok(q) => out.extend(q),
            Err(TemplateError::Zero) => out.extend(std::iter::repeat_n(0, part.len())),
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// The built-in extractor `id` (the synthetic one of the demo and drills).
pub(crate) fn lookup(id: &str) -> Result<&'static Extractor, TemplateError> {
    Ok(crate::extractor::builtin().active(id)?)
}

/// Refuses values no extractor writes: NaN, infinities, subnormals and
/// astronomically large magnitudes (a broken or crafted file).
fn check_values(v: &[f32]) -> Result<(), TemplateError> {
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(TemplateError::NotFinite(i));
    }
    // No extractor writes subnormal or astronomically large values: such a
    // file is broken or crafted, and its quantised form degenerate.
    let odd = |x: &f32| (*x != 0.0 && !x.is_normal()) || x.abs() > MAX_TEMPLATE_VALUE;
    if let Some(index) = v.iter().position(odd) {
        return Err(TemplateError::OutOfRange { index, value: v[index] });
    }
    Ok(())
}

/// L2-normalises and scales to i8.
pub fn quantise(v: &[f32]) -> Result<Vec<i8>, TemplateError> {
    check_values(v)?;
    scale(v)
}

/// Checks and quantises a vector of `parts` equal parts (one per finger of
/// a multi-finger extractor), each on its own (`scale_parts`).
pub fn quantise_parts(v: &[f32], parts: usize) -> Result<Vec<i8>, TemplateError> {
    check_values(v)?;
    scale_parts(v, parts)
}

/// L2-normalises and scales to i8 a vector already checked.
fn scale(v: &[f32]) -> Result<Vec<i8>, TemplateError> {
    scale_to(v, SCALE)
}

fn scale_to(v: &[f32], at: f32) -> Result<Vec<i8>, TemplateError> {
    let norm = v.iter().map(|x| (*x as f64) * (*x as f64)).sum::<f64>().sqrt();
    if norm == 0.0 {
        return Err(TemplateError::Zero);
    }
    Ok(v.iter().map(|x| ((*x as f64 / norm) as f32 * at).round().clamp(-127.0, 127.0) as i8).collect())
}

impl Template {
    /// Integer inner product.
    pub fn dot(&self, other: &Template) -> Result<i32, TemplateError> {
        if self.extractor != other.extractor || self.vector.len() != other.vector.len() {
            return Err(TemplateError::Mismatch(self.extractor.clone(), other.extractor.clone()));
        }
        Ok(self.vector.iter().zip(&other.vector).map(|(a, b)| *a as i32 * *b as i32).sum())
    }

    /// Approximate cosine similarity from the quantised vectors.
    pub fn cosine(&self, other: &Template) -> Result<f32, TemplateError> {
        Ok(self.dot(other)? as f32 / (SCALE * SCALE))
    }

    /// Back to floats (for projection); the unit vector up to quantisation.
    pub fn as_f32(&self) -> Vec<f32> {
        self.vector.iter().map(|x| *x as f32 / SCALE).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(extractor: &str, vector: Vec<f32>) -> TemplateFile {
        TemplateFile { modality: Modality::Face, extractor: extractor.into(), quality: None, vector, pad: None }
    }

    #[test]
    fn precise_errors() {
        let b = crate::builtin();
        assert!(matches!(
            file("nope", vec![1.0]).to_template(b),
            Err(TemplateError::Extractor(crate::NotActive::Unknown(..)))
        ));
        assert_eq!(
            file("vigil-synth-128", vec![1.0; 3]).to_template(b),
            Err(TemplateError::Dimension { extractor: "vigil-synth-128".into(), expected: 128, found: 3 })
        );
        assert_eq!(file("vigil-synth-128", vec![]).to_template(b), Err(TemplateError::Empty));
        let mut v = vec![1.0; 128];
        v[7] = f32::NAN;
        assert_eq!(file("vigil-synth-128", v).to_template(b), Err(TemplateError::NotFinite(7)));
        assert_eq!(file("vigil-synth-128", vec![0.0; 128]).to_template(b), Err(TemplateError::Zero));
        assert!(matches!(
            TemplateFile::parse(&vec![b' '; MAX_TEMPLATE_FILE_BYTES + 1]),
            Err(TemplateError::TooLarge(_))
        ));
        assert!(matches!(TemplateFile::parse(b"{\"vector\": [1]}"), Err(TemplateError::Json(_))));
        let nan = br#"{"modality":"face","extractor":"vigil-synth-128","vector":[0.1, NaN]}"#;
        assert_eq!(TemplateFile::parse(nan).unwrap_err(), TemplateError::NotFiniteLiteral);
        // Subnormal and near-overflow values are refused, not quantised.
        for (i, bad) in [(3, 1e-42f32), (9, -3.0e38), (0, 2e6)] {
            let mut v = vec![0.1; 128];
            v[i] = bad;
            assert_eq!(
                file("vigil-synth-128", v).to_template(b),
                Err(TemplateError::OutOfRange { index: i, value: bad }),
                "{bad:e}"
            );
        }
    }

    #[test]
    fn quantised_self_similarity_is_near_one() {
        let v: Vec<f32> = (0..128).map(|i| (i as f32 * 0.37).sin()).collect();
        let t = file("vigil-synth-128", v).to_template(crate::builtin()).unwrap();
        let c = t.cosine(&t).unwrap();
        assert!((c - 1.0).abs() < 0.02, "{c}");
    }
}

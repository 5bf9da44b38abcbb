//! The federation's biometric policy: per extractor its dimension,
//! normalisation (L2, optional centring and linear projection), calibrated
//! thresholds and status, signed by the stewards like the roster. Nodes
//! match with the policy they hold; only like templates are compared.

mod body;

use crate::roster::StewardSignature;
use crate::{Modality, WireError};
pub use body::PolicyBody;
use serde::{Deserialize, Serialize};

/// Largest raw vector an extractor may produce.
pub(crate) const MAX_INPUT_DIM: usize = 4096;
/// Largest template dimension (after projection).
pub(crate) const MAX_DIM: usize = 2048;
/// Largest projection matrix, in values (e.g. 512 × 512).
pub(crate) const MAX_PROJECTION_VALUES: usize = 128 * 1024;
/// Most extractors one policy lists.
pub(crate) const MAX_EXTRACTORS: usize = 64;
/// Most centre and projection values in one policy (it must fit a frame).
pub(crate) const MAX_POLICY_VALUES: usize = 200_000;

/// Whether records of an extractor are matched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Active,
    /// Its records stop matching and are listed for re-enrolment.
    Retired,
}

/// Confidence bands an operator adjudicates by, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Band {
    Possible,
    Probable,
    Strong,
}

/// One decision threshold: a cosine similarity (for multi-finger
/// extractors the sum of per-finger cosines over every finger) and the
/// false-match rate it was calibrated for; for multi-finger extractors
/// optionally also the sums that stand for that rate when probe and record
/// share fewer fingers.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    pub band: Band,
    pub cosine: f32,
    /// False-match rate per comparison at this threshold, as calibrated.
    pub fmr: f64,
    /// The threshold when probe and record share 1, 2, …, parts − 1
    /// fingers (a sum of that many cosines); empty: `cosine` for any
    /// count. Binary policy bodies carry these in format 3 only (see
    /// `PolicyBody`), so `Threshold` itself encodes as before.
    pub fewer_fingers: Vec<f32>,
}

/// `Threshold` as JSON shows it.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThresholdJson {
    band: Band,
    cosine: f32,
    fmr: f64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    fewer_fingers: Vec<f32>,
}

impl Serialize for Threshold {
    /// JSON: `{band, cosine, fmr, fewer_fingers?}`; binary: `(band, cosine,
    /// fmr)`, the bytes a derived struct of those three fields makes.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            let Self { band, cosine, fmr, fewer_fingers } = self.clone();
            return ThresholdJson { band, cosine, fmr, fewer_fingers }.serialize(s);
        }
        (self.band, self.cosine, self.fmr).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Threshold {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let ThresholdJson { band, cosine, fmr, fewer_fingers } = ThresholdJson::deserialize(d)?;
            return Ok(Self { band, cosine, fmr, fewer_fingers });
        }
        let (band, cosine, fmr) = <(Band, f32, f64)>::deserialize(d)?;
        Ok(Self { band, cosine, fmr, fewer_fingers: Vec::new() })
    }
}

/// A linear projection applied after centring: `dim` rows of `input_dim`
/// values, row-major.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Projection {
    pub values: Vec<f32>,
}

/// One extractor as a policy lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Extractor {
    /// The tag templates carry; only templates with equal tags are compared.
    pub id: String,
    /// The model and its version, as its vendor names them (informative).
    #[serde(default)]
    pub model: String,
    pub modality: Modality,
    /// ISO/IEC 19794-2 finger positions (1–10) for fingerprint extractors.
    #[serde(default)]
    pub fingers: Vec<u8>,
    /// Length of the vectors in template files; `dim` when absent.
    #[serde(default)]
    pub input_dim: Option<usize>,
    /// Dimension of the quantised template.
    pub dim: usize,
    /// Subtracted from the L2-normalised input (the mean unit vector of a
    /// calibration set), before any projection.
    #[serde(default)]
    pub centre: Option<Vec<f32>>,
    #[serde(default)]
    pub projection: Option<Projection>,
    /// One to three thresholds, increasing; the first decides a match.
    pub thresholds: Vec<Threshold>,
    /// Protected-template length in bits.
    pub protected_bits: usize,
    #[serde(default)]
    pub status: Status,
    /// How template vectors are made from standard minutiae records, for
    /// fingerprint extractors whose vectors Vigil computes itself.
    #[serde(default)]
    pub representation: Option<Representation>,
}

/// A published method that turns a finger's minutiae into a fixed-length
/// vector compared by inner product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Representation {
    /// Spectral minutiae (location-based, with an angular Fourier
    /// magnitude for rotation invariance); see PROTOCOL.md for every
    /// parameter. 192 values per finger.
    #[serde(rename = "spectral-minutiae-v1")]
    SpectralMinutiaeV1,
}

impl Representation {
    /// Values per finger position.
    pub const fn dim_per_finger(self) -> usize {
        match self {
            Representation::SpectralMinutiaeV1 => 192,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("extractor {id:?}: {reason}")]
pub struct PolicyError {
    pub id: String,
    pub reason: String,
}

impl Threshold {
    /// The cosine sum this threshold stands at for a probe and a record
    /// sharing `common` fingers.
    pub fn cosine_for(&self, common: usize) -> f32 {
        match self.fewer_fingers.get(common.max(1) - 1) {
            Some(c) => *c,
            None => self.cosine,
        }
    }
}

impl Extractor {
    /// The cosine at or above which two templates match.
    pub fn threshold(&self) -> f32 {
        self.thresholds[0].cosine
    }

    /// The decision threshold on the integer score of two quantised
    /// templates (unit vectors at scale 127): what the plain, protected and
    /// encrypted matchers compare inner products with.
    ///
    /// For a multi-finger extractor the threshold is on the sum of
    /// per-finger cosines, and each part is quantised at scale 127/√parts.
    pub fn score_threshold(&self) -> i32 {
        self.score_of(self.threshold())
    }

    /// `score_threshold` of every threshold, rising: the confidence bands
    /// (the first decides a match).
    pub fn score_thresholds(&self) -> Vec<i32> {
        self.thresholds.iter().map(|t| self.score_of(t.cosine)).collect()
    }

    /// The score thresholds of every band for a probe and a record that
    /// share `common` fingers (`fewer_fingers`; `common` at or above the
    /// extractor's finger count, or a threshold without them: as
    /// `score_thresholds`). `common` = 0 is judged as one finger: such a
    /// pair scores exactly 0.
    pub fn score_thresholds_for(&self, common: usize) -> Vec<i32> {
        self.thresholds.iter().map(|t| self.score_of(t.cosine_for(common))).collect()
    }

    /// Whether some threshold depends on the number of fingers both sides hold.
    pub fn counts_fingers(&self) -> bool {
        self.thresholds.iter().any(|t| !t.fewer_fingers.is_empty())
    }

    /// The integer score threshold a threshold cosine (sum) stands for.
    pub fn score_of(&self, cosine: f32) -> i32 {
        (cosine * 127.0 * 127.0 / self.parts() as f32).round() as i32
    }

    /// The threshold cosine (a sum over fingers for multi-finger
    /// extractors) that an integer score stands for.
    pub fn cosine_of(&self, score: i32) -> f32 {
        score as f32 * self.parts() as f32 / (127.0 * 127.0)
    }

    pub fn input_dim(&self) -> usize {
        self.input_dim.unwrap_or(self.dim)
    }

    /// Independently normalised parts of a vector: one per finger position
    /// for fingerprint extractors (an absent finger is all zeros and adds
    /// nothing to a score, so scores sum over the fingers both sides hold),
    /// one otherwise.
    pub fn parts(&self) -> usize {
        if self.modality == Modality::Finger {
            self.fingers.len().max(1)
        } else {
            1
        }
    }

    pub fn is_active(&self) -> bool {
        self.status == Status::Active
    }

    /// Maps a raw vector (already checked finite, non-zero, of
    /// `input_dim`) to the vector that is quantised: L2-normalise, centre,
    /// project; part by part for multi-finger extractors, where an all-zero
    /// part (an absent finger) stays zero. Quantisation normalises each
    /// part again.
    pub fn normalise(&self, v: &[f32]) -> Vec<f32> {
        let size = v.len() / self.parts();
        let mut out = Vec::with_capacity(self.dim);
        for (i, part) in v.chunks(size.max(1)).enumerate() {
            let norm = part.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
            if norm == 0.0 {
                out.extend(std::iter::repeat_n(0.0, self.dim / self.parts()));
                continue;
            }
            let mut u: Vec<f32> = part.iter().map(|x| (*x as f64 / norm) as f32).collect();
            if let Some(c) = &self.centre {
                u.iter_mut().zip(&c[i * size..]).for_each(|(x, m)| *x -= m);
            }
            match &self.projection {
                Some(p) => out.extend(
                    p.values.chunks_exact(u.len()).map(|row| row.iter().zip(&u).map(|(a, b)| a * b).sum::<f32>()),
                ),
                None => out.extend(u),
            }
        }
        out
    }

    /// Whether a newer policy may keep this id for `other`: everything that
    /// shapes a stored template must be equal (thresholds and status may change).
    pub fn same_templates(&self, other: &Extractor) -> bool {
        self.modality == other.modality
            && self.input_dim() == other.input_dim()
            && self.dim == other.dim
            && self.centre == other.centre
            && self.projection == other.projection
            && self.protected_bits == other.protected_bits
            && self.fingers == other.fingers
            && self.representation == other.representation
    }

    pub fn validate(&self) -> Result<(), PolicyError> {
        let err = |reason: String| Err(PolicyError { id: self.id.clone(), reason });
        if !valid_id(&self.id) {
            return err("ids are 1–64 characters of a–z, 0–9, '.', '_' and '-'".into());
        }
        if self.model.len() > 256 {
            return err("model description over 256 bytes".into());
        }
        if self.dim == 0 || self.dim > MAX_DIM || self.input_dim() == 0 || self.input_dim() > MAX_INPUT_DIM {
            return err(format!("dimension must be 1..={MAX_DIM} (input 1..={MAX_INPUT_DIM})"));
        }
        if self.projection.is_none() && self.input_dim() != self.dim {
            return err(format!(
                "input dimension {} differs from dimension {} without a projection",
                self.input_dim(),
                self.dim
            ));
        }
        if let Some(c) = &self.centre {
            if c.len() != self.input_dim() || c.iter().any(|x| !x.is_finite() || x.abs() > 1.0) {
                return err(format!("centre must be {} finite values in [-1, 1]", self.input_dim()));
            }
        }
        if let Some(p) = &self.projection {
            let n = self.dim * self.input_dim();
            if n > MAX_PROJECTION_VALUES || p.values.len() != n || p.values.iter().any(|x| !x.is_finite()) {
                return err(format!(
                    "projection must be {} × {} finite values (at most {MAX_PROJECTION_VALUES})",
                    self.dim,
                    self.input_dim()
                ));
            }
        }
        if self.thresholds.is_empty() || self.thresholds.len() > 3 {
            return err("one to three thresholds".into());
        }
        for (i, t) in self.thresholds.iter().enumerate() {
            let k = self.parts() as f32;
            let in_range = t.cosine > -k && t.cosine < k && t.fmr > 0.0 && t.fmr < 1.0;
            if !in_range {
                return err(format!(
                    "threshold {i}: cosine must be in (-{k}, {k}) (a sum over {k} finger(s)) and fmr in (0, 1)"
                ));
            }
            if !t.fewer_fingers.is_empty() {
                let n = self.parts();
                let sane = t.fewer_fingers.iter().enumerate().all(|(c, x)| *x > 0.0 && *x < (c + 1) as f32);
                if n < 2 || t.fewer_fingers.len() != n - 1 || !sane {
                    return err(format!(
                        "threshold {i}: fewer_fingers gives a multi-finger extractor's thresholds for 1..{n} shared \
                         finger(s): {} values, the c-th in (0, c)",
                        n.saturating_sub(1)
                    ));
                }
            }
            if i > 0 {
                let p = &self.thresholds[i - 1];
                let rising = (1..self.parts()).all(|c| t.cosine_for(c) > p.cosine_for(c));
                if t.band <= p.band || t.cosine <= p.cosine || t.fmr > p.fmr || !rising {
                    return err(
                        "thresholds must rise band by band (possible, probable, strong), with falling fmr".into()
                    );
                }
            }
        }
        if self.protected_bits < 64 || self.protected_bits > 4096 || !self.protected_bits.is_multiple_of(8) {
            return err("protected_bits must be a multiple of 8 in 64..=4096".into());
        }
        if self.modality == Modality::Finger {
            if self.fingers.is_empty() || self.fingers.iter().any(|f| !(1..=10).contains(f)) {
                return err("a fingerprint extractor lists its finger positions (1–10)".into());
            }
        } else if !self.fingers.is_empty() {
            return err("finger positions are for fingerprint extractors".into());
        }
        let mut seen = [false; 11];
        if self.fingers.iter().any(|f| std::mem::replace(&mut seen[*f as usize % 11], true)) {
            return err("a finger position is listed twice".into());
        }
        if self.parts() > 1 && self.dim > crate::limits::MAX_ENCRYPTED_DIM {
            // Several fingers have no protected form: encrypted matching is
            // the only way such templates cross the network.
            return err(format!(
                "a {}-finger extractor of {} dimensions could be matched neither protected (several fingers) \
                 nor encrypted (at most {} dimensions): list fewer fingers",
                self.parts(),
                self.dim,
                crate::limits::MAX_ENCRYPTED_DIM
            ));
        }
        if self.parts() > 1 && (self.projection.is_some() || !self.input_dim().is_multiple_of(self.parts())) {
            return err(format!(
                "a {}-finger extractor has no projection and a dimension divisible by its finger count",
                self.parts()
            ));
        }
        if let Some(r) = self.representation {
            let want = r.dim_per_finger() * self.parts();
            if self.modality != Modality::Finger || self.input_dim() != want {
                return err(format!(
                    "{r:?} makes fingerprint vectors of {} values per finger: input dimension {want}",
                    r.dim_per_finger()
                ));
            }
        }
        Ok(())
    }
}

/// Whether `id` is 1–64 characters of `a–z 0–9 . _ -` (extractor and
/// capture key ids).
pub(crate) fn valid_id(id: &str) -> bool {
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c);
    !id.is_empty() && id.len() <= 64 && id.chars().all(ok)
}

/// The extractors a node matches with: the content of a federation's
/// signed biometric policy (or the built-in demo policy, version 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Strictly increasing; 0 is the built-in demo policy.
    pub version: u64,
    #[serde(rename = "extractor")]
    pub extractors: Vec<Extractor>,
}

impl Policy {
    /// Any listed extractor, active or retired.
    pub fn get(&self, id: &str) -> Option<&Extractor> {
        self.extractors.iter().find(|e| e.id == id)
    }

    /// An extractor that may be matched now.
    pub fn active(&self, id: &str) -> Result<&Extractor, NotActive> {
        match self.get(id) {
            Some(e) if e.is_active() => Ok(e),
            Some(_) => Err(NotActive::Retired(id.into())),
            None => {
                let known: Vec<&str> =
                    self.extractors.iter().filter(|e| e.is_active()).map(|e| e.id.as_str()).collect();
                Err(NotActive::Unknown(id.into(), known.join(", ")))
            }
        }
    }

    pub fn validate(&self) -> Result<(), PolicyError> {
        let err = |id: &str, reason: &str| Err(PolicyError { id: id.into(), reason: reason.into() });
        if self.extractors.is_empty() || self.extractors.len() > MAX_EXTRACTORS {
            return err("", &format!("a policy lists 1..={MAX_EXTRACTORS} extractors"));
        }
        let values: usize = self
            .extractors
            .iter()
            .map(|e| e.centre.as_ref().map_or(0, Vec::len) + e.projection.as_ref().map_or(0, |p| p.values.len()))
            .sum();
        if values > MAX_POLICY_VALUES {
            return err("", &format!("{values} centre and projection values, the limit is {MAX_POLICY_VALUES}"));
        }
        let mut seen = std::collections::HashSet::new();
        for e in &self.extractors {
            e.validate()?;
            if !seen.insert(&e.id) {
                return err(&e.id, "listed twice");
            }
        }
        Ok(())
    }

    /// Checks that `newer` may replace this policy: a higher version, and
    /// every id kept shapes templates as before (a recalibrated centre,
    /// projection or length needs a new id, so that stored templates are
    /// never compared with differently normalised probes).
    pub fn check_successor(&self, newer: &Policy) -> Result<(), PolicyError> {
        newer.validate()?;
        if newer.version <= self.version {
            return Err(PolicyError {
                id: String::new(),
                reason: format!("policy version {} is not newer than {}", newer.version, self.version),
            });
        }
        for old in &self.extractors {
            if let Some(new) = newer.get(&old.id) {
                if !old.same_templates(new) {
                    return Err(PolicyError {
                        id: old.id.clone(),
                        reason: "changes how templates are formed (dimension, centre, projection, bits or fingers); \
                                 give it a new id and retire this one"
                            .into(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// Why a template's extractor cannot be matched under a policy.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum NotActive {
    #[error("extractor {0:?} is not in the federation's biometric policy; active: {1}")]
    Unknown(String, String),
    #[error("extractor {0:?} is retired in the federation's biometric policy: re-enrol with an active one")]
    Retired(String),
}

/// A policy with its steward signatures (domain `vigil/v1/policy`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedPolicy {
    pub body: PolicyBody,
    pub signatures: Vec<StewardSignature>,
}

impl SignedPolicy {
    pub fn version(&self) -> u64 {
        self.body.policy.version
    }
}

impl PolicyBody {
    pub fn validate(&self) -> Result<(), WireError> {
        if self.federation.is_empty() || self.federation.len() > crate::limits::MAX_TEXT {
            return Err(WireError::Invalid("federation name must be 1..=256 bytes".into()));
        }
        if self.policy.version == 0 {
            return Err(WireError::Invalid(
                "policy version 0 is the built-in demo policy; signed ones start at 1".into(),
            ));
        }
        self.policy.validate().map_err(|e| WireError::Invalid(e.to_string()))?;
        self.liveness.validate().map_err(WireError::Invalid)
    }
}

/// Version of the policy file format of a policy without liveness rules
/// or thresholds by finger count; the file's format is its body's
/// (`PolicyBody::format`: 2 with liveness rules, 3 with counts).
pub const POLICY_FILE_FORMAT: u32 = 1;

/// A signed policy as a JSON file: `{"format": 1, "body": ..., "signatures": [...]}`
/// (2 or 3 as the body's binary format, `PolicyBody::format`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyFile {
    pub format: u32,
    #[serde(flatten)]
    pub policy: SignedPolicy,
}

impl PolicyFile {
    pub fn to_json(policy: &SignedPolicy) -> String {
        let f = PolicyFile { format: policy.body.format(), policy: policy.clone() };
        serde_json::to_string_pretty(&f).expect("policies serialise")
    }

    /// Parses a policy file under the size limit and checks its format and body.
    pub fn parse(bytes: &[u8]) -> Result<SignedPolicy, WireError> {
        if bytes.len() > crate::limits::MAX_POLICY_FILE_BYTES {
            return Err(WireError::TooLarge { len: bytes.len(), limit: crate::limits::MAX_POLICY_FILE_BYTES });
        }
        #[derive(Deserialize)]
        struct Format {
            format: Option<u32>,
        }
        let f: Format = serde_json::from_slice(bytes).map_err(|e| WireError::Malformed(e.to_string()))?;
        match f.format {
            Some(1..=3) => {}
            Some(v) => return Err(WireError::Invalid(format!("unsupported policy file format {v} (reads 1 to 3)"))),
            None => return Err(WireError::Invalid("not a Vigil policy file (no \"format\" field)".into())),
        }
        let file: PolicyFile = serde_json::from_slice(bytes).map_err(|e| WireError::Malformed(e.to_string()))?;
        if file.format != file.policy.body.format() {
            return Err(WireError::Invalid(format!(
                "a policy file of format {} must have format {} (3 exactly when a threshold has fewer_fingers, \
                 else 2 exactly when it has liveness rules)",
                file.format,
                file.policy.body.format()
            )));
        }
        file.policy.body.validate()?;
        Ok(file.policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn face(id: &str) -> Extractor {
        Extractor {
            id: id.into(),
            model: String::new(),
            modality: Modality::Face,
            fingers: vec![],
            input_dim: None,
            dim: 128,
            centre: None,
            projection: None,
            thresholds: vec![Threshold { band: Band::Possible, cosine: 0.5, fmr: 1e-6, fewer_fingers: vec![] }],
            protected_bits: 512,
            status: Status::Active,
            representation: None,
        }
    }

    #[test]
    fn validation_names_the_problem() {
        assert!(Policy { version: 1, extractors: vec![face("a")] }.validate().is_ok());
        let mut e = face("Bad Id");
        assert!(e.validate().unwrap_err().reason.contains("ids are"));
        e = face("x");
        e.centre = Some(vec![0.0; 3]);
        assert!(e.validate().unwrap_err().reason.contains("centre must be 128"));
        e = face("x");
        e.thresholds.push(Threshold { band: Band::Probable, cosine: 0.4, fmr: 1e-7, fewer_fingers: vec![] });
        assert!(e.validate().unwrap_err().reason.contains("rise band by band"));
        e = face("x");
        e.modality = Modality::Finger;
        assert!(e.validate().unwrap_err().reason.contains("finger positions"));
        let p = Policy { version: 1, extractors: vec![face("a"), face("a")] };
        assert_eq!(p.validate().unwrap_err().reason, "listed twice");
    }

    #[test]
    fn a_successor_may_recalibrate_thresholds_but_not_reshape_templates() {
        let old = Policy { version: 1, extractors: vec![face("a")] };
        let mut new = old.clone();
        new.version = 2;
        new.extractors[0].thresholds[0].cosine = 0.55;
        new.extractors[0].status = Status::Retired;
        assert!(old.check_successor(&new).is_ok());
        new.extractors[0].centre = Some(vec![0.01; 128]);
        assert!(old.check_successor(&new).unwrap_err().reason.contains("new id"));
        new.extractors[0].centre = None;
        new.version = 1;
        assert!(old.check_successor(&new).unwrap_err().reason.contains("not newer"));
    }

    #[test]
    fn normalisation_centres_then_projects() {
        let mut e = face("p");
        e.input_dim = Some(2);
        e.dim = 1;
        e.centre = Some(vec![0.5, 0.0]);
        e.projection = Some(Projection { values: vec![2.0, 1.0] });
        // (3, 4) -> (0.6, 0.8) -> (0.1, 0.8) -> 2·0.1 + 0.8
        let out = e.normalise(&[3.0, 4.0]);
        assert!((out[0] - 1.0).abs() < 1e-6, "{out:?}");
    }
}

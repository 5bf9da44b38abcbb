//! The protected matcher ("hashed templates", ISO/IEC 24745 renewable):
//! a keyed sign-random-projection of the unit vector to `b` bits, compared
//! by Hamming distance. The projection is drawn from a ChaCha20 stream
//! keyed by SHA-256(epoch secret, extractor), so rotating the epoch secret
//! re-protects everything and old protected templates stop matching.
//!
//! For two unit vectors at angle θ each bit differs with probability θ/π,
//! so a cosine threshold T maps to the Hamming threshold b·arccos(T)/π.

use crate::extractor::Extractor;
use crate::template::{lookup, Template, TemplateError};
use crate::Matcher;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use sha2::{Digest, Sha256};
use vigil_protocol::{Modality, ProtectedProbe};

/// The federation epoch secret that keys the projection. Zeroised on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct EpochSecret(zeroize::Zeroizing<[u8; 32]>);

impl std::fmt::Debug for EpochSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EpochSecret(id {})", hex_id(&self.id()))
    }
}

impl EpochSecret {
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(zeroize::Zeroizing::new(bytes))
    }
    /// Public identifier of this epoch: first 8 bytes of SHA-256(secret).
    pub fn id(&self) -> [u8; 8] {
        let h = Sha256::new_with_prefix(b"vigil/epoch-id").chain_update(*self.0).finalize();
        h[..8].try_into().expect("8 bytes")
    }
}

/// A protected template (packed bits, LSB first).
pub type ProtectedTemplate = ProtectedProbe;

/// Projection matrices per extractor, derived once from the epoch secret.
#[derive(Debug, Clone)]
pub struct ProtectedMatcher {
    secret: EpochSecret,
    projections: std::collections::HashMap<String, Vec<f32>>,
}

impl ProtectedMatcher {
    pub fn new(secret: EpochSecret) -> Self {
        Self { secret, projections: Default::default() }
    }

    pub fn epoch_id(&self) -> [u8; 8] {
        self.secret.id()
    }

    fn projection(&mut self, ex: &Extractor) -> &[f32] {
        let extractor = ex.id.as_str();
        if !self.projections.contains_key(extractor) {
            let seed: [u8; 32] = Sha256::new_with_prefix(b"vigil/srp")
                .chain_update(*self.secret.0)
                .chain_update(extractor.as_bytes())
                .finalize()
                .into();
            let mut rng = rand_chacha::ChaCha20Rng::from_seed(seed);
            let m: Vec<f32> = (0..ex.protected_bits * ex.dim).map(|_| StandardNormal.sample(&mut rng)).collect();
            self.projections.insert(extractor.to_string(), m);
        }
        &self.projections[extractor]
    }

    /// Protects a template of extractor `ex`. Takes `&mut self` to cache
    /// the projection (per id: a policy never reshapes an id's templates).
    pub fn protect(&mut self, ex: &Extractor, t: &Template) -> Result<ProtectedTemplate, TemplateError> {
        if t.extractor != ex.id || t.vector.len() != ex.dim {
            return Err(TemplateError::Mismatch(t.extractor.clone(), ex.id.clone()));
        }
        if ex.parts() > 1 {
            // One projection of a concatenation would compare the mean over
            // all positions, not the sum over the fingers both sides hold.
            return Err(TemplateError::NotProtectable(ex.id.clone()));
        }
        let epoch_id = self.epoch_id();
        let x = t.as_f32();
        let m = self.projection(ex);
        let mut bits = vec![0u8; ex.protected_bits.div_ceil(8)];
        for (b, row) in m.chunks_exact(ex.dim).enumerate() {
            let s: f32 = row.iter().zip(&x).map(|(a, b)| a * b).sum();
            if s >= 0.0 {
                bits[b / 8] |= 1 << (b % 8);
            }
        }
        Ok(ProtectedProbe { epoch_id, modality: t.modality, extractor: t.extractor.clone(), bits })
    }

    /// Largest Hamming distance that still counts as a match.
    pub fn hamming_threshold(ex: &Extractor) -> u32 {
        Self::hamming_bound(ex, ex.threshold())
    }

    /// The Hamming distance a cosine threshold stands for.
    fn hamming_bound(ex: &Extractor, cosine: f32) -> u32 {
        (ex.protected_bits as f32 * cosine.acos() / std::f32::consts::PI).floor() as u32
    }

    /// Compares two protected templates of the same epoch and extractor `ex`.
    pub fn compare(ex: &Extractor, a: &ProtectedTemplate, b: &ProtectedTemplate) -> Result<bool, TemplateError> {
        Ok(Self::band(ex, a, b)?.is_some())
    }

    /// The highest of `ex`'s thresholds (an index into them: its confidence
    /// band) that two protected templates reach, `None` for no match.
    pub fn band(ex: &Extractor, a: &ProtectedTemplate, b: &ProtectedTemplate) -> Result<Option<usize>, TemplateError> {
        let d = Self::distance(ex, a, b)?;
        Ok(ex.thresholds.iter().rposition(|t| d <= Self::hamming_bound(ex, t.cosine)))
    }

    fn distance(ex: &Extractor, a: &ProtectedTemplate, b: &ProtectedTemplate) -> Result<u32, TemplateError> {
        if a.extractor != b.extractor
            || a.extractor != ex.id
            || a.bits.len() != b.bits.len()
            || a.modality != b.modality
        {
            return Err(TemplateError::Mismatch(a.extractor.clone(), b.extractor.clone()));
        }
        if a.epoch_id != b.epoch_id {
            return Err(TemplateError::Mismatch(
                format!("epoch {}", hex_id(&a.epoch_id)),
                format!("epoch {}", hex_id(&b.epoch_id)),
            ));
        }
        let expected = ex.protected_bits.div_ceil(8);
        if a.bits.len() != expected {
            return Err(TemplateError::Dimension {
                extractor: a.extractor.clone(),
                expected: expected * 8,
                found: a.bits.len() * 8,
            });
        }
        Ok(a.bits.iter().zip(&b.bits).map(|(x, y)| (x ^ y).count_ones()).sum())
    }

    pub fn modality_of(p: &ProtectedTemplate) -> Modality {
        p.modality
    }
}

fn hex_id(id: &[u8; 8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

impl Matcher for std::cell::RefCell<ProtectedMatcher> {
    type Probe = ProtectedTemplate;

    fn prepare(&self, template: &Template) -> Result<ProtectedTemplate, TemplateError> {
        self.borrow_mut().protect(lookup(&template.extractor)?, template)
    }

    fn decide(&self, probe: &ProtectedTemplate, record: &Template) -> Result<bool, TemplateError> {
        let ex = lookup(&record.extractor)?;
        let r = self.borrow_mut().protect(ex, record)?;
        ProtectedMatcher::compare(ex, probe, &r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::Population;
    use crate::PlainMatcher;

    #[test]
    fn agrees_with_plain_matcher_away_from_threshold() {
        let pop = Population::new(7, "vigil-synth-128", 200);
        let mut pm = ProtectedMatcher::new(EpochSecret::new([7; 32]));
        let ex = lookup("vigil-synth-128").unwrap();
        let (mut agree, mut total) = (0, 0);
        for i in 0..200 {
            let a = pop.sample(i, 0);
            let pa = pm.protect(ex, &a).unwrap();
            for j in [i, (i + 1) % 200] {
                let b = pop.sample(j, 1);
                let cos = a.cosine(&b).unwrap();
                if (cos - 0.5).abs() < 0.15 {
                    continue;
                }
                let plain = PlainMatcher(crate::builtin()).decide(&a, &b).unwrap();
                let prot = ProtectedMatcher::compare(ex, &pa, &pm.protect(ex, &b).unwrap()).unwrap();
                total += 1;
                agree += (plain == prot) as u32;
            }
        }
        assert!(total > 300);
        assert!(agree as f32 / total as f32 > 0.99, "{agree}/{total}");
    }

    #[test]
    fn another_epoch_does_not_compare() {
        let pop = Population::new(1, "vigil-synth-128", 2);
        let a = pop.sample(0, 0);
        let ex = lookup("vigil-synth-128").unwrap();
        let p1 = ProtectedMatcher::new(EpochSecret::new([1; 32])).protect(ex, &a).unwrap();
        let p2 = ProtectedMatcher::new(EpochSecret::new([2; 32])).protect(ex, &a).unwrap();
        assert!(ProtectedMatcher::compare(ex, &p1, &p2).is_err());
        assert_ne!(p1.bits, p2.bits);
    }
}

//! The drill's synthetic population: seeded identities and noisy captures
//! whose genuine and impostor score distributions resemble what face
//! embedding extractors produce, with the ground truth of who is who.
//!
//! Model (d = 128, `vigil-synth-128`, threshold 0.5 cosine):
//! - An identity is a unit vector `normalise(w·c_g + √(1−w²)·z)`: `z` is
//!   its own random direction, `c_g` the centre of one of `groups`
//!   look-alike groups (a stand-in for demographic clustering, which raises
//!   impostor scores among similar-looking people). With `w` = 0.3 two
//!   identities of one group score about w² ≈ 0.09 on average, others ≈ 0,
//!   with sd ≈ 1/√d ≈ 0.088.
//! - A capture is `normalise(identity + σ·n)`, `n` standard normal per
//!   dimension. Most captures are good (σ = 0.045: two good captures score
//!   ≈ 0.79); a fraction `poor_capture_rate` are poor (σ = 0.10: pose, age,
//!   blur; a good and a poor capture score ≈ 0.59, two poor ones ≈ 0.44).
//!
//! With the defaults (8 % poor captures, 16 groups) the mated score
//! distribution has a tail below the threshold (FNMR ≈ 0.5–1 % per
//! comparison) and the non-mated one a tail above it within groups (FMR
//! around 1e-6), the regime that published 1:N evaluations of good face
//! extractors report at their operating points. Every drill report
//! measures both distributions on its own data rather than trusting this
//! comment.

use crate::scenario::PopulationParams;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::Serialize;
use vigil_matcher::{extractor as lookup, quantise, Template};

/// The only extractor drills use.
pub const EXTRACTOR: &str = "vigil-synth-128";
/// Per-dimension noise of a good and of a poor capture.
pub const GOOD_NOISE: f32 = 0.045;
pub const POOR_NOISE: f32 = 0.10;

#[derive(Debug, Clone)]
pub struct Population {
    seed: u64,
    params: PopulationParams,
    dim: usize,
    centres: Vec<Vec<f32>>,
}

fn unit(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
}

fn rng(seed: u64, a: u64, b: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xD1B5_4A32_D192_ED03))
}

fn gaussian(rng: &mut ChaCha8Rng, dim: usize) -> Vec<f32> {
    (0..dim).map(|_| <StandardNormal as Distribution<f32>>::sample(&StandardNormal, rng)).collect()
}

impl Population {
    pub fn new(seed: u64, params: PopulationParams) -> Self {
        let dim = lookup(EXTRACTOR).expect("known extractor").dim;
        let centres = (0..params.groups)
            .map(|g| {
                let mut c = gaussian(&mut rng(seed, 0xC3A7, g as u64), dim);
                unit(&mut c);
                c
            })
            .collect();
        Self { seed, params, dim, centres }
    }

    /// The seed the population was drawn from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The match threshold (cosine) of the extractor.
    pub fn threshold(&self) -> f32 {
        lookup(EXTRACTOR).expect("known extractor").threshold()
    }

    /// Identity `i` (a unit vector), computed on demand.
    pub fn identity(&self, i: usize) -> Vec<f32> {
        let mut r = rng(self.seed, i as u64 + 1, 0x1D);
        let g = r.gen_range(0..self.params.groups);
        let mut z = gaussian(&mut r, self.dim);
        unit(&mut z);
        let w = self.params.group_weight as f32;
        let s = (1.0 - w * w).sqrt();
        let mut v: Vec<f32> = self.centres[g].iter().zip(&z).map(|(c, z)| w * c + s * z).collect();
        unit(&mut v);
        v
    }

    /// Capture `k` of identity `i`: whether it is poor, and the template.
    pub fn capture(&self, i: usize, k: u64) -> (bool, Template) {
        let mut r = rng(self.seed, i as u64 + 1, k + 0x100);
        let poor = r.gen_bool(self.params.poor_capture_rate);
        let sigma = if poor { POOR_NOISE } else { GOOD_NOISE };
        let n = gaussian(&mut r, self.dim);
        let mut v: Vec<f32> = self.identity(i).iter().zip(&n).map(|(x, e)| x + sigma * e).collect();
        unit(&mut v);
        let ex = lookup(EXTRACTOR).expect("known extractor");
        let vector = quantise(&v).expect("synthetic vectors are finite and non-zero");
        (
            poor,
            Template {
                modality: ex.modality,
                extractor: ex.id.clone(),
                quality: Some(if poor { 35 } else { 80 }),
                vector,
            },
        )
    }

    pub fn template(&self, i: usize, k: u64) -> Template {
        self.capture(i, k).1
    }

    /// Measures the score distributions on `pairs` mated and non-mated pairs
    /// drawn from identities `0..identities`.
    pub fn calibrate(&self, identities: usize, pairs: usize) -> Calibration {
        let t = self.threshold();
        let mut r = rng(self.seed, 0xCA1B, 0);
        let (mut genuine, mut impostor) = (Vec::with_capacity(pairs), Vec::with_capacity(pairs));
        for _ in 0..pairs {
            let i = r.gen_range(0..identities.max(2));
            let mut j = r.gen_range(0..identities.max(2));
            if j == i {
                j = (i + 1) % identities.max(2);
            }
            let k = 1_000 + r.gen_range(0..1_000u64);
            let a = self.template(i, k);
            genuine.push(a.cosine(&self.template(i, k + 1_000)).expect("same extractor"));
            impostor.push(a.cosine(&self.template(j, k + 2_000)).expect("same extractor"));
        }
        let stats = |v: &[f32]| {
            let m = v.iter().sum::<f32>() / v.len() as f32;
            let sd = (v.iter().map(|x| (x - m).powi(2)).sum::<f32>() / v.len() as f32).sqrt();
            (m as f64, sd as f64)
        };
        let (gm, gsd) = stats(&genuine);
        let (im, isd) = stats(&impostor);
        let max_impostor = impostor.iter().copied().fold(f32::MIN, f32::max) as f64;
        Calibration {
            pairs,
            threshold: t as f64,
            genuine_mean: gm,
            genuine_sd: gsd,
            impostor_mean: im,
            impostor_sd: isd,
            impostor_max: max_impostor,
            fnmr: genuine.iter().filter(|g| **g < t).count() as f64 / pairs as f64,
            fmr: impostor.iter().filter(|s| **s >= t).count() as f64 / pairs as f64,
            genuine_scores: genuine,
            impostor_scores: impostor,
        }
    }
}

/// Score distributions measured on a drill's own population.
#[derive(Debug, Clone, Serialize)]
pub struct Calibration {
    pub pairs: usize,
    pub threshold: f64,
    pub genuine_mean: f64,
    pub genuine_sd: f64,
    pub impostor_mean: f64,
    pub impostor_sd: f64,
    pub impostor_max: f64,
    /// Fraction of mated pairs below the threshold.
    pub fnmr: f64,
    /// Fraction of non-mated pairs at or above it.
    pub fmr: f64,
    #[serde(skip)]
    pub genuine_scores: Vec<f32>,
    #[serde(skip)]
    pub impostor_scores: Vec<f32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_has_the_documented_distributions() {
        let p = Population::new(9, PopulationParams::default());
        let c = p.calibrate(5_000, 20_000);
        assert!((c.genuine_mean - 0.76).abs() < 0.04, "{c:?}");
        assert!(c.impostor_mean.abs() < 0.03 && (c.impostor_sd - 0.09).abs() < 0.02, "{c:?}");
        assert!(c.fnmr > 0.001 && c.fnmr < 0.03, "mated tail below the threshold: {}", c.fnmr);
        assert!(c.fmr < 1e-3, "{}", c.fmr);
        // Without poor captures nothing falls below the threshold.
        let clean = Population::new(9, PopulationParams { poor_capture_rate: 0.0, ..Default::default() });
        assert_eq!(clean.calibrate(1_000, 5_000).fnmr, 0.0);
        // Seeded: the same capture twice.
        assert_eq!(p.template(17, 3), Population::new(9, PopulationParams::default()).template(17, 3));
        assert_ne!(p.template(17, 3), p.template(17, 4));
    }
}

//! A seeded synthetic population for the demo, drills and tests: each
//! identity is a random unit vector; each sample adds isotropic Gaussian
//! noise and renormalises. With d=128 and noise σ=0.045 per dimension the
//! noise norm² is d·σ² ≈ 0.26, so the genuine cosine between two captures is
//! about 1/(1+0.26) ≈ 0.79 (sd ≈ 0.05), and impostor cosines are about
//! N(0, 1/√d) ≈ N(0, 0.088). The 0.5 threshold of `vigil-synth-128` sits
//! about 5.5 sd from both (FNMR and FMR well below 1e-6 per comparison),
//! in the range good face extractors reach at their operating points.

use crate::template::{lookup, quantise, Template, TemplateFile};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

/// Per-dimension noise of a sample around its identity.
pub const SAMPLE_NOISE: f32 = 0.045;

#[derive(Debug, Clone)]
pub struct Population {
    seed: u64,
    extractor: &'static str,
    identities: Vec<Vec<f32>>,
}

fn unit(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
}

impl Population {
    /// `size` identities for `extractor`, reproducible from `seed`.
    pub fn new(seed: u64, extractor: &str, size: usize) -> Self {
        let ex = lookup(extractor).expect("known extractor");
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let identities = (0..size)
            .map(|_| {
                let mut v: Vec<f32> = (0..ex.dim).map(|_| StandardNormal.sample(&mut rng)).collect();
                unit(&mut v);
                v
            })
            .collect();
        Self { seed, extractor: &ex.id, identities }
    }

    pub fn len(&self) -> usize {
        self.identities.len()
    }

    pub fn is_empty(&self) -> bool {
        self.identities.is_empty()
    }

    /// The `k`-th noisy capture of identity `i`, as a template file.
    pub fn sample_file(&self, i: usize, k: u64) -> TemplateFile {
        let ex = lookup(self.extractor).expect("known extractor");
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(
            self.seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ k.wrapping_mul(0xD1B5_4A32_D192_ED03),
        );
        let mut v: Vec<f32> = self.identities[i]
            .iter()
            .map(|x| x + SAMPLE_NOISE * <StandardNormal as Distribution<f32>>::sample(&StandardNormal, &mut rng))
            .collect();
        unit(&mut v);
        TemplateFile { modality: ex.modality, extractor: ex.id.clone(), quality: Some(80), vector: v }
    }

    /// The `k`-th noisy capture of identity `i`, quantised.
    pub fn sample(&self, i: usize, k: u64) -> Template {
        let f = self.sample_file(i, k);
        Template {
            modality: f.modality,
            extractor: f.extractor.clone(),
            quality: f.quality,
            vector: quantise(&f.vector).expect("synthetic vectors are finite and non-zero"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genuine_and_impostor_scores_are_separated() {
        let p = Population::new(3, "vigil-synth-128", 200);
        let (mut gs, mut is) = (Vec::new(), Vec::new());
        for i in 0..200 {
            gs.push(p.sample(i, 0).cosine(&p.sample(i, 1)).unwrap());
            is.push(p.sample(i, 0).cosine(&p.sample((i + 1) % 200, 1)).unwrap());
        }
        let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
        let sd = |v: &[f32]| (v.iter().map(|x| (x - mean(v)).powi(2)).sum::<f32>() / v.len() as f32).sqrt();
        assert!((mean(&gs) - 0.79).abs() < 0.03, "genuine mean {}", mean(&gs));
        assert!(sd(&gs) < 0.07, "genuine sd {}", sd(&gs));
        assert!(mean(&is).abs() < 0.03 && (sd(&is) - 0.088).abs() < 0.02, "impostor {} {}", mean(&is), sd(&is));
        assert!(gs.iter().all(|g| *g > 0.6) && is.iter().all(|i| *i < 0.4));
        assert_eq!(p.sample(4, 2), Population::new(3, "vigil-synth-128", 50).sample(4, 2));
    }
}

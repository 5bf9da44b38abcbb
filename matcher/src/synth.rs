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
use vigil_protocol::policy::Representation;

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
        TemplateFile { modality: ex.modality, extractor: ex.id.clone(), quality: Some(80), vector: v, pad: None }
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

/// Synthetic fingers for tests, drills and benchmarks: each identity holds
/// per finger position a master set of 40–70 minutiae spread over an
/// ellipse of 14 × 18 mm at least 0.6 mm apart; an impression turns it by
/// up to ±25°, moves it by up to ±3 mm, stretches it by up to ±3 %, bends
/// it elastically (a smooth displacement of up to 0.3 mm, wavelength 8 mm,
/// random phase: skin pressed unevenly on the glass), jitters each
/// minutia by 0.12 mm (sd), loses those outside a 13 × 16 mm capture
/// window and 15 % more, and adds 10 % spurious ones. Real impressions can
/// differ more (partial prints, stronger distortion, extractor errors).
#[derive(Debug, Clone)]
pub struct FingerPopulation {
    seed: u64,
    size: usize,
}

impl FingerPopulation {
    pub fn new(seed: u64, size: usize) -> Self {
        Self { seed, size }
    }

    pub fn len(&self) -> usize {
        self.size
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    fn rng(&self, i: usize, position: u8, k: u64) -> rand_chacha::ChaCha8Rng {
        rand_chacha::ChaCha8Rng::seed_from_u64(
            self.seed
                ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ (position as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
                ^ k.wrapping_mul(0xD1B5_4A32_D192_ED03),
        )
    }

    /// The master minutiae of identity `i`'s finger at `position`.
    pub fn finger(&self, i: usize, position: u8) -> Vec<vigil_records::Minutia> {
        use rand::Rng;
        let mut rng = self.rng(i, position, u64::MAX);
        let n = rng.gen_range(40..=70);
        let mut pts: Vec<(f32, f32)> = Vec::with_capacity(n);
        while pts.len() < n {
            let (x, y) = (rng.gen_range(-7.0f32..7.0), rng.gen_range(-9.0f32..9.0));
            if (x / 7.0).powi(2) + (y / 9.0).powi(2) <= 1.0
                && pts.iter().all(|(a, b)| (a - x).powi(2) + (b - y).powi(2) >= 0.36)
            {
                pts.push((x, y));
            }
        }
        pts.into_iter()
            .map(|(x, y)| vigil_records::Minutia {
                x_mm: x + 10.0,
                y_mm: y + 12.0,
                angle_deg: rng.gen_range(0.0..360.0),
                kind: if rng.gen_bool(0.5) {
                    vigil_records::MinutiaKind::RidgeEnding
                } else {
                    vigil_records::MinutiaKind::Bifurcation
                },
                quality: rng.gen_range(30..=90),
            })
            .collect()
    }

    /// The `k`-th impression of identity `i`'s finger at `position`.
    pub fn impression(&self, i: usize, position: u8, k: u64) -> Vec<vigil_records::Minutia> {
        use rand::Rng;
        let mut rng = self.rng(i, position, k);
        let (s, c) = rng.gen_range(-25.0f32..25.0).to_radians().sin_cos();
        let scale = rng.gen_range(0.97f32..1.03);
        let (dx, dy) = (rng.gen_range(-3.0f32..3.0), rng.gen_range(-3.0f32..3.0));
        let (wx, wy) = (10.0 + rng.gen_range(-1.5f32..1.5), 12.0 + rng.gen_range(-1.5f32..1.5));
        let jitter = rand_distr::Normal::new(0.0f32, 0.12).expect("valid sd");
        let (px, py) = (rng.gen_range(0.0f32..std::f32::consts::TAU), rng.gen_range(0.0f32..std::f32::consts::TAU));
        let wave = std::f32::consts::TAU / 8.0;
        let bend = |x: f32, y: f32| (0.3 * (wave * y + px).sin(), 0.3 * (wave * x + py).sin());
        let kept: Vec<vigil_records::Minutia> = self
            .finger(i, position)
            .into_iter()
            .filter(|m| (m.x_mm - wx).abs() <= 6.5 && (m.y_mm - wy).abs() <= 8.0 && !rng.gen_bool(0.15))
            .collect();
        let mut out: Vec<vigil_records::Minutia> = kept
            .into_iter()
            .map(|m| {
                let (x, y) = (m.x_mm - 10.0, m.y_mm - 12.0);
                let (bx, by) = bend(x, y);
                vigil_records::Minutia {
                    x_mm: scale * (c * x - s * y) + bx + 10.0 + dx + jitter.sample(&mut rng),
                    y_mm: scale * (s * x + c * y) + by + 12.0 + dy + jitter.sample(&mut rng),
                    angle_deg: (m.angle_deg + s.atan2(c).to_degrees()).rem_euclid(360.0),
                    ..m
                }
            })
            .collect();
        let spurious = (out.len() as f32 * 0.1).round() as usize;
        for _ in 0..spurious {
            out.push(vigil_records::Minutia {
                x_mm: wx + dx + rng.gen_range(-6.5..6.5),
                y_mm: wy + dy + rng.gen_range(-8.0..8.0),
                angle_deg: rng.gen_range(0.0..360.0),
                kind: vigil_records::MinutiaKind::Other,
                quality: 20,
            });
        }
        // Coordinates of a 20 × 25 mm image: nothing negative.
        out.iter_mut().for_each(|m| {
            m.x_mm = m.x_mm.clamp(0.0, 19.9);
            m.y_mm = m.y_mm.clamp(0.0, 24.9);
        });
        out
    }

    /// The `k`-th capture of identity `i`'s fingers at `positions`, as a
    /// decoded record.
    pub fn record(&self, i: usize, positions: &[u8], k: u64) -> vigil_records::Record {
        let views = positions
            .iter()
            .map(|&p| vigil_records::FingerView {
                position: p,
                view: 0,
                impression: 0,
                quality: 70,
                minutiae: self.impression(i, p, k),
            })
            .collect();
        vigil_records::Record { format: vigil_records::Format::Iso19794_2_2005, views, carried: vec![] }
    }

    /// Every person's captures `impressions` of `fingers` as labelled
    /// samples, the raw vectors `vigil calibrate` reads from records.
    pub fn samples(&self, fingers: &[u8], impressions: &[u64]) -> Vec<crate::calibrate::Sample> {
        let reader = crate::minutiae::uncalibrated("synthetic", fingers, Representation::SpectralMinutiaeV1);
        (0..self.size)
            .flat_map(|i| impressions.iter().map(move |&k| (i, k)))
            .map(|(i, k)| crate::calibrate::Sample {
                subject: format!("f{i}"),
                vector: crate::minutiae::record_vector(&reader, &self.record(i, fingers, k))
                    .expect("synthetic fingers have minutiae"),
                quality: None,
            })
            .collect()
    }
}

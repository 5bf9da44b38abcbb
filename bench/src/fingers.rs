//! `vigil bench match --fingers 1,2,10`: fused multi-finger probes, as the
//! spectral-minutiae extractor makes them (192 values per finger position,
//! each part a unit vector at scale 127/√fingers, so one inner product is
//! the sum of per-finger similarities), against a large gallery with the
//! plain scan; and the encrypted path (up to ten fingers: 1,920 of its
//! 2,048 dimensions) beside the plain scan on a smaller gallery in the
//! same run.

use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::Serialize;
use vigil_matcher::{quantise_parts, scan, Gallery};

/// Values per finger position (`spectral-minutiae-v1`).
const PER_FINGER: usize = 192;

#[derive(Debug, Serialize)]
pub struct FingersBench {
    pub threads: usize,
    pub runs: Vec<FingerRun>,
}

#[derive(Debug, Serialize)]
pub struct FingerRun {
    pub fingers: usize,
    pub dim: usize,
    /// The plain scan's gallery.
    pub gallery: usize,
    pub gallery_mb: f64,
    /// Median plain scan of the whole gallery (all threads).
    pub plain_ms: f64,
    pub plain_ns_per_record: f64,
    /// Records over the threshold (one planted genuine match per 1,000).
    pub matches: usize,
    /// The encrypted path beside the plain scan on `encrypted.gallery`
    /// records (`vigil bench match` at this dimension); `None` above 5 fingers.
    pub encrypted: Option<EncryptedSide>,
    pub note: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct EncryptedSide {
    pub gallery: usize,
    pub plain_ms: f64,
    pub encrypted_ms: f64,
    pub ratio: f64,
    pub agreement_outside_band: f64,
}

/// `m` fused records of `fingers` parts; every 1,000th a noisy copy of `probe`.
fn gallery(fingers: usize, m: usize, probe: &[f32], seed: u64) -> Gallery {
    let dim = fingers * PER_FINGER;
    let mut rows = vec![0i8; m * dim];
    rows.par_chunks_mut(dim * 1000).enumerate().for_each(|(c, chunk)| {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ (c as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut v = vec![0f32; dim];
        for (i, row) in chunk.chunks_exact_mut(dim).enumerate() {
            if i == 0 {
                v.iter_mut().zip(probe).for_each(|(x, q)| *x = q + rng.gen_range(-0.6f32..0.6));
            } else {
                v.iter_mut().for_each(|x| *x = rng.gen_range(-1.0f32..1.0));
            }
            row.copy_from_slice(&quantise_parts(&v, fingers).expect("finite, non-zero parts"));
        }
    });
    Gallery::new(dim, rows)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `threshold`: the mean per-finger cosine at which a record matches.
pub fn run(
    fingers: &[usize],
    m: usize,
    encrypted_gallery: usize,
    threads: usize,
    runs: usize,
    threshold: f32,
) -> anyhow::Result<FingersBench> {
    anyhow::ensure!(fingers.iter().all(|f| (1..=10).contains(f)), "finger counts are 1..=10");
    anyhow::ensure!(m >= 1000, "the gallery needs at least 1,000 records");
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
    let mut rng = rand_chacha::ChaCha8Rng::from_entropy();
    let mut out = Vec::new();
    for &f in fingers {
        let dim = f * PER_FINGER;
        let probe_f: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        let q = quantise_parts(&probe_f, f)?;
        let g = pool.install(|| gallery(f, m, &probe_f, rng.gen()));
        // Σ over fingers of (127²/f)·cos: the mean cosine's threshold at scale 127².
        let t = (threshold * 127.0 * 127.0).round() as i32;
        let mut times = Vec::new();
        let mut matches = 0;
        for _ in 0..runs.max(1) * 3 {
            let t0 = std::time::Instant::now();
            let hits = pool.install(|| scan(&g, &q, t));
            times.push(t0.elapsed().as_secs_f64() * 1e3);
            matches = hits.iter().filter(|h| **h).count();
        }
        drop(g);
        let plain_ms = median(times);
        let (encrypted, note) = if dim <= vigil_matcher::encrypted::MAX_DIM {
            let e = crate::matching::run(dim, encrypted_gallery, threads, runs, threshold, 1)?;
            let side = EncryptedSide {
                gallery: encrypted_gallery,
                plain_ms: e.plain_ms,
                encrypted_ms: e.encrypted_ms,
                ratio: e.ratio,
                agreement_outside_band: e.agreement_outside_band,
            };
            (Some(side), None)
        } else {
            let why = format!(
                "{dim} dimensions: beyond the encrypted matcher's {}; {f} fingers match in plain form only \
                 (at their holder), not across the network",
                vigil_matcher::encrypted::MAX_DIM
            );
            (None, Some(why))
        };
        out.push(FingerRun {
            fingers: f,
            dim,
            gallery: m,
            gallery_mb: (m * dim) as f64 / 1e6,
            plain_ms,
            plain_ns_per_record: plain_ms * 1e6 / m as f64,
            matches,
            encrypted,
            note,
        });
    }
    Ok(FingersBench { threads, runs: out })
}

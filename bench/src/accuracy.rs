//! `vigil bench accuracy`: how well fingerprints from minutiae separate
//! people, through exactly the path records take (spectral minutiae,
//! policy centring and per-finger quantisation, integer scores), on the
//! documented synthetic distortion model (`synth::FingerPopulation`):
//! for each finger count, an extractor calibrated by `vigil calibrate`'s
//! code on one population, scored on another; at the calibrated
//! threshold the plain decisions beside the protected (one finger) and
//! encrypted (row form, as alerts carry) ones; for several fingers also
//! probes holding only two of them (a field capture against ten-prints),
//! judged by the thresholds for the fingers both hold. With `--records
//! DIR`, the scores of real records too (files named SUBJECT_IMPRESSION.ist/.an2/...).

use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::path::Path;
use vigil_matcher::calibrate::{self, Settings};
use vigil_matcher::encrypted::{parts, present_parts, respond_row, ProberKey, Thresholds, MAX_DIM, ROW_PADDING};
use vigil_matcher::minutiae::record_template;
use vigil_matcher::synth::FingerPopulation;
use vigil_matcher::{EpochSecret, Extractor, Gallery, ProtectedMatcher, Template};
use vigil_protocol::policy::Representation;
use vigil_protocol::Modality;

/// Finger positions in the order fingers are added: index fingers first
/// (what single-finger capture takes), then thumbs, middle, ring, little.
const ORDER: [u8; 10] = [2, 7, 1, 6, 3, 8, 4, 9, 5, 10];
/// False-match rates the FNMR is reported at.
const FMRS: [f64; 3] = [1e-2, 1e-3, 1e-4];

#[derive(Debug, Serialize)]
pub struct AccuracyBench {
    pub representation: &'static str,
    pub distortion: &'static str,
    /// People in the calibration and in the test population (distinct).
    pub people: usize,
    pub genuine_pairs: usize,
    pub impostor_pairs: usize,
    pub runs: Vec<FingerRun>,
    pub real: Option<RealRecords>,
}

#[derive(Debug, Serialize)]
pub struct FingerRun {
    pub fingers: usize,
    pub dim: usize,
    /// Equal error rate of the plain integer scores.
    pub eer: f64,
    /// (target FMR, FNMR at the smallest threshold whose FMR is at or below it).
    pub fnmr_at_fmr: Vec<(f64, f64)>,
    /// (FMR, FNMR), thinned to at most 50 points.
    pub det: Vec<(f64, f64)>,
    /// The threshold calibrated for FMR 1e-3 on the other population (a sum of cosines).
    pub threshold: f32,
    pub plain: Decisions,
    /// One finger only (the protected form is not defined for several).
    pub protected: Option<Decisions>,
    /// Encrypted row-form answers for the first `probes` probes against
    /// the whole test gallery.
    pub encrypted: Option<Encrypted>,
    /// Several fingers: probes holding two of them (one of two) against
    /// the same records.
    pub partial: Option<Partial>,
}

/// Probes of some fingers against records of all.
#[derive(Debug, Serialize)]
pub struct Partial {
    pub probe_fingers: usize,
    /// The threshold for that many shared fingers (a sum of cosines).
    pub threshold: f32,
    /// Plain decisions at the thresholds for the fingers both hold.
    pub by_count: Decisions,
    /// Plain decisions at the all-finger threshold (one threshold for every pair).
    pub all_finger_threshold: Decisions,
    pub encrypted: Option<Encrypted>,
}

#[derive(Debug, Serialize)]
pub struct Decisions {
    pub fnmr: f64,
    pub fmr: f64,
}

#[derive(Debug, Serialize)]
pub struct Encrypted {
    pub probes: usize,
    /// Fingers each probe carries (those it holds).
    pub carried_fingers: usize,
    pub decisions: usize,
    /// Share of decisions equal to the plain matcher's.
    pub agreement: f64,
    pub fnmr: f64,
    pub fmr: f64,
}

#[derive(Debug, Serialize)]
pub struct RealRecords {
    pub records: usize,
    /// Raw (uncentred) cosines of one finger's spectra: no calibration set
    /// of real prints comes with the repository.
    pub pairs: Vec<RealPair>,
}

#[derive(Debug, Serialize)]
pub struct RealPair {
    pub a: String,
    pub b: String,
    pub genuine: bool,
    pub cosine: f32,
}

/// (FMR, FNMR) or (target FMR, FNMR) pairs.
type Curve = Vec<(f64, f64)>;

/// FNMR at each target, the EER and the DET curve, from integer scores.
fn rates(genuine: &[i32], impostor: &mut [i32]) -> (Curve, f64, Curve) {
    impostor.sort_unstable_by(|a, b| b.cmp(a));
    let fnmr_at = |t: i32| genuine.iter().filter(|g| **g < t).count() as f64 / genuine.len() as f64;
    let fmr_at = |t: i32| impostor.partition_point(|s| *s >= t) as f64 / impostor.len() as f64;
    let at = FMRS
        .iter()
        .map(|&target| {
            // Smallest threshold with FMR <= target: just above the k-th highest impostor score.
            let k = (target * impostor.len() as f64).floor() as usize;
            let t = impostor.get(k).map_or(i32::MIN, |s| s + 1);
            (target, fnmr_at(t))
        })
        .collect();
    let (lo, hi) = (genuine.iter().chain(impostor.iter()).min().copied().unwrap_or(0), impostor[0] + 1);
    let mut eer = (1.0, f64::MAX);
    let mut det = Vec::new();
    let step = ((hi - lo) / 400).max(1);
    let mut t = lo;
    while t <= hi {
        let (fmr, fnmr) = (fmr_at(t), fnmr_at(t));
        if (fmr - fnmr).abs() < eer.1 {
            eer = ((fmr + fnmr) / 2.0, (fmr - fnmr).abs());
        }
        det.push((fmr, fnmr));
        t += step;
    }
    let keep = det.len().div_ceil(50).max(1);
    let det = det.into_iter().step_by(keep).collect();
    (at, eer.0, det)
}

fn run_fingers(k: usize, people: usize, probes: usize) -> anyhow::Result<FingerRun> {
    let fingers = &ORDER[..k];
    let (cal_pop, test_pop) = (FingerPopulation::new(77, people), FingerPopulation::new(9, people));
    let samples = cal_pop.samples(fingers, &[0, 1]);
    let settings = Settings {
        id: format!("bench-smr-{k}"),
        model: String::new(),
        modality: Modality::Finger,
        target_fmrs: vec![1e-3],
        holdout: 0.0,
        centre: true,
        protected_bits: 512,
        fingers: fingers.to_vec(),
        representation: Some(Representation::SpectralMinutiaeV1),
    };
    let ex = calibrate::calibrate(&samples, &settings)?.extractor;
    let t = |i: usize, imp: u64| record_template(&ex, &test_pop.record(i, fingers, imp)).expect("synthetic record");
    let (a, b): (Vec<Template>, Vec<Template>) =
        ((0..people).map(|i| t(i, 0)).collect(), (0..people).map(|i| t(i, 1)).collect());
    let score = |x: &Template, y: &Template| x.dot(y).expect("same extractor");
    let genuine: Vec<i32> = (0..people).map(|i| score(&a[i], &b[i])).collect();
    let mut impostor: Vec<i32> = impostor_pairs(people).map(|(i, j)| score(&a[i], &b[j])).collect();
    let thr = ex.score_threshold();
    let plain = Decisions {
        fnmr: genuine.iter().filter(|g| **g < thr).count() as f64 / people as f64,
        fmr: impostor.iter().filter(|s| **s >= thr).count() as f64 / impostor.len() as f64,
    };
    let (fnmr_at_fmr, eer, det) = rates(&genuine, &mut impostor);
    let protected = (k == 1).then(|| protected(&ex, &a, &b));
    let encrypted = (ex.dim <= MAX_DIM && probes > 0).then(|| encrypted(&ex, &a, &b, probes)).transpose()?;
    let partial = (k > 1)
        .then(|| {
            let held = &fingers[..2.min(k - 1)];
            let c: Vec<Template> = (0..people)
                .map(|i| record_template(&ex, &test_pop.record(i, held, 1)).expect("synthetic record"))
                .collect();
            partial(&ex, &a, &c, held.len(), probes)
        })
        .transpose()?;
    Ok(FingerRun {
        fingers: k,
        dim: ex.dim,
        eer,
        fnmr_at_fmr,
        det,
        threshold: ex.threshold(),
        plain,
        protected,
        encrypted,
        partial,
    })
}

/// Decisions of probes `c` (of `held` fingers) against records `a`: by
/// the thresholds for the fingers both hold and by the all-finger one.
fn partial(ex: &Extractor, a: &[Template], c: &[Template], held: usize, probes: usize) -> anyhow::Result<Partial> {
    let n = a.len();
    let at = |thr: &dyn Fn(usize, usize) -> i32| {
        let hit = |i: usize, j: usize| c[i].dot(&a[j]).expect("same extractor") >= thr(i, j);
        Decisions {
            fnmr: (0..n).filter(|&i| !hit(i, i)).count() as f64 / n as f64,
            fmr: impostor_pairs(n).filter(|&(i, j)| hit(i, j)).count() as f64 / (n * (n - 1)) as f64,
        }
    };
    // Each template's fingers and each count's threshold, once.
    let mask = |t: &[Template]| t.iter().map(|t| present_parts(ex, &t.vector)).collect::<Vec<u16>>();
    let (pa, pc) = (mask(a), mask(c));
    let by: Vec<i32> = (0..=ex.parts()).map(|n| ex.score_thresholds_for(n)[0]).collect();
    Ok(Partial {
        probe_fingers: held,
        threshold: ex.thresholds[0].cosine_for(held),
        by_count: at(&|i, j| by[(pc[i] & pa[j]).count_ones() as usize]),
        all_finger_threshold: at(&|_, _| ex.score_threshold()),
        encrypted: (probes > 0).then(|| encrypted(ex, a, c, probes)).transpose()?,
    })
}

/// Every (first impression of i, second of j) with i ≠ j.
fn impostor_pairs(n: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..n).flat_map(move |i| (0..n).filter(move |j| *j != i).map(move |j| (i, j)))
}

fn protected(ex: &Extractor, a: &[Template], b: &[Template]) -> Decisions {
    let mut m = ProtectedMatcher::new(EpochSecret::new(rand::thread_rng().gen()));
    let pa: Vec<_> = a.iter().map(|t| m.protect(ex, t).expect("one-finger template")).collect();
    let pb: Vec<_> = b.iter().map(|t| m.protect(ex, t).expect("one-finger template")).collect();
    let n = a.len();
    let hit = |i: usize, j: usize| ProtectedMatcher::compare(ex, &pa[i], &pb[j]).expect("same epoch");
    Decisions {
        fnmr: (0..n).filter(|&i| !hit(i, i)).count() as f64 / n as f64,
        fmr: impostor_pairs(n).filter(|&(i, j)| hit(i, j)).count() as f64 / (n * (n - 1)) as f64,
    }
}

/// Each probe as it crosses the network: the fingers it carries
/// (`parts::probe_parts`), against the gallery over those fingers, each
/// record at the threshold for the fingers it shares with the probe (as
/// holders answer); compared with the plain decision.
fn encrypted(ex: &Extractor, a: &[Template], b: &[Template], probes: usize) -> anyhow::Result<Encrypted> {
    let key = ProberKey::generate();
    let rows: Vec<i8> = a.iter().flat_map(|t| t.vector.clone()).collect();
    let present: Vec<u16> = a.iter().map(|t| present_parts(ex, &t.vector)).collect();
    let mut rng = rand_chacha::ChaCha8Rng::from_entropy();
    let (mut same, mut total, mut missed, mut false_hits) = (0, 0, 0, 0);
    let probes = probes.min(b.len());
    let mut carried_fingers = ex.parts();
    for (p, probe) in b.iter().enumerate().take(probes) {
        let carried = parts::probe_parts(ex, &probe.vector);
        carried_fingers = carried.parts.as_ref().map_or(ex.parts(), Vec::len);
        let dim = parts::parts_dim(ex, carried.parts.as_deref());
        let gallery = Gallery::new(dim, parts::gallery_parts(ex, rows.clone(), carried.parts.as_deref()));
        let thresholds = Thresholds::for_rows(ex, &present, carried.parts.as_deref());
        let (answer, order) = respond_row(&key.encrypt_row(&carried.values)?, &gallery, thresholds.band(0), rng.gen())?;
        let decisions = key.decrypt_row(&answer)?;
        for (pos, &row) in order.iter().enumerate().filter(|(_, r)| **r != ROW_PADDING) {
            let thr = thresholds.band(0).at(row);
            let row = row as usize;
            let plain = vigil_matcher::dot(gallery.row(row), &carried.values) >= thr;
            same += (decisions[pos] == plain) as usize;
            total += 1;
            missed += (row == p && !decisions[pos]) as usize;
            false_hits += (row != p && decisions[pos]) as usize;
        }
    }
    Ok(Encrypted {
        probes,
        carried_fingers,
        decisions: total,
        agreement: same as f64 / total.max(1) as f64,
        fnmr: missed as f64 / probes.max(1) as f64,
        fmr: false_hits as f64 / (total - probes).max(1) as f64,
    })
}

/// Raw cosines between the first finger view of every record in `dir`
/// (named SUBJECT_IMPRESSION.ext); genuine when the subjects are equal.
fn real(dir: &Path) -> anyhow::Result<RealRecords> {
    let mut prints = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        let Ok(bytes) = std::fs::read(&p) else { continue };
        let Ok(rec) = vigil_records::decode(&bytes) else { continue };
        let name = p.file_name().unwrap_or_default().to_string_lossy().to_string();
        prints.push((name, vigil_matcher::minutiae::spectral_v1(&rec.views[0].minutiae)));
    }
    anyhow::ensure!(prints.len() >= 2, "fewer than two readable records in {}", dir.display());
    prints.sort_by(|x, y| x.0.cmp(&y.0));
    let subject = |n: &str| n.split('_').next().unwrap_or(n).to_string();
    let cos = |x: &[f32], y: &[f32]| {
        let d: f32 = x.iter().zip(y).map(|(p, q)| p * q).sum();
        d / (x.iter().map(|v| v * v).sum::<f32>().sqrt() * y.iter().map(|v| v * v).sum::<f32>().sqrt())
    };
    let mut pairs = Vec::new();
    for (i, (a, va)) in prints.iter().enumerate() {
        for (b, vb) in &prints[i + 1..] {
            pairs.push(RealPair { a: a.clone(), b: b.clone(), genuine: subject(a) == subject(b), cosine: cos(va, vb) });
        }
    }
    Ok(RealRecords { records: prints.len(), pairs })
}

pub fn run(fingers: &[usize], people: usize, probes: usize, records: Option<&Path>) -> anyhow::Result<AccuracyBench> {
    anyhow::ensure!(people >= 60, "at least 60 people (the calibration at FMR 1e-3 needs 3,000 impostor pairs)");
    anyhow::ensure!(fingers.iter().all(|k| (1..=10).contains(k)), "finger counts are 1..=10");
    let runs = fingers.iter().map(|&k| run_fingers(k, people, probes)).collect::<anyhow::Result<Vec<_>>>()?;
    Ok(AccuracyBench {
        representation: "spectral-minutiae-v1",
        distortion: "rotation ±25°, translation ±3 mm, scale ±3 %, elastic 0.3 mm at 8 mm wavelength, jitter 0.12 mm, \
                     13 × 16 mm window, 15 % missed, 10 % spurious (synth::FingerPopulation)",
        people,
        genuine_pairs: people,
        impostor_pairs: people * (people - 1),
        runs,
        real: records.map(real).transpose()?,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn figures_are_consistent_and_encrypted_decisions_equal_plain() {
        let b = super::run(&[1, 2], 60, 2, None).unwrap();
        assert_eq!(b.impostor_pairs, 60 * 59);
        for r in &b.runs {
            let e = r.encrypted.as_ref().unwrap();
            assert_eq!((e.probes, e.decisions, e.carried_fingers), (2, 120, r.fingers));
            assert_eq!(e.agreement, 1.0, "{} finger(s)", r.fingers);
            // Stricter FMR targets never lower the FNMR.
            assert!(r.fnmr_at_fmr.windows(2).all(|w| w[1].1 >= w[0].1), "{:?}", r.fnmr_at_fmr);
            assert!(r.eer > 0.0 && r.eer < 0.5 && !r.det.is_empty());
        }
        assert!(b.runs[0].protected.is_some() && b.runs[1].protected.is_none());
        // One finger of two: its own threshold finds more than the
        // two-finger threshold, and the encrypted path decides the same.
        let p = b.runs[1].partial.as_ref().unwrap();
        assert_eq!(p.probe_fingers, 1);
        assert!(p.by_count.fnmr < p.all_finger_threshold.fnmr, "{p:?}");
        assert_eq!(p.encrypted.as_ref().unwrap().agreement, 1.0);
        assert!(b.runs[0].partial.is_none());
        // Two fingers separate better than one.
        assert!(b.runs[1].eer < b.runs[0].eer, "{} vs {}", b.runs[1].eer, b.runs[0].eer);
    }
}

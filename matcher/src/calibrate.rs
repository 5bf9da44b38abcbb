//! Calibration of an extractor on labelled vectors: the centring vector,
//! genuine and impostor score distributions after exactly the matcher's
//! quantisation, thresholds for target false-match rates with the FNMR
//! there (ISO/IEC 19795-1 terms, Wilson 95 % intervals), the EER, the DET
//! curve, and operational rates on a held-out split of the subjects; for
//! multi-finger extractors also thresholds by shared finger count (`counts`).

mod counts;
pub use counts::CountPoint;

use crate::extractor::{Band, Extractor, Status, Threshold};
use crate::template::{TemplateError, TemplateFile};
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use vigil_protocol::Modality;

/// Most samples a labelled file may hold.
pub const MAX_SAMPLES: usize = 200_000;
/// Longest line of a labelled file, in bytes.
pub const MAX_LINE_BYTES: usize = 256 * 1024;
/// Impostor pairs scored at most; beyond, pairs are drawn at random.
pub const MAX_IMPOSTOR_PAIRS: u64 = 20_000_000;
/// Genuine pairs needed for an FNMR estimate worth stating.
pub const MIN_GENUINE_PAIRS: u64 = 30;
/// Largest integer score of two quantised templates (|x| ≤ 127 each, any d ≤ 2).
const SCORE_SPAN: i32 = 2 * 127 * 127;

#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum CalibrateError {
    #[error("line {line}: {reason}")]
    Line { line: usize, reason: String },
    #[error("line {line} has {found} values, line 1 has {expected}: one extractor, one dimension per file")]
    MixedDimensions { line: usize, expected: usize, found: usize },
    #[error("lines {first} and {second} hold the same vector under two subjects ({a:?} and {b:?}): a labelling error")]
    DuplicateVector { first: usize, second: usize, a: String, b: String },
    #[error("the file holds {0} samples, the limit is {MAX_SAMPLES}")]
    TooMany(usize),
    #[error("{0}")]
    TooSmall(String),
    #[error("target FMRs must be one to three values in (0, 1), strictly decreasing; got {0:?}")]
    Targets(Vec<f64>),
    #[error(transparent)]
    Template(#[from] TemplateError),
}

/// One labelled sample.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sample {
    pub subject: String,
    pub vector: Vec<f32>,
    #[serde(default)]
    pub quality: Option<u8>,
}

/// Reads a labelled JSON-lines file (blank lines ignored).
pub fn parse_labelled(text: &str) -> Result<Vec<Sample>, CalibrateError> {
    let mut out: Vec<Sample> = Vec::new();
    let mut seen: HashMap<Vec<u32>, (usize, String)> = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        let bad = |reason: String| CalibrateError::Line { line, reason };
        if raw.len() > MAX_LINE_BYTES {
            return Err(bad(format!("{} bytes, the limit is {MAX_LINE_BYTES}", raw.len())));
        }
        if out.len() == MAX_SAMPLES {
            return Err(CalibrateError::TooMany(MAX_SAMPLES + 1));
        }
        let s: Sample = serde_json::from_str(raw).map_err(|e| {
            if ["NaN", "Infinity"].iter().any(|t| raw.contains(t)) {
                bad("the vector contains NaN or Infinity".into())
            } else {
                bad(format!("not a {{\"subject\", \"vector\"}} object: {e}"))
            }
        })?;
        if s.subject.is_empty() || s.subject.len() > 256 {
            return Err(bad("subject must be 1–256 bytes".into()));
        }
        if let Some(first) = out.first() {
            if s.vector.len() != first.vector.len() {
                return Err(CalibrateError::MixedDimensions {
                    line,
                    expected: first.vector.len(),
                    found: s.vector.len(),
                });
            }
        }
        crate::template::quantise(&s.vector).map_err(|e| bad(e.to_string()))?;
        let key: Vec<u32> = s.vector.iter().map(|x| x.to_bits()).collect();
        match seen.get(&key) {
            Some((first, a)) if *a != s.subject => {
                return Err(CalibrateError::DuplicateVector { first: *first, second: line, a: a.clone(), b: s.subject })
            }
            Some(_) => {}
            None => {
                seen.insert(key, (line, s.subject.clone()));
            }
        }
        out.push(s);
    }
    Ok(out)
}

/// Counts of integer scores, genuine or impostor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scores {
    /// `counts[k]` pairs scored `k - SCORE_SPAN`.
    #[serde(skip)]
    counts: Vec<u64>,
    pub pairs: u64,
}

impl Scores {
    fn new() -> Self {
        Self { counts: vec![0; 2 * SCORE_SPAN as usize + 1], pairs: 0 }
    }
    fn add(&mut self, score: i32) {
        self.counts[(score.clamp(-SCORE_SPAN, SCORE_SPAN) + SCORE_SPAN) as usize] += 1;
        self.pairs += 1;
    }
    fn merge(mut self, o: Scores) -> Scores {
        self.counts.iter_mut().zip(&o.counts).for_each(|(a, b)| *a += b);
        self.pairs += o.pairs;
        self
    }
    /// Pairs scoring at least `t`.
    fn at_least(&self, t: i32) -> u64 {
        let from = (t.clamp(-SCORE_SPAN, SCORE_SPAN + 1) + SCORE_SPAN) as usize;
        self.counts[from.min(self.counts.len())..].iter().sum()
    }
    /// (score, count) for every score held.
    pub fn histogram(&self) -> impl Iterator<Item = (i32, u64)> + '_ {
        self.counts.iter().enumerate().filter(|(_, c)| **c > 0).map(|(k, c)| (k as i32 - SCORE_SPAN, *c))
    }
}

/// A proportion with its Wilson 95 % interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rate {
    pub errors: u64,
    pub trials: u64,
    pub rate: f64,
    pub low: f64,
    pub high: f64,
}

impl Rate {
    pub fn new(errors: u64, trials: u64) -> Self {
        let (n, z) = (trials.max(1) as f64, 1.959_964);
        let p = errors as f64 / n;
        let centre = (p + z * z / (2.0 * n)) / (1.0 + z * z / n);
        let half = z / (1.0 + z * z / n) * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt();
        Self { errors, trials, rate: p, low: (centre - half).max(0.0), high: (centre + half).min(1.0) }
    }
}

/// One operating point.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperatingPoint {
    pub band: Band,
    pub target_fmr: f64,
    /// Integer score threshold (match iff score ≥ it) and its cosine.
    pub score: i32,
    pub cosine: f32,
    pub fmr: Rate,
    pub fnmr: Rate,
    /// Multi-finger extractors: the thresholds for the same target when
    /// probe and record share 1 … parts − 1 fingers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fewer_fingers: Vec<CountPoint>,
}

/// Rates on the held-out subjects at each calibrated threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeldOut {
    pub subjects: usize,
    pub samples: usize,
    pub points: Vec<HeldOutPoint>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HeldOutPoint {
    pub band: Band,
    pub fmr: Rate,
    pub fnmr: Rate,
    /// Probes (one per held-out sample) that falsely matched a gallery of
    /// one sample per other held-out subject.
    pub fpir: Rate,
    pub gallery: usize,
}

/// Everything `vigil calibrate` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Calibration {
    pub dim: usize,
    pub samples: usize,
    pub subjects: usize,
    pub genuine: Scores,
    pub impostor: Scores,
    pub impostor_sampled: bool,
    pub points: Vec<OperatingPoint>,
    /// Equal error rate and the score where FMR and FNMR cross.
    pub eer: f64,
    pub eer_score: i32,
    /// (FMR, FNMR) pairs, one per distinct threshold (thinned).
    pub det: Vec<(f64, f64)>,
    pub held_out: Option<HeldOut>,
    #[serde(skip)]
    pub extractor: Extractor,
}

/// What to calibrate.
#[derive(Debug, Clone)]
pub struct Settings {
    pub id: String,
    pub model: String,
    pub modality: Modality,
    /// One to three target FMRs, decreasing: possible, probable, strong.
    pub target_fmrs: Vec<f64>,
    /// Share of subjects kept out of calibration for operational rates.
    pub holdout: f64,
    pub centre: bool,
    pub protected_bits: usize,
    /// Finger positions of a fingerprint extractor: one part per position,
    /// centred and scored part by part (see `Extractor::parts`).
    pub fingers: Vec<u8>,
    pub representation: Option<vigil_protocol::policy::Representation>,
}

fn held_out(subject: &str, share: f64) -> bool {
    let h = Sha256::new_with_prefix(b"vigil/calibrate-split").chain_update(subject.as_bytes()).finalize();
    (u16::from_le_bytes([h[0], h[1]]) as f64) < share * 65536.0
}

/// Calibrates an extractor on `samples` (already parsed and checked).
pub fn calibrate(samples: &[Sample], s: &Settings) -> Result<Calibration, CalibrateError> {
    let t = &s.target_fmrs;
    if t.is_empty() || t.len() > 3 || t.iter().any(|f| !(*f > 0.0 && *f < 1.0)) || t.windows(2).any(|w| w[1] >= w[0]) {
        return Err(CalibrateError::Targets(t.clone()));
    }
    let dim = samples.first().map_or(0, |x| x.vector.len());
    let (cal, test): (Vec<&Sample>, Vec<&Sample>) = samples.iter().partition(|x| !held_out(&x.subject, s.holdout));
    let mut ex = Extractor {
        id: s.id.clone(),
        model: s.model.clone(),
        modality: s.modality,
        fingers: s.fingers.clone(),
        input_dim: None,
        dim,
        centre: None,
        projection: None,
        thresholds: vec![Threshold { band: Band::Possible, cosine: 0.0, fmr: t[0], fewer_fingers: vec![] }],
        protected_bits: s.protected_bits,
        status: Status::Active,
        representation: s.representation,
    };
    if s.centre && !cal.is_empty() {
        ex.centre = Some(mean_unit(&cal, ex.parts()));
    }
    let (ids, rows) = quantised(&ex, &cal)?;
    let subjects = ids.iter().max().map_or(0, |m| m + 1);
    let (genuine, impostor, sampled) = score_pairs(&ids, &rows, dim);
    let strictest = t[t.len() - 1];
    let needed = (3.0 / strictest).ceil() as u64;
    if impostor.pairs < needed {
        return Err(CalibrateError::TooSmall(format!(
            "{} impostor pairs from {} calibration samples of {subjects} subjects: a false-match rate of {strictest:e} \
             needs at least {needed} (rule of three: with no false match in n pairs, FMR < 3/n at 95 % confidence); \
             add subjects, raise the target, or hold out fewer subjects (--holdout)",
            impostor.pairs,
            cal.len()
        )));
    }
    if genuine.pairs < MIN_GENUINE_PAIRS {
        return Err(CalibrateError::TooSmall(format!(
            "{} genuine pairs (subjects with two or more samples): at least {MIN_GENUINE_PAIRS} are needed to estimate \
             the false non-match rate",
            genuine.pairs
        )));
    }
    let bands = [Band::Possible, Band::Probable, Band::Strong];
    let mut points = Vec::new();
    for (k, target) in t.iter().enumerate() {
        let score = threshold_for(&impostor, *target);
        let band = if t.len() == 1 { Band::Possible } else { bands[k + 3 - t.len()] };
        points.push(OperatingPoint {
            band,
            target_fmr: *target,
            score,
            cosine: ex.cosine_of(score),
            fmr: Rate::new(impostor.at_least(score), impostor.pairs),
            fnmr: Rate::new(genuine.pairs - genuine.at_least(score), genuine.pairs),
            fewer_fingers: vec![],
        });
    }
    // Bands must rise; equal thresholds (a set with few pairs) are refused.
    if points.windows(2).any(|w| w[1].score <= w[0].score) {
        return Err(CalibrateError::TooSmall(format!(
            "the targets {t:?} give equal thresholds on this set: it cannot tell the bands apart"
        )));
    }
    if ex.parts() > 1 {
        let (g, i) = counts::count_scores(&ex, &ids, &rows);
        let by_count = counts::count_points(&ex, &g, &i, t)?;
        points.iter_mut().zip(by_count).for_each(|(p, c)| p.fewer_fingers = c);
    }
    ex.thresholds = points
        .iter()
        .map(|p| Threshold {
            band: p.band,
            cosine: p.cosine,
            fmr: p.target_fmr,
            fewer_fingers: p.fewer_fingers.iter().map(|c| c.cosine).collect(),
        })
        .collect();
    let (eer, eer_score) = eer(&genuine, &impostor);
    let det = det(&genuine, &impostor);
    let held_out = if test.is_empty() { None } else { Some(evaluate(&ex, &test, &points)?) };
    Ok(Calibration {
        dim,
        samples: cal.len(),
        subjects,
        genuine,
        impostor,
        impostor_sampled: sampled,
        points,
        eer,
        eer_score,
        det,
        held_out,
        extractor: ex,
    })
}

/// The centring vector `calibrate` computes for an extractor of `parts`
/// parts from `samples`: the mean unit vector, part by part.
pub fn centre(samples: &[Sample], parts: usize) -> Vec<f32> {
    mean_unit(&samples.iter().collect::<Vec<_>>(), parts)
}

/// The mean of the L2-normalised vectors, part by part (one part per
/// finger of a multi-finger extractor; absent, all-zero parts not counted).
fn mean_unit(samples: &[&Sample], parts: usize) -> Vec<f32> {
    let d = samples[0].vector.len();
    let size = d / parts.max(1);
    let mut m = vec![0f64; d];
    let mut n = vec![0usize; parts.max(1)];
    for s in samples {
        for (p, part) in s.vector.chunks(size).enumerate() {
            let norm = part.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
            if norm > 0.0 {
                n[p] += 1;
                m[p * size..(p + 1) * size].iter_mut().zip(part).for_each(|(a, x)| *a += *x as f64 / norm);
            }
        }
    }
    m.iter().enumerate().map(|(i, x)| (x / n[i / size].max(1) as f64) as f32).collect()
}

/// Subject indices and quantised rows, exactly as the matcher forms them.
fn quantised(ex: &Extractor, samples: &[&Sample]) -> Result<(Vec<usize>, Vec<Vec<i8>>), CalibrateError> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut ids = Vec::with_capacity(samples.len());
    let mut rows = Vec::with_capacity(samples.len());
    for s in samples {
        let n = index.len();
        ids.push(*index.entry(&s.subject).or_insert(n));
        let file = TemplateFile {
            modality: ex.modality,
            extractor: ex.id.clone(),
            quality: s.quality,
            vector: s.vector.clone(),
            pad: None,
        };
        rows.push(file.to_template_with(ex)?.vector);
    }
    Ok((ids, rows))
}

/// Genuine pairs (all) and impostor pairs (all, or a seeded random
/// sample of `MAX_IMPOSTOR_PAIRS` beyond that).
fn score_pairs(ids: &[usize], rows: &[Vec<i8>], _dim: usize) -> (Scores, Scores, bool) {
    let (mut g, mut i, sampled) = pairs_scored(ids, 1, &|a, b, out| out[0].add(crate::dot(&rows[a], &rows[b])));
    (g.remove(0), i.remove(0), sampled)
}

/// `width` score distributions each of genuine and impostor pairs, filled
/// by `score(a, b, out)` for every genuine pair and every impostor pair
/// (or a seeded random sample of `MAX_IMPOSTOR_PAIRS` of them, the third
/// value true); `ids` are the samples' subjects.
fn pairs_scored(
    ids: &[usize],
    width: usize,
    score: &(dyn Fn(usize, usize, &mut [Scores]) + Sync),
) -> (Vec<Scores>, Vec<Scores>, bool) {
    let n = ids.len();
    let all = (n as u64) * (n as u64).saturating_sub(1) / 2;
    let fresh = || vec![Scores::new(); width];
    let merge = |a: Vec<Scores>, b: Vec<Scores>| a.into_iter().zip(b).map(|(a, b)| a.merge(b)).collect::<Vec<_>>();
    if all <= MAX_IMPOSTOR_PAIRS {
        let (g, i) = (0..n)
            .into_par_iter()
            .fold(
                || (fresh(), fresh()),
                |(mut g, mut imp), a| {
                    for b in a + 1..n {
                        score(a, b, if ids[a] == ids[b] { &mut g } else { &mut imp });
                    }
                    (g, imp)
                },
            )
            .reduce(|| (fresh(), fresh()), |a, b| (merge(a.0, b.0), merge(a.1, b.1)));
        return (g, i, false);
    }
    let mut by_subject: HashMap<usize, Vec<usize>> = HashMap::new();
    ids.iter().enumerate().for_each(|(k, s)| by_subject.entry(*s).or_default().push(k));
    let mut g = fresh();
    for members in by_subject.values() {
        for (x, a) in members.iter().enumerate() {
            members[x + 1..].iter().for_each(|b| score(*a, *b, &mut g));
        }
    }
    let imp = (0..MAX_IMPOSTOR_PAIRS / 100_000)
        .into_par_iter()
        .map(|chunk| {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(chunk);
            let mut s = fresh();
            let mut drawn = 0;
            while drawn < 100_000 {
                let (a, b) = (rng.gen_range(0..n), rng.gen_range(0..n));
                if ids[a] != ids[b] {
                    score(a, b, &mut s);
                    drawn += 1;
                }
            }
            s
        })
        .reduce(fresh, merge);
    (g, imp, true)
}

/// The smallest score threshold whose FMR is at most `target`.
fn threshold_for(impostor: &Scores, target: f64) -> i32 {
    let allowed = (target * impostor.pairs as f64).floor() as u64;
    let mut above = 0u64;
    // Walk down from the top: the threshold is one above the first score
    // at which the count of impostors at or above it exceeds `allowed`.
    for k in (0..impostor.counts.len()).rev() {
        above += impostor.counts[k];
        if above > allowed {
            return k as i32 - SCORE_SPAN + 1;
        }
    }
    -SCORE_SPAN
}

fn eer(g: &Scores, i: &Scores) -> (f64, i32) {
    let (mut fa, mut fr) = (i.pairs, 0u64);
    let mut best = (f64::INFINITY, 0.0, -SCORE_SPAN);
    for k in 0..g.counts.len() {
        // At threshold k - SPAN: impostors at or above it are accepted,
        // genuine pairs below it rejected.
        let (fmr, fnmr) = (fa as f64 / i.pairs as f64, fr as f64 / g.pairs as f64);
        if (fmr - fnmr).abs() < best.0 {
            best = ((fmr - fnmr).abs(), (fmr + fnmr) / 2.0, k as i32 - SCORE_SPAN);
        }
        fa -= i.counts[k];
        fr += g.counts[k];
    }
    (best.1, best.2)
}

/// The DET curve, one point per threshold where a rate changes, thinned to
/// about 400 points.
fn det(g: &Scores, i: &Scores) -> Vec<(f64, f64)> {
    let (mut fa, mut fr) = (i.pairs, 0u64);
    let mut pts = Vec::new();
    for k in 0..g.counts.len() {
        // Threshold k - SPAN: pairs below it are rejected.
        if g.counts[k] > 0 || i.counts[k] > 0 {
            pts.push((fa as f64 / i.pairs as f64, fr as f64 / g.pairs as f64));
        }
        fa -= i.counts[k];
        fr += g.counts[k];
    }
    pts.push((0.0, 1.0));
    let step = pts.len().div_ceil(400).max(1);
    pts.into_iter().step_by(step).collect()
}

/// Rates on held-out subjects with the calibrated extractor.
fn evaluate(ex: &Extractor, test: &[&Sample], points: &[OperatingPoint]) -> Result<HeldOut, CalibrateError> {
    let (ids, rows) = quantised(ex, test)?;
    let subjects = ids.iter().max().map_or(0, |m| m + 1);
    let (g, i, _) = score_pairs(&ids, &rows, ex.dim);
    // Gallery: the first sample of each subject; probes: every other sample.
    let mut first: HashMap<usize, usize> = HashMap::new();
    ids.iter().enumerate().for_each(|(k, s)| {
        first.entry(*s).or_insert(k);
    });
    let out = points
        .iter()
        .map(|p| {
            let false_ids = (0..rows.len())
                .filter(|k| first.iter().any(|(s, r)| *s != ids[*k] && crate::dot(&rows[*k], &rows[*r]) >= p.score))
                .count() as u64;
            HeldOutPoint {
                band: p.band,
                fmr: Rate::new(i.at_least(p.score), i.pairs),
                fnmr: Rate::new(g.pairs - g.at_least(p.score), g.pairs),
                fpir: Rate::new(false_ids, rows.len() as u64),
                gallery: first.len().saturating_sub(1),
            }
        })
        .collect();
    Ok(HeldOut { subjects, samples: test.len(), points: out })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_distr::{Distribution, StandardNormal};

    /// Vectors like the real extractor of the issue: all subjects share a
    /// large common component, so raw cosines are all high.
    fn offset_set(subjects: usize, per: usize, seed: u64) -> Vec<Sample> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let d = 64;
        let common: Vec<f32> = (0..d).map(|_| StandardNormal.sample(&mut rng)).collect();
        let mut out = Vec::new();
        for s in 0..subjects {
            let id: Vec<f32> =
                (0..d).map(|_| <StandardNormal as Distribution<f32>>::sample(&StandardNormal, &mut rng)).collect();
            for _ in 0..per {
                let v = (0..d)
                    .map(|k| {
                        3.0 * common[k]
                            + id[k]
                            + 0.3 * <StandardNormal as Distribution<f32>>::sample(&StandardNormal, &mut rng)
                    })
                    .collect();
                out.push(Sample { subject: format!("s{s}"), vector: v, quality: None });
            }
        }
        out
    }

    fn settings(targets: &[f64]) -> Settings {
        Settings {
            id: "test-64".into(),
            model: String::new(),
            modality: Modality::Face,
            target_fmrs: targets.to_vec(),
            holdout: 0.2,
            centre: true,
            protected_bits: 512,
            fingers: vec![],
            representation: None,
        }
    }

    #[test]
    fn centring_separates_an_offset_extractor_and_the_threshold_meets_its_target() {
        let set = offset_set(120, 3, 1);
        let c = calibrate(&set, &settings(&[1e-3, 1e-4])).unwrap();
        assert!(c.extractor.validate().is_ok());
        let p = &c.points[0];
        assert!(p.fmr.rate <= 1e-3, "{p:?}");
        assert!(p.fnmr.rate < 0.05, "{p:?}");
        assert!(c.points[1].score > p.score && c.points[1].fmr.rate <= 1e-4);
        assert!(c.eer < 0.02, "eer {}", c.eer);
        let h = c.held_out.as_ref().unwrap();
        assert!(h.samples > 0 && h.points[0].fnmr.rate < 0.2, "{h:?}");
        // Without centring all cosines crowd near 1 (as with the real
        // extractor of the issue): the threshold lands there, where the
        // protected matcher's bits resolve least.
        let raw = calibrate(&set, &Settings { centre: false, ..settings(&[1e-3]) }).unwrap();
        assert!(raw.points[0].cosine > 0.8, "raw threshold {}", raw.points[0].cosine);
        assert!(p.cosine < 0.6, "centred threshold {}", p.cosine);
    }

    #[test]
    fn thresholds_apply_as_the_matcher_applies_them() {
        let set = offset_set(60, 2, 2);
        let c = calibrate(&set, &Settings { holdout: 0.0, ..settings(&[1e-2]) }).unwrap();
        let ex = &c.extractor;
        assert_eq!(ex.score_threshold(), c.points[0].score);
        // Count matcher decisions over all pairs: exactly the reported errors.
        let refs: Vec<&Sample> = set.iter().collect();
        let (ids, rows) = quantised(ex, &refs).unwrap();
        let (mut fm, mut fnm) = (0, 0);
        for a in 0..rows.len() {
            for b in a + 1..rows.len() {
                let m = crate::dot(&rows[a], &rows[b]) >= ex.score_threshold();
                match (ids[a] == ids[b], m) {
                    (true, false) => fnm += 1,
                    (false, true) => fm += 1,
                    _ => {}
                }
            }
        }
        assert_eq!((fm, fnm), (c.points[0].fmr.errors, c.points[0].fnmr.errors));
    }

    #[test]
    fn refuses_what_cannot_support_the_target() {
        let small = offset_set(20, 2, 3);
        let e = calibrate(&small, &settings(&[1e-4])).unwrap_err();
        assert!(e.to_string().contains("rule of three"), "{e}");
        assert!(matches!(calibrate(&small, &settings(&[1e-3, 1e-2])), Err(CalibrateError::Targets(_))));
        let one_each = offset_set(200, 1, 4);
        assert!(calibrate(&one_each, &settings(&[1e-2])).unwrap_err().to_string().contains("genuine pairs"));
    }

    #[test]
    fn the_parser_names_the_line() {
        let ok = "{\"subject\":\"a\",\"vector\":[1,2]}\n\n{\"subject\":\"b\",\"vector\":[2,1]}\n";
        assert_eq!(parse_labelled(ok).unwrap().len(), 2);
        let mixed = "{\"subject\":\"a\",\"vector\":[1,2]}\n{\"subject\":\"b\",\"vector\":[1,2,3]}";
        assert_eq!(
            parse_labelled(mixed).unwrap_err(),
            CalibrateError::MixedDimensions { line: 2, expected: 2, found: 3 }
        );
        let nan = "{\"subject\":\"a\",\"vector\":[1,NaN]}";
        assert!(parse_labelled(nan).unwrap_err().to_string().starts_with("line 1: the vector contains NaN"));
        let dup = "{\"subject\":\"a\",\"vector\":[1,2]}\n{\"subject\":\"a\",\"vector\":[1,2]}\n{\"subject\":\"b\",\"vector\":[1,2]}";
        assert!(matches!(parse_labelled(dup), Err(CalibrateError::DuplicateVector { first: 1, second: 3, .. })));
        let zero = "{\"subject\":\"a\",\"vector\":[0,0]}";
        assert!(parse_labelled(zero).unwrap_err().to_string().contains("line 1: template vector is all zeros"));
        assert!(parse_labelled("{\"vector\":[1]}").unwrap_err().to_string().contains("line 1: not a"));
    }

    #[test]
    fn wilson_intervals_hold_the_rate() {
        let r = Rate::new(0, 3000);
        assert_eq!(r.low, 0.0);
        // Wilson's upper bound at zero errors is z²/(n + z²) ≈ 3.84/n.
        assert!((r.high - 3.8415 / 3003.84).abs() < 1e-6, "{r:?}");
        let r = Rate::new(50, 1000);
        assert!(r.low < 0.05 && r.high > 0.05 && r.high - r.low < 0.03);
    }

    #[test]
    fn multi_finger_sets_get_thresholds_by_shared_finger_count() {
        use crate::minutiae::record_template;
        use crate::synth::FingerPopulation;
        let fingers = [1u8, 2, 6, 7];
        let samples = FingerPopulation::new(77, 100).samples(&fingers, &[0, 1]);
        let s = Settings {
            modality: Modality::Finger,
            holdout: 0.0,
            fingers: fingers.to_vec(),
            representation: Some(vigil_protocol::policy::Representation::SpectralMinutiaeV1),
            ..settings(&[1e-2, 1e-3])
        };
        let c = calibrate(&samples, &s).unwrap();
        let ex = &c.extractor;
        ex.validate().unwrap();
        for (p, t) in c.points.iter().zip(&ex.thresholds) {
            assert_eq!(p.fewer_fingers.len(), 3);
            assert_eq!(t.fewer_fingers, p.fewer_fingers.iter().map(|c| c.cosine).collect::<Vec<_>>());
            for (n, cp) in p.fewer_fingers.iter().enumerate() {
                assert_eq!((cp.fingers, cp.score), (n + 1, ex.score_of(cp.cosine)));
                assert!(cp.fmr.rate <= p.target_fmr && cp.fmr.trials == c.impostor.pairs, "{cp:?}");
            }
        }
        // On other people: two-finger captures against four-finger records.
        // The two-finger threshold finds far more than the four-finger one,
        // which two cosines rarely reach, and makes no more false matches
        // than four-finger probes make at the four-finger threshold (both
        // run above the target on a population the set did not hold).
        let pop = FingerPopulation::new(9, 100);
        let t = |i: usize, f: &[u8], k: u64| record_template(ex, &pop.record(i, f, k)).unwrap();
        let records: Vec<_> = (0..100).map(|i| t(i, &fingers, 0)).collect();
        let (two, four): (Vec<_>, Vec<_>) = (0..100).map(|i| (t(i, &[2, 7], 1), t(i, &fingers, 1))).unzip();
        let (by_count, all) = (ex.score_thresholds_for(2)[0], ex.score_threshold());
        let found = |thr: i32| (0..100).filter(|i| two[*i].dot(&records[*i]).unwrap() >= thr).count();
        let false_hits = |probes: &[crate::Template], thr: i32| {
            (0..100)
                .flat_map(|i| (0..100).filter(move |j| *j != i).map(move |j| (i, j)))
                .filter(|(i, j)| probes[*i].dot(&records[*j]).unwrap() >= thr)
                .count()
        };
        assert!(found(by_count) > 2 * found(all) + 10, "{} against {}", found(by_count), found(all));
        let (fm_two, fm_four) = (false_hits(&two, by_count), false_hits(&four, all));
        assert!(fm_two <= fm_four + 30 && (fm_two as f64) < 4.0 * 1e-2 * 9900.0, "{fm_two} against {fm_four}");
    }
}

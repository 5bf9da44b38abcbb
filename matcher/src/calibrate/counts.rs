//! Thresholds by shared finger count for multi-finger extractors
//! (`Threshold::fewer_fingers`): every pair scored over c of the fingers
//! both samples hold, for c = 1 … parts − 1, and per target FMR the
//! threshold on each count's impostor scores, with its rates.
//!
//! Which c fingers: the shared ones in the policy's order, c consecutive
//! (cyclically) from a start that moves with the pair, so every finger
//! position weighs alike across pairs.

use super::{pairs_scored, threshold_for, CalibrateError, Rate, Scores};
use crate::encrypted::present_parts;
use crate::Extractor;
use serde::Serialize;

/// A threshold's operating point for pairs sharing `fingers` fingers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CountPoint {
    pub fingers: usize,
    pub score: i32,
    /// The threshold as a sum of `fingers` cosines.
    pub cosine: f32,
    pub fmr: Rate,
    pub fnmr: Rate,
}

/// Per count c = 1 … parts − 1 (index c − 1), genuine and impostor scores
/// over c shared fingers, from the same pairs as the all-finger scores.
pub(super) fn count_scores(ex: &Extractor, ids: &[usize], rows: &[Vec<i8>]) -> (Vec<Scores>, Vec<Scores>) {
    let k = ex.parts();
    let len = ex.dim / k;
    let present: Vec<u16> = rows.iter().map(|r| present_parts(ex, r)).collect();
    let score = |a: usize, b: usize, out: &mut [Scores]| {
        let (x, y, both) = (&rows[a], &rows[b], present[a] & present[b]);
        let shared: Vec<i32> = (0..k)
            .filter(|p| both & 1 << p != 0)
            .map(|p| crate::dot(&x[p * len..(p + 1) * len], &y[p * len..(p + 1) * len]))
            .collect();
        let start = (a.wrapping_mul(31) ^ b.wrapping_mul(17)) % shared.len().max(1);
        for (c, out) in out.iter_mut().enumerate().take(shared.len().min(k - 1)) {
            out.add((0..=c).map(|i| shared[(start + i) % shared.len()]).sum());
        }
    };
    let (g, i, _) = pairs_scored(ids, k - 1, &score);
    (g, i)
}

/// For each target FMR (rising thresholds), the operating points at every
/// count below `ex.parts()`; refused, with the reason, where a count has
/// too few impostor pairs for the strictest target (rule of three), no
/// threshold under c cosines meets a target, or bands do not rise.
pub(super) fn count_points(
    ex: &Extractor,
    genuine: &[Scores],
    impostor: &[Scores],
    targets: &[f64],
) -> Result<Vec<Vec<CountPoint>>, CalibrateError> {
    let needed = (3.0 / targets[targets.len() - 1]).ceil() as u64;
    let mut per_target = vec![Vec::new(); targets.len()];
    for (c, (g, imp)) in genuine.iter().zip(impostor).enumerate() {
        let fingers = c + 1;
        if imp.pairs < needed || g.pairs == 0 {
            return Err(CalibrateError::TooSmall(format!(
                "{} impostor and {} genuine pairs share {fingers} finger(s): a threshold by finger count needs at \
                 least {needed} impostor pairs (rule of three) and one genuine pair at every count",
                imp.pairs, g.pairs
            )));
        }
        for (t, target) in targets.iter().enumerate() {
            // At or below 0 every positive score meets the target: keep the
            // threshold positive (never less strict than asked).
            let cosine = ex.cosine_of(threshold_for(imp, *target)).max(0.01 * fingers as f32);
            if cosine >= fingers as f32 {
                return Err(CalibrateError::TooSmall(format!(
                    "no threshold under {fingers} cosine(s) meets the target FMR {target:e} for pairs sharing \
                     {fingers} finger(s)"
                )));
            }
            // The score the matcher will compare with (from the cosine, as stored).
            let score = ex.score_of(cosine);
            per_target[t].push(CountPoint {
                fingers,
                score,
                cosine,
                fmr: Rate::new(imp.at_least(score), imp.pairs),
                fnmr: Rate::new(g.pairs - g.at_least(score), g.pairs),
            });
        }
        if per_target.windows(2).any(|w| w[1][c].score <= w[0][c].score) {
            return Err(CalibrateError::TooSmall(format!(
                "the targets {targets:?} give equal thresholds for pairs sharing {fingers} finger(s): this set \
                 cannot tell the bands apart there"
            )));
        }
    }
    Ok(per_target)
}

//! What an answer compares scores with: per band one threshold for every
//! record, or one per gallery row, for multi-finger extractors whose
//! thresholds depend on how many fingers probe and record both hold
//! (`Threshold::fewer_fingers`). The holder knows both sets: the probe
//! names its parts, and a record's absent fingers are its zero parts.

use crate::Extractor;

/// One band's thresholds.
#[derive(Debug, Clone, Copy)]
pub enum Cut<'a> {
    /// The same for every record.
    Same(i32),
    /// Per gallery row; `padding` at positions without a record (the
    /// all-finger threshold, so that padding looks like a non-match).
    PerRow { rows: &'a [i32], padding: i32 },
}

impl From<i32> for Cut<'_> {
    fn from(t: i32) -> Self {
        Cut::Same(t)
    }
}

impl Cut<'_> {
    /// The threshold of gallery row `row` (`u32::MAX`: padding).
    pub fn at(&self, row: u32) -> i32 {
        match self {
            Cut::Same(t) => *t,
            Cut::PerRow { rows, padding } => rows.get(row as usize).copied().unwrap_or(*padding),
        }
    }
}

/// Every band's thresholds for one answer, rising band by band.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Thresholds {
    Same(Vec<i32>),
    /// Per band, one per gallery row; and per band the padding threshold.
    PerRow {
        rows: Vec<Vec<i32>>,
        padding: Vec<i32>,
    },
}

impl From<Vec<i32>> for Thresholds {
    fn from(t: Vec<i32>) -> Self {
        Thresholds::Same(t)
    }
}

impl Thresholds {
    /// The thresholds of `ex` for a probe carrying `carried` parts (`None`:
    /// all) against rows whose present parts are `present` (bit i: part i,
    /// `present_parts`). Uniform when `ex` has no thresholds by count.
    pub fn for_rows(ex: &Extractor, present: &[u16], carried: Option<&[u8]>) -> Self {
        if !ex.counts_fingers() {
            return Thresholds::Same(ex.score_thresholds());
        }
        let probe = carried.map_or((1u16 << ex.parts()) - 1, |p| p.iter().fold(0, |m, i| m | 1 << i));
        let by_count: Vec<Vec<i32>> = (0..=ex.parts()).map(|c| ex.score_thresholds_for(c)).collect();
        let rows = (0..ex.thresholds.len())
            .map(|b| present.iter().map(|p| by_count[(p & probe).count_ones() as usize][b]).collect())
            .collect();
        Thresholds::PerRow { rows, padding: ex.score_thresholds() }
    }

    pub fn bands(&self) -> usize {
        match self {
            Thresholds::Same(t) => t.len(),
            Thresholds::PerRow { padding, .. } => padding.len(),
        }
    }

    /// Band `b`'s thresholds.
    pub fn band(&self, b: usize) -> Cut<'_> {
        match self {
            Thresholds::Same(t) => Cut::Same(t[b]),
            Thresholds::PerRow { rows, padding } => Cut::PerRow { rows: &rows[b], padding: padding[b] },
        }
    }

    /// The thresholds of rows `start..end` (a page of the gallery), as rows 0.. of the page.
    pub fn rows(&self, start: usize, end: usize) -> Self {
        match self {
            Thresholds::Same(t) => Thresholds::Same(t.clone()),
            Thresholds::PerRow { rows, padding } => Thresholds::PerRow {
                rows: rows.iter().map(|r| r[start..end].to_vec()).collect(),
                padding: padding.clone(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::parts::{present_parts, shared_parts};
    use super::*;
    use vigil_protocol::policy::{Band, Representation, Status, Threshold};
    use vigil_protocol::Modality;

    fn four() -> Extractor {
        Extractor {
            id: "four".into(),
            model: String::new(),
            modality: Modality::Finger,
            fingers: vec![1, 2, 6, 7],
            input_dim: None,
            dim: 768,
            centre: None,
            projection: None,
            thresholds: vec![Threshold {
                band: Band::Possible,
                cosine: 1.6,
                fmr: 1e-4,
                fewer_fingers: vec![0.5, 0.9, 1.3],
            }],
            protected_bits: 512,
            status: Status::Active,
            representation: Some(Representation::SpectralMinutiaeV1),
        }
    }

    #[test]
    fn each_row_gets_the_threshold_of_the_fingers_it_shares_with_the_probe() {
        let ex = four();
        ex.validate().unwrap();
        let by = |c: usize| ex.score_thresholds_for(c)[0];
        // Rows holding parts {0,1,2,3}, {1}, {2,3}, {} against a probe of parts 1 and 3.
        let present = [0b1111, 0b0010, 0b1100, 0];
        let t = Thresholds::for_rows(&ex, &present, Some(&[1, 3]));
        let cut = t.band(0);
        assert_eq!((0..4).map(|r| cut.at(r)).collect::<Vec<_>>(), vec![by(2), by(1), by(1), by(1)]);
        assert_eq!(cut.at(u32::MAX), ex.score_threshold(), "padding: the all-finger threshold");
        // A probe of every part: counts are the rows' own.
        let all = Thresholds::for_rows(&ex, &present, None);
        assert_eq!((0..4).map(|r| all.band(0).at(r)).collect::<Vec<_>>(), vec![by(4), by(1), by(2), by(1)]);
        assert_eq!(all.rows(1, 3).band(0).at(1), by(2), "a page's rows count from 0");
        // Without counts: one threshold for all.
        let mut plain = ex.clone();
        plain.thresholds[0].fewer_fingers.clear();
        assert_eq!(Thresholds::for_rows(&plain, &present, Some(&[1])), Thresholds::Same(plain.score_thresholds()));
        let v: Vec<i8> = (0..768).map(|i| if (192..384).contains(&i) { 1 } else { 0 }).collect();
        assert_eq!(present_parts(&ex, &v), 0b0010);
        assert_eq!(shared_parts(&ex, &v, &vec![1; 768]), 1);
    }

    #[test]
    fn both_answer_forms_apply_each_rows_own_threshold() {
        use super::super::{respond, respond_row, ProberKey, RunLayout, PADDING, ROW_PADDING};
        use crate::gallery::{dot, Gallery};
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(21);
        let key = ProberKey::generate();
        let d = 64;
        let q = super::super::tests::unit_i8(&mut rng, d);
        let rows: Vec<i8> = (0..300).flat_map(|_| super::super::tests::unit_i8(&mut rng, d)).collect();
        let g = Gallery::new(d, rows);
        // Each row's threshold just below or above its own score, alternately,
        // far outside the band: the decisions follow the rows' thresholds.
        let per_row: Vec<i32> = (0..g.len()).map(|r| dot(&q, g.row(r)) + if r % 2 == 0 { -600 } else { 600 }).collect();
        let cut = Cut::PerRow { rows: &per_row, padding: 8000 };
        let (answer, order) = respond(&key.encrypt(&q).unwrap(), &RunLayout::new(&g), cut, rng.gen()).unwrap();
        let column = key.decrypt(&answer).unwrap();
        for (pos, row) in order.iter().enumerate() {
            assert_eq!(column[pos], *row != PADDING && row % 2 == 0, "column position {pos} (row {row})");
        }
        let (answer, order) = respond_row(&key.encrypt_row(&q).unwrap(), &g, cut, rng.gen()).unwrap();
        let row_form = key.decrypt_row(&answer).unwrap();
        for (pos, row) in order.iter().enumerate() {
            assert_eq!(row_form[pos], *row != ROW_PADDING && row % 2 == 0, "row position {pos} (row {row})");
        }
    }
}

//! `vigil bench match`: the plaintext scan and the encrypted path on the same
//! random gallery and probe, in one run, printed as one JSON object. The
//! plain scan is the fair baseline (SIMD dispatched at run time, all threads).

use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::Serialize;
use std::time::Instant;
use vigil_matcher::encrypted::{
    answer_form, band_cosine, respond, respond_row, respond_row_bands, row_form_limit, AnswerForm, ProberKey,
    RunLayout, MAX_SPLIT_CHUNKS, PADDING, ROW_PADDING,
};
use vigil_matcher::{dot, quantise, scan, Gallery};

/// The benchmark's figures.
#[derive(Debug, Serialize)]
pub struct MatchBench {
    pub dim: usize,
    pub gallery: usize,
    pub threads: usize,
    pub runs: usize,
    /// Median plaintext scan time (responder side).
    pub plain_ms: f64,
    /// Median encrypted answer time (responder side: probe expansion,
    /// transforms, masking, shuffling, products, modulus switch).
    pub encrypted_ms: f64,
    pub ratio: f64,
    pub encrypt_ms: f64,
    pub decrypt_ms: f64,
    pub probe_bytes: usize,
    pub answer_bytes: usize,
    pub answer_bytes_per_2048: f64,
    /// Fraction of all records decided alike by both paths.
    pub agreement: f64,
    /// The same, over records whose score is outside the band.
    pub agreement_outside_band: f64,
    pub records_in_band: usize,
    pub matches: usize,
    /// Smallest |cosine − threshold| the parameters decide correctly.
    pub band: f64,
    pub threshold_cosine: f64,
    pub peak_rss_mb: f64,
    /// Row form (what alerts carry), on the first `row.records` records.
    pub row: RowBench,
    /// The split row form a holder of that many records fetches instead.
    pub split: RowBench,
    /// Confidence bands (`--bands 3`): the row form answered once per band.
    pub bands: Option<BandsBench>,
}

/// One row answer per band (fresh masks each) beside the one-band answer,
/// in the same run, on the row bench's records.
#[derive(Debug, Serialize)]
pub struct BandsBench {
    pub bands: usize,
    /// Thresholds as cosines, rising 0.1 apart from `--threshold`.
    pub thresholds: Vec<f64>,
    pub records: usize,
    /// Median responder time of the one-threshold answer.
    pub one_band_ms: f64,
    /// Median responder time of all band answers.
    pub bands_ms: f64,
    pub ratio: f64,
    pub answer_bytes: usize,
    pub decrypt_ms: f64,
    /// Share of positions outside every threshold's band whose highest
    /// band equals the plain one.
    pub agreement_outside_band: f64,
}

/// Figures of the row-form path: gossip-sized probes for small galleries.
#[derive(Debug, Serialize)]
pub struct RowBench {
    pub records: usize,
    /// Chunks of the probe (1: the alert's own probe).
    pub chunks: usize,
    pub probe_bytes: usize,
    pub encrypt_ms: f64,
    /// Median responder time (shuffle, masks, products, re-randomisation).
    pub encrypted_ms: f64,
    pub decrypt_ms: f64,
    pub answer_bytes: usize,
    pub answer_bytes_per_record: f64,
    pub agreement_outside_band: f64,
    /// Largest gallery for which the alert's one-chunk row form moves fewer
    /// bytes than the column form (probe plus answer), splits left aside.
    pub row_form_limit: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    v[v.len() / 2]
}

fn time<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let t = Instant::now();
    let r = f();
    (r, t.elapsed().as_secs_f64() * 1000.0)
}

/// Random unit vectors at scale 127, with one noisy copy of `probe` in every 1000 rows.
fn random_gallery(dim: usize, m: usize, probe: &[i8], seed: u64) -> Gallery {
    let mut rows = vec![0i8; m * dim];
    rows.par_chunks_mut(dim * 1000).enumerate().for_each(|(c, chunk)| {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ (c as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let spread = 0.8 * 127.0 / (dim as f32).sqrt();
        let mut v = vec![0f32; dim];
        for (i, row) in chunk.chunks_exact_mut(dim).enumerate() {
            if i == 0 {
                v.iter_mut().zip(probe).for_each(|(x, q)| *x = *q as f32 + rng.gen_range(-spread..spread));
            } else {
                v.iter_mut().for_each(|x| *x = rng.gen_range(-1.0f32..1.0));
            }
            row.copy_from_slice(&quantise(&v).expect("finite, non-zero"));
        }
    });
    Gallery::new(dim, rows)
}

pub fn run(
    dim: usize,
    m: usize,
    threads: usize,
    runs: usize,
    threshold_cosine: f32,
    bands: usize,
) -> anyhow::Result<MatchBench> {
    anyhow::ensure!((1..=3).contains(&bands), "one to three bands");
    let max = vigil_matcher::encrypted::MAX_DIM;
    anyhow::ensure!((1..=max).contains(&dim), "dimension must be 1..={max}");
    anyhow::ensure!(m >= 1, "the gallery needs at least one record");
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
    let mut rng = rand_chacha::ChaCha8Rng::from_entropy();
    let probe_f: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    let q = quantise(&probe_f).expect("finite, non-zero");
    let gallery = pool.install(|| random_gallery(dim, m, &q, rng.gen()));
    // The responder keeps its gallery in run layout (built once, not per query).
    let layout = pool.install(|| RunLayout::new(&gallery));
    let t = (threshold_cosine * 127.0 * 127.0).round() as i32;
    let key = ProberKey::generate();

    let mut plain_t = Vec::new();
    let mut plain = Vec::new();
    for _ in 0..runs.max(1) * 3 {
        let (p, ms) = pool.install(|| time(|| scan(&gallery, &q, t)));
        plain_t.push(ms);
        plain = p;
    }
    let (mut enc_t, mut resp_t, mut dec_t) = (Vec::new(), Vec::new(), Vec::new());
    let mut last = None;
    for _ in 0..runs.max(1) {
        let (probe, ms) = time(|| key.encrypt(&q));
        enc_t.push(ms);
        let probe = probe?;
        let seed: [u8; 32] = rng.gen();
        let (answer, ms) = pool.install(|| time(|| respond(&probe, &layout, t, seed)));
        resp_t.push(ms);
        let (answer, order) = answer?;
        let (decisions, ms) = time(|| key.decrypt(&answer));
        dec_t.push(ms);
        last = Some((probe, answer, order, decisions?));
    }
    let (probe, answer, order, decisions) = last.expect("at least one run");
    drop(layout);
    let band = band_cosine(gallery.max_norm(), dim);
    let band_int = band * 127.0 * 127.0;
    let (mut agree, mut outside, mut agree_outside) = (0usize, 0usize, 0usize);
    for (pos, &row) in order.iter().enumerate().filter(|(_, r)| **r != PADDING) {
        let same = decisions[pos] == plain[row as usize];
        agree += same as usize;
        if ((dot(&q, gallery.row(row as usize)) - t) as f64).abs() > band_int {
            outside += 1;
            agree_outside += same as usize;
        }
    }
    let row = row_bench(&pool, &key, &gallery, &q, t, band_int, &plain, runs.max(1), Some(1), &mut rng)?;
    let split = row_bench(&pool, &key, &gallery, &q, t, band_int, &plain, runs.max(1), None, &mut rng)?;
    let bands = (bands > 1)
        .then(|| bands_bench(&pool, &key, &gallery, &q, threshold_cosine, bands, band_int, runs.max(1), &mut rng))
        .transpose()?;
    let plain_ms = median(plain_t);
    let encrypted_ms = median(resp_t);
    let answer_bytes = answer.to_bytes().len();
    Ok(MatchBench {
        dim,
        gallery: m,
        threads,
        runs: runs.max(1),
        plain_ms,
        encrypted_ms,
        ratio: encrypted_ms / plain_ms,
        encrypt_ms: median(enc_t),
        decrypt_ms: median(dec_t),
        probe_bytes: probe.to_bytes().len(),
        answer_bytes,
        answer_bytes_per_2048: answer_bytes as f64 / m.div_ceil(2048) as f64,
        agreement: agree as f64 / m as f64,
        agreement_outside_band: agree_outside as f64 / outside.max(1) as f64,
        records_in_band: m - outside,
        matches: plain.iter().filter(|x| **x).count(),
        band,
        threshold_cosine: threshold_cosine as f64,
        peak_rss_mb: vigil_testkit::peak_rss_mb(),
        row,
        split,
        bands,
    })
}

/// Band answers (`respond_row_bands`) against the one-band answer on the
/// records a one-chunk row answer covers.
#[allow(clippy::too_many_arguments)]
fn bands_bench(
    pool: &rayon::ThreadPool,
    key: &ProberKey,
    gallery: &Gallery,
    q: &[i8],
    threshold_cosine: f32,
    bands: usize,
    band_int: f64,
    runs: usize,
    rng: &mut impl Rng,
) -> anyhow::Result<BandsBench> {
    let dim = gallery.dim();
    let records = gallery.len().min(row_form_limit(dim, 1));
    let small = Gallery::new(dim, (0..records).flat_map(|i| gallery.row(i).to_vec()).collect());
    let cosines: Vec<f64> = (0..bands).map(|b| threshold_cosine as f64 + 0.1 * b as f64).collect();
    let ts: Vec<i32> = cosines.iter().map(|c| (c * 127.0 * 127.0).round() as i32).collect();
    let all_bands = vigil_matcher::encrypted::Thresholds::Same(ts.clone());
    let probe = key.encrypt_row(q)?;
    let (mut one_t, mut all_t, mut dec_t) = (Vec::new(), Vec::new(), Vec::new());
    let mut last = None;
    for _ in 0..runs * 3 {
        let seed: [u8; 32] = rng.gen();
        let (one, ms) = pool.install(|| time(|| respond_row(&probe, &small, ts[0], seed)));
        one?;
        one_t.push(ms);
        let (all, ms) = pool.install(|| time(|| respond_row_bands(&probe, &small, &all_bands, seed)));
        all_t.push(ms);
        let (answers, order) = all?;
        let (decided, ms) = time(|| key.decrypt_row_bands(&answers));
        dec_t.push(ms);
        last = Some((answers, order, decided?));
    }
    let (answers, order, decided) = last.expect("at least one run");
    let (mut outside, mut agree) = (0usize, 0usize);
    for (pos, &row) in order.iter().enumerate().filter(|(_, r)| **r != ROW_PADDING) {
        let s = dot(q, small.row(row as usize));
        if ts.iter().all(|t| ((s - t) as f64).abs() > band_int) {
            outside += 1;
            agree += (decided[pos] == ts.iter().rposition(|t| s >= *t).map(|b| b as u8)) as usize;
        }
    }
    let (one_band_ms, bands_ms) = (median(one_t), median(all_t));
    Ok(BandsBench {
        bands,
        thresholds: cosines,
        records,
        one_band_ms,
        bands_ms,
        ratio: bands_ms / one_band_ms,
        answer_bytes: answers.iter().map(|a| a.to_bytes().len()).sum(),
        decrypt_ms: median(dec_t),
        agreement_outside_band: agree as f64 / outside.max(1) as f64,
    })
}

/// The row form in `chunks` chunks (`None`: the split `answer_form` picks)
/// over the first `row_form_limit(dim, 1)` records (at most the gallery):
/// the most a holder answers in the alert's own row form.
#[allow(clippy::too_many_arguments)]
fn row_bench(
    pool: &rayon::ThreadPool,
    key: &ProberKey,
    gallery: &Gallery,
    q: &[i8],
    t: i32,
    band_int: f64,
    plain: &[bool],
    runs: usize,
    chunks: Option<usize>,
    rng: &mut impl Rng,
) -> anyhow::Result<RowBench> {
    let dim = gallery.dim();
    let limit = row_form_limit(dim, 1);
    let records = gallery.len().min(limit);
    let chunks = chunks.unwrap_or(match answer_form(records, dim, MAX_SPLIT_CHUNKS) {
        AnswerForm::Split(n) => n,
        _ => dim.min(8),
    });
    let small = Gallery::new(dim, (0..records).flat_map(|i| gallery.row(i).to_vec()).collect());
    let (mut enc_t, mut resp_t, mut dec_t) = (Vec::new(), Vec::new(), Vec::new());
    let mut last = None;
    for _ in 0..runs * 3 {
        let (probe, ms) = time(|| key.encrypt_row_split(q, chunks));
        enc_t.push(ms);
        let probe = probe?;
        let seed: [u8; 32] = rng.gen();
        let (answer, ms) = pool.install(|| time(|| respond_row(&probe, &small, t, seed)));
        resp_t.push(ms);
        let (answer, order) = answer?;
        let (decisions, ms) = pool.install(|| time(|| key.decrypt_row(&answer)));
        dec_t.push(ms);
        last = Some((probe, answer, order, decisions?));
    }
    let (probe, answer, order, decisions) = last.expect("at least one run");
    let (mut outside, mut agree) = (0usize, 0usize);
    for (pos, &row) in order.iter().enumerate().filter(|(_, r)| **r != ROW_PADDING) {
        if ((dot(q, small.row(row as usize)) - t) as f64).abs() > band_int {
            outside += 1;
            agree += (decisions[pos] == plain[row as usize]) as usize;
        }
    }
    let answer_bytes = answer.to_bytes().len();
    Ok(RowBench {
        records,
        chunks,
        probe_bytes: probe.to_bytes().len(),
        encrypt_ms: median(enc_t),
        encrypted_ms: median(resp_t),
        decrypt_ms: median(dec_t),
        answer_bytes,
        answer_bytes_per_record: answer_bytes as f64 / records as f64,
        agreement_outside_band: agree as f64 / outside.max(1) as f64,
        row_form_limit: limit,
    })
}

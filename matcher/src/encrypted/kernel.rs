//! The responder's side: regenerate the probe's masks from its seed,
//! transform the probe once, then for each block of N answer positions
//! (a fresh shuffle of the gallery) build d masked plaintext polynomials,
//! multiply-accumulate them against the probe in the Fourier domain (our
//! own kernel on `FourierPolynomial.data`), transform back, subtract the
//! masked threshold and switch to 32-bit coefficients. Blocks run on the
//! rayon pool.

use super::cut::Cut;
use super::fourier::{self, BlockMasks};
use super::{flood, EncryptedAnswer, EncryptedError, EncryptedProbe, DELTA_LOG, MASK_LOG, PARAMS_V1, POLY};
pub use crate::gallery::Gallery;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use tfhe::core_crypto::commons::generators::MaskRandomGenerator;
use tfhe::core_crypto::commons::math::random::{CompressionSeed, Seed};
use tfhe::core_crypto::fft_impl::fft64::math::polynomial::FourierPolynomial;
use tfhe::core_crypto::prelude::*;
use tfhe_fft::c64;

const HALF: usize = POLY / 2;

// Masks are drawn from 16-bit words.
const _: () = assert!(MASK_LOG <= 16);

/// Blocks answered together per pass over the probe.
const GROUP: usize = 4;
/// Consecutive gallery rows stored and shuffled together.
pub const RUN: usize = 32;
/// Runs per answer block.
const RUNS_PER_BLOCK: usize = POLY / RUN;
/// `order` entry of a padding position (after the last record).
pub const PADDING: u32 = u32::MAX;
/// Threshold subtracted at decoy positions: above any inner product of a
/// decoy (norm at most 127·√3) with a probe of norm at most 133, so a decoy
/// always decrypts as "no match"; small enough that
/// Δ·r_max·(T_DECOY + 133·127·√3) < 2^63.
pub const T_DECOY: i32 = 32_767;

/// The gallery laid out for the responder: runs of `RUN` consecutive rows,
/// each stored column by column (`d` chunks of `RUN` bytes, the last run
/// zero-padded). A block's polynomial for dimension i is then built from
/// 64 contiguous 32-byte chunks, with no transposition per query.
#[derive(Clone)]
pub struct RunLayout {
    dim: usize,
    len: usize,
    data: Vec<i8>,
}

impl std::fmt::Debug for RunLayout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RunLayout({} x {})", self.len, self.dim)
    }
}

impl RunLayout {
    pub fn new(g: &Gallery) -> Self {
        let d = g.dim();
        let runs = g.len().div_ceil(RUN);
        let mut data = vec![0i8; runs * d * RUN];
        data.par_chunks_mut(d * RUN).enumerate().for_each(|(r, chunk)| {
            for t in 0..RUN.min(g.len() - r * RUN) {
                for (i, v) in g.row(r * RUN + t).iter().enumerate() {
                    chunk[i * RUN + t] = *v;
                }
            }
        });
        Self { dim: d, len: g.len(), data }
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Records (not counting padding).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn runs(&self) -> usize {
        self.len.div_ceil(RUN)
    }

    /// The gallery back in row order (for answering a row-form probe from
    /// a snapshot kept in this layout).
    pub fn gallery(&self) -> Gallery {
        let d = self.dim;
        let mut rows = vec![0i8; self.len * d];
        rows.par_chunks_mut(d * RUN).enumerate().for_each(|(r, out)| {
            let chunk = &self.data[r * d * RUN..(r + 1) * d * RUN];
            for (t, row) in out.chunks_exact_mut(d).enumerate() {
                for (i, v) in row.iter_mut().enumerate() {
                    *v = chunk[i * RUN + t];
                }
            }
        });
        Gallery::new(d, rows)
    }

    fn chunk(&self, run: usize, i: usize) -> &[i8] {
        let at = (run * self.dim + i) * RUN;
        &self.data[at..at + RUN]
    }
}

/// A query's shuffle, all drawn from its seed: the run in each slot, each
/// slot's rotation, the mask seed of each block, the resulting order, and
/// the seed of the decoys.
struct Shuffle {
    slot_runs: Vec<u32>,
    rotations: Vec<u8>,
    block_seeds: Vec<[u8; 32]>,
    order: Vec<u32>,
    decoy_seed: [u8; 32],
}

impl Shuffle {
    fn new(records: usize, seed: [u8; 32]) -> Self {
        let runs = records.div_ceil(RUN);
        let mut rng = rand_chacha::ChaCha20Rng::from_seed(seed);
        let mut slot_runs: Vec<u32> = (0..runs as u32).collect();
        rand::seq::SliceRandom::shuffle(slot_runs.as_mut_slice(), &mut rng);
        let rotations: Vec<u8> = (0..runs).map(|_| rng.gen_range(0..RUN as u8)).collect();
        let block_seeds: Vec<[u8; 32]> = (0..EncryptedAnswer::blocks(runs * RUN)).map(|_| rng.gen()).collect();
        let decoy_seed = rng.gen();
        let mut order = vec![PADDING; runs * RUN];
        order.par_chunks_mut(RUN).enumerate().for_each(|(slot, out)| {
            let (run, rot) = (slot_runs[slot] as usize, rotations[slot] as usize);
            for (t, o) in out.iter_mut().enumerate() {
                let row = run * RUN + (rot + t) % RUN;
                if row < records {
                    *o = row as u32;
                }
            }
        });
        Self { slot_runs, rotations, block_seeds, order, decoy_seed }
    }
}

/// Decoy rows for every coefficient of a block that holds no record (the
/// padding of the last run, and the tail of the last block): random
/// vectors of the gallery's typical norm, drawn fresh per query.
///
/// Why: the answer's mask is `Σ_i A_i·P_i` for masks `A_i` the prober
/// knows. With few records in a block (a small gallery, or the last block
/// of any gallery) it is a system of N noisy linear equations in few
/// unknowns `r·g`, which lattice reduction solves: the prober would recover
/// template directions. With every coefficient filled, a block holds N·d
/// unknowns of about 22 bits behind N equations of 32 bits, and the mask
/// is statistically independent of the records.
struct Decoys {
    /// Per block: (position in the block, first value in `values`).
    at: Vec<Vec<(u16, usize)>>,
    /// `d` values per decoy.
    values: Vec<i8>,
}

impl Decoys {
    fn new(order: &[u32], blocks: usize, d: usize, seed: [u8; 32]) -> Self {
        // Uniform in [−a, a] per component: E‖z‖² = d·a(a+1)/3 ≈ 127².
        let a = ((127.0 * (3.0 / d as f64).sqrt()).floor() as i8).max(1);
        // Positions without a record, found block by block in parallel
        // (a sequential scan of a million positions cost milliseconds).
        let free: Vec<Vec<u16>> = (0..blocks)
            .into_par_iter()
            .map(|b| {
                (0..POLY)
                    .filter(|p| !matches!(order.get(b * POLY + p), Some(r) if *r != PADDING))
                    .map(|p| p as u16)
                    .collect()
            })
            .collect();
        let mut rng = rand_chacha::ChaCha20Rng::from_seed(seed);
        let mut values = Vec::new();
        let at = free
            .into_iter()
            .map(|positions| {
                positions
                    .into_iter()
                    .map(|p| {
                        let at = values.len();
                        values.extend((0..d).map(|_| rng.gen_range(-a..=a)));
                        (p, at)
                    })
                    .collect()
            })
            .collect();
        Self { at, values }
    }
}

/// The order of the answer to a query over `records` records with shuffle
/// `seed` (as `respond` returned it): how a responder resolves an answer
/// position to a record later, keeping only the seed.
pub fn answer_order(records: usize, seed: [u8; 32]) -> Vec<u32> {
    Shuffle::new(records, seed).order
}

/// Per-thread working memory for one group of blocks.
struct Scratch {
    buffers: ComputationBuffers,
    masks: Vec<u64>,
    draws: Vec<u16>,
    flood: Vec<u32>,
    block_masks: Vec<BlockMasks>,
    rows: Vec<i8>,
    tmp: Vec<c64>,
    acc_a: Vec<c64>,
    acc_b: Vec<c64>,
    res_a: Vec<u64>,
    res_b: Vec<u64>,
}

impl Scratch {
    fn new(fft: FftView<'_>) -> Self {
        let mut buffers = ComputationBuffers::new();
        let req = fft.forward_scratch().or(fft.backward_scratch());
        buffers.resize(req.unaligned_bytes_required());
        Self {
            buffers,
            masks: vec![0; GROUP * POLY],
            draws: vec![0; POLY],
            flood: vec![0; POLY],
            block_masks: vec![BlockMasks::new(); GROUP],
            rows: vec![0; POLY],
            tmp: vec![c64::default(); HALF],
            acc_a: vec![c64::default(); GROUP * HALF],
            acc_b: vec![c64::default(); GROUP * HALF],
            res_a: vec![0; POLY],
            res_b: vec![0; POLY],
        }
    }
}

/// Dimensions per task when regenerating and transforming a probe.
const PROBE_DIMS_PER_TASK: usize = 8;

/// The probe's Fourier form: per dimension, mask then body. The masks are
/// regenerated from the probe's seed (the prober cannot choose them), a
/// task per `PROBE_DIMS_PER_TASK` dimensions: each task's generator skips
/// to its first mask (AES-CTR: a counter jump), so the result equals a
/// sequential decompression (`tests::parallel_decompression_equals_tfhe_s`).
fn probe_fourier(probe: &EncryptedProbe, fft: FftView<'_>) -> Vec<c64> {
    let mut fourier = vec![c64::default(); probe.dim * 2 * HALF];
    let per_task = PROBE_DIMS_PER_TASK * 2 * HALF;
    fourier.par_chunks_mut(per_task).zip(probe.bodies.par_chunks(PROBE_DIMS_PER_TASK * POLY)).enumerate().for_each(
        |(task, (out, bodies))| {
            let list = decompress_from(probe.seed, task * PROBE_DIMS_PER_TASK, bodies);
            let mut s = Scratch::new(fft);
            for (out, poly) in out.chunks_exact_mut(HALF).zip(list.chunks_exact(POLY)) {
                let stack = s.buffers.stack();
                fft.forward_as_torus(FourierPolynomial { data: out }, Polynomial::from_container(poly), stack);
            }
        },
    );
    fourier
}

/// The GLWE ciphertexts (mask, body) of `bodies`, the seeded list's
/// ciphertexts from index `first` on.
pub(super) fn decompress_from(seed: u128, first: usize, bodies: &[u64]) -> Vec<u64> {
    let mut generator = MaskRandomGenerator::<DefaultRandomGenerator>::new(CompressionSeed::from(Seed(seed)));
    if first > 0 {
        generator.skip(EncryptionMaskByteCount(first * POLY * std::mem::size_of::<u64>()));
    }
    let seeded = SeededGlweCiphertextList::from_container(
        bodies,
        GlweSize(2),
        PolynomialSize(POLY),
        CompressionSeed::from(Seed(seed)),
        CiphertextModulus::new_native(),
    );
    let mut list = GlweCiphertextList::new(
        0u64,
        GlweSize(2),
        PolynomialSize(POLY),
        GlweCiphertextCount(bodies.len() / POLY),
        CiphertextModulus::new_native(),
    );
    decompress_seeded_glwe_ciphertext_list_with_pre_seeded_generator(&mut list, &seeded, &mut generator);
    list.into_container()
}

/// Sequential decompression by tfhe (tests compare against it).
#[cfg(test)]
pub(crate) fn decompress_all(seed: u128, bodies: &[u64]) -> (Vec<u64>, Vec<u64>) {
    let whole = SeededGlweCiphertextList::from_container(
        bodies,
        GlweSize(2),
        PolynomialSize(POLY),
        CompressionSeed::from(Seed(seed)),
        CiphertextModulus::new_native(),
    )
    .decompress_into_glwe_ciphertext_list()
    .into_container();
    let cut = (bodies.len() / POLY / 2) * POLY;
    let mut pieces = decompress_from(seed, 0, &bodies[..cut]);
    pieces.extend(decompress_from(seed, cut / POLY, &bodies[cut..]));
    (whole, pieces)
}

/// Answers `probe` against `layout` for `threshold` (an inner product of
/// quantised vectors). `seed` drives the shuffle and the masks; draw it
/// fresh for every query. Returns the answer and the order: position `p` of
/// the answer is gallery row `order[p]`, or `PADDING`. Runs on the current
/// rayon pool.
///
/// The shuffle: the runs of `RUN` rows go to random slots of random blocks,
/// and each run is rotated by a random offset. A position therefore says
/// nothing about a record; what stays fixed across queries is only that
/// the records of one run sit in one block at fixed cyclic distances (a
/// fully random order costs a DRAM miss per row and doubles the time).
pub fn respond<'a>(
    probe: &EncryptedProbe,
    layout: &RunLayout,
    threshold: impl Into<Cut<'a>>,
    seed: [u8; 32],
) -> Result<(EncryptedAnswer, Vec<u32>), EncryptedError> {
    respond_inner(probe, layout, threshold.into(), seed, None)
}

/// As `respond`, also recording the mask of every position (tests only:
/// measures the decryption error exactly).
#[cfg(test)]
pub(crate) fn respond_with_masks(
    probe: &EncryptedProbe,
    layout: &RunLayout,
    threshold: i32,
    seed: [u8; 32],
) -> (EncryptedAnswer, Vec<u32>, Vec<u64>) {
    let masks = std::sync::Mutex::new(vec![0u64; EncryptedAnswer::blocks(layout.runs() * RUN) * POLY]);
    let (a, o) = respond_inner(probe, layout, threshold.into(), seed, Some(&masks)).unwrap();
    (a, o, masks.into_inner().unwrap())
}

fn respond_inner(
    probe: &EncryptedProbe,
    layout: &RunLayout,
    threshold: Cut<'_>,
    seed: [u8; 32],
    record_masks: Option<&std::sync::Mutex<Vec<u64>>>,
) -> Result<(EncryptedAnswer, Vec<u32>), EncryptedError> {
    probe.check()?;
    let d = probe.dim;
    if d != layout.dim() {
        return Err(EncryptedError::Dimension { probe: d, gallery: layout.dim() });
    }
    let transform = fourier::transform();
    let fft = fourier::fft();
    let fft = fft.as_view();

    let fourier = probe_fourier(probe, fft);

    let runs = layout.runs();
    let positions = runs * RUN;
    let blocks = EncryptedAnswer::blocks(positions);
    let Shuffle { slot_runs, rotations, block_seeds, order, decoy_seed } = Shuffle::new(layout.len(), seed);
    let decoys = Decoys::new(&order, blocks, d, decoy_seed);

    let mut coeffs = vec![0u32; blocks * 2 * POLY];
    // Blocks are processed GROUP at a time, so that each pass over the
    // probe's Fourier form (32 KiB per dimension) serves GROUP blocks.
    coeffs.par_chunks_mut(2 * POLY * GROUP).enumerate().for_each_init(
        || Scratch::new(fft),
        |s, (grp, out)| {
            let group_blocks = out.len() / (2 * POLY);
            let first = grp * GROUP;
            for j in 0..group_blocks {
                let b = first + j;
                let masks = &mut s.masks[j * POLY..(j + 1) * POLY];
                let mut brng = rand_chacha::ChaCha20Rng::from_seed(block_seeds[b]);
                // Every coefficient gets a mask: records and decoys alike.
                // Two bytes of the stream per mask, MASK_LOG bits kept
                // (uniform: 2^16 is a multiple of 2^MASK_LOG).
                brng.fill(s.draws.as_mut_slice());
                for (mask, draw) in masks.iter_mut().zip(&s.draws) {
                    *mask = (1u64 << MASK_LOG) + (*draw as u64 & ((1 << MASK_LOG) - 1));
                }
                if let Some(rec) = record_masks {
                    rec.lock().expect("mask log")[b * POLY..(b + 1) * POLY].copy_from_slice(masks);
                }
                s.block_masks[j].set(masks);
            }
            s.acc_a[..group_blocks * HALF].fill(c64::default());
            s.acc_b[..group_blocks * HALF].fill(c64::default());
            for i in 0..d {
                let f = &fourier[i * 2 * HALF..(i + 1) * 2 * HALF];
                for j in 0..group_blocks {
                    let b = first + j;
                    let slots = (b * RUNS_PER_BLOCK)..((b + 1) * RUNS_PER_BLOCK).min(runs);
                    for (n, slot) in slots.enumerate() {
                        let chunk = layout.chunk(slot_runs[slot] as usize, i);
                        let rot = rotations[slot] as usize;
                        // Rotate: the run's row `rot` comes first.
                        let mut twice = [0i8; 2 * RUN];
                        twice[..RUN].copy_from_slice(chunk);
                        twice[RUN..].copy_from_slice(chunk);
                        s.rows[n * RUN..(n + 1) * RUN].copy_from_slice(&twice[rot..rot + RUN]);
                    }
                    // After the runs: padding rows of the last run become decoys.
                    for &(p, v) in &decoys.at[b] {
                        s.rows[p as usize] = decoys.values[v + i];
                    }
                    transform.forward_masked(&mut s.tmp, &s.rows, &s.block_masks[j], s.buffers.stack());
                    fourier::mac2(
                        &mut s.acc_a[j * HALF..(j + 1) * HALF],
                        &mut s.acc_b[j * HALF..(j + 1) * HALF],
                        &s.tmp,
                        &f[..HALF],
                        &f[HALF..],
                    );
                }
            }
            for j in 0..group_blocks {
                let b = first + j;
                let stack = s.buffers.stack();
                fft.backward_as_torus(
                    Polynomial::from_container(s.res_a.as_mut_slice()),
                    FourierPolynomial { data: &s.acc_a[j * HALF..(j + 1) * HALF] },
                    stack,
                );
                fft.backward_as_torus(
                    Polynomial::from_container(s.res_b.as_mut_slice()),
                    FourierPolynomial { data: &s.acc_b[j * HALF..(j + 1) * HALF] },
                    stack,
                );
                let masks = &s.masks[j * POLY..(j + 1) * POLY];
                // The threshold of the record at block coefficient k (positions
                // past the last run: padding).
                let at = |k: usize| threshold.at(order.get(b * POLY + k).copied().unwrap_or(PADDING));
                for (k, (res, mask)) in s.res_b.iter_mut().zip(masks).enumerate() {
                    let t = ((*mask as i64 * at(k) as i64) << DELTA_LOG) as u64;
                    *res = res.wrapping_sub(t);
                }
                // Flooding (`FLOOD_LOG`), from stream 1 of the block's seed.
                let mut frng = rand_chacha::ChaCha20Rng::from_seed(block_seeds[b]);
                frng.set_stream(1);
                frng.fill(s.flood.as_mut_slice());
                for (res, draw) in s.res_b.iter_mut().zip(&s.flood) {
                    *res = res.wrapping_add(flood(*draw));
                }
                // Decoys decrypt as a certain "no match".
                for &(p, _) in &decoys.at[b] {
                    let p = p as usize;
                    let t = ((masks[p] as i64 * (T_DECOY - at(p)) as i64) << DELTA_LOG) as u64;
                    s.res_b[p] = s.res_b[p].wrapping_sub(t);
                }
                // Modulus switch to 2^32: keep the rounded top half.
                let (oa, ob) = out[j * 2 * POLY..(j + 1) * 2 * POLY].split_at_mut(POLY);
                for k in 0..POLY {
                    oa[k] = (s.res_a[k].wrapping_add(1 << 31) >> 32) as u32;
                    ob[k] = (s.res_b[k].wrapping_add(1 << 31) >> 32) as u32;
                }
            }
        },
    );
    Ok((EncryptedAnswer { key_id: probe.key_id, params: PARAMS_V1, count: positions, coeffs }, order))
}

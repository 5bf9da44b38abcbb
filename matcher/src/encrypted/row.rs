//! Row packing: the gossip-sized encrypted probe that alerts carry, and the
//! answers holders send back to the issuer. The probe is one GLWE holding
//! the whole probe `Q(X) = Σ Δ·q_i·X^i` plus one GLWE encryption of zero
//! (24 KiB together on the wire, bodies rounded to 48 bits, whatever the
//! dimension); the responder multiplies it by
//! a plaintext polynomial packing ⌊N/d⌋ masked gallery vectors, so that
//! coefficient `m·d + d − 1` of the product is `Δ·r_m·⟨q, g_m⟩`.
//!
//! A product's mask `A·G` would give `G` away (the prober knows `A`), and its
//! other coefficients are inner products with shifted vectors. So the
//! responder re-randomises every product with the prober's encryption of
//! zero, `Z·u + (e1, e2)` for a fresh binary `u` and fresh noise (RLWE
//! public-key style: the mask becomes pseudorandom), and sends only the
//! mask (switched to 24 bits) and the ⌊N/d⌋ body coefficients that hold
//! results (32 bits). Answers cost `3·N + 4·⌊N/d⌋` bytes per ⌊N/d⌋ records:
//! cheap for small galleries only.
//!
//! Rounding the probe's bodies to 48 bits adds an error of at most 2^15
//! per coefficient, below the encryption noise (2^17); rounding answer
//! masks to 24 bits adds about 2^43 at decryption, below the FFT's 2^46
//! (`error_sd` counts both). Parameter set `ROW_PARAMS`.
//!
//! A *split* row probe cuts the probe into `n` chunks of `s = ⌈d/n⌉`
//! coefficients, one GLWE each (plus the zero encryption): the responder
//! sums the products of chunk j with a polynomial packing chunk j of ⌊N/s⌋
//! records, so one answer (one mask) carries ⌊N/s⌋ results instead of
//! ⌊N/d⌋. Between the alert's one-chunk probe and the column form, it is
//! what a holder of a few hundred to about 200,000 records fetches
//! (`answer_form`): 8 chunks at d = 128 cut its answer bytes sevenfold.

use super::cut::{Cut, Thresholds};
use super::fourier::{mul_acc, FourierKey, KeyProduct};
use super::{
    flood, hex16, EncryptedError, ProberKey, DELTA_LOG, MASK_LOG, MAX_DIM, NOISE_LOG, POLY, ROW_BODY_DROP,
    ROW_MASK_DROP, ROW_PARAMS,
};
use crate::gallery::Gallery;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tfhe::core_crypto::fft_impl::fft64::math::polynomial::FourierPolynomial;
use tfhe::core_crypto::prelude::*;
use tfhe_fft::c64;
use vigil_protocol::{decode, encode, Tag};

const HALF: usize = POLY / 2;
/// `order` entry of a padding position (a slot after the last record).
pub const ROW_PADDING: u32 = u32::MAX;

/// Results one answer group carries for result stride `stride` (the
/// probe's chunk width; its dimension for a one-chunk probe): ⌊N/stride⌋.
pub fn per_group(stride: usize) -> usize {
    POLY / stride
}

/// Chunk width of a probe of dimension `dim` cut into `chunks` chunks.
pub fn stride(dim: usize, chunks: usize) -> usize {
    dim.div_ceil(chunks)
}

/// Whether `dim` cuts into exactly `chunks` non-empty chunks of width
/// `stride(dim, chunks)`.
pub fn valid_chunks(dim: usize, chunks: usize) -> bool {
    (1..=dim).contains(&chunks) && dim.div_ceil(stride(dim, chunks)) == chunks
}

/// Whether `stride` is the chunk width of some split of a `dim`-dimensional
/// probe (an answer's stride must be).
pub fn valid_stride(dim: usize, stride: usize) -> bool {
    (1..=dim).contains(&stride) && self::stride(dim, dim.div_ceil(stride)) == stride
}

/// Most chunks a holder asks for. Bytes alone would favour ever finer
/// splits over the column form up to hundreds of thousands of records, but
/// a split costs about one FFT per `N/d` records and chunk where the column
/// kernel streams the gallery; with this cap the column form takes over
/// above about 200,000 records (211,969 at d = 128, 181,505 at d = 512).
pub const MAX_SPLIT_CHUNKS: usize = 32;

/// How a holder answers an alert's encrypted probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerForm {
    /// The alert's own one-chunk row probe: nothing to fetch.
    Row,
    /// A row probe in this many chunks, fetched from the issuer.
    Split(usize),
    /// The column-form probe, fetched from the issuer.
    Column,
}

impl AnswerForm {
    /// Chunks of the row probe this form uses (1 for `Row`); `None` for
    /// the column form.
    pub fn row_chunks(self) -> Option<usize> {
        match self {
            AnswerForm::Row => Some(1),
            AnswerForm::Split(n) => Some(n),
            AnswerForm::Column => None,
        }
    }
}

impl std::fmt::Display for AnswerForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AnswerForm::Column => write!(f, "column"),
            AnswerForm::Row => write!(f, "row"),
            AnswerForm::Split(n) => write!(f, "split {n}"),
        }
    }
}

/// Bytes moved to answer `records` records of dimension `dim` in `form`:
/// the probe fetched (none for the alert's own row form) and the answers.
pub fn bytes_moved(records: usize, dim: usize, form: AnswerForm) -> usize {
    match form {
        AnswerForm::Row => RowAnswer::encoded_len(records, dim),
        AnswerForm::Split(n) => RowProbe::encoded_len(n) + RowAnswer::encoded_len(records, stride(dim, n)),
        AnswerForm::Column => 64 + dim * POLY * 8 + records.div_ceil(POLY) * 2 * POLY * 4,
    }
}

/// The forms to choose from: the alert's row form, splits into 2, 4, 8,
/// ... chunks (up to `max_chunks`), and the column form.
pub fn answer_forms(dim: usize, max_chunks: usize) -> Vec<AnswerForm> {
    let splits = (1..).map(|i| 1usize << i).take_while(|n| *n <= dim.min(max_chunks));
    std::iter::once(AnswerForm::Row)
        .chain(splits.filter(|n| valid_chunks(dim, *n)).map(AnswerForm::Split))
        .chain(std::iter::once(AnswerForm::Column))
        .collect()
}

/// Of `forms`, the one that moves the fewest bytes for `records` records.
pub fn cheapest(records: usize, dim: usize, forms: &[AnswerForm]) -> AnswerForm {
    forms.iter().copied().min_by_key(|f| bytes_moved(records, dim, *f)).unwrap_or(AnswerForm::Row)
}

/// The form that moves the fewest bytes for `records` records (splits up
/// to `max_chunks` chunks).
pub fn answer_form(records: usize, dim: usize, max_chunks: usize) -> AnswerForm {
    cheapest(records, dim, &answer_forms(dim, max_chunks))
}

/// The largest gallery for which the alert's row form is the cheapest way
/// to answer (`answer_form` with splits up to `max_chunks`).
pub fn row_form_limit(dim: usize, max_chunks: usize) -> usize {
    (0..=POLY * 4).take_while(|r| answer_form(*r, dim, max_chunks) == AnswerForm::Row).last().unwrap_or(0)
}

/// Encrypted probe in row form: seeded GLWE ciphertexts from one seed, the
/// probe's chunks (one for an alert's probe) then an encryption of zero;
/// only the bodies travel.
#[derive(Clone, PartialEq, Eq)]
pub struct RowProbe {
    pub key_id: [u8; 16],
    pub params: u32,
    pub dim: usize,
    /// Seed of the masks (tfhe's AES-CTR CSPRNG); the responder regenerates them.
    pub seed: u128,
    /// `(chunks + 1) × N` body coefficients: the chunks', then the zero
    /// encryption's.
    pub bodies: Vec<u64>,
}

impl std::fmt::Debug for RowProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RowProbe(key {}, dim {})", hex16(&self.key_id), self.dim)
    }
}

/// Answer to a row probe: per group of ⌊N/s⌋ positions, the N mask
/// coefficients then the ⌊N/s⌋ result bodies, all switched to 32 bits; `s`
/// is the probe's chunk width (`stride`).
#[derive(Clone, PartialEq, Eq)]
pub struct RowAnswer {
    pub key_id: [u8; 16],
    pub params: u32,
    /// Result stride: the chunk width of the probe answered (its dimension
    /// for a one-chunk probe).
    pub stride: usize,
    /// Positions answered (records, then padding up to a whole group).
    pub count: usize,
    pub coeffs: Vec<u32>,
}

impl std::fmt::Debug for RowAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RowAnswer(key {}, stride {}, {} positions)", hex16(&self.key_id), self.stride, self.count)
    }
}

#[derive(Serialize, Deserialize)]
struct RowProbeWire {
    key_id: [u8; 16],
    params: u32,
    dim: u32,
    seed: [u8; 16],
    #[serde(with = "serde_bytes")]
    bodies: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct RowAnswerWire {
    key_id: [u8; 16],
    params: u32,
    stride: u32,
    count: u64,
    #[serde(with = "serde_bytes")]
    coeffs: Vec<u8>,
}

fn wire_err(e: vigil_protocol::WireError) -> EncryptedError {
    EncryptedError::Wire(e.to_string())
}

fn check_dim(dim: usize) -> Result<(), EncryptedError> {
    if dim == 0 || dim > MAX_DIM {
        return Err(EncryptedError::BadDimension(dim));
    }
    Ok(())
}

impl RowProbe {
    /// Encoded size of an alert's (one-chunk) probe: header, key id,
    /// params, dim, seed, then 2·N·6 bytes.
    pub const MAX_BYTES: usize = 64 + 2 * POLY * BODY_BYTES;

    /// Encoded size of a probe in `chunks` chunks.
    pub fn encoded_len(chunks: usize) -> usize {
        64 + (chunks + 1) * POLY * BODY_BYTES
    }

    /// Number of chunks (the probe has been checked).
    pub fn chunks(&self) -> usize {
        (self.bodies.len() / POLY).saturating_sub(1)
    }

    /// Chunk width: the result stride of its answers.
    pub fn stride(&self) -> usize {
        stride(self.dim, self.chunks().max(1))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let w = RowProbeWire {
            key_id: self.key_id,
            params: self.params,
            dim: self.dim as u32,
            seed: self.seed.to_le_bytes(),
            bodies: {
                let mut b = Vec::with_capacity(self.bodies.len() * BODY_BYTES);
                for c in &self.bodies {
                    b.extend_from_slice(&(c >> ROW_BODY_DROP).to_le_bytes()[..BODY_BYTES]);
                }
                b
            },
        };
        encode(Tag::RowProbe, &w, usize::MAX).expect("row probes encode")
    }

    /// Decodes an alert's probe (one chunk) and checks parameters,
    /// dimension and length.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EncryptedError> {
        let p = Self::from_bytes_split(bytes, 1)?;
        if p.chunks() != 1 {
            return Err(EncryptedError::Length { expected: 2 * POLY, found: p.bodies.len() });
        }
        Ok(p)
    }

    /// Decodes a probe of at most `max_chunks` chunks and checks it.
    pub fn from_bytes_split(bytes: &[u8], max_chunks: usize) -> Result<Self, EncryptedError> {
        let w: RowProbeWire =
            decode(Tag::RowProbe, bytes, Self::encoded_len(max_chunks.min(MAX_DIM))).map_err(wire_err)?;
        if !w.bodies.len().is_multiple_of(BODY_BYTES) {
            return Err(EncryptedError::Length { expected: 2 * POLY, found: w.bodies.len() / BODY_BYTES });
        }
        let p = Self {
            key_id: w.key_id,
            params: w.params,
            dim: w.dim as usize,
            seed: u128::from_le_bytes(w.seed),
            bodies: w.bodies.chunks_exact(BODY_BYTES).map(|c| read_le(c) << ROW_BODY_DROP).collect(),
        };
        p.check()?;
        Ok(p)
    }

    pub fn check(&self) -> Result<(), EncryptedError> {
        if self.params != ROW_PARAMS {
            return Err(EncryptedError::Params { found: self.params, expected: ROW_PARAMS });
        }
        check_dim(self.dim)?;
        let chunks = self.bodies.len() / POLY;
        if !self.bodies.len().is_multiple_of(POLY) || chunks < 2 {
            let expected = (chunks.max(2)) * POLY;
            return Err(EncryptedError::Length { expected, found: self.bodies.len() });
        }
        if !valid_chunks(self.dim, chunks - 1) {
            return Err(EncryptedError::Chunks { dim: self.dim, chunks: chunks - 1 });
        }
        Ok(())
    }
}

impl RowAnswer {
    /// Coefficients per group for result stride `stride`.
    pub fn group_len(stride: usize) -> usize {
        POLY + per_group(stride)
    }

    pub fn groups(count: usize, stride: usize) -> usize {
        count.div_ceil(per_group(stride))
    }

    /// Encoded bytes per group: N masks of 3 bytes, ⌊N/s⌋ bodies of 4.
    pub fn group_bytes(stride: usize) -> usize {
        POLY * MASK_BYTES + per_group(stride) * 4
    }

    /// Encoded size of an answer for `records` records at result stride `stride`.
    pub fn encoded_len(records: usize, stride: usize) -> usize {
        48 + Self::groups(records, stride) * Self::group_bytes(stride)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let w = RowAnswerWire {
            key_id: self.key_id,
            params: self.params,
            stride: self.stride as u32,
            count: self.count as u64,
            coeffs: {
                let mut b = Vec::with_capacity(Self::encoded_len(self.count, self.stride));
                for g in self.coeffs.chunks(Self::group_len(self.stride)) {
                    let (mask, bodies) = g.split_at(POLY.min(g.len()));
                    for c in mask {
                        b.extend_from_slice(&(c >> (ROW_MASK_DROP - 32)).to_le_bytes()[..MASK_BYTES]);
                    }
                    for c in bodies {
                        b.extend_from_slice(&c.to_le_bytes());
                    }
                }
                b
            },
        };
        encode(Tag::RowAnswer, &w, usize::MAX).expect("answers encode")
    }

    /// Decodes under `limit` and checks parameters, stride and length.
    pub fn from_bytes(bytes: &[u8], limit: usize) -> Result<Self, EncryptedError> {
        let w: RowAnswerWire = decode(Tag::RowAnswer, bytes, limit).map_err(wire_err)?;
        let stride = w.stride as usize;
        check_dim(stride)?;
        let count = usize::try_from(w.count).map_err(|_| EncryptedError::Wire("count out of range".into()))?;
        let groups = Self::groups(count, stride);
        if groups.checked_mul(Self::group_bytes(stride)) != Some(w.coeffs.len()) {
            let expected = groups.saturating_mul(Self::group_len(stride));
            return Err(EncryptedError::Length { expected, found: w.coeffs.len() / 4 });
        }
        let mut coeffs = Vec::with_capacity(groups * Self::group_len(stride));
        for g in w.coeffs.chunks_exact(Self::group_bytes(stride)) {
            let (mask, bodies) = g.split_at(POLY * MASK_BYTES);
            coeffs.extend(mask.chunks_exact(MASK_BYTES).map(|c| (read_le(c) as u32) << (ROW_MASK_DROP - 32)));
            coeffs.extend(bodies.chunks_exact(4).map(|c| read_le(c) as u32));
        }
        let a = Self { key_id: w.key_id, params: w.params, stride, count, coeffs };
        a.check()?;
        Ok(a)
    }

    pub fn check(&self) -> Result<(), EncryptedError> {
        if self.params != ROW_PARAMS {
            return Err(EncryptedError::Params { found: self.params, expected: ROW_PARAMS });
        }
        check_dim(self.stride)?;
        let expected = Self::groups(self.count, self.stride)
            .checked_mul(Self::group_len(self.stride))
            .ok_or(EncryptedError::Length { expected: usize::MAX, found: self.coeffs.len() })?;
        if self.coeffs.len() != expected || !self.count.is_multiple_of(per_group(self.stride)) {
            return Err(EncryptedError::Length { expected, found: self.coeffs.len() });
        }
        Ok(())
    }
}

impl ProberKey {
    /// Encrypts a quantised probe in row form: `Q(X) = Σ Δ·q_i·X^i`, then an
    /// encryption of zero the responder re-randomises with. Fresh seed.
    pub fn encrypt_row(&self, probe: &[i8]) -> Result<RowProbe, EncryptedError> {
        self.encrypt_row_split(probe, 1)
    }

    /// Encrypts a probe in `chunks` chunks of `s = ⌈d/chunks⌉` coefficients,
    /// chunk j as `Σ_i Δ·q_{js+i}·X^i`, then an encryption of zero.
    pub fn encrypt_row_split(&self, probe: &[i8], chunks: usize) -> Result<RowProbe, EncryptedError> {
        let d = probe.len();
        check_dim(d)?;
        if !valid_chunks(d, chunks) {
            return Err(EncryptedError::Chunks { dim: d, chunks });
        }
        let s = stride(d, chunks);
        let mut pt = vec![0u64; (chunks + 1) * POLY];
        for (i, q) in probe.iter().enumerate() {
            pt[(i / s) * POLY + i % s] = ((*q as i64) << DELTA_LOG) as u64;
        }
        let (seed, bodies) = self.encrypt_seeded(pt, false);
        // Bodies travel rounded to 48 bits (`ROW_BODY_DROP`); the probe holds
        // them so, and encodes and decodes to the same value.
        let half = 1u64 << (ROW_BODY_DROP - 1);
        let bodies = bodies.into_iter().map(|b| (b.wrapping_add(half) >> ROW_BODY_DROP) << ROW_BODY_DROP).collect();
        Ok(RowProbe { key_id: self.id, params: ROW_PARAMS, dim: d, seed, bodies })
    }

    /// Decrypts a row answer to the raw values `Δ·r·(s − T) + error`, one
    /// per position (≥ 0: match).
    pub fn decrypt_row_raw(&self, answer: &RowAnswer) -> Result<Vec<i64>, EncryptedError> {
        if answer.key_id != self.id {
            return Err(EncryptedError::WrongKey { expected: hex16(&self.id), found: hex16(&answer.key_id) });
        }
        answer.check()?;
        let (d, k) = (answer.stride, per_group(answer.stride));
        let fft = super::fourier::fft();
        let fft = fft.as_view();
        // S in the Fourier domain once; then per group one product A·S
        // (negacyclic, so wrapped terms change sign) instead of a length-N
        // dot product per result.
        let key = FourierKey::new(fft, self.key.as_ref());
        let mut out = vec![0i64; answer.count];
        out.par_chunks_mut(k).zip(answer.coeffs.par_chunks_exact(RowAnswer::group_len(d))).for_each_init(
            || KeyProduct::new(fft),
            |kp, (out, group)| {
                let (mask, bodies) = group.split_at(POLY);
                let product = kp.mask_times_key(fft, mask, &key);
                for (m, o) in out.iter_mut().enumerate() {
                    *o = ((bodies[m] as u64) << 32).wrapping_sub(product[m * d + d - 1]) as i64;
                }
            },
        );
        Ok(out)
    }

    /// Decrypts a row answer to one decision per position.
    pub fn decrypt_row(&self, answer: &RowAnswer) -> Result<Vec<bool>, EncryptedError> {
        Ok(self.decrypt_row_raw(answer)?.into_iter().map(|v| v >= 0).collect())
    }

    /// Decrypts the band answers of `respond_row_bands` to, per position,
    /// the highest band reached (0 the first threshold), or `None`.
    pub fn decrypt_row_bands(&self, answers: &[RowAnswer]) -> Result<Vec<Option<u8>>, EncryptedError> {
        let mut best: Vec<Option<u8>> = Vec::new();
        for (b, a) in answers.iter().enumerate() {
            let bits = self.decrypt_row(a)?;
            if b == 0 {
                best = vec![None; bits.len()];
            } else if bits.len() != best.len() {
                return Err(EncryptedError::Length { expected: best.len(), found: bits.len() });
            }
            for (o, bit) in best.iter_mut().zip(bits) {
                if bit {
                    *o = Some(b as u8);
                }
            }
        }
        Ok(best)
    }
}

/// The order of a row answer over `records` records with shuffle `seed`:
/// position `p` is gallery row `order[p]` or `ROW_PADDING`. A fully random
/// permutation: row answers serve small galleries, where it costs nothing.
pub fn row_order(records: usize, stride: usize, seed: [u8; 32]) -> Vec<u32> {
    let mut rng = rand_chacha::ChaCha20Rng::from_seed(seed);
    let mut order: Vec<u32> = (0..records as u32).collect();
    rand::seq::SliceRandom::shuffle(order.as_mut_slice(), &mut rng);
    order.resize(RowAnswer::groups(records, stride) * per_group(stride), ROW_PADDING);
    order
}

/// Per group, the seed of its masks and noise: the shuffle uses stream 0
/// of the answer's seed, these stream 1.
fn group_seeds(seed: [u8; 32], groups: usize) -> Vec<[u8; 32]> {
    let mut rng = rand_chacha::ChaCha20Rng::from_seed(seed);
    rng.set_stream(1);
    (0..groups).map(|_| rng.gen()).collect()
}

/// A group's k masks, and its generator positioned for the noise.
fn group_masks(seed: [u8; 32], k: usize) -> (Vec<i64>, rand_chacha::ChaCha12Rng) {
    let mut grng = rand_chacha::ChaCha12Rng::from_seed(seed);
    let masks = (0..k).map(|_| (1i64 << MASK_LOG) + grng.gen_range(0..1i64 << MASK_LOG)).collect();
    (masks, grng)
}

/// The mask of every position of a row answer (tests only: measures the
/// decryption error exactly, which flooding hides from the prober).
#[cfg(test)]
pub(crate) fn row_masks(records: usize, stride: usize, seed: [u8; 32]) -> Vec<i64> {
    let k = per_group(stride);
    group_seeds(seed, RowAnswer::groups(records, stride)).into_iter().flat_map(|g| group_masks(g, k).0).collect()
}

/// Answers a row probe (one chunk or split) against `gallery` for
/// `threshold` (an inner product of quantised vectors; one for all rows or
/// one per row, `Cut`), with a fresh
/// shuffle, masks and re-randomisation drawn from `seed` (draw it fresh for
/// every answer). Returns the answer and its order
/// (`row_order(gallery.len(), probe.stride(), seed)`).
pub fn respond_row<'a>(
    probe: &RowProbe,
    gallery: &Gallery,
    threshold: impl Into<Cut<'a>>,
    seed: [u8; 32],
) -> Result<(RowAnswer, Vec<u32>), EncryptedError> {
    probe.check()?;
    if probe.dim != gallery.dim() {
        return Err(EncryptedError::Dimension { probe: probe.dim, gallery: gallery.dim() });
    }
    let order = row_order(gallery.len(), probe.stride(), seed);
    let answer = respond_row_with(probe, gallery, threshold.into(), &order, seed);
    Ok((answer, order))
}

/// Answers a row probe once per threshold of `thresholds` (rising: the
/// confidence bands possible, probable, strong), all in one shuffle
/// (`row_order(gallery.len(), probe.stride(), seed)`) so that the prober
/// learns per position the highest band reached, each band with masks and
/// re-randomisation of its own: two masked differences under one mask
/// would give away the score. Costs one answer per band.
pub fn respond_row_bands(
    probe: &RowProbe,
    gallery: &Gallery,
    thresholds: &Thresholds,
    seed: [u8; 32],
) -> Result<(Vec<RowAnswer>, Vec<u32>), EncryptedError> {
    probe.check()?;
    if probe.dim != gallery.dim() {
        return Err(EncryptedError::Dimension { probe: probe.dim, gallery: gallery.dim() });
    }
    let order = row_order(gallery.len(), probe.stride(), seed);
    let answers = (0..thresholds.bands())
        .map(|b| {
            let masks: [u8; 32] = if b == 0 {
                seed
            } else {
                use sha2::Digest;
                sha2::Sha256::new_with_prefix(b"vigil/band-masks")
                    .chain_update(seed)
                    .chain_update([b as u8])
                    .finalize()
                    .into()
            };
            respond_row_with(probe, gallery, thresholds.band(b), &order, masks)
        })
        .collect();
    Ok((answers, order))
}

/// The row answer over `order` (from the answer's seed) with masks and
/// noise from stream 1 of `mask_seed`; the probe is checked and of the
/// gallery's dimension.
fn respond_row_with(
    probe: &RowProbe,
    gallery: &Gallery,
    threshold: Cut<'_>,
    order: &[u32],
    mask_seed: [u8; 32],
) -> RowAnswer {
    let (d, chunks, s) = (probe.dim, probe.chunks(), probe.stride());
    let k = per_group(s);
    let groups = order.len() / k;
    let group_seeds = group_seeds(mask_seed, groups);

    let fft = super::fourier::fft();
    let fft = fft.as_view();
    let list = super::kernel::decompress_from(probe.seed, 0, &probe.bodies);
    // Fourier forms of (A_j, B_j) for every chunk j, then of (A_z, B_z),
    // the zero encryption.
    let mut scratch = Scratch::new(fft);
    let mut fourier = vec![c64::default(); 2 * (chunks + 1) * HALF];
    for (out, poly) in fourier.chunks_exact_mut(HALF).zip(list.chunks_exact(POLY)) {
        fft.forward_as_torus(
            FourierPolynomial { data: out },
            Polynomial::from_container(poly),
            scratch.buffers.stack(),
        );
    }
    let (fprobe, fzero) = fourier.split_at(2 * chunks * HALF);
    let (fza, fzb) = fzero.split_at(HALF);

    let mut coeffs = vec![0u32; groups * RowAnswer::group_len(s)];
    coeffs.par_chunks_mut(RowAnswer::group_len(s)).enumerate().for_each_init(
        || Scratch::new(fft),
        |sc, (grp, out)| {
            let (masks, mut grng) = group_masks(group_seeds[grp], k);
            sc.acc_a.fill(c64::default());
            sc.acc_b.fill(c64::default());
            for (j, fj) in fprobe.chunks_exact(2 * HALF).enumerate() {
                // G_j: slot m holds chunk j of r_m·g_m reversed, ending at
                // coefficient m·s + s − 1.
                sc.poly.fill(0);
                for (m, r) in masks.iter().enumerate() {
                    let row = order[grp * k + m];
                    if row == ROW_PADDING {
                        continue;
                    }
                    let g = gallery.row(row as usize);
                    for (i, g) in g[j * s..((j + 1) * s).min(d)].iter().enumerate() {
                        sc.poly[m * s + s - 1 - i] = (r * *g as i64) as u64;
                    }
                }
                fft.forward_as_integer(
                    FourierPolynomial { data: sc.fg.as_mut_slice() },
                    Polynomial::from_container(sc.poly.as_slice()),
                    sc.buffers.stack(),
                );
                let (fa, fb) = fj.split_at(HALF);
                mul_acc(&mut sc.acc_a, &sc.fg, fa);
                mul_acc(&mut sc.acc_b, &sc.fg, fb);
            }
            // Re-randomisation: + Z·u for a fresh binary u.
            let mut bits = [0u64; POLY / 64];
            grng.fill(&mut bits[..]);
            for (i, u) in sc.u.iter_mut().enumerate() {
                *u = (bits[i / 64] >> (i % 64)) & 1;
            }
            let stack = sc.buffers.stack();
            fft.forward_as_integer(
                FourierPolynomial { data: sc.fu.as_mut_slice() },
                Polynomial::from_container(sc.u.as_slice()),
                stack,
            );
            mul_acc(&mut sc.acc_a, &sc.fu, fza);
            mul_acc(&mut sc.acc_b, &sc.fu, fzb);
            fft.backward_as_torus(
                Polynomial::from_container(sc.res_a.as_mut_slice()),
                FourierPolynomial { data: sc.acc_a.as_slice() },
                stack,
            );
            fft.backward_as_torus(
                Polynomial::from_container(sc.res_b.as_mut_slice()),
                FourierPolynomial { data: sc.acc_b.as_slice() },
                stack,
            );
            // Fresh noise, drawn in bulk: on the mask uniform on
            // [−2^NOISE_LOG, 2^NOISE_LOG) (re-randomisation), on the
            // results the flooding noise (`FLOOD_LOG`).
            let noise = &mut sc.noise[..POLY + k];
            grng.fill(noise);
            let e = |x: u32| ((x >> (31 - NOISE_LOG)) as i64 - (1i64 << NOISE_LOG)) as u64;
            let (e1, e2) = noise.split_at(POLY);
            let (om, ob) = out.split_at_mut(POLY);
            for ((o, a), x) in om.iter_mut().zip(&sc.res_a).zip(e1) {
                *o = switch_mask(a.wrapping_add(e(*x)));
            }
            for (m, ((o, r), x)) in ob.iter_mut().zip(&masks).zip(e2).enumerate() {
                let t = ((r * threshold.at(order[grp * k + m]) as i64) << DELTA_LOG) as u64;
                *o = switch(sc.res_b[m * s + s - 1].wrapping_add(flood(*x)).wrapping_sub(t));
            }
        },
    );
    RowAnswer { key_id: probe.key_id, params: ROW_PARAMS, stride: s, count: order.len(), coeffs }
}

/// Modulus switch to 2^32: the rounded top half.
fn switch(x: u64) -> u32 {
    (x.wrapping_add(1 << 31) >> 32) as u32
}

/// Modulus switch of a mask coefficient to 2^24 (`ROW_MASK_DROP`), kept as
/// the top 24 bits of a 32-bit value.
fn switch_mask(x: u64) -> u32 {
    ((x.wrapping_add(1 << (ROW_MASK_DROP - 1)) >> ROW_MASK_DROP) as u32) << (ROW_MASK_DROP - 32)
}

/// Bytes per row-probe body on the wire (64 − `ROW_BODY_DROP` bits).
const BODY_BYTES: usize = (64 - ROW_BODY_DROP as usize) / 8;
/// Bytes per answer mask coefficient on the wire (64 − `ROW_MASK_DROP` bits).
const MASK_BYTES: usize = (64 - ROW_MASK_DROP as usize) / 8;

/// A little-endian unsigned integer of up to 8 bytes.
fn read_le(b: &[u8]) -> u64 {
    b.iter().rev().fold(0u64, |acc, x| (acc << 8) | u64::from(*x))
}

struct Scratch {
    buffers: ComputationBuffers,
    poly: Vec<u64>,
    u: Vec<u64>,
    fg: Vec<c64>,
    fu: Vec<c64>,
    acc_a: Vec<c64>,
    acc_b: Vec<c64>,
    res_a: Vec<u64>,
    res_b: Vec<u64>,
    noise: Vec<u32>,
}

impl Scratch {
    fn new(fft: FftView<'_>) -> Self {
        let mut buffers = ComputationBuffers::new();
        let req = fft.forward_scratch().or(fft.backward_scratch());
        buffers.resize(req.unaligned_bytes_required());
        Self {
            buffers,
            poly: vec![0; POLY],
            u: vec![0; POLY],
            fg: vec![c64::default(); HALF],
            fu: vec![c64::default(); HALF],
            acc_a: vec![c64::default(); HALF],
            acc_b: vec![c64::default(); HALF],
            res_a: vec![0; POLY],
            res_b: vec![0; POLY],
            noise: vec![0; 2 * POLY],
        }
    }
}

//! Row packing: the gossip-sized encrypted probe that alerts carry, and the
//! answers holders send back to the issuer. The probe is one GLWE holding
//! the whole probe `Q(X) = Σ Δ·q_i·X^i` plus one GLWE encryption of zero
//! (32 KiB together, whatever the dimension); the responder multiplies it by
//! a plaintext polynomial packing ⌊N/d⌋ masked gallery vectors, so that
//! coefficient `m·d + d − 1` of the product is `Δ·r_m·⟨q, g_m⟩`.
//!
//! A product's mask `A·G` would give `G` away (the prober knows `A`), and its
//! other coefficients are inner products with shifted vectors. So the
//! responder re-randomises every product with the prober's encryption of
//! zero, `Z·u + (e1, e2)` for a fresh binary `u` and fresh noise (RLWE
//! public-key style: the mask becomes pseudorandom), and sends only the
//! mask and the ⌊N/d⌋ body coefficients that hold results. Answers cost
//! `4·(N + ⌊N/d⌋)` bytes per ⌊N/d⌋ records: cheap for small galleries, while
//! column packing (`EncryptedProbe`) wins above a few thousand records.

use super::{hex16, EncryptedError, ProberKey, DELTA_LOG, MASK_LOG, MAX_DIM, NOISE_LOG, PARAMS_V1, POLY};
use crate::gallery::Gallery;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tfhe::core_crypto::commons::math::random::{CompressionSeed, Seed};
use tfhe::core_crypto::fft_impl::fft64::math::polynomial::FourierPolynomial;
use tfhe::core_crypto::prelude::*;
use tfhe_fft::c64;
use vigil_protocol::{decode, encode, Tag};

const HALF: usize = POLY / 2;
/// `order` entry of a padding position (a slot after the last record).
pub const ROW_PADDING: u32 = u32::MAX;

/// Records one product answers: ⌊N/d⌋.
pub fn per_group(dim: usize) -> usize {
    POLY / dim
}

/// Bytes moved for `records` records of dimension `dim`: row form (a
/// 32 KiB probe, answers of 4·(N + ⌊N/d⌋) bytes per ⌊N/d⌋ records) and
/// column form (a 16 KiB-per-dimension probe, 16 KiB answers per N records).
pub fn bytes_moved(records: usize, dim: usize) -> (usize, usize) {
    let row = RowProbe::MAX_BYTES + RowAnswer::encoded_len(records, dim);
    let column = 64 + dim * POLY * 8 + records.div_ceil(POLY) * 2 * POLY * 4;
    (row, column)
}

/// The largest gallery for which the row form moves fewer bytes than the
/// column form: above it, a holder should fetch the column-form probe.
pub fn row_form_limit(dim: usize) -> usize {
    let (mut lo, mut hi) = (0usize, 1 << 24);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        let (row, column) = bytes_moved(mid, dim);
        if row <= column {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo
}

/// Encrypted probe in row form: two seeded GLWE ciphertexts from one seed,
/// the probe then an encryption of zero; only the bodies travel.
#[derive(Clone, PartialEq, Eq)]
pub struct RowProbe {
    pub key_id: [u8; 16],
    pub params: u32,
    pub dim: usize,
    /// Seed of the masks (tfhe's AES-CTR CSPRNG); the responder regenerates them.
    pub seed: u128,
    /// `2 × N` body coefficients: the probe's, then the zero encryption's.
    pub bodies: Vec<u64>,
}

impl std::fmt::Debug for RowProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RowProbe(key {}, dim {})", hex16(&self.key_id), self.dim)
    }
}

/// Answer to a row probe: per group of ⌊N/d⌋ positions, the N mask
/// coefficients then the ⌊N/d⌋ result bodies, all switched to 32 bits.
#[derive(Clone, PartialEq, Eq)]
pub struct RowAnswer {
    pub key_id: [u8; 16],
    pub params: u32,
    pub dim: usize,
    /// Positions answered (records, then padding up to a whole group).
    pub count: usize,
    pub coeffs: Vec<u32>,
}

impl std::fmt::Debug for RowAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RowAnswer(key {}, dim {}, {} positions)", hex16(&self.key_id), self.dim, self.count)
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
    dim: u32,
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
    /// Encoded size: header, key id, params, dim, seed, then 2·N·8 bytes.
    pub const MAX_BYTES: usize = 64 + 2 * POLY * 8;

    pub fn to_bytes(&self) -> Vec<u8> {
        let w = RowProbeWire {
            key_id: self.key_id,
            params: self.params,
            dim: self.dim as u32,
            seed: self.seed.to_le_bytes(),
            bodies: self.bodies.iter().flat_map(|c| c.to_le_bytes()).collect(),
        };
        encode(Tag::RowProbe, &w, Self::MAX_BYTES).expect("row probe within its own limit")
    }

    /// Decodes and checks parameters, dimension and length.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EncryptedError> {
        let w: RowProbeWire = decode(Tag::RowProbe, bytes, Self::MAX_BYTES).map_err(wire_err)?;
        if !w.bodies.len().is_multiple_of(8) {
            return Err(EncryptedError::Length { expected: 2 * POLY, found: w.bodies.len() / 8 });
        }
        let p = Self {
            key_id: w.key_id,
            params: w.params,
            dim: w.dim as usize,
            seed: u128::from_le_bytes(w.seed),
            bodies: w.bodies.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect(),
        };
        p.check()?;
        Ok(p)
    }

    pub fn check(&self) -> Result<(), EncryptedError> {
        if self.params != PARAMS_V1 {
            return Err(EncryptedError::Params { found: self.params });
        }
        check_dim(self.dim)?;
        if self.bodies.len() != 2 * POLY {
            return Err(EncryptedError::Length { expected: 2 * POLY, found: self.bodies.len() });
        }
        Ok(())
    }
}

impl RowAnswer {
    /// Coefficients per group for dimension `dim`.
    pub fn group_len(dim: usize) -> usize {
        POLY + per_group(dim)
    }

    pub fn groups(count: usize, dim: usize) -> usize {
        count.div_ceil(per_group(dim))
    }

    /// Encoded size of an answer for `records` records of dimension `dim`.
    pub fn encoded_len(records: usize, dim: usize) -> usize {
        48 + Self::groups(records, dim) * Self::group_len(dim) * 4
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let w = RowAnswerWire {
            key_id: self.key_id,
            params: self.params,
            dim: self.dim as u32,
            count: self.count as u64,
            coeffs: self.coeffs.iter().flat_map(|c| c.to_le_bytes()).collect(),
        };
        encode(Tag::RowAnswer, &w, usize::MAX).expect("answers encode")
    }

    /// Decodes under `limit` and checks parameters, dimension and length.
    pub fn from_bytes(bytes: &[u8], limit: usize) -> Result<Self, EncryptedError> {
        let w: RowAnswerWire = decode(Tag::RowAnswer, bytes, limit).map_err(wire_err)?;
        if !w.coeffs.len().is_multiple_of(4) {
            return Err(EncryptedError::Length { expected: w.coeffs.len().div_ceil(4), found: w.coeffs.len() / 4 });
        }
        let a = Self {
            key_id: w.key_id,
            params: w.params,
            dim: w.dim as usize,
            count: usize::try_from(w.count).map_err(|_| EncryptedError::Wire("count out of range".into()))?,
            coeffs: w.coeffs.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes"))).collect(),
        };
        a.check()?;
        Ok(a)
    }

    pub fn check(&self) -> Result<(), EncryptedError> {
        if self.params != PARAMS_V1 {
            return Err(EncryptedError::Params { found: self.params });
        }
        check_dim(self.dim)?;
        let expected = Self::groups(self.count, self.dim)
            .checked_mul(Self::group_len(self.dim))
            .ok_or(EncryptedError::Length { expected: usize::MAX, found: self.coeffs.len() })?;
        if self.coeffs.len() != expected || !self.count.is_multiple_of(per_group(self.dim)) {
            return Err(EncryptedError::Length { expected, found: self.coeffs.len() });
        }
        Ok(())
    }
}

impl ProberKey {
    /// Encrypts a quantised probe in row form: `Q(X) = Σ Δ·q_i·X^i`, then an
    /// encryption of zero the responder re-randomises with. Fresh seed.
    pub fn encrypt_row(&self, probe: &[i8]) -> Result<RowProbe, EncryptedError> {
        let d = probe.len();
        check_dim(d)?;
        let mut pt = vec![0u64; 2 * POLY];
        for (i, q) in probe.iter().enumerate() {
            pt[i] = ((*q as i64) << DELTA_LOG) as u64;
        }
        let (seed, bodies) = self.encrypt_seeded(pt);
        Ok(RowProbe { key_id: self.id, params: PARAMS_V1, dim: d, seed, bodies })
    }

    /// Decrypts a row answer to the raw values `Δ·r·(s − T) + error`, one
    /// per position (≥ 0: match).
    pub fn decrypt_row_raw(&self, answer: &RowAnswer) -> Result<Vec<i64>, EncryptedError> {
        if answer.key_id != self.id {
            return Err(EncryptedError::WrongKey { expected: hex16(&self.id), found: hex16(&answer.key_id) });
        }
        answer.check()?;
        let (d, k) = (answer.dim, per_group(answer.dim));
        let key: &[u64] = self.key.as_ref();
        let mut out = vec![0i64; answer.count];
        out.par_chunks_mut(k).zip(answer.coeffs.par_chunks_exact(RowAnswer::group_len(d))).for_each(|(out, group)| {
            let (mask, bodies) = group.split_at(POLY);
            for (m, o) in out.iter_mut().enumerate() {
                let t = m * d + d - 1;
                // (A·s)_t in Z[X]/(X^N + 1): wrapped terms change sign.
                let mut dot = 0u64;
                for (l, a) in mask.iter().enumerate() {
                    let a = (*a as u64) << 32;
                    if l <= t {
                        dot = dot.wrapping_add(a.wrapping_mul(key[t - l]));
                    } else {
                        dot = dot.wrapping_sub(a.wrapping_mul(key[t + POLY - l]));
                    }
                }
                *o = ((bodies[m] as u64) << 32).wrapping_sub(dot) as i64;
            }
        });
        Ok(out)
    }

    /// Decrypts a row answer to one decision per position.
    pub fn decrypt_row(&self, answer: &RowAnswer) -> Result<Vec<bool>, EncryptedError> {
        Ok(self.decrypt_row_raw(answer)?.into_iter().map(|v| v >= 0).collect())
    }
}

/// The order of a row answer over `records` records with shuffle `seed`:
/// position `p` is gallery row `order[p]` or `ROW_PADDING`. A fully random
/// permutation: row answers serve small galleries, where it costs nothing.
pub fn row_order(records: usize, dim: usize, seed: [u8; 32]) -> Vec<u32> {
    let mut rng = rand_chacha::ChaCha20Rng::from_seed(seed);
    let mut order: Vec<u32> = (0..records as u32).collect();
    rand::seq::SliceRandom::shuffle(order.as_mut_slice(), &mut rng);
    order.resize(RowAnswer::groups(records, dim) * per_group(dim), ROW_PADDING);
    order
}

/// Answers a row probe against `gallery` for `threshold` (an inner product
/// of quantised vectors), with a fresh shuffle, masks and re-randomisation
/// drawn from `seed` (draw it fresh for every answer). Returns the answer
/// and its order (`row_order(gallery.len(), dim, seed)`).
pub fn respond_row(
    probe: &RowProbe,
    gallery: &Gallery,
    threshold: i32,
    seed: [u8; 32],
) -> Result<(RowAnswer, Vec<u32>), EncryptedError> {
    probe.check()?;
    let d = probe.dim;
    if d != gallery.dim() {
        return Err(EncryptedError::Dimension { probe: d, gallery: gallery.dim() });
    }
    let k = per_group(d);
    let order = row_order(gallery.len(), d, seed);
    let groups = order.len() / k;
    // The shuffle uses stream 0 of the seed; masks and noise stream 1.
    let mut rng = rand_chacha::ChaCha20Rng::from_seed(seed);
    rng.set_stream(1);
    let group_seeds: Vec<[u8; 32]> = (0..groups).map(|_| rng.gen()).collect();

    let fft = Fft::new(PolynomialSize(POLY));
    let fft = fft.as_view();
    let list = SeededGlweCiphertextList::from_container(
        probe.bodies.as_slice(),
        GlweSize(2),
        PolynomialSize(POLY),
        CompressionSeed::from(Seed(probe.seed)),
        CiphertextModulus::new_native(),
    )
    .decompress_into_glwe_ciphertext_list();
    // Fourier forms of A, B (the probe) and A_z, B_z (the zero encryption).
    let mut scratch = Scratch::new(fft);
    let mut fourier = vec![c64::default(); 4 * HALF];
    for (out, poly) in fourier.chunks_exact_mut(HALF).zip(list.as_ref().chunks_exact(POLY)) {
        fft.forward_as_torus(
            FourierPolynomial { data: out },
            Polynomial::from_container(poly),
            scratch.buffers.stack(),
        );
    }
    let (fa, rest) = fourier.split_at(HALF);
    let (fb, rest) = rest.split_at(HALF);
    let (fza, fzb) = rest.split_at(HALF);

    let mut coeffs = vec![0u32; groups * RowAnswer::group_len(d)];
    coeffs.par_chunks_mut(RowAnswer::group_len(d)).enumerate().for_each_init(
        || Scratch::new(fft),
        |s, (grp, out)| {
            let mut grng = rand_chacha::ChaCha20Rng::from_seed(group_seeds[grp]);
            let masks: Vec<i64> = (0..k).map(|_| (1i64 << MASK_LOG) + grng.gen_range(0..1i64 << MASK_LOG)).collect();
            // G: slot m holds r_m·g_m reversed, ending at coefficient m·d + d − 1.
            s.poly.fill(0);
            for (m, r) in masks.iter().enumerate() {
                let row = order[grp * k + m];
                if row == ROW_PADDING {
                    continue;
                }
                for (i, g) in gallery.row(row as usize).iter().enumerate() {
                    s.poly[m * d + d - 1 - i] = (r * *g as i64) as u64;
                }
            }
            for u in s.u.iter_mut() {
                *u = grng.gen_range(0..2u64);
            }
            let stack = s.buffers.stack();
            fft.forward_as_integer(
                FourierPolynomial { data: s.fg.as_mut_slice() },
                Polynomial::from_container(s.poly.as_slice()),
                stack,
            );
            fft.forward_as_integer(
                FourierPolynomial { data: s.fu.as_mut_slice() },
                Polynomial::from_container(s.u.as_slice()),
                stack,
            );
            mul_add(&mut s.acc_a, &s.fg, fa, &s.fu, fza);
            mul_add(&mut s.acc_b, &s.fg, fb, &s.fu, fzb);
            fft.backward_as_torus(
                Polynomial::from_container(s.res_a.as_mut_slice()),
                FourierPolynomial { data: s.acc_a.as_slice() },
                stack,
            );
            fft.backward_as_torus(
                Polynomial::from_container(s.res_b.as_mut_slice()),
                FourierPolynomial { data: s.acc_b.as_slice() },
                stack,
            );
            let bound = 1i64 << NOISE_LOG;
            let (om, ob) = out.split_at_mut(POLY);
            for (o, a) in om.iter_mut().zip(&s.res_a) {
                let e1 = grng.gen_range(-bound..=bound) as u64;
                *o = switch(a.wrapping_add(e1));
            }
            for (m, (o, r)) in ob.iter_mut().zip(&masks).enumerate() {
                let e2 = grng.gen_range(-bound..=bound) as u64;
                let t = ((r * threshold as i64) << DELTA_LOG) as u64;
                *o = switch(s.res_b[m * d + d - 1].wrapping_add(e2).wrapping_sub(t));
            }
        },
    );
    Ok((RowAnswer { key_id: probe.key_id, params: PARAMS_V1, dim: d, count: order.len(), coeffs }, order))
}

/// Modulus switch to 2^32: the rounded top half.
fn switch(x: u64) -> u32 {
    (x.wrapping_add(1 << 31) >> 32) as u32
}

/// acc = x·y + u·z, element-wise complex.
fn mul_add(acc: &mut [c64], x: &[c64], y: &[c64], u: &[c64], z: &[c64]) {
    pulp::Arch::new().dispatch(|| {
        for ((((a, x), y), u), z) in acc.iter_mut().zip(x).zip(y).zip(u).zip(z) {
            a.re = x.re * y.re - x.im * y.im + u.re * z.re - u.im * z.im;
            a.im = x.re * y.im + x.im * y.re + u.re * z.im + u.im * z.re;
        }
    })
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
        }
    }
}

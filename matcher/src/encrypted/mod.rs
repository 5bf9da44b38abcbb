//! Encrypted matching with TFHE-rs `core_crypto` (GLWE, k=1, N=2048),
//! column packing with fresh masks per query. The prober encrypts its probe
//! under its own GLWE key; a responder computes on the ciphertext against its
//! plaintext gallery and returns one 32-bit GLWE per 2048 records; only the
//! prober can decrypt, and learns per position the sign of
//! `r_m·(⟨q, g_m⟩ − T_m)` for a fresh random mask `r_m` and a fresh
//! shuffle; `T_m` is the threshold (one for all records, or the record's
//! own by the fingers it shares with the probe, `cut`).
//!
//! Parameters (identifier `PARAMS_V1`), with the error budget worked out in
//! `error_sd`: plaintext scale Δ = 2^32, masks r in [2^14, 2^15), GLWE
//! noise TUniform(2^17) as tfhe's 2^-128 parameter sets use at N=2048,
//! answers switched to 32-bit coefficients. Δ·r_max·2^15 = 2^62 keeps every
//! masked score of unit vectors at scale 127 inside the signed 64-bit torus.
//! Both error terms (GLWE noise and the f64 FFT's rounding) grow with r, so
//! the largest Δ and the smallest masks that still hide |s − T| to within a
//! factor of two give the narrowest band.

mod any;
pub mod cut;
mod fourier;
mod kernel;
pub mod parts;
mod row;
mod wire;

pub use any::{respond_row_any, row_bands_to_bytes, AnyAnswer, AnyProbe, Decisions, MAX_BANDS};
pub use cut::{Cut, Thresholds};
pub use kernel::{answer_order, respond, Gallery, RunLayout, PADDING, RUN, T_DECOY};
pub use parts::{present_parts, shared_parts};
pub use row::{
    answer_form, answer_forms, bytes_moved, cheapest, per_group, respond_row, respond_row_bands, row_form_limit,
    row_order, stride, valid_chunks, valid_stride, AnswerForm, RowAnswer, RowProbe, MAX_SPLIT_CHUNKS, ROW_PADDING,
};
pub use wire::{EncryptedAnswer, EncryptedProbe};

use tfhe::core_crypto::prelude::*;
use zeroize::Zeroizing;

/// GLWE polynomial size: records per answer block.
pub const POLY: usize = 2048;
/// Identifier of the parameter set below (travels with every ciphertext).
pub const PARAMS_V1: u32 = 1;
/// The same parameters in the row form's compact encoding: probe bodies
/// rounded to 48 bits, answer masks to 24 bits (see `row`).
pub const ROW_PARAMS: u32 = 2;
/// log2 of the rounding step of row-form probe bodies on the wire.
pub const ROW_BODY_DROP: u32 = 16;
/// log2 of the rounding step of row-form answer masks on the wire.
pub const ROW_MASK_DROP: u32 = 40;
/// log2 of the plaintext scale Δ.
pub const DELTA_LOG: u32 = 32;
/// Masks are drawn uniformly from [2^MASK_LOG, 2^(MASK_LOG+1)).
pub const MASK_LOG: u32 = 14;
/// GLWE noise: TUniform with bound 2^NOISE_LOG.
pub const NOISE_LOG: u32 = 17;
/// Noise flooding: the responder adds fresh noise uniform on
/// [−2^FLOOD_LOG, 2^FLOOD_LOG) to every result coefficient before the
/// modulus switch. The decrypted error otherwise holds `Σ_i P_i·E_i`
/// (about 2^44), a function of the block's masked records weighted by
/// noise the prober knows (it holds the key); 2^48 is 16 times that, and
/// keeps the band under 0.003 cosine. It blurs those low-order bits; it is
/// not statistical circuit privacy (that needs 2^40 more than any usable
/// band allows).
pub const FLOOD_LOG: u32 = 48;
/// Largest dimension accepted.
pub const MAX_DIM: usize = vigil_protocol::limits::MAX_ENCRYPTED_DIM;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncryptedError {
    #[error("ciphertext was made with parameter set {found}, this node uses {expected}")]
    Params { found: u32, expected: u32 },
    #[error("probe has dimension {probe}, the gallery has {gallery}")]
    Dimension { probe: usize, gallery: usize },
    #[error("dimension {0} is outside 1..={MAX_DIM}")]
    BadDimension(usize),
    #[error("a probe of dimension {dim} does not cut into {chunks} chunks")]
    Chunks { dim: usize, chunks: usize },
    #[error("ciphertext has {found} coefficients, {expected} expected (truncated or padded)")]
    Length { expected: usize, found: usize },
    #[error("answer is for key {found}, not this key ({expected})")]
    WrongKey { expected: String, found: String },
    #[error("malformed key bytes: {0}")]
    Key(String),
    #[error("{0}")]
    Wire(String),
}

/// Builds (and caches, process-wide) the FFT plan for N: tfhe-fft picks its
/// algorithm by timing candidates, about 0.2 s here. A node calls this on a
/// blocking thread at start, so its first answer does not pay for it.
pub fn warm_up() {
    let _ = fourier::fft();
}

/// A prober's GLWE secret key (binary, N=2048). Zeroised on drop.
pub struct ProberKey {
    id: [u8; 16],
    key: GlweSecretKeyOwned<u64>,
}

impl std::fmt::Debug for ProberKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProberKey({})", hex16(&self.id))
    }
}

impl Drop for ProberKey {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.key.as_mut().zeroize();
    }
}

pub(crate) fn hex16(id: &[u8; 16]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

impl ProberKey {
    pub fn generate() -> Self {
        let mut seeder = new_seeder();
        let mut gen = SecretRandomGenerator::<DefaultRandomGenerator>::new(seeder.seed());
        let key = allocate_and_generate_new_binary_glwe_secret_key(GlweDimension(1), PolynomialSize(POLY), &mut gen);
        let mut id = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
        Self { id, key }
    }

    /// Public identifier of the key (names it in probes and answers).
    pub fn id(&self) -> [u8; 16] {
        self.id
    }

    /// `params (u32 LE) || id (16) || N key bits (one byte each)`; seal it at rest.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(20 + POLY));
        out.extend_from_slice(&PARAMS_V1.to_le_bytes());
        out.extend_from_slice(&self.id);
        out.extend(self.key.as_ref().iter().map(|b| *b as u8));
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EncryptedError> {
        if bytes.len() != 20 + POLY {
            return Err(EncryptedError::Key(format!("{} bytes, expected {}", bytes.len(), 20 + POLY)));
        }
        let params = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"));
        if params != PARAMS_V1 {
            return Err(EncryptedError::Params { found: params, expected: PARAMS_V1 });
        }
        if bytes[20..].iter().any(|b| *b > 1) {
            return Err(EncryptedError::Key("key coefficients must be 0 or 1".into()));
        }
        let id: [u8; 16] = bytes[4..20].try_into().expect("16 bytes");
        let data: Vec<u64> = bytes[20..].iter().map(|b| *b as u64).collect();
        Ok(Self { id, key: GlweSecretKey::from_container(data, PolynomialSize(POLY)) })
    }

    /// Encrypts a quantised probe: `dim` seeded GLWE ciphertexts, the i-th
    /// holding the constant `q_i·Δ`. The mask seed is fresh per call.
    pub fn encrypt(&self, probe: &[i8]) -> Result<EncryptedProbe, EncryptedError> {
        let d = probe.len();
        if d == 0 || d > MAX_DIM {
            return Err(EncryptedError::BadDimension(d));
        }
        let mut pt = vec![0u64; d * POLY];
        for (i, q) in probe.iter().enumerate() {
            pt[i * POLY] = ((*q as i64) << DELTA_LOG) as u64;
        }
        let (seed, bodies) = self.encrypt_seeded(pt, true);
        Ok(EncryptedProbe { key_id: self.id, params: PARAMS_V1, dim: d, seed, bodies })
    }

    /// Encrypts `plaintexts` (N coefficients per ciphertext) as a seeded GLWE
    /// list under a fresh seed: returns the seed and the bodies. With
    /// `parallel`, tasks of `ENCRYPT_PER_TASK` ciphertexts run on the rayon
    /// pool, each with its own noise generator (freshly seeded) and the
    /// mask generator skipped to its first ciphertext, so the masks are the
    /// list's one stream (what a responder regenerates) and the result is a
    /// sequential encryption's. Row probes (at most 33 ciphertexts, on the
    /// event loop or a fetch) stay sequential: they must not queue behind
    /// the pool's bulk homomorphic work.
    pub(crate) fn encrypt_seeded(&self, plaintexts: Vec<u64>, parallel: bool) -> (u128, Vec<u64>) {
        use rayon::prelude::*;
        use tfhe::core_crypto::commons::math::random::CompressionSeed;
        const ENCRYPT_PER_TASK: usize = 8;
        let seed = new_seeder().seed();
        let mut bodies = vec![0u64; plaintexts.len()];
        let encrypt = |task: usize, out: &mut [u64], pt: &[u64]| {
            let mut seeder = new_seeder();
            let mut gen = EncryptionRandomGenerator::<DefaultRandomGenerator>::new(seed, seeder.as_mut());
            let first = task * ENCRYPT_PER_TASK;
            if first > 0 {
                gen.mask_generator_mut().skip(EncryptionMaskByteCount(first * POLY * std::mem::size_of::<u64>()));
            }
            let mut list = SeededGlweCiphertextList::from_container(
                out,
                GlweSize(2),
                PolynomialSize(POLY),
                CompressionSeed::from(seed),
                CiphertextModulus::new_native(),
            );
            encrypt_seeded_glwe_ciphertext_list_with_pre_seeded_generator(
                &self.key,
                &mut list,
                &PlaintextList::from_container(pt),
                TUniform::<u64>::new(NOISE_LOG),
                &mut gen,
            );
        };
        let chunk = ENCRYPT_PER_TASK * POLY;
        if !parallel {
            for (task, (out, pt)) in bodies.chunks_mut(chunk).zip(plaintexts.chunks(chunk)).enumerate() {
                encrypt(task, out, pt);
            }
        } else {
            bodies
                .par_chunks_mut(chunk)
                .zip(plaintexts.par_chunks(chunk))
                .enumerate()
                .for_each(|(task, (out, pt))| encrypt(task, out, pt));
        }
        (seed.0, bodies)
    }

    /// Decrypts an answer to the raw signed values `Δ·r·(s − T) + error`,
    /// one per gallery position (tests and calibration).
    pub fn decrypt_raw(&self, answer: &EncryptedAnswer) -> Result<Vec<i64>, EncryptedError> {
        if answer.key_id != self.id {
            return Err(EncryptedError::WrongKey { expected: hex16(&self.id), found: hex16(&answer.key_id) });
        }
        answer.check()?;
        use rayon::prelude::*;
        let fft = fourier::fft();
        let fft = fft.as_view();
        let key = fourier::FourierKey::new(fft, self.key.as_ref());
        let mut out = vec![0i64; EncryptedAnswer::blocks(answer.count) * POLY];
        out.par_chunks_mut(POLY).zip(answer.coeffs.par_chunks_exact(2 * POLY)).for_each_init(
            || fourier::KeyProduct::new(fft),
            |kp, (out, block)| {
                let (mask, bodies) = block.split_at(POLY);
                let product = kp.mask_times_key(fft, mask, &key);
                for ((o, b), p) in out.iter_mut().zip(bodies).zip(product) {
                    *o = ((*b as u64) << 32).wrapping_sub(*p) as i64;
                }
            },
        );
        out.truncate(answer.count);
        Ok(out)
    }

    /// Decrypts an answer to one decision per gallery position (shuffled
    /// order: a position is an opaque handle the responder can resolve).
    pub fn decrypt(&self, answer: &EncryptedAnswer) -> Result<Vec<bool>, EncryptedError> {
        Ok(self.decrypt_raw(answer)?.into_iter().map(|v| v >= 0).collect())
    }
}

/// Standard deviation of the decryption error, in units of 2^64 (an upper
/// estimate; `tests::measured_error_is_within_the_estimate` checks it):
/// - GLWE noise (variance 2^34/3) times the masked gallery polynomials
///   (coefficients up to r_max·‖g‖, N of them);
/// - the f64 FFT: results of magnitude r_max·‖g‖·√(N/12) torus units keep
///   53 − log2(that) fractional bits; the error of the mask part is then
///   multiplied by the binary key (about √(N/2)); a factor 20 covers the
///   rounding accumulated over the transforms' stages and the d products
///   (fitted: tfhe-fft picks its FFT algorithm by timing at run time, and
///   the measured rms error varies with that choice from 2^44 to 2^45.7 at
///   d = 512; this estimate, 2^46.1, stays above every run seen). Above
///   d = 512 it grows as √(d/512): the column form accumulates d products
///   in f64, and at d = 1,920 one run's error beyond flooding was 2^46.4
///   (total rms 2^47.40, over the estimate without the growth);
/// - the responder's flooding noise (`FLOOD_LOG`), uniform;
/// - the switch of answers to 32-bit coefficients (row-form masks to 24
///   bits, `ROW_MASK_DROP`: the larger term, used for both forms), likewise
///   through the key.
pub fn error_sd(gallery_norm: f64, dim: usize) -> f64 {
    let n = POLY as f64;
    let noise_var = (2f64.powi(NOISE_LOG as i32 * 2)) / 3.0;
    let mask_max = 2f64.powi(MASK_LOG as i32 + 1);
    let enc = (noise_var * n * (mask_max * gallery_norm).powi(2)).sqrt();
    let magnitude = mask_max * gallery_norm * (n / 12.0).sqrt();
    let fft = 20.0 * magnitude * 2f64.powi(64 - 53) * (n / 2.0).sqrt() * (dim as f64 / 512.0).sqrt().max(1.0);
    let mask_step = 2f64.powi(ROW_MASK_DROP as i32);
    let modswitch = (mask_step * mask_step * n / 2.0 + 2f64.powi(64)).sqrt() / 12f64.sqrt();
    let flood_var = 2f64.powi(2 * FLOOD_LOG as i32) / 3.0;
    (enc * enc + fft * fft + flood_var + modswitch * modswitch).sqrt()
}

/// The smallest |cos − threshold| decided correctly with these parameters
/// at dimension `dim`: 12 standard deviations of the error over the
/// smallest mask, in cosine units (scores are inner products of vectors of
/// norm 127).
pub fn band_cosine(gallery_norm: f64, dim: usize) -> f64 {
    let band_int = 12.0 * error_sd(gallery_norm, dim) / 2f64.powi((DELTA_LOG + MASK_LOG) as i32);
    band_int / (127.0 * 127.0)
}

#[cfg(test)]
mod row_tests;
#[cfg(test)]
mod tests;

/// Flooding noise from a uniform 32-bit draw: uniform on
/// [−2^FLOOD_LOG, 2^FLOOD_LOG) in steps of 2^(FLOOD_LOG − 31), far finer
/// than the 2^32 the answer keeps.
pub(crate) fn flood(draw: u32) -> u64 {
    ((draw as i64 - (1i64 << 31)) << (FLOOD_LOG - 31)) as u64
}

//! The responder's side: regenerate the probe's masks from its seed,
//! transform the probe once, then for each block of N gallery positions
//! (in a fresh random order) build d masked plaintext polynomials, multiply-
//! accumulate them against the probe in the Fourier domain (our own kernel
//! on `FourierPolynomial.data`), transform back, subtract the masked
//! threshold and switch to 32-bit coefficients. Blocks run on the rayon pool.

use super::{EncryptedAnswer, EncryptedError, EncryptedProbe, DELTA_LOG, MASK_LOG, PARAMS_V1, POLY};
pub use crate::gallery::Gallery;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use tfhe::core_crypto::fft_impl::fft64::math::polynomial::FourierPolynomial;
use tfhe::core_crypto::commons::math::random::{CompressionSeed, Seed};
use tfhe::core_crypto::prelude::*;
use tfhe_fft::c64;

const HALF: usize = POLY / 2;

struct Scratch {
    buffers: ComputationBuffers,
    poly: Vec<u64>,
    tmp: Vec<c64>,
    acc_a: Vec<c64>,
    acc_b: Vec<c64>,
    res_a: Vec<u64>,
    res_b: Vec<u64>,
    masks: Vec<u64>,
}

impl Scratch {
    fn new(fft: FftView<'_>) -> Self {
        let mut buffers = ComputationBuffers::new();
        let req = fft.forward_scratch().or(fft.backward_scratch());
        buffers.resize(req.unaligned_bytes_required());
        Self {
            buffers,
            poly: vec![0; POLY],
            tmp: vec![c64::default(); HALF],
            acc_a: vec![c64::default(); HALF],
            acc_b: vec![c64::default(); HALF],
            res_a: vec![0; POLY],
            res_b: vec![0; POLY],
            masks: vec![0; POLY],
        }
    }
}

/// acc_a += x·ya and acc_b += x·yb, element-wise complex.
fn mac2(acc_a: &mut [c64], acc_b: &mut [c64], x: &[c64], ya: &[c64], yb: &[c64]) {
    pulp::Arch::new().dispatch(|| {
        for ((((aa, ab), x), ya), yb) in acc_a.iter_mut().zip(acc_b.iter_mut()).zip(x).zip(ya).zip(yb) {
            aa.re += x.re * ya.re - x.im * ya.im;
            aa.im += x.re * ya.im + x.im * ya.re;
            ab.re += x.re * yb.re - x.im * yb.im;
            ab.im += x.re * yb.im + x.im * yb.re;
        }
    })
}

/// Answers `probe` against `gallery` for `threshold` (an inner product of
/// quantised vectors). `seed` drives the shuffle and the masks; draw it
/// fresh for every query. Returns the answer and the order: position `p`
/// of the answer is gallery row `order[p]`. Runs on the current rayon pool.
pub fn respond(
    probe: &EncryptedProbe,
    gallery: &Gallery,
    threshold: i32,
    seed: [u8; 32],
) -> Result<(EncryptedAnswer, Vec<u32>), EncryptedError> {
    respond_inner(probe, gallery, threshold, seed, None)
}

/// As `respond`, also recording the mask of every position (tests only:
/// measures the decryption error exactly).
#[cfg(test)]
pub(crate) fn respond_with_masks(
    probe: &EncryptedProbe,
    gallery: &Gallery,
    threshold: i32,
    seed: [u8; 32],
) -> (EncryptedAnswer, Vec<u32>, Vec<u64>) {
    let masks = std::sync::Mutex::new(vec![0u64; gallery.len()]);
    let (a, o) = respond_inner(probe, gallery, threshold, seed, Some(&masks)).unwrap();
    (a, o, masks.into_inner().unwrap())
}

fn respond_inner(
    probe: &EncryptedProbe,
    gallery: &Gallery,
    threshold: i32,
    seed: [u8; 32],
    record_masks: Option<&std::sync::Mutex<Vec<u64>>>,
) -> Result<(EncryptedAnswer, Vec<u32>), EncryptedError> {
    probe.check()?;
    let d = probe.dim;
    if d != gallery.dim() {
        return Err(EncryptedError::Dimension { probe: d, gallery: gallery.dim() });
    }
    let fft = Fft::new(PolynomialSize(POLY));
    let fft = fft.as_view();

    // Regenerate the masks from the seed: the prober cannot choose them.
    let list = SeededGlweCiphertextList::from_container(
        probe.bodies.as_slice(),
        GlweSize(2),
        PolynomialSize(POLY),
        CompressionSeed::from(Seed(probe.seed)),
        CiphertextModulus::new_native(),
    )
    .decompress_into_glwe_ciphertext_list();

    // Transform the probe once: per dimension, mask then body.
    let mut fourier = vec![c64::default(); d * 2 * HALF];
    fourier.par_chunks_mut(2 * HALF).zip(list.as_ref().par_chunks(2 * POLY)).for_each_init(
        || Scratch::new(fft),
        |s, (out, ct)| {
            let (fa, fb) = out.split_at_mut(HALF);
            let stack = s.buffers.stack();
            fft.forward_as_torus(FourierPolynomial { data: fa }, Polynomial::from_container(&ct[..POLY]), stack);
            fft.forward_as_torus(FourierPolynomial { data: fb }, Polynomial::from_container(&ct[POLY..]), stack);
        },
    );

    let m = gallery.len();
    let mut rng = rand_chacha::ChaCha20Rng::from_seed(seed);
    let mut order: Vec<u32> = (0..m as u32).collect();
    rand::seq::SliceRandom::shuffle(order.as_mut_slice(), &mut rng);
    let block_seeds: Vec<[u8; 32]> = (0..EncryptedAnswer::blocks(m)).map(|_| rng.gen()).collect();

    let mut coeffs = vec![0u32; EncryptedAnswer::blocks(m) * 2 * POLY];
    coeffs.par_chunks_mut(2 * POLY).enumerate().for_each_init(
        || Scratch::new(fft),
        |s, (b, out)| {
            let idx = &order[b * POLY..((b + 1) * POLY).min(m)];
            let mut brng = rand_chacha::ChaCha20Rng::from_seed(block_seeds[b]);
            for k in 0..idx.len() {
                s.masks[k] = (1u64 << MASK_LOG) + brng.gen_range(0..1u64 << MASK_LOG);
            }
            if let Some(rec) = record_masks {
                rec.lock().expect("mask log")[b * POLY..b * POLY + idx.len()].copy_from_slice(&s.masks[..idx.len()]);
            }
            s.poly.fill(0);
            s.acc_a.fill(c64::default());
            s.acc_b.fill(c64::default());
            for i in 0..d {
                for (k, &g) in idx.iter().enumerate() {
                    s.poly[k] = (s.masks[k] as i64 * gallery.at(g as usize, i) as i64) as u64;
                }
                let stack = s.buffers.stack();
                fft.forward_as_integer(
                    FourierPolynomial { data: s.tmp.as_mut_slice() },
                    Polynomial::from_container(s.poly.as_slice()),
                    stack,
                );
                let f = &fourier[i * 2 * HALF..(i + 1) * 2 * HALF];
                mac2(&mut s.acc_a, &mut s.acc_b, &s.tmp, &f[..HALF], &f[HALF..]);
            }
            let stack = s.buffers.stack();
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
            for k in 0..idx.len() {
                let t = ((s.masks[k] as i64 * threshold as i64) << DELTA_LOG) as u64;
                s.res_b[k] = s.res_b[k].wrapping_sub(t);
            }
            // Modulus switch to 2^32: keep the rounded top half.
            let (oa, ob) = out.split_at_mut(POLY);
            for k in 0..POLY {
                oa[k] = (s.res_a[k].wrapping_add(1 << 31) >> 32) as u32;
                ob[k] = (s.res_b[k].wrapping_add(1 << 31) >> 32) as u32;
            }
        },
    );
    Ok((EncryptedAnswer { key_id: probe.key_id, params: PARAMS_V1, count: m, coeffs }, order))
}

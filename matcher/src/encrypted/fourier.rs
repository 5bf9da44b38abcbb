//! The FFT work of encrypted matching: one tfhe-fft plan shared with
//! tfhe's own `Fft` (so both give the same unordered Fourier layout); the
//! column kernel's forward transform, which builds each masked gallery
//! polynomial and twists it in one vectorised pass from i8 rows; its
//! multiply-accumulate; and decryption's products A·S with a Fourier key.
//!
//! Why not tfhe's `forward_as_integer` for the kernel: it wants the masked
//! polynomial as 2048 u64 first (a scalar pass of 64-bit products) and
//! converts it again; here masks are kept as f32 per block (`BlockMasks`)
//! and the product, conversion and twist happen in one pass (responder
//! time at d = 128, 1M records: 190 → 130 ms with the other changes of
//! that commit).

use std::sync::OnceLock;
use std::time::Duration;
use tfhe::core_crypto::fft_impl::fft64::math::fft::{setup_custom_fft_plan, FftView};
use tfhe::core_crypto::fft_impl::fft64::math::polynomial::FourierPolynomial;
use tfhe::core_crypto::prelude::*;
use tfhe_fft::c64;
use tfhe_fft::unordered::{Method, Plan};

use super::POLY;

const HALF: usize = POLY / 2;

/// The shared plan and the twisting factors `exp(iπj/N)`.
#[derive(Debug)]
pub(crate) struct Transform {
    plan: Plan,
    tw_re: Vec<f64>,
    tw_im: Vec<f64>,
}

/// Measures the fastest plan once per process (about 0.2 s), installs an
/// identical one as tfhe's plan for N, and keeps one for the kernel.
pub(crate) fn transform() -> &'static Transform {
    static T: OnceLock<Transform> = OnceLock::new();
    T.get_or_init(|| {
        let plan = Plan::new(HALF, Method::Measure(Duration::from_millis(10)));
        let (base_algo, base_n) = plan.algo();
        setup_custom_fft_plan(Plan::new(HALF, Method::UserProvided { base_algo, base_n }));
        // As tfhe's twisties: angle π/(2·HALF) per index.
        let unit = std::f64::consts::PI / (2.0 * HALF as f64);
        let (tw_im, tw_re) = (0..HALF).map(|j| (j as f64 * unit).sin_cos()).unzip();
        Transform { plan, tw_re, tw_im }
    })
}

/// tfhe's FFT for N, on the plan the kernel shares.
pub(crate) fn fft() -> Fft {
    transform();
    Fft::new(PolynomialSize(POLY))
}

/// One block's masks as f32 (exact: masks are below 2^16, and their
/// products with i8 rows below 2^24): 8 KiB per block, where masks folded
/// into the twisting factors as f64 took 32 KiB and crowded the
/// transform's working set out of L1.
#[derive(Debug, Clone)]
pub(crate) struct BlockMasks {
    lo: Vec<f32>,
    hi: Vec<f32>,
}

impl BlockMasks {
    pub(crate) fn new() -> Self {
        Self { lo: vec![0.0; HALF], hi: vec![0.0; HALF] }
    }

    /// Takes `masks` (N values below 2^16).
    pub(crate) fn set(&mut self, masks: &[u64]) {
        debug_assert!(masks.iter().all(|m| *m < 1 << 16));
        let (lo, hi) = masks.split_at(HALF);
        for (o, m) in self.lo.iter_mut().zip(lo) {
            *o = *m as f32;
        }
        for (o, m) in self.hi.iter_mut().zip(hi) {
            *o = *m as f32;
        }
    }
}

impl Transform {
    /// Forward negacyclic FFT of the polynomial with coefficients
    /// `masks[p]·g[p]`, as tfhe's `forward_as_integer` of that polynomial
    /// would give it.
    pub(crate) fn forward_masked(&self, out: &mut [c64], g: &[i8], m: &BlockMasks, stack: &mut PodStack) {
        pulp::Arch::new().dispatch(MaskedTwist { out: &mut *out, g, m, t: self });
        self.plan.fwd(out, stack);
    }
}

/// The conversion of `forward_masked` as a SIMD operation: the loop is
/// inlined into pulp's target-feature entry and vectorised there (a plain
/// closure was not, and ran scalar).
struct MaskedTwist<'a> {
    out: &'a mut [c64],
    g: &'a [i8],
    m: &'a BlockMasks,
    t: &'a Transform,
}

impl pulp::WithSimd for MaskedTwist<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let Self { out, g, m, t } = self;
        let (g_lo, g_hi) = g.split_at(HALF);
        let masks = m.lo.iter().zip(&m.hi);
        let twist = t.tw_re.iter().zip(&t.tw_im);
        for (((o, (x, y)), (ma, mb)), (wr, wi)) in out.iter_mut().zip(g_lo.iter().zip(g_hi)).zip(masks).zip(twist) {
            let x = (ma * *x as f32) as f64;
            let y = (mb * *y as f32) as f64;
            o.re = x * wr - y * wi;
            o.im = x * wi + y * wr;
        }
    }
}

/// A binary GLWE key in the Fourier domain: decryption computes the
/// products A·S of many answers with one FFT pair each instead of an
/// N² (Karatsuba) product.
#[derive(Debug)]
pub(crate) struct FourierKey(Vec<c64>);

impl FourierKey {
    pub(crate) fn new(fft: FftView<'_>, key: &[u64]) -> Self {
        let mut buffers = ComputationBuffers::new();
        buffers.resize(fft.forward_scratch().unaligned_bytes_required());
        let mut data = vec![c64::default(); HALF];
        fft.forward_as_integer(
            FourierPolynomial { data: data.as_mut_slice() },
            Polynomial::from_container(key),
            buffers.stack(),
        );
        Self(data)
    }
}

/// Per-thread buffers for `KeyProduct::mask_times_key`.
pub(crate) struct KeyProduct {
    buffers: ComputationBuffers,
    mask: Vec<u64>,
    fourier: Vec<c64>,
    product: Vec<u64>,
}

impl KeyProduct {
    pub(crate) fn new(fft: FftView<'_>) -> Self {
        let mut buffers = ComputationBuffers::new();
        buffers.resize(fft.forward_scratch().or(fft.backward_scratch()).unaligned_bytes_required());
        Self { buffers, mask: vec![0; POLY], fourier: vec![c64::default(); HALF], product: vec![0; POLY] }
    }

    /// The negacyclic product of a 32-bit answer mask (as the top half of
    /// 64-bit torus values) with the key, on the 64-bit torus. The f64
    /// error (about 2^17 units of 2^64) is far below the 2^32 rounding of
    /// the answers themselves.
    pub(crate) fn mask_times_key(&mut self, fft: FftView<'_>, mask: &[u32], key: &FourierKey) -> &[u64] {
        for (p, a) in self.mask.iter_mut().zip(mask) {
            *p = (*a as u64) << 32;
        }
        fft.forward_as_torus(
            FourierPolynomial { data: self.fourier.as_mut_slice() },
            Polynomial::from_container(self.mask.as_slice()),
            self.buffers.stack(),
        );
        for (a, k) in self.fourier.iter_mut().zip(&key.0) {
            *a *= *k;
        }
        fft.backward_as_torus(
            Polynomial::from_container(self.product.as_mut_slice()),
            FourierPolynomial { data: self.fourier.as_slice() },
            self.buffers.stack(),
        );
        &self.product
    }
}

/// acc_a += x·ya and acc_b += x·yb, element-wise complex (the kernel's
/// multiply-accumulate against the probe's mask and body).
pub(crate) fn mac2(acc_a: &mut [c64], acc_b: &mut [c64], x: &[c64], ya: &[c64], yb: &[c64]) {
    pulp::Arch::new().dispatch(Mac2 { acc_a, acc_b, x, ya, yb });
}

struct Mac2<'a> {
    acc_a: &'a mut [c64],
    acc_b: &'a mut [c64],
    x: &'a [c64],
    ya: &'a [c64],
    yb: &'a [c64],
}

impl pulp::WithSimd for Mac2<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        let acc_a = S::as_mut_simd_c64s(self.acc_a).0;
        let acc_b = S::as_mut_simd_c64s(self.acc_b).0;
        let x = S::as_simd_c64s(self.x).0;
        let ya = S::as_simd_c64s(self.ya).0;
        let yb = S::as_simd_c64s(self.yb).0;
        for ((((aa, ab), x), ya), yb) in acc_a.iter_mut().zip(acc_b.iter_mut()).zip(x).zip(ya).zip(yb) {
            *aa = simd.mul_add_c64s(*x, *ya, *aa);
            *ab = simd.mul_add_c64s(*x, *yb, *ab);
        }
    }
}

/// acc += x·y, element-wise complex (the row forms' multiply-accumulate).
pub(crate) fn mul_acc(acc: &mut [c64], x: &[c64], y: &[c64]) {
    pulp::Arch::new().dispatch(MulAcc { acc, x, y });
}

struct MulAcc<'a> {
    acc: &'a mut [c64],
    x: &'a [c64],
    y: &'a [c64],
}

impl pulp::WithSimd for MulAcc<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        let acc = S::as_mut_simd_c64s(self.acc).0;
        let x = S::as_simd_c64s(self.x).0;
        let y = S::as_simd_c64s(self.y).0;
        for ((a, x), y) in acc.iter_mut().zip(x).zip(y) {
            *a = simd.mul_add_c64s(*x, *y, *a);
        }
    }
}

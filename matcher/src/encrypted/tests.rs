//! Encrypted decisions against the plain matcher, on random data and on
//! records placed right at the edge of the guaranteed band; key, parameter
//! and length errors; the error budget measured against its estimate.

use super::*;
use crate::gallery::{dot, scan, Gallery};
use rand::{Rng, SeedableRng};

const T: i32 = 8064; // cos 0.5 at scale 127

pub(super) fn unit_i8(rng: &mut impl Rng, d: usize) -> Vec<i8> {
    let v: Vec<f32> = (0..d).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    crate::quantise(&v).unwrap()
}

/// A gallery of random vectors plus noisy copies of `probe` (genuine matches).
fn gallery(rng: &mut impl Rng, probe: &[i8], m: usize) -> Gallery {
    gallery_with_matches(rng, probe, m, 50)
}

/// Random vectors, every `every`-th row a noisy copy of `probe`.
pub(super) fn gallery_with_matches(rng: &mut impl Rng, probe: &[i8], m: usize, every: usize) -> Gallery {
    let d = probe.len();
    let mut rows = Vec::with_capacity(m * d);
    for i in 0..m {
        if i % every == 0 {
            // Component noise of about half a typical component: cosine ≈ 0.9.
            let spread = 0.8 * 127.0 / (d as f32).sqrt();
            let v: Vec<f32> = probe.iter().map(|x| *x as f32 + rng.gen_range(-spread..spread)).collect();
            rows.extend(crate::quantise(&v).unwrap());
        } else {
            rows.extend(unit_i8(rng, d));
        }
    }
    Gallery::new(d, rows)
}

#[test]
fn encrypted_decisions_equal_plain_ones_outside_the_band() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let key = ProberKey::generate();
    for (d, m) in [(128, 5000), (512, 2100)] {
        let q = unit_i8(&mut rng, d);
        let g = gallery(&mut rng, &q, m);
        let probe = key.encrypt(&q).unwrap();
        let (answer, order) = respond(&probe, &RunLayout::new(&g), T, rng.gen()).unwrap();
        let raw = key.decrypt_raw(&answer).unwrap();
        let plain = scan(&g, &q, T);
        let band = band_cosine(g.max_norm(), d) * 127.0 * 127.0;
        assert!(band < 0.01 * 127.0 * 127.0, "band {band} too wide");
        let mut matches = 0;
        let padding: Vec<usize> = order.iter().enumerate().filter(|(_, r)| **r == PADDING).map(|(p, _)| p).collect();
        assert!(!padding.is_empty(), "m is not a multiple of 32 here");
        assert!(padding.iter().all(|p| raw[*p] < 0), "padding positions must decrypt as no match");
        for (pos, &row) in order.iter().enumerate().filter(|(_, r)| **r != PADDING) {
            let s = dot(&q, g.row(row as usize));
            if ((s - T) as f64).abs() > band {
                assert_eq!(raw[pos] >= 0, plain[row as usize], "d={d} row {row} score {s}");
            }
            matches += plain[row as usize] as usize;
        }
        assert!(matches >= m / 50 - 1, "the test gallery must hold matches ({matches})");
        // Positions are shuffled: the answer order is not the gallery order,
        // and every record appears exactly once.
        assert_ne!(order.iter().take(50).copied().collect::<Vec<_>>(), (0..50).collect::<Vec<u32>>());
        let mut seen: Vec<u32> = order.iter().copied().filter(|r| *r != PADDING).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..m as u32).collect::<Vec<_>>());
    }
}

#[test]
fn records_at_the_band_edge_are_decided_correctly_and_error_fits_the_estimate() {
    // Rows built so that their score is T ± k for k just outside the band.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
    let key = ProberKey::generate();
    let d = 128;
    let q = unit_i8(&mut rng, d);
    let band = (band_cosine(130.0, d) * 127.0 * 127.0).ceil() as i32 + 1;
    let mut rows = Vec::new();
    let mut targets = Vec::new();
    while targets.len() < 3000 {
        let mut g = unit_i8(&mut rng, d);
        // Nudge g towards the probe until its score crosses T, then set the exact offset.
        let want = T + if targets.len() % 2 == 0 { band } else { -band };
        for _ in 0..10_000 {
            let s = dot(&q, &g);
            if s == want {
                break;
            }
            let i = rng.gen_range(0..d);
            let step = if (s < want) == (q[i] > 0) { 1 } else { -1 };
            if q[i] != 0 && (g[i] as i32 + step).abs() <= 60 {
                g[i] = (g[i] as i32 + step) as i8;
            }
        }
        if dot(&q, &g) == want {
            targets.push(want);
            rows.extend(g);
        }
    }
    let g = Gallery::new(d, rows);
    let (answer, order) = respond(&key.encrypt(&q).unwrap(), &RunLayout::new(&g), T, rng.gen()).unwrap();
    let raw = key.decrypt_raw(&answer).unwrap();
    let sd = error_sd(g.max_norm(), d);
    let mut worst: f64 = 0.0;
    for (pos, &row) in order.iter().enumerate().filter(|(_, r)| **r != PADDING) {
        let s = targets[row as usize];
        assert_eq!(raw[pos] >= 0, s >= T, "score {s} (T {T}) decided wrongly");
        // |value| = Δ·r·|s − T| + error with r in [2^16, 2^17): the error is
        // at least bounded by the distance to the nearest possible value.
        let unit = 2f64.powi((DELTA_LOG) as i32) * ((s - T).abs() as f64);
        let r = (raw[pos] as f64 / unit).abs();
        let err = (raw[pos] as f64).abs()
            - unit * r.round().clamp(2f64.powi(MASK_LOG as i32), 2f64.powi(MASK_LOG as i32 + 1));
        worst = worst.max(err.abs());
    }
    assert!(worst < 12.0 * sd, "observed error {worst:e} beyond 12 sd ({:e})", 12.0 * sd);
}

#[test]
fn wrong_key_parameters_dimension_and_truncation_are_refused() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let key = ProberKey::generate();
    let q = unit_i8(&mut rng, 128);
    let probe = key.encrypt(&q).unwrap();
    let g = RunLayout::new(&gallery(&mut rng, &q, 100));
    let bytes = probe.to_bytes();
    // Header 4, key id 16, params 1, dim 1, seed 16, length 5: 16 KiB per dimension plus 43 bytes.
    assert_eq!(bytes.len(), 128 * POLY * 8 + 43, "seeded probe: 16 KiB per dimension");
    let back = EncryptedProbe::from_bytes(&bytes, EncryptedProbe::MAX_BYTES).unwrap();
    assert!(back == probe);
    // Truncated, over the limit, wrong tag.
    assert!(matches!(EncryptedProbe::from_bytes(&bytes[..bytes.len() - 8], usize::MAX), Err(EncryptedError::Wire(_))));
    assert!(
        matches!(EncryptedProbe::from_bytes(&bytes, 1000), Err(EncryptedError::Wire(m)) if m.contains("exceeds the limit"))
    );
    // Wrong parameters and dimensions.
    let mut p2 = probe.clone();
    p2.params = 9;
    assert_eq!(respond(&p2, &g, T, [0; 32]).unwrap_err(), EncryptedError::Params { found: 9, expected: PARAMS_V1 });
    assert!(matches!(
        EncryptedProbe::from_bytes(&p2.to_bytes(), usize::MAX),
        Err(EncryptedError::Params { found: 9, expected: PARAMS_V1 })
    ));
    let g512 = RunLayout::new(&Gallery::new(512, vec![1; 512 * 3]));
    assert_eq!(respond(&probe, &g512, T, [0; 32]).unwrap_err(), EncryptedError::Dimension { probe: 128, gallery: 512 });
    let mut p3 = probe.clone();
    p3.bodies.pop();
    assert!(matches!(respond(&p3, &g, T, [0; 32]), Err(EncryptedError::Length { .. })));
    // Another key cannot decrypt, and says so.
    let (answer, _) = respond(&probe, &g, T, [1; 32]).unwrap();
    let other = ProberKey::generate();
    assert!(matches!(other.decrypt(&answer), Err(EncryptedError::WrongKey { .. })));
    // Answers round-trip and refuse truncation; 16 KiB per block of 2048.
    let ab = answer.to_bytes();
    assert!(ab.len() <= 16 * 1024 + 64);
    assert!(EncryptedAnswer::from_bytes(&ab, usize::MAX).unwrap() == answer);
    let mut short = answer.clone();
    short.coeffs.truncate(100);
    assert!(matches!(key.decrypt(&short), Err(EncryptedError::Length { .. })));
    // Pages of blocks decrypt on their own, to the same decisions.
    let g5 = RunLayout::new(&gallery(&mut rng, &q, 5000));
    let (big, _) = respond(&probe, &g5, T, [2; 32]).unwrap();
    let whole = key.decrypt(&big).unwrap();
    let pages = big.clone().into_pages(2);
    assert_eq!(pages.len(), 2);
    assert_eq!(pages.iter().map(|p| p.count).collect::<Vec<_>>(), vec![4096, big.count - 4096]);
    let paged: Vec<bool> = pages.iter().flat_map(|p| key.decrypt(p).unwrap()).collect();
    assert_eq!(paged, whole);
    // Keys round-trip; malformed key bytes are refused.
    let kb = key.to_bytes();
    let again = ProberKey::from_bytes(&kb).unwrap();
    assert_eq!(again.decrypt(&answer).unwrap(), key.decrypt(&answer).unwrap());
    assert!(ProberKey::from_bytes(&kb[..100]).is_err());
    let mut bad = kb.to_vec();
    bad[30] = 7;
    assert!(ProberKey::from_bytes(&bad).is_err());
}

#[test]
fn fresh_masks_and_order_per_query() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    let key = ProberKey::generate();
    let q = unit_i8(&mut rng, 128);
    let g = RunLayout::new(&gallery(&mut rng, &q, 300));
    let probe = key.encrypt(&q).unwrap();
    let (a1, o1) = respond(&probe, &g, T, [1; 32]).unwrap();
    assert_eq!(answer_order(g.len(), [1; 32]), o1, "the order is re-derivable from the seed");
    let (a2, o2) = respond(&probe, &g, T, [2; 32]).unwrap();
    assert_ne!(o1, o2);
    let (r1, r2) = (key.decrypt_raw(&a1).unwrap(), key.decrypt_raw(&a2).unwrap());
    // The same row gets different masked values in two queries.
    let pos = |o: &[u32], row: u32| o.iter().position(|x| *x == row).unwrap();
    let differing = (0..300u32).filter(|row| r1[pos(&o1, *row)] != r2[pos(&o2, *row)]).count();
    // Rows of one run do not keep their positions: the rotation changes.
    let offsets = |o: &[u32]| (0..32u32).map(|row| pos(o, row) % 32).collect::<Vec<_>>();
    assert_ne!(offsets(&o1), offsets(&o2));
    assert!(differing > 290);
    // Two encryptions of one probe differ (fresh seed and noise).
    assert!(key.encrypt(&q).unwrap().bodies != probe.bodies);
}

#[test]
fn measured_error_is_within_the_estimate() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let key = ProberKey::generate();
    // Up to MAX_DIM: ten fingers of 192 values, and the limit itself (the
    // FFT's rounding accumulates over the d products).
    for d in [128usize, 512, 1920, MAX_DIM] {
        let q = unit_i8(&mut rng, d);
        let g = gallery(&mut rng, &q, 4096);
        let (answer, order, masks) =
            kernel::respond_with_masks(&key.encrypt(&q).unwrap(), &RunLayout::new(&g), T, rng.gen());
        let raw = key.decrypt_raw(&answer).unwrap();
        let mut sum2 = 0f64;
        let mut worst = 0f64;
        for (pos, &row) in order.iter().enumerate().filter(|(_, r)| **r != PADDING) {
            let s = dot(&q, g.row(row as usize)) as i64;
            let exact = ((masks[pos] as i64 * (s - T as i64)) << DELTA_LOG) as f64;
            let err = raw[pos] as f64 - exact;
            sum2 += err * err;
            worst = worst.max(err.abs());
        }
        let rms = (sum2 / g.len() as f64).sqrt();
        let sd = error_sd(g.max_norm(), d);
        eprintln!("d={d}: rms error 2^{:.2}, worst 2^{:.2}, estimate sd 2^{:.2}", rms.log2(), worst.log2(), sd.log2());
        assert!(rms < sd, "rms error 2^{:.2} above the estimate 2^{:.2}", rms.log2(), sd.log2());
        assert!(worst < 8.0 * sd);
        // The flooding noise is there: without it the error is the FFT's
        // and the encryption's, at most about 2^46 here.
        let flood_sd = 2f64.powi(FLOOD_LOG as i32) / 3f64.sqrt();
        assert!(rms > 0.7 * flood_sd, "rms error 2^{:.2}: no flooding noise", rms.log2());
    }
}

#[test]
fn every_coefficient_without_a_record_carries_a_decoy_that_decrypts_as_no_match() {
    // One record: without decoys its block's mask would be N noisy linear
    // equations in d unknowns (r·g), enough to recover the template.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
    let key = ProberKey::generate();
    for d in [128usize, 512] {
        let q = unit_i8(&mut rng, d);
        let g = Gallery::new(d, unit_i8(&mut rng, d));
        let (answer, order, masks) =
            kernel::respond_with_masks(&key.encrypt(&q).unwrap(), &RunLayout::new(&g), T, rng.gen());
        assert_eq!(answer.count, RUN);
        // Decrypt the whole block, past `count` too.
        let whole = EncryptedAnswer { count: POLY, ..answer.clone() };
        let raw = key.decrypt_raw(&whole).unwrap();
        let record = order.iter().position(|r| *r == 0).unwrap();
        let s = dot(&q, g.row(0)) as i64;
        let exact = (masks[record] as i64 * (s - T as i64)) << DELTA_LOG;
        assert!(((raw[record] - exact) as f64).abs() < 12.0 * error_sd(127.0, d), "the record decrypts to its score");
        let mut nonzero = 0;
        let mut scores = std::collections::HashSet::new();
        for (p, v) in raw.iter().enumerate().filter(|(p, _)| *p != record) {
            assert!(*v < 0, "d={d}: decoy at {p} must decrypt as no match");
            // v ≈ Δ·r·(⟨q, z⟩ − T_DECOY): recover the decoy's score.
            let score = (*v as f64 / (masks[p] as f64 * 2f64.powi(DELTA_LOG as i32))).round() as i64 + T_DECOY as i64;
            assert!(score.abs() < T_DECOY as i64, "decoy score {score} out of range");
            nonzero += (score != 0) as usize;
            scores.insert(score);
        }
        // A zero row would give score 0: nearly every decoy is a real vector.
        assert!(nonzero > POLY - 40, "d={d}: only {nonzero} decoys are non-zero");
        assert!(scores.len() > 100, "decoys must differ");
    }
}

#[test]
fn parallel_decompression_equals_tfhe_s() {
    // The responder regenerates a probe's masks in parallel pieces, each
    // generator skipping to its first mask; the bytes must be tfhe's.
    let key = ProberKey::generate();
    let probe = key.encrypt(&[5i8; 24]).unwrap();
    let (whole, pieces) = kernel::decompress_all(probe.seed, &probe.bodies);
    assert_eq!(whole.len(), 24 * 2 * POLY);
    assert!(whole == pieces, "pieces differ from the sequential decompression");
    // And a wrong skip would not go unnoticed: dimension 1's mask is not
    // dimension 0's.
    assert_ne!(whole[..POLY], whole[2 * POLY..3 * POLY]);
}

#[test]
fn a_run_layout_gives_its_gallery_back() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    for (d, m) in [(8usize, 1usize), (128, 70), (100, 64)] {
        let rows: Vec<i8> = (0..d * m).map(|_| rng.gen()).collect();
        let g = Gallery::new(d, rows);
        let back = RunLayout::new(&g).gallery();
        assert_eq!((back.dim(), back.len()), (d, m));
        assert!((0..m).all(|i| back.row(i) == g.row(i)), "d={d} m={m}");
    }
}

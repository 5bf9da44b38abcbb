//! Row-form probes and answers: decisions against the plain matcher, the
//! error against its estimate, the re-randomised mask, and wire errors.

use super::*;
use crate::gallery::{dot, scan, Gallery};
use rand::{Rng, SeedableRng};

const T: i32 = 8064; // cos 0.5 at scale 127

use super::tests::unit_i8;

/// Random rows, every tenth a noisy copy of `probe` (a genuine match).
fn gallery(rng: &mut impl Rng, probe: &[i8], m: usize) -> Gallery {
    super::tests::gallery_with_matches(rng, probe, m, 10)
}

#[test]
fn row_decisions_equal_plain_ones_and_the_error_fits_the_estimate() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let key = ProberKey::generate();
    // (dimension, records, chunks): one-chunk alert probes and split ones,
    // including an uneven split (100 = 7 × 13 + 9).
    // Up to MAX_DIM: one record per group at 1,920 and 2,048 in one chunk
    // (200 of them: the rms of fewer is too noisy to hold to the estimate).
    for (d, m, chunks) in [
        (128usize, 333usize, 1usize),
        (512, 61, 1),
        (256, 1, 1),
        (128, 700, 8),
        (100, 300, 8),
        (512, 90, 32),
        (1920, 200, 1),
        (MAX_DIM, 200, 1),
        (1920, 300, 32),
    ] {
        let q = unit_i8(&mut rng, d);
        let g = gallery(&mut rng, &q, m);
        let probe = key.encrypt_row_split(&q, chunks).unwrap();
        let s = stride(d, chunks);
        assert_eq!((probe.chunks(), probe.stride()), (chunks, s));
        let seed: [u8; 32] = rng.gen();
        let (answer, order) = respond_row(&probe, &g, T, seed).unwrap();
        assert_eq!(order, row_order(m, s, seed), "the order is re-derivable from the seed");
        assert_eq!(answer.stride, s);
        assert_eq!(answer.count, m.div_ceil(per_group(s)) * per_group(s));
        let raw = key.decrypt_row_raw(&answer).unwrap();
        let masks = row::row_masks(m, s, seed);
        let plain = scan(&g, &q, T);
        let band = band_cosine(g.max_norm(), g.dim()) * 127.0 * 127.0;
        let sd = error_sd(g.max_norm(), d);
        let (mut sum2, mut n, mut matches) = (0f64, 0usize, 0usize);
        for (pos, &row) in order.iter().enumerate() {
            if row == ROW_PADDING {
                assert!(raw[pos] < 0, "padding must decrypt as no match");
                continue;
            }
            let s = dot(&q, g.row(row as usize));
            if ((s - T) as f64).abs() > band {
                assert_eq!(raw[pos] >= 0, plain[row as usize], "d={d} row {row} score {s}");
            }
            matches += plain[row as usize] as usize;
            let r = masks[pos];
            assert!((1 << MASK_LOG..1 << (MASK_LOG + 1)).contains(&r), "mask {r}");
            let err = raw[pos] as f64 - ((r * (s - T) as i64) << DELTA_LOG) as f64;
            sum2 += err * err;
            n += 1;
        }
        assert!(matches >= m / 10, "d={d}: the gallery holds matches ({matches})");
        assert!(m == 1 || matches < m, "d={d}: the gallery holds non-matches");
        let rms = (sum2 / n as f64).sqrt();
        eprintln!("row d={d} chunks={chunks}: rms error 2^{:.2}, estimate sd 2^{:.2}", rms.log2(), sd.log2());
        assert!(rms < sd, "rms error 2^{:.2} above the estimate 2^{:.2}", rms.log2(), sd.log2());
        let flood_sd = 2f64.powi(FLOOD_LOG as i32) / 3f64.sqrt();
        // The flooding noise is there (without it the error is at most
        // about 2^44, a tenth of this); measured where there are samples.
        assert!(n < 50 || rms > 0.7 * flood_sd, "rms error 2^{:.2}: no flooding noise", rms.log2());
        let mut seen: Vec<u32> = order.iter().copied().filter(|r| *r != ROW_PADDING).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..m as u32).collect::<Vec<_>>(), "every record answered once");
    }
}

#[test]
fn the_answer_mask_is_re_randomised_and_fresh_per_answer() {
    // A zero gallery makes A·G = 0: without re-randomisation the mask would
    // be zero too, and for any gallery it would be A·G, from which the
    // prober (who knows A) divides out G.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(12);
    let key = ProberKey::generate();
    let q = unit_i8(&mut rng, 128);
    let probe = key.encrypt_row(&q).unwrap();
    let zero = Gallery::new(128, vec![0; 128 * 16]);
    let (a, _) = respond_row(&probe, &zero, T, [1; 32]).unwrap();
    let mask = &a.coeffs[..POLY];
    let near_zero = mask.iter().filter(|c| c.wrapping_add(1 << 20) < 1 << 21).count();
    assert!(near_zero < 5, "{near_zero} of {POLY} mask coefficients near zero");
    let mean = mask.iter().map(|c| *c as f64).sum::<f64>() / POLY as f64;
    assert!((mean / 2f64.powi(31) - 1.0).abs() < 0.1, "mask mean {mean:e} is not that of uniform values");
    // The same gallery answered twice: different masks, orders and values.
    let g = gallery(&mut rng, &q, 100);
    let (a1, o1) = respond_row(&probe, &g, T, [2; 32]).unwrap();
    let (a2, o2) = respond_row(&probe, &g, T, [3; 32]).unwrap();
    assert_ne!(o1, o2);
    assert_ne!(a1.coeffs[..POLY], a2.coeffs[..POLY]);
    let (r1, r2) = (key.decrypt_row_raw(&a1).unwrap(), key.decrypt_row_raw(&a2).unwrap());
    let pos = |o: &[u32], row: u32| o.iter().position(|x| *x == row).unwrap();
    let differing = (0..100u32).filter(|row| r1[pos(&o1, *row)] != r2[pos(&o2, *row)]).count();
    assert!(differing > 95);
    // Only the result coefficients travel: N mask + N/d bodies per group.
    assert_eq!(a1.coeffs.len(), 7 * (POLY + 16));
}

#[test]
fn row_wire_forms_round_trip_and_refuse_bad_input() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(13);
    let key = ProberKey::generate();
    let q = unit_i8(&mut rng, 128);
    let probe = key.encrypt_row(&q).unwrap();
    let bytes = probe.to_bytes();
    assert!(bytes.len() <= RowProbe::MAX_BYTES && bytes.len() > 2 * POLY * 6, "{} bytes", bytes.len());
    assert!(RowProbe::from_bytes(&bytes).unwrap() == probe);
    assert!(matches!(RowProbe::from_bytes(&bytes[..bytes.len() - 8]), Err(EncryptedError::Wire(_))));
    let mut p2 = probe.clone();
    p2.params = 3;
    assert!(matches!(RowProbe::from_bytes(&p2.to_bytes()), Err(EncryptedError::Params { found: 3, .. })));
    let mut p3 = probe.clone();
    p3.bodies.truncate(POLY);
    assert!(matches!(RowProbe::from_bytes(&p3.to_bytes()), Err(EncryptedError::Length { .. })));
    let mut p4 = probe.clone();
    p4.dim = 0;
    assert!(matches!(RowProbe::from_bytes(&p4.to_bytes()), Err(EncryptedError::BadDimension(0))));
    let g512 = Gallery::new(512, vec![1; 512]);
    assert_eq!(
        respond_row(&probe, &g512, T, [0; 32]).unwrap_err(),
        EncryptedError::Dimension { probe: 128, gallery: 512 }
    );
    // A column-form probe is not a row-form probe (another tag).
    assert!(matches!(RowProbe::from_bytes(&key.encrypt(&q[..1]).unwrap().to_bytes()), Err(EncryptedError::Wire(_))));

    let g = gallery(&mut rng, &q, 40);
    let (answer, _) = respond_row(&probe, &g, T, [4; 32]).unwrap();
    let ab = answer.to_bytes();
    // 3 groups of 16 positions: 3 × (2048 × 3 + 16 × 4) bytes plus a small header.
    assert!(ab.len() <= RowAnswer::encoded_len(40, 128) && ab.len() > 3 * (POLY * 3 + 16 * 4), "{} bytes", ab.len());
    assert!(RowAnswer::from_bytes(&ab, usize::MAX).unwrap() == answer);
    assert!(
        matches!(RowAnswer::from_bytes(&ab, 1000), Err(EncryptedError::Wire(m)) if m.contains("exceeds the limit"))
    );
    let mut short = answer.clone();
    short.coeffs.pop();
    assert!(matches!(RowAnswer::from_bytes(&short.to_bytes(), usize::MAX), Err(EncryptedError::Length { .. })));
    let mut odd = answer.clone();
    odd.count += 1;
    assert!(matches!(key.decrypt_row(&odd), Err(EncryptedError::Length { .. })));
    let other = ProberKey::generate();
    assert!(matches!(other.decrypt_row(&answer), Err(EncryptedError::WrongKey { .. })));
}

#[test]
fn split_probes_round_trip_and_stay_out_of_alerts() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(14);
    let key = ProberKey::generate();
    let q = unit_i8(&mut rng, 128);
    let split = key.encrypt_row_split(&q, 8).unwrap();
    let bytes = split.to_bytes();
    assert!(bytes.len() <= RowProbe::encoded_len(8) && bytes.len() > 9 * POLY * 6, "{} bytes", bytes.len());
    assert!(RowProbe::from_bytes_split(&bytes, 8).unwrap() == split);
    // An alert carries a one-chunk probe: a split one is refused there, and
    // a decoder for fewer chunks refuses it by size before reading it.
    assert!(RowProbe::from_bytes(&bytes).is_err());
    assert!(matches!(RowProbe::from_bytes_split(&bytes, 4), Err(EncryptedError::Wire(m)) if m.contains("exceeds")));
    // 128 does not cut into 100 non-empty chunks of one width.
    assert_eq!(key.encrypt_row_split(&q, 100).unwrap_err(), EncryptedError::Chunks { dim: 128, chunks: 100 });
    let mut bad = split.clone();
    bad.bodies.extend(vec![0u64; 91 * POLY]);
    assert!(matches!(RowProbe::from_bytes_split(&bad.to_bytes(), 128), Err(EncryptedError::Chunks { chunks: 99, .. })));
    let mut ragged = split.clone();
    ragged.bodies.pop();
    assert!(matches!(RowProbe::from_bytes_split(&ragged.to_bytes(), 8), Err(EncryptedError::Length { .. })));
    // Answers say their stride; a page decodes and decrypts on its own.
    let g = gallery(&mut rng, &q, 200);
    let (answer, _) = respond_row(&split, &g, T, [5; 32]).unwrap();
    assert_eq!(answer.stride, 16);
    assert_eq!(answer.coeffs.len(), 2 * (POLY + 128), "200 records: two groups of 128 at stride 16");
    let back = RowAnswer::from_bytes(&answer.to_bytes(), usize::MAX).unwrap();
    assert!(back == answer);
    assert_eq!(key.decrypt_row(&back).unwrap(), key.decrypt_row(&answer).unwrap());
}

#[test]
fn the_cheapest_form_follows_the_gallery_size() {
    // A handful of records: the alert's own probe; hundreds to thousands:
    // a split probe; hundreds of thousands: the column form.
    assert_eq!(answer_form(10, 128, MAX_SPLIT_CHUNKS), AnswerForm::Row);
    assert_eq!(answer_form(208, 128, MAX_SPLIT_CHUNKS), AnswerForm::Row);
    assert_eq!(answer_form(571, 128, MAX_SPLIT_CHUNKS), AnswerForm::Split(4));
    assert_eq!(answer_form(2001, 128, MAX_SPLIT_CHUNKS), AnswerForm::Split(8));
    assert_eq!(answer_form(211_968, 128, MAX_SPLIT_CHUNKS), AnswerForm::Split(32));
    assert_eq!(answer_form(211_969, 128, MAX_SPLIT_CHUNKS), AnswerForm::Column);
    // With splits capped at one chunk, the old choice: row, then column.
    assert!(matches!(answer_form(1000, 128, 1), AnswerForm::Row));
    let r = answer_form(1000, 128, MAX_SPLIT_CHUNKS);
    assert!(bytes_moved(1000, 128, r) * 2 < bytes_moved(1000, 128, AnswerForm::Row));
    let limit = row_form_limit(128, MAX_SPLIT_CHUNKS);
    assert_eq!(limit, 208);
    assert!(answer_form(limit + 1, 128, MAX_SPLIT_CHUNKS) != AnswerForm::Row);
}

#[test]
fn band_answers_give_the_highest_band_and_masks_of_their_own() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(21);
    let key = ProberKey::generate();
    let q = unit_i8(&mut rng, 128);
    let g = gallery(&mut rng, &q, 400);
    let probe = key.encrypt_row(&q).unwrap();
    let thresholds = [T, 10_500, 12_900]; // cos 0.5, 0.65, 0.8
    let seed: [u8; 32] = rng.gen();
    let (answers, order) = respond_row_bands(&probe, &g, &Thresholds::Same(thresholds.to_vec()), seed).unwrap();
    assert_eq!(answers.len(), 3);
    // Band 0 is the one-threshold answer itself.
    let (single, single_order) = respond_row(&probe, &g, T, seed).unwrap();
    assert_eq!((single.coeffs == answers[0].coeffs, single_order == order), (true, true));
    let bands = key.decrypt_row_bands(&answers).unwrap();
    let margin = band_cosine(g.max_norm(), g.dim()) * 127.0 * 127.0;
    let (mut seen, mut checked) = ([0usize; 4], 0);
    for (pos, &row) in order.iter().enumerate().filter(|(_, r)| **r != ROW_PADDING) {
        let s = dot(&q, g.row(row as usize));
        if thresholds.iter().all(|t| ((s - t) as f64).abs() > margin) {
            let want = thresholds.iter().rposition(|t| s >= *t).map(|b| b as u8);
            assert_eq!(bands[pos], want, "row {row} score {s}");
            seen[want.map_or(0, |b| b as usize + 1)] += 1;
            checked += 1;
        }
    }
    assert!(checked > 350 && seen[0] > 0 && seen[1..].iter().sum::<usize>() > 0, "{seen:?}");
    // Each band has masks of its own: the same scores under other masks.
    assert_ne!(answers[1].coeffs, respond_row(&probe, &g, thresholds[1], seed).unwrap().0.coeffs);
}

#[test]
fn band_answers_travel_as_one_object_and_bad_ones_are_refused() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let key = ProberKey::generate();
    let q = unit_i8(&mut rng, 128);
    let g = gallery(&mut rng, &q, 60);
    let probe = key.encrypt_row(&q).unwrap();
    let (answers, _) = respond_row_bands(&probe, &g, &Thresholds::Same(vec![T, 12_900]), rng.gen()).unwrap();
    let bytes = super::row_bands_to_bytes(&answers);
    let any = super::AnyAnswer::from_bytes(&bytes, 16 << 20).unwrap();
    assert_eq!((any.bands(), any.count(), any.stride()), (2, answers[0].count, Some(128)));
    assert_eq!(any.decrypt_bands(&key).unwrap(), key.decrypt_row_bands(&answers).unwrap());
    // One answer alone, answers over other positions, a truncated object.
    let err = |b: &[u8]| super::AnyAnswer::from_bytes(b, 16 << 20).unwrap_err().to_string();
    assert!(err(&super::row_bands_to_bytes(&answers[..1])).contains("2..=3"));
    let (other, _) = respond_row(&probe, &gallery(&mut rng, &q, 200), T, rng.gen()).unwrap();
    assert!(err(&super::row_bands_to_bytes(&[answers[0].clone(), other])).contains("differ"));
    assert!(!err(&bytes[..bytes.len() - 1]).is_empty());
    // A single-threshold answer decrypts to band 0 at most.
    let single = super::AnyAnswer::Row(answers[0].clone());
    assert!(single.decrypt_bands(&key).unwrap().iter().all(|b| b.is_none_or(|b| b == 0)));
}

//! Probes of some of a multi-finger extractor's parts (fingers): only the
//! present parts' values are encrypted, and a wrapper (tag 12) names
//! them, so a responder computes over those parts of its records alone:
//! absent fingers cost nothing.

use super::{EncryptedError, MAX_DIM};
use crate::Extractor;
use serde::{Deserialize, Serialize};
use vigil_protocol::{decode, encode, tag_of, Tag};

#[derive(Serialize, Deserialize)]
struct PartsWire {
    parts: Vec<u8>,
    #[serde(with = "serde_bytes")]
    probe: Vec<u8>,
}

/// What an encrypted probe of `vector` carries under extractor `ex`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeParts {
    /// Indices into `ex.fingers` of the parts carried, rising; `None`: the
    /// whole vector (one part, or every part present).
    pub parts: Option<Vec<u8>>,
    /// The values to encrypt: the carried parts, in order.
    pub values: Vec<i8>,
}

/// Values per part of `ex`.
fn part_len(ex: &Extractor) -> usize {
    ex.dim / ex.parts()
}

/// The parts of `vector` (of `ex.dim` values) an encrypted probe carries:
/// the present (non-zero) ones.
pub fn probe_parts(ex: &Extractor, vector: &[i8]) -> ProbeParts {
    let k = ex.parts();
    let mask = present_parts(ex, vector);
    let present: Vec<u8> = (0..k as u8).filter(|i| mask & 1 << i != 0).collect();
    if k == 1 || present.is_empty() || present.len() == k {
        return ProbeParts { parts: None, values: vector.to_vec() };
    }
    let mut values = Vec::with_capacity(present.len() * part_len(ex));
    extend_parts(ex, vector, Some(&present), &mut values);
    ProbeParts { values, parts: Some(present) }
}

/// Bit i set: part i of `vector` (a template of `ex`) is present (not all zeros).
pub fn present_parts(ex: &Extractor, vector: &[i8]) -> u16 {
    vector.chunks(part_len(ex)).enumerate().filter(|(_, p)| p.iter().any(|x| *x != 0)).fold(0, |m, (i, _)| m | 1 << i)
}

/// Fingers two templates of `ex` both hold.
pub fn shared_parts(ex: &Extractor, a: &[i8], b: &[i8]) -> usize {
    (present_parts(ex, a) & present_parts(ex, b)).count_ones() as usize
}

/// The rows of `gallery` (records of `ex.dim` values each) restricted to
/// `parts`; the rows themselves for `None`.
pub fn gallery_parts(ex: &Extractor, gallery: Vec<i8>, parts: Option<&[u8]>) -> Vec<i8> {
    if parts.is_none() {
        return gallery;
    }
    let mut out = Vec::new();
    gallery.chunks(ex.dim).for_each(|row| extend_parts(ex, row, parts, &mut out));
    out
}

/// Appends `row` (a record of `ex.dim` values) restricted to `parts`, or
/// whole for `None`, to `out`: a gallery over some fingers in one pass.
pub fn extend_parts(ex: &Extractor, row: &[i8], parts: Option<&[u8]>, out: &mut Vec<i8>) {
    let Some(parts) = parts else { return out.extend_from_slice(row) };
    let len = part_len(ex);
    parts.iter().for_each(|p| out.extend_from_slice(&row[*p as usize * len..(*p as usize + 1) * len]));
}

/// The dimension of a probe of `parts` under `ex`.
pub fn parts_dim(ex: &Extractor, parts: Option<&[u8]>) -> usize {
    parts.map_or(ex.dim, |p| p.len() * part_len(ex))
}

/// Wraps an encoded probe (tag 7 or 9) of `parts`; the probe as it is for `None`.
pub fn wrap(parts: Option<&[u8]>, probe: Vec<u8>) -> Vec<u8> {
    match parts {
        None => probe,
        Some(p) => {
            encode(Tag::PartsProbe, &PartsWire { parts: p.to_vec(), probe }, usize::MAX).expect("a parts probe encodes")
        }
    }
}

/// Opens a probe under `limit` bytes: the inner probe's bytes and the
/// parts it names (structure only; `check` them against the extractor),
/// `None` for a probe that is not wrapped.
pub fn open(bytes: &[u8], limit: usize) -> Result<(Vec<u8>, Option<Vec<u8>>), EncryptedError> {
    if tag_of(bytes) != Some(Tag::PartsProbe) {
        return Ok((bytes.to_vec(), None));
    }
    let w: PartsWire = decode(Tag::PartsProbe, bytes, limit).map_err(|e| EncryptedError::Wire(e.to_string()))?;
    Ok((w.probe, Some(w.parts)))
}

/// Checks that `parts` are rising, distinct indices of fewer than all of
/// `ex`'s parts.
pub fn check(ex: &Extractor, parts: &[u8]) -> Result<(), EncryptedError> {
    let k = ex.parts();
    let rising = parts.windows(2).all(|p| p[0] < p[1]);
    let in_range = parts.last().is_some_and(|l| (*l as usize) < k);
    if !rising || !in_range || parts.len() >= k || parts.len() * part_len(ex) > MAX_DIM {
        return Err(EncryptedError::Wire(format!(
            "parts {parts:?} are not rising indices of some of the {k} parts of {}",
            ex.id
        )));
    }
    Ok(())
}

/// `open` and `check`: the inner probe and its checked parts.
pub fn unwrap(ex: &Extractor, bytes: &[u8], limit: usize) -> Result<(Vec<u8>, Option<Vec<u8>>), EncryptedError> {
    let (inner, parts) = open(bytes, limit)?;
    if let Some(p) = &parts {
        check(ex, p)?;
    }
    Ok((inner, parts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_protocol::policy::{Band, Representation, Status, Threshold};
    use vigil_protocol::Modality;

    fn five() -> Extractor {
        Extractor {
            id: "five".into(),
            model: String::new(),
            modality: Modality::Finger,
            fingers: vec![1, 2, 3, 6, 7],
            input_dim: None,
            dim: 960,
            centre: None,
            projection: None,
            thresholds: vec![Threshold { band: Band::Possible, cosine: 2.0, fmr: 1e-4, fewer_fingers: vec![] }],
            protected_bits: 512,
            status: Status::Active,
            representation: Some(Representation::SpectralMinutiaeV1),
        }
    }

    fn vector(present: &[usize]) -> Vec<i8> {
        (0..960).map(|i| if present.contains(&(i / 192)) { (i % 7) as i8 + 1 } else { 0 }).collect()
    }

    #[test]
    fn a_probe_carries_its_present_parts_and_scores_as_the_whole() {
        let ex = five();
        ex.validate().unwrap();
        let p = probe_parts(&ex, &vector(&[1, 4]));
        assert_eq!((p.parts.as_deref(), p.values.len()), (Some(&[1u8, 4][..]), 384));
        assert_eq!(p.values[..192], vector(&[1])[192..384]);
        assert_eq!(probe_parts(&ex, &vector(&[0, 1, 2, 3, 4])).parts, None, "every part: unwrapped");
        // The same parts of a record: the inner products agree.
        let record = vector(&[0, 1, 2, 3, 4]);
        let rows = gallery_parts(&ex, record.clone(), p.parts.as_deref());
        let dot = |a: &[i8], b: &[i8]| a.iter().zip(b).map(|(x, y)| *x as i32 * *y as i32).sum::<i32>();
        assert_eq!(dot(&rows, &p.values), dot(&record, &vector(&[1, 4])));
        assert_eq!(parts_dim(&ex, p.parts.as_deref()), 384);
    }

    #[test]
    fn wrapped_probes_name_valid_parts_only() {
        let ex = five();
        let inner = vec![1, 2, 3];
        let bytes = wrap(Some(&[1, 4]), inner.clone());
        assert_eq!(unwrap(&ex, &bytes, 1 << 20).unwrap(), (inner.clone(), Some(vec![1, 4])));
        assert_eq!(unwrap(&ex, &inner, 1 << 20).unwrap(), (inner.clone(), None));
        for bad in [&[4u8, 1][..], &[], &[1, 1], &[5], &[0, 1, 2, 3, 4]] {
            let e = unwrap(&ex, &wrap(Some(bad), inner.clone()), 1 << 20).unwrap_err();
            assert!(e.to_string().contains("rising indices"), "{bad:?}: {e}");
        }
    }
}

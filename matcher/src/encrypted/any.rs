//! Probes and answers in whichever form they came: the envelope's tag says
//! which decoder applies, so callers never look at codec bytes themselves.

use super::{EncryptedAnswer, EncryptedError, EncryptedProbe, ProberKey, RowAnswer, RowProbe};
use serde::{Deserialize, Serialize};
use vigil_protocol::{decode, encode, tag_of, Tag};

/// Most thresholds (confidence bands) a policy gives an extractor.
pub const MAX_BANDS: usize = 3;

/// A query's probe: column form (`EncryptedProbe`) or row form (`RowProbe`,
/// 1..=`max_chunks` chunks).
#[derive(Debug)]
pub enum AnyProbe {
    Column(EncryptedProbe),
    Row(RowProbe),
}

impl AnyProbe {
    /// Decodes a probe of either form (column under `limit` bytes, row of at
    /// most `max_chunks` chunks) and checks it.
    pub fn from_bytes(bytes: &[u8], limit: usize, max_chunks: usize) -> Result<Self, EncryptedError> {
        match tag_of(bytes) {
            Some(Tag::RowProbe) => RowProbe::from_bytes_split(bytes, max_chunks).map(AnyProbe::Row),
            _ => EncryptedProbe::from_bytes(bytes, limit).map(AnyProbe::Column),
        }
    }

    pub fn dim(&self) -> usize {
        match self {
            AnyProbe::Column(p) => p.dim,
            AnyProbe::Row(p) => p.dim,
        }
    }

    /// Result stride of the answer: 0 for the column form.
    pub fn stride(&self) -> usize {
        match self {
            AnyProbe::Column(_) => 0,
            AnyProbe::Row(p) => p.stride(),
        }
    }
}

/// A decrypted answer: the matching positions, each with the highest band
/// index it reached when the answer carries bands (else `None`), and the
/// number of positions.
pub type Decisions = (Vec<(usize, Option<u8>)>, usize);

/// An answer (or answer page) in column or row form.
#[derive(Debug)]
pub enum AnyAnswer {
    Row(RowAnswer),
    Column(EncryptedAnswer),
    /// One row answer per band's threshold, rising, in one order
    /// (`respond_row_bands`): the prober learns per position the highest
    /// band reached.
    RowBands(Vec<RowAnswer>),
}

/// `RowBands` (tag 11) on the wire: each answer as its own `RowAnswer`
/// encoding (tag 10).
#[derive(Serialize, Deserialize)]
struct RowBandsWire {
    answers: Vec<serde_bytes::ByteBuf>,
}

/// Encodes band answers (2..=`MAX_BANDS` of them) as one object.
pub fn row_bands_to_bytes(answers: &[RowAnswer]) -> Vec<u8> {
    let answers = answers.iter().map(|a| serde_bytes::ByteBuf::from(a.to_bytes())).collect();
    encode(Tag::RowBands, &RowBandsWire { answers }, usize::MAX).expect("answers encode")
}

/// Decodes band answers under `limit` bytes: 2..=`MAX_BANDS` row answers
/// under one key, at one stride, over as many positions.
fn row_bands_from_bytes(bytes: &[u8], limit: usize) -> Result<Vec<RowAnswer>, EncryptedError> {
    let w: RowBandsWire = decode(Tag::RowBands, bytes, limit).map_err(|e| EncryptedError::Wire(e.to_string()))?;
    if !(2..=MAX_BANDS).contains(&w.answers.len()) {
        return Err(EncryptedError::Wire(format!("{} band answers, 2..={MAX_BANDS} expected", w.answers.len())));
    }
    let answers = w.answers.iter().map(|b| RowAnswer::from_bytes(b, limit)).collect::<Result<Vec<_>, _>>()?;
    let first = &answers[0];
    if answers.iter().any(|a| a.key_id != first.key_id || a.stride != first.stride || a.count != first.count) {
        return Err(EncryptedError::Wire("band answers differ in key, stride or positions".into()));
    }
    Ok(answers)
}

impl AnyAnswer {
    /// Decodes an answer of either form under `limit` bytes and checks it.
    pub fn from_bytes(bytes: &[u8], limit: usize) -> Result<Self, EncryptedError> {
        match tag_of(bytes) {
            Some(Tag::EncryptedAnswer) => EncryptedAnswer::from_bytes(bytes, limit).map(AnyAnswer::Column),
            Some(Tag::RowBands) => row_bands_from_bytes(bytes, limit).map(AnyAnswer::RowBands),
            _ => RowAnswer::from_bytes(bytes, limit).map(AnyAnswer::Row),
        }
    }

    pub fn key_id(&self) -> [u8; 16] {
        match self {
            AnyAnswer::Row(a) => a.key_id,
            AnyAnswer::Column(a) => a.key_id,
            AnyAnswer::RowBands(a) => a[0].key_id,
        }
    }

    /// Positions the answer covers.
    pub fn count(&self) -> usize {
        match self {
            AnyAnswer::Row(a) => a.count,
            AnyAnswer::Column(a) => a.count,
            AnyAnswer::RowBands(a) => a[0].count,
        }
    }

    /// Row forms: the result stride.
    pub fn stride(&self) -> Option<usize> {
        match self {
            AnyAnswer::Row(a) => Some(a.stride),
            AnyAnswer::RowBands(a) => Some(a[0].stride),
            AnyAnswer::Column(_) => None,
        }
    }

    /// The decision per position, with `key`.
    pub fn decrypt(&self, key: &ProberKey) -> Result<Vec<bool>, EncryptedError> {
        Ok(self.decrypt_bands(key)?.into_iter().map(|b| b.is_some()).collect())
    }

    /// Per position, the highest band's index reached (0: the first
    /// threshold, a match), or `None`. An answer of one threshold reaches
    /// at most 0.
    pub fn decrypt_bands(&self, key: &ProberKey) -> Result<Vec<Option<u8>>, EncryptedError> {
        let some = |bits: Vec<bool>| bits.into_iter().map(|m| m.then_some(0)).collect();
        match self {
            AnyAnswer::Row(a) => key.decrypt_row(a).map(some),
            AnyAnswer::Column(a) => key.decrypt(a).map(some),
            AnyAnswer::RowBands(a) => key.decrypt_row_bands(a),
        }
    }

    /// How many thresholds the answer was computed for.
    pub fn bands(&self) -> usize {
        match self {
            AnyAnswer::RowBands(a) => a.len(),
            _ => 1,
        }
    }

    /// The matching positions, each with the highest band index reached
    /// when the answer carries bands (else `None`), and the number of
    /// positions.
    pub fn positives(&self, key: &ProberKey) -> Result<Decisions, EncryptedError> {
        let bands = self.decrypt_bands(key)?;
        let banded = self.bands() > 1;
        let positives = bands.iter().enumerate().filter_map(|(p, b)| b.map(|b| (p, banded.then_some(b)))).collect();
        Ok((positives, bands.len()))
    }
}

/// Answers a row probe at `thresholds` (rising): one threshold as a
/// `RowAnswer` (tag 10), several as `RowBands` (tag 11); the encoded answer
/// and its order (`respond_row`, `respond_row_bands`).
pub fn respond_row_any(
    probe: &RowProbe,
    gallery: &super::Gallery,
    thresholds: &super::Thresholds,
    seed: [u8; 32],
) -> Result<(Vec<u8>, Vec<u32>), EncryptedError> {
    match thresholds.bands() {
        1 => super::respond_row(probe, gallery, thresholds.band(0), seed).map(|(a, o)| (a.to_bytes(), o)),
        _ => super::respond_row_bands(probe, gallery, thresholds, seed).map(|(a, o)| (row_bands_to_bytes(&a), o)),
    }
}

//! Probes and answers in whichever form they came: the envelope's tag says
//! which decoder applies, so callers never look at codec bytes themselves.

use super::{EncryptedAnswer, EncryptedError, EncryptedProbe, ProberKey, RowAnswer, RowProbe};
use vigil_protocol::{tag_of, Tag};

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

/// An answer (or answer page) in column or row form.
#[derive(Debug)]
pub enum AnyAnswer {
    Row(RowAnswer),
    Column(EncryptedAnswer),
}

impl AnyAnswer {
    /// Decodes an answer of either form under `limit` bytes and checks it.
    pub fn from_bytes(bytes: &[u8], limit: usize) -> Result<Self, EncryptedError> {
        match tag_of(bytes) {
            Some(Tag::EncryptedAnswer) => EncryptedAnswer::from_bytes(bytes, limit).map(AnyAnswer::Column),
            _ => RowAnswer::from_bytes(bytes, limit).map(AnyAnswer::Row),
        }
    }

    pub fn key_id(&self) -> [u8; 16] {
        match self {
            AnyAnswer::Row(a) => a.key_id,
            AnyAnswer::Column(a) => a.key_id,
        }
    }

    /// Positions the answer covers.
    pub fn count(&self) -> usize {
        match self {
            AnyAnswer::Row(a) => a.count,
            AnyAnswer::Column(a) => a.count,
        }
    }

    /// The decision per position, with `key`.
    pub fn decrypt(&self, key: &ProberKey) -> Result<Vec<bool>, EncryptedError> {
        match self {
            AnyAnswer::Row(a) => key.decrypt_row(a),
            AnyAnswer::Column(a) => key.decrypt(a),
        }
    }
}

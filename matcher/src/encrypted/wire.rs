//! Wire forms of encrypted probes and answers: each in the Vigil envelope
//! (its own type tag and version), with the parameter set, key id and
//! dimension checked before any coefficient is used.

use super::{EncryptedError, MAX_DIM, PARAMS_V1, POLY};
use serde::{Deserialize, Serialize};
use vigil_protocol::{decode, encode, Tag};

/// A probe: `dim` seeded GLWE ciphertexts (the masks come from `seed`, so
/// only the bodies travel: 16 KiB per dimension).
#[derive(Clone, PartialEq, Eq)]
pub struct EncryptedProbe {
    pub key_id: [u8; 16],
    pub params: u32,
    pub dim: usize,
    /// Seed of the mask generator (tfhe's AES-CTR CSPRNG). The responder
    /// regenerates the masks itself; a prober cannot choose them.
    pub seed: u128,
    /// `dim × N` body coefficients.
    pub bodies: Vec<u64>,
}

impl std::fmt::Debug for EncryptedProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EncryptedProbe(key {}, dim {})", super::hex16(&self.key_id), self.dim)
    }
}

/// An answer: one GLWE ciphertext with 32-bit coefficients (mask then body,
/// `2·N` values) per block of N gallery positions.
#[derive(Clone, PartialEq, Eq)]
pub struct EncryptedAnswer {
    pub key_id: [u8; 16],
    pub params: u32,
    /// Gallery positions answered (the last block is partly padding).
    pub count: usize,
    pub coeffs: Vec<u32>,
}

impl std::fmt::Debug for EncryptedAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EncryptedAnswer(key {}, {} positions)", super::hex16(&self.key_id), self.count)
    }
}

#[derive(Serialize, Deserialize)]
struct ProbeWire {
    key_id: [u8; 16],
    params: u32,
    dim: u32,
    seed: [u8; 16],
    #[serde(with = "serde_bytes")]
    bodies: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct AnswerWire {
    key_id: [u8; 16],
    params: u32,
    count: u64,
    #[serde(with = "serde_bytes")]
    coeffs: Vec<u8>,
}

fn wire_err(e: vigil_protocol::WireError) -> EncryptedError {
    EncryptedError::Wire(e.to_string())
}

impl EncryptedProbe {
    /// Largest encoded probe (at `MAX_DIM`).
    pub const MAX_BYTES: usize = 64 + MAX_DIM * POLY * 8;

    pub fn to_bytes(&self) -> Vec<u8> {
        let w = ProbeWire {
            key_id: self.key_id,
            params: self.params,
            dim: self.dim as u32,
            seed: self.seed.to_le_bytes(),
            bodies: self.bodies.iter().flat_map(|c| c.to_le_bytes()).collect(),
        };
        encode(Tag::EncryptedProbe, &w, Self::MAX_BYTES).expect("probe within its own limit")
    }

    /// Decodes under `limit` and checks parameters, dimension and length.
    pub fn from_bytes(bytes: &[u8], limit: usize) -> Result<Self, EncryptedError> {
        let w: ProbeWire = decode(Tag::EncryptedProbe, bytes, limit.min(Self::MAX_BYTES)).map_err(wire_err)?;
        if w.params != PARAMS_V1 {
            return Err(EncryptedError::Params { found: w.params, expected: PARAMS_V1 });
        }
        let dim = w.dim as usize;
        if dim == 0 || dim > MAX_DIM {
            return Err(EncryptedError::BadDimension(dim));
        }
        if w.bodies.len() != dim * POLY * 8 {
            return Err(EncryptedError::Length { expected: dim * POLY, found: w.bodies.len() / 8 });
        }
        let bodies = w.bodies.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect();
        Ok(Self { key_id: w.key_id, params: w.params, dim, seed: u128::from_le_bytes(w.seed), bodies })
    }

    pub(crate) fn check(&self) -> Result<(), EncryptedError> {
        if self.params != PARAMS_V1 {
            return Err(EncryptedError::Params { found: self.params, expected: PARAMS_V1 });
        }
        if self.dim == 0 || self.dim > MAX_DIM {
            return Err(EncryptedError::BadDimension(self.dim));
        }
        if self.bodies.len() != self.dim * POLY {
            return Err(EncryptedError::Length { expected: self.dim * POLY, found: self.bodies.len() });
        }
        Ok(())
    }
}

impl EncryptedAnswer {
    /// Bytes of one answer block on the wire: 2·N coefficients of 4 bytes
    /// for N positions.
    pub const BLOCK_BYTES: usize = 2 * POLY * 4;

    pub fn blocks(count: usize) -> usize {
        count.div_ceil(POLY)
    }

    /// Positions per answer page that keep a page within `max_bytes`:
    /// whole blocks, at least one.
    pub fn page_records(max_bytes: usize) -> usize {
        (max_bytes / Self::BLOCK_BYTES).max(1) * POLY
    }

    /// Splits the answer into pages of at most `blocks` blocks; page k holds
    /// positions `[k·blocks·N, …)` and decrypts on its own.
    pub fn into_pages(self, blocks: usize) -> Vec<EncryptedAnswer> {
        let blocks = blocks.max(1);
        let per_page = blocks * POLY;
        self.coeffs
            .chunks(blocks * 2 * POLY)
            .enumerate()
            .map(|(k, c)| EncryptedAnswer {
                key_id: self.key_id,
                params: self.params,
                count: (self.count - k * per_page).min(per_page),
                coeffs: c.to_vec(),
            })
            .collect()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let w = AnswerWire {
            key_id: self.key_id,
            params: self.params,
            count: self.count as u64,
            coeffs: self.coeffs.iter().flat_map(|c| c.to_le_bytes()).collect(),
        };
        encode(Tag::EncryptedAnswer, &w, usize::MAX).expect("answers encode")
    }

    /// Decodes under `limit` and checks parameters and length.
    pub fn from_bytes(bytes: &[u8], limit: usize) -> Result<Self, EncryptedError> {
        let w: AnswerWire = decode(Tag::EncryptedAnswer, bytes, limit).map_err(wire_err)?;
        // A peer's count: at most one position per coefficient pair it sent
        // (checked before any arithmetic on it).
        if w.count > (w.coeffs.len() / 8) as u64 + POLY as u64 {
            return Err(EncryptedError::Wire(format!("count {} is larger than the answer", w.count)));
        }
        let a = Self {
            key_id: w.key_id,
            params: w.params,
            count: w.count as usize,
            coeffs: w.coeffs.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes"))).collect(),
        };
        if !w.coeffs.len().is_multiple_of(4) {
            return Err(EncryptedError::Length { expected: a.coeffs.len() + 1, found: a.coeffs.len() });
        }
        a.check()?;
        Ok(a)
    }

    pub(crate) fn check(&self) -> Result<(), EncryptedError> {
        if self.params != PARAMS_V1 {
            return Err(EncryptedError::Params { found: self.params, expected: PARAMS_V1 });
        }
        let expected = Self::blocks(self.count)
            .checked_mul(2 * POLY)
            .ok_or(EncryptedError::Length { expected: usize::MAX, found: self.coeffs.len() })?;
        if self.coeffs.len() != expected {
            return Err(EncryptedError::Length { expected, found: self.coeffs.len() });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer's huge `count` is refused before arithmetic on it (it passed
    /// an unchecked multiplication and corrupted the gallery-size estimate).
    #[test]
    fn answers_with_impossible_counts_are_refused() {
        // 2^63 + 1 wrapped to exactly one block: it passed the old check.
        for count in [(1u64 << 63) + 1, u64::MAX, (usize::MAX / (2 * POLY)) as u64 + 1, 3 * POLY as u64] {
            let w = AnswerWire { key_id: [1; 16], params: PARAMS_V1, count, coeffs: vec![0; 2 * POLY * 4] };
            let bytes = encode(Tag::EncryptedAnswer, &w, usize::MAX).unwrap();
            assert!(EncryptedAnswer::from_bytes(&bytes, 1 << 20).is_err(), "count {count}");
        }
        let ok = AnswerWire { key_id: [1; 16], params: PARAMS_V1, count: POLY as u64, coeffs: vec![0; 2 * POLY * 4] };
        let bytes = encode(Tag::EncryptedAnswer, &ok, usize::MAX).unwrap();
        assert_eq!(EncryptedAnswer::from_bytes(&bytes, 1 << 20).unwrap().count, POLY);
    }
}

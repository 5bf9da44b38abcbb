//! The envelope every wire object travels in: a 4-byte header (magic,
//! version, type tag) followed by the bincode body, decoded under a limit.

use bincode::Options;
use serde::{de::DeserializeOwned, Serialize};

/// Current wire version. A node refuses objects of any other version.
pub const WIRE_VERSION: u8 = 1;
const MAGIC: [u8; 2] = *b"VG";
const HEADER: usize = 4;

/// What kind of object follows the header. Decoding with the wrong tag fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Tag {
    Gossip = 1,
    Request = 2,
    Response = 3,
    Roster = 4,
    /// Signed bytes of a body (not sent alone; only hashed and signed).
    Body = 5,
    /// Records sealed at rest by a node (never sent).
    Stored = 6,
    /// An encrypted (GLWE) probe.
    EncryptedProbe = 7,
    /// An encrypted (GLWE) answer.
    EncryptedAnswer = 8,
    /// An encrypted probe in row form (what alerts carry).
    RowProbe = 9,
    /// An answer to a row-form probe.
    RowAnswer = 10,
    /// Answers to a row-form probe, one per confidence band's threshold.
    RowBands = 11,
    /// A probe of some of a multi-finger extractor's parts (fingers).
    PartsProbe = 12,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    #[error("object of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge { len: usize, limit: usize },
    #[error("object is truncated: {len} bytes, header needs {HEADER}")]
    Truncated { len: usize },
    #[error("not a Vigil object (bad magic bytes)")]
    BadMagic,
    #[error("unsupported wire version {found} (this node speaks version {WIRE_VERSION})")]
    Version { found: u8 },
    #[error("wrong object type: expected tag {expected}, found {found}")]
    WrongTag { expected: u8, found: u8 },
    #[error("malformed body: {0}")]
    Malformed(String),
    #[error("invalid field: {0}")]
    Invalid(String),
    /// The body decodes, but is not the encoding the value encodes to
    /// (a varint longer than it needs to be): each value has one encoding,
    /// so every node computes ids, hashes and signatures over the same bytes.
    #[error("non-canonical encoding (a varint longer than needed)")]
    NonCanonical,
}

fn options(limit: usize) -> impl Options {
    bincode::DefaultOptions::new()
        .with_limit(limit as u64)
        .with_little_endian()
        .with_varint_encoding()
        .reject_trailing_bytes()
}

/// Encodes `value` with its header. Encoding a value larger than `limit`
/// is an error, so a node never sends what its peers must refuse.
pub fn encode<T: Serialize>(tag: Tag, value: &T, limit: usize) -> Result<Vec<u8>, WireError> {
    let body = options(limit).serialize(value).map_err(|e| WireError::Malformed(e.to_string()))?;
    let len = HEADER + body.len();
    if len > limit {
        return Err(WireError::TooLarge { len, limit });
    }
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&MAGIC);
    out.push(WIRE_VERSION);
    out.push(tag as u8);
    out.extend_from_slice(&body);
    Ok(out)
}

/// The type tag of an encoded object, read from its header (`None`: not a
/// Vigil object of this version, or an unknown tag). Decoding still checks
/// everything; this only says which decoder to try.
pub fn tag_of(bytes: &[u8]) -> Option<Tag> {
    if bytes.len() < HEADER || bytes[..2] != MAGIC || bytes[2] != WIRE_VERSION {
        return None;
    }
    use Tag::*;
    [
        Gossip,
        Request,
        Response,
        Roster,
        Body,
        Stored,
        EncryptedProbe,
        EncryptedAnswer,
        RowProbe,
        RowAnswer,
        RowBands,
        PartsProbe,
    ]
    .into_iter()
    .find(|t| *t as u8 == bytes[3])
}

/// Decodes an object of type `tag` from `bytes`, refusing anything over
/// `limit`, of another version or type, with trailing bytes, or (for what
/// crosses the wire: every tag but `Stored`, which only this node writes)
/// not in its canonical encoding.
pub fn decode<T: DeserializeOwned + Serialize>(tag: Tag, bytes: &[u8], limit: usize) -> Result<T, WireError> {
    if bytes.len() > limit {
        return Err(WireError::TooLarge { len: bytes.len(), limit });
    }
    if bytes.len() < HEADER {
        return Err(WireError::Truncated { len: bytes.len() });
    }
    if bytes[..2] != MAGIC {
        return Err(WireError::BadMagic);
    }
    if bytes[2] != WIRE_VERSION {
        return Err(WireError::Version { found: bytes[2] });
    }
    if bytes[3] != tag as u8 {
        return Err(WireError::WrongTag { expected: tag as u8, found: bytes[3] });
    }
    let value: T = options(limit).deserialize(&bytes[HEADER..]).map_err(|e| WireError::Malformed(e.to_string()))?;
    if tag != Tag::Stored {
        let again = options(limit).serialize(&value).map_err(|e| WireError::Malformed(e.to_string()))?;
        if again != bytes[HEADER..] {
            return Err(WireError::NonCanonical);
        }
    }
    Ok(value)
}

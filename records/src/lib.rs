//! Standard fingerprint records read into one minutiae model: ISO/IEC
//! 19794-2:2005 and ANSI INCITS 378-2004 finger minutiae records, and
//! ANSI/NIST-ITL 1-2011 transactions in traditional encoding (Type-9
//! minutiae used, image records carried through unread).
//!
//! `sniff` tells the formats apart by content; `decode` reads any of them.
//! Every decoder checks sizes, versions and lengths and names the byte or
//! field where a record is truncated or inconsistent.

mod an2k;
mod fmr;

pub use an2k::{write_an2k, An2kFinger, AN2K_HEIGHT_MM};
pub use fmr::{write_fmr, FmrFlavour};

use serde::{Deserialize, Serialize};

/// Largest ISO or ANSI finger minutiae record accepted (the formats allow
/// 255 views of 255 minutiae, about 400 KB).
pub const MAX_FMR_BYTES: usize = 1 << 20;
/// Largest ANSI/NIST-ITL transaction accepted, images included.
pub const MAX_AN2K_BYTES: usize = 32 << 20;
/// Most finger views kept from one record.
pub const MAX_VIEWS: usize = 255;

/// The standard a record was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// ISO/IEC 19794-2:2005 finger minutiae record ("FMR\0", " 20\0").
    Iso19794_2_2005,
    /// ANSI INCITS 378-2004 finger minutiae record.
    Ansi378_2004,
    /// ANSI/NIST-ITL 1-2011 (or 2000–2015) transaction, traditional encoding.
    AnsiNistItl,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Iso19794_2_2005 => "ISO/IEC 19794-2:2005",
            Format::Ansi378_2004 => "ANSI INCITS 378-2004",
            Format::AnsiNistItl => "ANSI/NIST-ITL",
        })
    }
}

/// What a template file is, judged by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A Vigil JSON template file (starts with `{` after whitespace).
    Json,
    Record(Format),
    Unknown,
}

/// Minutia type as the standards code it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MinutiaKind {
    Other,
    RidgeEnding,
    Bifurcation,
}

/// One minutia in a format-independent frame: millimetres from the image's
/// upper-left corner (y downward; ANSI/NIST Type-9 coordinates, measured
/// upward, are negated), angle in degrees counterclockwise from the x axis.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Minutia {
    pub x_mm: f32,
    pub y_mm: f32,
    pub angle_deg: f32,
    pub kind: MinutiaKind,
    /// 0–100 (ANSI/NIST 0–63 qualities are rescaled); 0 when not reported.
    pub quality: u8,
}

/// The minutiae of one impression of one finger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FingerView {
    /// Finger position code: 0 unknown, 1–10 right thumb to left little.
    pub position: u8,
    pub view: u8,
    /// Impression type code (0 live-scan plain, 1 rolled, …).
    pub impression: u8,
    /// Finger quality, 0–100.
    pub quality: u8,
    pub minutiae: Vec<Minutia>,
}

/// An image record carried in a transaction and not decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Carried {
    pub record_type: u32,
    pub idc: u32,
    pub bytes: usize,
}

/// A decoded record: its finger views and what was carried unread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub format: Format,
    pub views: Vec<FingerView>,
    pub carried: Vec<Carried>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    #[error("{format} record is {size} bytes, the limit is {limit}")]
    TooLarge { format: Format, size: usize, limit: usize },
    #[error(
        "not a template file Vigil reads: neither JSON nor an ISO/IEC 19794-2, ANSI INCITS 378 or ANSI/NIST-ITL record"
    )]
    Unknown,
    #[error("{format} record truncated: {what} needs {need} bytes at offset {at}, {left} left")]
    Truncated { format: Format, what: String, at: usize, need: usize, left: usize },
    #[error("{format} record: {reason}")]
    Invalid { format: Format, reason: String },
    #[error("{format} version {found:?} is not read (reads {reads})")]
    Version { format: Format, found: String, reads: &'static str },
    #[error("{format} record has no finger minutiae (image records are carried but not read)")]
    NoMinutiae { format: Format },
}

impl Record {
    /// Checks a record that did not come from `decode` (minutiae a client
    /// decoded and sent as JSON) against the same bounds the decoders keep.
    pub fn check(&self) -> Result<(), RecordError> {
        let bad = |reason: String| Err(RecordError::Invalid { format: self.format, reason });
        if self.views.len() > MAX_VIEWS || self.carried.len() > 1000 {
            return bad(format!("more than {MAX_VIEWS} finger views or 1000 carried records"));
        }
        for (i, v) in self.views.iter().enumerate() {
            if v.position > 10 || v.minutiae.len() > 255 || v.quality > 100 {
                return bad(format!("view {}: position 0–10, at most 255 minutiae, quality 0–100", i + 1));
            }
            let ok = |m: &Minutia| {
                [m.x_mm, m.y_mm].iter().all(|c| c.is_finite() && c.abs() <= 1000.0)
                    && m.angle_deg.is_finite()
                    && (0.0..=360.0).contains(&m.angle_deg)
                    && m.quality <= 100
            };
            if let Some(k) = v.minutiae.iter().position(|m| !ok(m)) {
                return bad(format!(
                    "view {} minutia {}: coordinates within ±1000 mm, angle 0–360, quality 0–100",
                    i + 1,
                    k + 1
                ));
            }
        }
        if self.views.iter().all(|v| v.minutiae.is_empty()) {
            return Err(RecordError::NoMinutiae { format: self.format });
        }
        Ok(())
    }
}

/// Tells the formats apart by content.
pub fn sniff(bytes: &[u8]) -> Kind {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace()).map_or(&[][..], |i| &bytes[i..]);
    if start.first() == Some(&b'{') {
        return Kind::Json;
    }
    if bytes.starts_with(b"FMR\0") {
        return Kind::Record(fmr::flavour(bytes));
    }
    if bytes.starts_with(b"1.001:") {
        return Kind::Record(Format::AnsiNistItl);
    }
    Kind::Unknown
}

/// Decodes any of the standard records; `Unknown` for JSON or anything else.
pub fn decode(bytes: &[u8]) -> Result<Record, RecordError> {
    let record = match sniff(bytes) {
        Kind::Record(Format::AnsiNistItl) => an2k::decode(bytes)?,
        Kind::Record(f) => fmr::decode(bytes, f)?,
        _ => return Err(RecordError::Unknown),
    };
    if record.views.iter().all(|v| v.minutiae.is_empty()) {
        return Err(RecordError::NoMinutiae { format: record.format });
    }
    Ok(record)
}

/// A bounds-checked big-endian reader that names what it reads.
struct Reader<'a> {
    format: Format,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(format: Format, bytes: &'a [u8]) -> Self {
        Self { format, bytes, at: 0 }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], RecordError> {
        let left = self.bytes.len() - self.at;
        if n > left {
            return Err(RecordError::Truncated { format: self.format, what: what.into(), at: self.at, need: n, left });
        }
        let s = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }

    fn u8(&mut self, what: &str) -> Result<u8, RecordError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16, RecordError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &str) -> Result<u32, RecordError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn invalid(&self, reason: impl Into<String>) -> RecordError {
        RecordError::Invalid { format: self.format, reason: reason.into() }
    }
}

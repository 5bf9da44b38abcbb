//! ANSI/NIST-ITL transactions in traditional encoding (versions 0300 to
//! 0502; 1-2011 is 0500). Type-1 is read first and its CNT field drives the
//! walk; Type-2 is read and kept out of the template; Type-9 minutiae are
//! used, from the legacy fields (9.006 finger position, 9.012 minutiae in
//! 0.01 mm with the origin at the lower left, θ pointing the opposite way
//! to ISO's: NIST's biomdi converts with θ = ISO angle + 180°) or the INCITS 378 block
//! (9.128–9.137, pixels from the upper left); binary Types 3–8 and tagged
//! image records (10, 13, 14, 15, …) are skipped by their length, unread.

use crate::{Carried, FingerView, Format, Minutia, MinutiaKind, Record, RecordError, MAX_AN2K_BYTES, MAX_VIEWS};

const F: Format = Format::AnsiNistItl;
const FS: u8 = 0x1c;
const GS: u8 = 0x1d;
const RS: u8 = 0x1e;
const US: u8 = 0x1f;
const VERSIONS: &[&str] = &["0300", "0400", "0500", "0501", "0502"];
/// The image height `write_an2k` assumes when it turns y (measured down)
/// into Type-9's y measured up from the lower edge.
pub const AN2K_HEIGHT_MM: f32 = 40.0;
/// Most logical records in one transaction.
const MAX_RECORDS: usize = 1000;

fn invalid(reason: impl Into<String>) -> RecordError {
    RecordError::Invalid { format: F, reason: reason.into() }
}

/// One tagged record's fields: (field number, value bytes).
struct Tagged<'a> {
    record_type: u32,
    fields: Vec<(u32, &'a [u8])>,
}

impl<'a> Tagged<'a> {
    fn get(&self, n: u32) -> Option<&'a [u8]> {
        self.fields.iter().find(|(f, _)| *f == n).map(|(_, v)| *v)
    }

    fn text(&self, n: u32) -> Result<Option<&'a str>, RecordError> {
        self.get(n)
            .map(|v| {
                std::str::from_utf8(v).map_err(|_| invalid(format!("field {}.{n:03} is not text", self.record_type)))
            })
            .transpose()
    }

    fn number(&self, n: u32) -> Result<Option<u32>, RecordError> {
        self.text(n)?
            .map(|t| {
                t.trim()
                    .parse::<u32>()
                    .map_err(|_| invalid(format!("field {}.{n:03} is not a number: {t:?}", self.record_type)))
            })
            .transpose()
    }
}

/// The length a record's first field announces (the whole record, its
/// separators included), checked against what is left.
fn tagged_len(bytes: &[u8], at: usize, expected_type: u32) -> Result<usize, RecordError> {
    let rest = &bytes[at..];
    let colon = rest
        .iter()
        .take(16)
        .position(|b| *b == b':')
        .ok_or_else(|| invalid(format!("record at offset {at} does not start with a tag")))?;
    let tag = std::str::from_utf8(&rest[..colon]).unwrap_or("");
    let (t, f) = tag.split_once('.').ok_or_else(|| invalid(format!("record at offset {at}: bad tag {tag:?}")))?;
    if t.parse::<u32>().ok() != Some(expected_type) || f.parse::<u32>().ok() != Some(1) {
        return Err(invalid(format!(
            "record at offset {at} starts with {tag:?}, the Type-1 CNT field announced a Type-{expected_type} (field .001 first)"
        )));
    }
    let digits: Vec<u8> = rest[colon + 1..].iter().take(12).take_while(|b| b.is_ascii_digit()).copied().collect();
    let len: usize = std::str::from_utf8(&digits)
        .ok()
        .and_then(|d| d.parse().ok())
        .ok_or_else(|| invalid(format!("Type-{expected_type} record at offset {at}: LEN is not a number")))?;
    if len > rest.len() {
        return Err(RecordError::Truncated {
            format: F,
            what: format!("the Type-{expected_type} record's LEN"),
            at,
            need: len,
            left: rest.len(),
        });
    }
    if len < colon + 2 || rest[len - 1] != FS {
        return Err(invalid(format!(
            "Type-{expected_type} record at offset {at}: {len} bytes do not end with a file separator"
        )));
    }
    Ok(len)
}

/// Splits a tagged record into fields; a 999 field (image data) runs to the end.
fn tagged(bytes: &[u8], record_type: u32) -> Result<Tagged<'_>, RecordError> {
    let body = &bytes[..bytes.len() - 1];
    let mut fields = Vec::new();
    let mut at = 0;
    while at < body.len() {
        let colon = body[at..]
            .iter()
            .take(16)
            .position(|b| *b == b':')
            .ok_or_else(|| invalid(format!("Type-{record_type} record: no tag at byte {at}")))?;
        let tag = std::str::from_utf8(&body[at..at + colon]).unwrap_or("");
        let field = tag
            .split_once('.')
            .filter(|(t, _)| t.parse::<u32>().ok() == Some(record_type))
            .and_then(|(_, f)| f.parse::<u32>().ok())
            .ok_or_else(|| invalid(format!("Type-{record_type} record: bad tag {tag:?} at byte {at}")))?;
        let start = at + colon + 1;
        let end = if field == 999 {
            body.len()
        } else {
            body[start..].iter().position(|b| *b == GS).map_or(body.len(), |i| start + i)
        };
        if fields.iter().any(|(f, _)| *f == field) {
            return Err(invalid(format!("field {record_type}.{field:03} appears twice")));
        }
        fields.push((field, &body[start..end]));
        at = end + 1;
    }
    Ok(Tagged { record_type, fields })
}

fn split(v: &[u8], sep: u8) -> impl Iterator<Item = &[u8]> {
    v.split(move |b| *b == sep)
}

pub(crate) fn decode(bytes: &[u8]) -> Result<Record, RecordError> {
    if bytes.len() > MAX_AN2K_BYTES {
        return Err(RecordError::TooLarge { format: F, size: bytes.len(), limit: MAX_AN2K_BYTES });
    }
    let len1 = tagged_len(bytes, 0, 1)?;
    let t1 = tagged(&bytes[..len1], 1)?;
    let ver = t1.text(2)?.ok_or_else(|| invalid("Type-1 has no version (1.002 VER)"))?;
    if !VERSIONS.contains(&ver) {
        return Err(RecordError::Version {
            format: F,
            found: ver.into(),
            reads: "0300, 0400, 0500 (1-2011), 0501, 0502",
        });
    }
    let cnt = t1.get(3).ok_or_else(|| invalid("Type-1 has no content field (1.003 CNT)"))?;
    let mut entries = split(cnt, RS).map(|s| {
        let mut items = split(s, US).map(|i| std::str::from_utf8(i).ok().and_then(|t| t.trim().parse::<u32>().ok()));
        match (items.next().flatten(), items.next().flatten()) {
            (Some(a), Some(b)) => Ok((a, b)),
            _ => Err(invalid("1.003 CNT has a subfield that is not two numbers")),
        }
    });
    let (first, count) = entries.next().ok_or_else(|| invalid("1.003 CNT is empty"))??;
    let listed: Vec<(u32, u32)> = entries.collect::<Result<_, _>>()?;
    if first != 1 || count as usize != listed.len() || listed.len() > MAX_RECORDS {
        return Err(invalid(format!(
            "1.003 CNT announces {count} records and lists {} (limit {MAX_RECORDS})",
            listed.len()
        )));
    }
    let mut at = len1;
    let mut views = Vec::new();
    let mut carried = Vec::new();
    for (record_type, idc) in listed {
        if at >= bytes.len() {
            return Err(RecordError::Truncated {
                format: F,
                what: format!("the Type-{record_type} record CNT lists"),
                at,
                need: 1,
                left: 0,
            });
        }
        let len = match record_type {
            3..=8 => {
                let b = bytes.get(at..at + 4).ok_or_else(|| RecordError::Truncated {
                    format: F,
                    what: format!("the Type-{record_type} record length"),
                    at,
                    need: 4,
                    left: bytes.len() - at,
                })?;
                let len = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
                if len < 5 || len > bytes.len() - at {
                    return Err(RecordError::Truncated {
                        format: F,
                        what: format!("the binary Type-{record_type} record"),
                        at,
                        need: len,
                        left: bytes.len() - at,
                    });
                }
                carried.push(Carried { record_type, idc, bytes: len });
                len
            }
            1 => return Err(invalid("1.003 CNT lists a second Type-1 record")),
            _ => {
                let len = tagged_len(bytes, at, record_type)?;
                let rec = &bytes[at..at + len];
                match record_type {
                    2 => {
                        tagged(rec, 2)?;
                    }
                    9 => {
                        let v = type9(&tagged(rec, 9)?)?;
                        if views.len() + v.len() > MAX_VIEWS {
                            return Err(invalid(format!("more than {MAX_VIEWS} finger views")));
                        }
                        views.extend(v);
                    }
                    _ => carried.push(Carried { record_type, idc, bytes: len }),
                }
                len
            }
        };
        at += len;
    }
    if at != bytes.len() {
        return Err(invalid(format!("{} bytes follow the last record CNT lists", bytes.len() - at)));
    }
    Ok(Record { format: F, views, carried })
}

/// The finger views of one Type-9 record.
fn type9(t: &Tagged<'_>) -> Result<Vec<FingerView>, RecordError> {
    let impression = t.number(3)?.unwrap_or(0).min(255) as u8;
    if let Some(mrc) = t.get(12) {
        let position = legacy_position(t)?;
        let minutiae =
            split(mrc, RS).enumerate().map(|(i, s)| legacy_minutia(i + 1, s)).collect::<Result<Vec<_>, _>>()?;
        check_count(t, 10, minutiae.len())?;
        return Ok(vec![FingerView { position, view: 0, impression, quality: 0, minutiae }]);
    }
    if let Some(fmd) = t.get(137) {
        let num = |n: u32, what: &str| {
            t.number(n)?.ok_or_else(|| invalid(format!("Type-9 has 9.137 minutiae but no {what} (9.{n:03})")))
        };
        let (slc, hps, vps) =
            (num(130, "scale units")?, num(131, "horizontal pixel scale")?, num(132, "vertical pixel scale")?);
        let ppmm = |s: u32| match slc {
            1 => Ok(s as f32 / 25.4),
            2 => Ok(s as f32 / 10.0),
            _ => Err(invalid(format!("9.130 scale units {slc} give no physical resolution (1 ppi, 2 ppcm)"))),
        };
        let (px, py) = (ppmm(hps)?, ppmm(vps)?);
        if !(2.0..=400.0).contains(&px) || !(2.0..=400.0).contains(&py) {
            return Err(invalid(format!("9.131/9.132 resolution {hps}×{vps} is out of range")));
        }
        let position = t.number(134)?.unwrap_or(0);
        if position > 10 {
            return Err(invalid(format!("9.134 finger position {position} is not 0–10")));
        }
        let quality = t.number(135)?.map(|q| q.min(100) as u8).unwrap_or(0);
        let minutiae =
            split(fmd, RS).enumerate().map(|(i, s)| incits_minutia(i + 1, s, px, py)).collect::<Result<Vec<_>, _>>()?;
        check_count(t, 136, minutiae.len())?;
        return Ok(vec![FingerView { position: position as u8, view: 0, impression, quality, minutiae }]);
    }
    Ok(Vec::new())
}

fn check_count(t: &Tagged<'_>, field: u32, found: usize) -> Result<(), RecordError> {
    match t.number(field)? {
        Some(n) if n as usize != found => {
            Err(invalid(format!("9.{field:03} says {n} minutiae, the record lists {found}")))
        }
        _ if found > 255 => Err(invalid(format!("{found} minutiae in one Type-9 record (limit 255)"))),
        _ => Ok(()),
    }
}

/// 9.006 FGP: the first finger position listed (255 unknown → 0).
fn legacy_position(t: &Tagged<'_>) -> Result<u8, RecordError> {
    let Some(text) = t.text(6)? else { return Ok(0) };
    let first = text.split(['\x1e', '\x1f']).next().unwrap_or("").trim();
    match first.parse::<u32>() {
        Ok(p @ 0..=10) => Ok(p as u8),
        Ok(255) => Ok(0),
        _ => Err(invalid(format!("9.006 finger position {first:?} is not 0–10 or 255"))),
    }
}

fn items(s: &[u8], field: &str, i: usize) -> Result<Vec<String>, RecordError> {
    split(s, US)
        .map(|x| std::str::from_utf8(x).map(|t| t.trim().to_string()))
        .collect::<Result<_, _>>()
        .map_err(|_| invalid(format!("{field} minutia {i} is not text")))
}

/// "index US XXXXYYYYTTT US quality US type [US ridge counts]".
fn legacy_minutia(i: usize, s: &[u8]) -> Result<Minutia, RecordError> {
    let it = items(s, "9.012", i)?;
    let bad = |why: &str| invalid(format!("9.012 minutia {i}: {why}"));
    if it.len() < 2 {
        return Err(bad("needs an index and XXXXYYYYTTT"));
    }
    let xyt = &it[1];
    if xyt.len() != 11 || !xyt.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(&format!("{xyt:?} is not 11 digits XXXXYYYYTTT")));
    }
    let n = |r: std::ops::Range<usize>| xyt[r].parse::<u32>().unwrap_or(0);
    let theta = n(8..11);
    if theta > 359 {
        return Err(bad(&format!("angle {theta} is above 359")));
    }
    let quality = it.get(2).and_then(|q| q.parse::<u32>().ok()).unwrap_or(0).min(100) as u8;
    let kind = match it.get(3).map(String::as_str) {
        Some("A") => MinutiaKind::RidgeEnding,
        Some("B") => MinutiaKind::Bifurcation,
        _ => MinutiaKind::Other,
    };
    Ok(Minutia {
        x_mm: n(0..4) as f32 / 100.0,
        y_mm: -(n(4..8) as f32) / 100.0,
        angle_deg: ((theta + 180) % 360) as f32,
        kind,
        quality,
    })
}

/// "index US x US y US theta(2°) US type US quality", pixels from the upper left.
fn incits_minutia(i: usize, s: &[u8], px: f32, py: f32) -> Result<Minutia, RecordError> {
    let it = items(s, "9.137", i)?;
    let v: Vec<u32> = it
        .iter()
        .map(|x| x.parse::<u32>())
        .collect::<Result<_, _>>()
        .map_err(|_| invalid(format!("9.137 minutia {i}: items are not numbers")))?;
    if v.len() != 6 || v[3] > 179 || v[4] > 2 || v[1] > 0x3fff || v[2] > 0x3fff {
        return Err(invalid(format!("9.137 minutia {i}: needs index, x, y, theta 0–179, type 0–2, quality")));
    }
    let kind = [MinutiaKind::Other, MinutiaKind::RidgeEnding, MinutiaKind::Bifurcation][v[4] as usize];
    Ok(Minutia {
        x_mm: v[1] as f32 / px,
        y_mm: v[2] as f32 / py,
        angle_deg: v[3] as f32 * 2.0,
        kind,
        quality: v[5].min(100) as u8,
    })
}

/// One finger for `write_an2k`: its position and minutiae.
#[derive(Debug, Clone)]
pub struct An2kFinger<'a> {
    pub position: u8,
    pub minutiae: &'a [Minutia],
}

/// A tagged record from its fields; LEN (field 1) is computed.
fn record(record_type: u32, fields: &[(u32, Vec<u8>)]) -> Vec<u8> {
    let rest: Vec<u8> = fields
        .iter()
        .flat_map(|(f, v)| {
            let mut b = vec![GS];
            b.extend(format!("{record_type}.{f:03}:").into_bytes());
            b.extend(v);
            b
        })
        .collect();
    let head = |len: usize| format!("{record_type}.001:{len}");
    let mut len = head(0).len() + rest.len() + 1;
    while head(len).len() + rest.len() + 1 != len {
        len = head(len).len() + rest.len() + 1;
    }
    let mut out = head(len).into_bytes();
    out.extend(rest);
    out.push(FS);
    out
}

/// Writes a version 0500 transaction: Type-1, a Type-2, one legacy Type-9
/// per finger, and `images` opaque Type-14 records (for tests and fixtures).
pub fn write_an2k(fingers: &[An2kFinger<'_>], images: &[&[u8]]) -> Vec<u8> {
    let mut cnt = format!("1\x1f{}", 1 + fingers.len() + images.len());
    cnt.push_str("\x1e2\x1f0");
    (0..fingers.len()).for_each(|i| cnt.push_str(&format!("\x1e9\x1f{}", i + 1)));
    (0..images.len()).for_each(|i| cnt.push_str(&format!("\x1e14\x1f{}", i + 1)));
    let t = |s: &str| s.as_bytes().to_vec();
    let mut out = record(
        1,
        &[
            (2, t("0500")),
            (3, cnt.into_bytes()),
            (4, t("CAR")),
            (5, t("20261203")),
            (7, t("VIGIL")),
            (8, t("VIGIL")),
            (9, t("T1")),
            (11, t("19.69")),
            (12, t("19.69")),
        ],
    );
    out.extend(record(2, &[(2, t("0"))]));
    for (i, f) in fingers.iter().enumerate() {
        let mrc: Vec<String> = f
            .minutiae
            .iter()
            .enumerate()
            .map(|(k, m)| {
                let kind = match m.kind {
                    MinutiaKind::RidgeEnding => "A",
                    MinutiaKind::Bifurcation => "B",
                    MinutiaKind::Other => "D",
                };
                let x = (m.x_mm * 100.0).round().clamp(0.0, 9999.0) as u32;
                let y = ((AN2K_HEIGHT_MM - m.y_mm) * 100.0).round().clamp(0.0, 9999.0) as u32;
                let a = (m.angle_deg.rem_euclid(360.0).round() as u32 + 180) % 360;
                format!("{:03}\x1f{x:04}{y:04}{a:03}\x1f{}\x1f{kind}", k + 1, m.quality.min(63))
            })
            .collect();
        out.extend(record(
            9,
            &[
                (2, t(&(i + 1).to_string())),
                (3, t("0")),
                (4, t("S")),
                (5, t("U")),
                (6, t(&f.position.to_string())),
                (10, t(&f.minutiae.len().to_string())),
                (11, t("0")),
                (12, mrc.join("\x1e").into_bytes()),
            ],
        ));
    }
    for (i, img) in images.iter().enumerate() {
        out.extend(record(14, &[(2, t(&(i + 1).to_string())), (999, img.to_vec())]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode as decode_any, sniff, Kind};

    fn minutiae() -> Vec<Minutia> {
        (0..12)
            .map(|i| Minutia {
                x_mm: 2.0 + i as f32 * 0.7,
                y_mm: 3.0 + i as f32 * 0.4,
                angle_deg: (i * 29 % 360) as f32,
                kind: if i % 2 == 0 { MinutiaKind::RidgeEnding } else { MinutiaKind::Bifurcation },
                quality: 40,
            })
            .collect()
    }

    #[test]
    fn a_transaction_with_images_round_trips() {
        let m = minutiae();
        // Image bytes that contain every separator must be skipped, not parsed.
        let image: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
        let bytes = write_an2k(
            &[An2kFinger { position: 2, minutiae: &m }, An2kFinger { position: 7, minutiae: &m[..5] }],
            &[&image],
        );
        assert_eq!(sniff(&bytes), Kind::Record(Format::AnsiNistItl));
        let r = decode_any(&bytes).unwrap();
        assert_eq!(r.views.iter().map(|v| (v.position, v.minutiae.len())).collect::<Vec<_>>(), [(2, 12), (7, 5)]);
        assert_eq!(r.carried, [Carried { record_type: 14, idc: 1, bytes: r.carried[0].bytes }]);
        let (a, b) = (m[3], r.views[0].minutiae[3]);
        // Type-9 measures y up from an edge the record does not give: the
        // decoded frame is the written one moved by the assumed height.
        assert!((a.x_mm - b.x_mm).abs() < 0.006 && (a.y_mm - AN2K_HEIGHT_MM - b.y_mm).abs() < 0.006);
        assert_eq!(a.angle_deg, b.angle_deg);
        assert_eq!(b.kind, MinutiaKind::Bifurcation);
    }

    #[test]
    fn damaged_transactions_say_what() {
        let m = minutiae();
        let bytes = write_an2k(&[An2kFinger { position: 2, minutiae: &m }], &[]);
        let e = decode_any(&bytes[..bytes.len() - 10]).unwrap_err();
        assert!(matches!(e, RecordError::Truncated { .. }), "{e}");
        let v = String::from_utf8_lossy(&bytes).replace("1.002:0500", "1.002:0200");
        assert!(matches!(decode_any(v.as_bytes()).unwrap_err(), RecordError::Version { .. }));
        let count = String::from_utf8_lossy(&bytes).replace("9.010:12", "9.010:13");
        assert!(decode_any(count.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("9.010 says 13 minutiae, the record lists 12"));
        let xyt = String::from_utf8_lossy(&bytes).replacen("\x1f0200", "\x1f02x0", 1);
        assert!(decode_any(xyt.as_bytes()).unwrap_err().to_string().contains("is not 11 digits"));
        let mut extra = bytes.clone();
        extra.extend(b"junk");
        assert!(decode_any(&extra).unwrap_err().to_string().contains("4 bytes follow the last record"));
        let no_minutiae = write_an2k(&[], &[b"img"]);
        assert!(matches!(decode_any(&no_minutiae).unwrap_err(), RecordError::NoMinutiae { .. }));
    }
}

//! ISO/IEC 19794-2:2005 and ANSI INCITS 378-2004 finger minutiae records.
//! Both start "FMR\0 20\0"; they differ in the length field (ISO: 4 bytes;
//! ANSI: 2, or 0 then 4), ANSI's CBEFF product id, and the angle unit
//! (ISO 360/256 degrees, ANSI 2 degrees). Coordinates are pixels from the
//! upper-left corner at the record's resolution in pixels per centimetre.

use crate::{FingerView, Format, Minutia, MinutiaKind, Reader, Record, RecordError, MAX_FMR_BYTES};

const MAGIC: &[u8; 8] = b"FMR\0 20\0";
const ISO_HEADER: usize = 24;
const ANSI_HEADER: usize = 26;
/// Pixels per centimetre accepted: 127 to 10,160 ppi.
const RESOLUTION: std::ops::RangeInclusive<u16> = 50..=4000;

/// Which of the two "FMR" formats a record is, from its length field (the
/// rule FingerprintIO and NIST's biomdi apply).
pub(crate) fn flavour(bytes: &[u8]) -> Format {
    let u16_at = |i: usize| bytes.get(i..i + 2).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    match u16_at(8) {
        n if n as usize >= ANSI_HEADER => Format::Ansi378_2004,
        0 if (u16_at(10) as usize) < ISO_HEADER && bytes.len() >= 14 => Format::Ansi378_2004,
        _ => Format::Iso19794_2_2005,
    }
}

pub(crate) fn decode(bytes: &[u8], format: Format) -> Result<Record, RecordError> {
    if bytes.len() > MAX_FMR_BYTES {
        return Err(RecordError::TooLarge { format, size: bytes.len(), limit: MAX_FMR_BYTES });
    }
    let mut r = Reader::new(format, bytes);
    if r.take(8, "format identifier and version")? != MAGIC {
        let v = String::from_utf8_lossy(&bytes[4..8]).trim_matches(['\0', ' ']).to_string();
        return Err(RecordError::Version { format, found: v, reads: "\" 20\" (2005 / 2004)" });
    }
    let (length, header) = match format {
        Format::Ansi378_2004 => match r.u16("record length")? {
            0 => (r.u32("record length (6-byte form)")? as usize, ANSI_HEADER + 4),
            n => (n as usize, ANSI_HEADER),
        },
        _ => (r.u32("record length")? as usize, ISO_HEADER),
    };
    if length < header {
        return Err(r.invalid(format!("record length {length} is below the {header}-byte header")));
    }
    if length != bytes.len() {
        if length > bytes.len() {
            let left = bytes.len() - r.at;
            return Err(RecordError::Truncated {
                format,
                what: format!("the {length} bytes the length field announces"),
                at: r.at,
                need: length - r.at,
                left,
            });
        }
        return Err(r.invalid(format!("length field says {length} bytes, the file has {}", bytes.len())));
    }
    if format == Format::Ansi378_2004 {
        r.take(4, "CBEFF product identifier")?;
    }
    r.u16("capture equipment")?;
    let width = r.u16("image width")?;
    let height = r.u16("image height")?;
    let res_x = r.u16("horizontal resolution")?;
    let res_y = r.u16("vertical resolution")?;
    if width == 0 || height == 0 {
        return Err(r.invalid(format!("image size {width}×{height} has a zero side")));
    }
    for res in [res_x, res_y] {
        if !RESOLUTION.contains(&res) {
            return Err(r.invalid(format!(
                "resolution {res} pixels/cm is outside {}..={}",
                RESOLUTION.start(),
                RESOLUTION.end()
            )));
        }
    }
    let count = r.u8("number of finger views")?;
    r.u8("reserved byte")?;
    let mut views = Vec::with_capacity(count as usize);
    for v in 0..count {
        views.push(view(&mut r, v as usize + 1, (width, height), (res_x, res_y))?);
    }
    if r.at != length {
        return Err(r.invalid(format!("{} bytes follow the last finger view", length - r.at)));
    }
    Ok(Record { format, views, carried: Vec::new() })
}

fn view(r: &mut Reader<'_>, n: usize, size: (u16, u16), res: (u16, u16)) -> Result<FingerView, RecordError> {
    let ansi = r.format == Format::Ansi378_2004;
    let position = r.u8(&format!("view {n} finger position"))?;
    if position > 10 {
        return Err(r.invalid(format!("view {n}: finger position {position} is not 0–10 (0 unknown)")));
    }
    let vi = r.u8(&format!("view {n} view number and impression type"))?;
    let quality = r.u8(&format!("view {n} finger quality"))?;
    if quality > 100 {
        return Err(r.invalid(format!("view {n}: finger quality {quality} is above 100")));
    }
    let count = r.u8(&format!("view {n} number of minutiae"))?;
    let mut minutiae = Vec::with_capacity(count as usize);
    for m in 1..=count as usize {
        let what = format!("view {n} minutia {m}");
        let xt = r.u16(&what)?;
        let y = r.u16(&what)? & 0x3fff;
        let angle = r.u8(&what)?;
        let q = r.u8(&what)?;
        let (x, kind) = (xt & 0x3fff, xt >> 14);
        if x >= size.0 || y >= size.1 {
            return Err(r.invalid(format!("{what} at ({x}, {y}) lies outside the {}×{} image", size.0, size.1)));
        }
        if ansi && angle > 179 {
            return Err(r.invalid(format!("{what}: angle {angle} is above 179 (2-degree units)")));
        }
        if q > 100 {
            return Err(r.invalid(format!("{what}: quality {q} is above 100")));
        }
        let kind = match kind {
            0 => MinutiaKind::Other,
            1 => MinutiaKind::RidgeEnding,
            2 => MinutiaKind::Bifurcation,
            _ => return Err(r.invalid(format!("{what}: minutia type code 3 is reserved"))),
        };
        minutiae.push(Minutia {
            x_mm: x as f32 * 10.0 / res.0 as f32,
            y_mm: y as f32 * 10.0 / res.1 as f32,
            angle_deg: if ansi { angle as f32 * 2.0 } else { angle as f32 * 360.0 / 256.0 },
            kind,
            quality: q,
        });
    }
    let ext = r.u16(&format!("view {n} extended data length"))?;
    r.take(ext as usize, &format!("view {n} extended data"))?;
    Ok(FingerView { position, view: vi >> 4, impression: vi & 0x0f, quality, minutiae })
}

/// Which "FMR" record `write_fmr` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FmrFlavour {
    Iso2005,
    Ansi2004,
}

/// Writes views as a finger minutiae record of an image `size` pixels at
/// `ppcm` pixels per centimetre (for tests, fixtures and exports).
pub fn write_fmr(flavour: FmrFlavour, size: (u16, u16), ppcm: u16, views: &[FingerView]) -> Vec<u8> {
    let ansi = flavour == FmrFlavour::Ansi2004;
    let body: usize = views.iter().map(|v| 6 + 6 * v.minutiae.len()).sum();
    let mut len = body + if ansi { ANSI_HEADER } else { ISO_HEADER };
    let mut out = MAGIC.to_vec();
    if ansi {
        if len < 0x10000 {
            out.extend((len as u16).to_be_bytes());
        } else {
            len += 4;
            out.extend([0, 0]);
            out.extend((len as u32).to_be_bytes());
        }
        out.extend([0, 0x0f, 0, 0]); // CBEFF product id: vendor 0x000f, type 0
    } else {
        out.extend((len as u32).to_be_bytes());
    }
    out.extend([0, 0]);
    for v in [size.0, size.1, ppcm, ppcm] {
        out.extend(v.to_be_bytes());
    }
    out.extend([views.len() as u8, 0]);
    let px = |mm: f32| ((mm * ppcm as f32 / 10.0).round().max(0.0) as u16).min(0x3fff);
    for v in views {
        out.extend([v.position, (v.view << 4) | (v.impression & 0x0f), v.quality, v.minutiae.len() as u8]);
        for m in &v.minutiae {
            let kind: u16 = match m.kind {
                MinutiaKind::Other => 0,
                MinutiaKind::RidgeEnding => 1,
                MinutiaKind::Bifurcation => 2,
            };
            let a = m.angle_deg.rem_euclid(360.0);
            let angle = if ansi {
                ((a / 2.0).round() as u32 % 180) as u8
            } else {
                ((a * 256.0 / 360.0).round() as u32 % 256) as u8
            };
            out.extend(((kind << 14) | px(m.x_mm).min(size.0 - 1)).to_be_bytes());
            out.extend(px(m.y_mm).min(size.1 - 1).to_be_bytes());
            out.extend([angle, m.quality]);
        }
        out.extend([0, 0]);
    }
    debug_assert_eq!(out.len(), len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode as decode_any, sniff, Kind};

    fn sample() -> Vec<FingerView> {
        let m = |x: f32, y: f32, a: f32| Minutia {
            x_mm: x,
            y_mm: y,
            angle_deg: a,
            kind: MinutiaKind::RidgeEnding,
            quality: 60,
        };
        vec![
            FingerView {
                position: 2,
                view: 0,
                impression: 0,
                quality: 80,
                minutiae: vec![m(1.0, 2.0, 90.0), m(5.5, 7.25, 358.0)],
            },
            FingerView { position: 7, view: 0, impression: 1, quality: 70, minutiae: vec![m(3.0, 4.0, 10.0)] },
        ]
    }

    #[test]
    fn both_flavours_round_trip_and_are_told_apart() {
        for (flavour, format) in
            [(FmrFlavour::Iso2005, Format::Iso19794_2_2005), (FmrFlavour::Ansi2004, Format::Ansi378_2004)]
        {
            let bytes = write_fmr(flavour, (400, 500), 197, &sample());
            assert_eq!(sniff(&bytes), Kind::Record(format));
            let r = decode_any(&bytes).unwrap();
            assert_eq!(r.format, format);
            assert_eq!(r.views.len(), 2);
            let m = r.views[0].minutiae[1];
            assert!((m.x_mm - 5.5).abs() < 0.06 && (m.y_mm - 7.25).abs() < 0.06, "{m:?}");
            assert!((m.angle_deg - 358.0).abs() <= 1.0, "{m:?}");
            assert_eq!((r.views[1].position, r.views[1].impression), (7, 1));
        }
    }

    #[test]
    fn truncated_and_inconsistent_records_say_where() {
        let bytes = write_fmr(FmrFlavour::Iso2005, (400, 500), 197, &sample());
        for cut in [9, 20, 30, bytes.len() - 1] {
            let e = decode_any(&bytes[..cut]).unwrap_err();
            assert!(matches!(e, RecordError::Truncated { .. } | RecordError::Invalid { .. }), "{cut}: {e}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(decode_any(&long).unwrap_err().to_string().contains("length field says"));
        let mut v = bytes.clone();
        v[5] = b'3';
        assert!(matches!(decode_any(&v).unwrap_err(), RecordError::Version { .. }));
        let mut outside = bytes.clone();
        outside[ISO_HEADER + 4..ISO_HEADER + 6].copy_from_slice(&((1 << 14) | 450u16).to_be_bytes());
        assert!(decode_any(&outside).unwrap_err().to_string().contains("lies outside the 400×500 image"));
        let mut res = bytes;
        res[18] = 0;
        res[19] = 10;
        assert!(decode_any(&res).unwrap_err().to_string().contains("resolution 10 pixels/cm"));
    }

    #[test]
    fn ansi_long_length_form_reads() {
        let m = Minutia { x_mm: 1.0, y_mm: 1.0, angle_deg: 0.0, kind: MinutiaKind::Bifurcation, quality: 1 };
        let views: Vec<FingerView> = (0..50)
            .map(|i| FingerView {
                position: 1 + (i % 10) as u8,
                view: (i / 10) as u8,
                impression: 0,
                quality: 50,
                minutiae: vec![m; 230],
            })
            .collect();
        let bytes = write_fmr(FmrFlavour::Ansi2004, (400, 500), 197, &views);
        assert!(bytes.len() > 0x10000 && bytes[8..10] == [0, 0]);
        assert_eq!(decode_any(&bytes).unwrap().views.len(), 50);
    }
}

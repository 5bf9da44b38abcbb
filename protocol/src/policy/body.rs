//! A policy document's signed body and its binary formats: format 1, byte
//! for byte what policies were before liveness rules existed; format 2,
//! marked where format 1 has the federation name's length, with liveness
//! rules; format 3, also with thresholds by shared finger count.

use super::Policy;
use crate::pad::Liveness;
use serde::{Deserialize, Serialize};

/// The signed content of a policy document. Its binary form (what
/// stewards sign and nodes exchange) is the oldest format that holds it
/// (see `PolicyBody::format`), so older nodes read what they can.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyBody {
    pub federation: String,
    pub issued_at_ms: u64,
    pub policy: Policy,
    /// Capture keys and PAD requirements (format 2).
    pub liveness: Liveness,
}

impl PolicyBody {
    /// 3 for a policy with thresholds by shared finger count
    /// (`Threshold::fewer_fingers`), else 2 for one with liveness rules,
    /// else 1 (encoded as before either existed, so older nodes read it and
    /// older signatures verify).
    pub fn format(&self) -> u32 {
        let counted = self.policy.extractors.iter().any(|e| e.counts_fingers());
        match (counted, self.liveness.is_empty()) {
            (true, _) => 3,
            (false, false) => 2,
            (false, true) => 1,
        }
    }

    /// Per extractor, per threshold, its `fewer_fingers` (format 3).
    fn fewer_fingers(&self) -> Vec<Vec<Vec<f32>>> {
        let each = |e: &super::Extractor| e.thresholds.iter().map(|t| t.fewer_fingers.clone()).collect();
        self.policy.extractors.iter().map(each).collect()
    }

    /// Puts format 3's `fewer` back into the thresholds; `fewer` must have
    /// the policy's shape.
    fn set_fewer_fingers(&mut self, fewer: Vec<Vec<Vec<f32>>>) -> Result<(), String> {
        let shape = |e: &super::Extractor| e.thresholds.len();
        let fits = fewer.len() == self.policy.extractors.len()
            && fewer.iter().zip(&self.policy.extractors).all(|(f, e)| f.len() == shape(e));
        if !fits {
            return Err("format 3 thresholds by finger count do not match the policy's extractors".into());
        }
        for (f, e) in fewer.into_iter().zip(&mut self.policy.extractors) {
            f.into_iter().zip(&mut e.thresholds).for_each(|(f, t)| t.fewer_fingers = f);
        }
        Ok(())
    }
}

/// The JSON form: `liveness` only when set.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BodyJson {
    federation: String,
    issued_at_ms: u64,
    policy: Policy,
    #[serde(default, skip_serializing_if = "Liveness::is_empty")]
    liveness: Liveness,
}

impl Serialize for PolicyBody {
    /// Binary format 1: `federation, issued_at_ms, policy`. Format 2: an
    /// empty string (the byte 0, where format 1 has the federation name's
    /// non-zero length), the format as u32, then `federation, issued_at_ms,
    /// policy, liveness`. Format 3: as format 2, then per extractor and
    /// threshold its `fewer_fingers` (`Vec<Vec<Vec<f32>>>`).
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        if s.is_human_readable() {
            let Self { federation, issued_at_ms, policy, liveness } = self.clone();
            return BodyJson { federation, issued_at_ms, policy, liveness }.serialize(s);
        }
        let format = self.format();
        let mut t = s.serialize_tuple(match format {
            1 => 3,
            2 => 6,
            _ => 7,
        })?;
        if format != 1 {
            t.serialize_element("")?;
            t.serialize_element(&format)?;
        }
        t.serialize_element(&self.federation)?;
        t.serialize_element(&self.issued_at_ms)?;
        t.serialize_element(&self.policy)?;
        if format != 1 {
            t.serialize_element(&self.liveness)?;
        }
        if format == 3 {
            t.serialize_element(&self.fewer_fingers())?;
        }
        t.end()
    }
}

impl<'de> Deserialize<'de> for PolicyBody {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let BodyJson { federation, issued_at_ms, policy, liveness } = BodyJson::deserialize(d)?;
            return Ok(Self { federation, issued_at_ms, policy, liveness });
        }
        struct Binary;
        impl<'de> serde::de::Visitor<'de> for Binary {
            type Value = PolicyBody;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a policy body of format 1, 2 or 3")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<PolicyBody, A::Error> {
                use serde::de::Error;
                let next = |what: &str| Error::custom(format!("policy body ends before its {what}"));
                let first: String = seq.next_element()?.ok_or_else(|| next("federation"))?;
                let (federation, format) = if first.is_empty() {
                    let format: u32 = seq.next_element()?.ok_or_else(|| next("format"))?;
                    if format != 2 && format != 3 {
                        return Err(Error::custom(format!("unsupported policy body format {format} (reads 1 to 3)")));
                    }
                    (seq.next_element()?.ok_or_else(|| next("federation"))?, format)
                } else {
                    (first, 1)
                };
                let issued_at_ms = seq.next_element()?.ok_or_else(|| next("issue time"))?;
                let policy = seq.next_element()?.ok_or_else(|| next("policy"))?;
                let liveness = match format {
                    1 => Liveness::default(),
                    _ => seq.next_element()?.ok_or_else(|| next("liveness"))?,
                };
                let mut body = PolicyBody { federation, issued_at_ms, policy, liveness };
                if format == 3 {
                    let fewer = seq.next_element()?.ok_or_else(|| next("thresholds by finger count"))?;
                    body.set_fewer_fingers(fewer).map_err(Error::custom)?;
                }
                if body.format() != format {
                    // Another format would encode it (format 2 with empty
                    // rules, format 3 without counts): not canonical.
                    return Err(Error::custom(format!(
                        "a format {format} policy body without what format {format} is for"
                    )));
                }
                Ok(body)
            }
        }
        d.deserialize_tuple(7, Binary)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::face;
    use super::super::{PolicyFile, SignedPolicy, Status};
    use super::*;

    fn body(liveness: Liveness) -> PolicyBody {
        PolicyBody {
            federation: "f".into(),
            issued_at_ms: 7,
            policy: Policy { version: 3, extractors: vec![face("a")] },
            liveness,
        }
    }

    fn liveness() -> Liveness {
        use crate::pad::{CaptureKey, PadUse};
        let key =
            CaptureKey { id: "cam".into(), sdk: "s".into(), key: crate::PublicKey([9; 32]), status: Status::Active };
        Liveness { capture_keys: vec![key], require: vec![PadUse::Enrolment], max_age_s: 600 }
    }

    #[test]
    fn a_body_without_liveness_keeps_the_format_1_encoding() {
        // The body as it was derived before format 2: older signatures and
        // older nodes see the same bytes.
        #[derive(Serialize)]
        struct V1<'a> {
            federation: &'a str,
            issued_at_ms: u64,
            policy: &'a Policy,
        }
        let b = body(Liveness::default());
        let v1 = V1 { federation: &b.federation, issued_at_ms: b.issued_at_ms, policy: &b.policy };
        let enc = crate::encode(crate::Tag::Body, &b, 1 << 20).unwrap();
        assert_eq!(enc, crate::encode(crate::Tag::Body, &v1, 1 << 20).unwrap());
        assert_eq!(crate::decode::<PolicyBody>(crate::Tag::Body, &enc, 1 << 20).unwrap(), b);
        assert_eq!(b.format(), 1);
    }

    #[test]
    fn a_body_with_liveness_is_format_2_and_round_trips() {
        let b = body(liveness());
        assert_eq!(b.format(), 2);
        let enc = crate::encode(crate::Tag::Body, &b, 1 << 20).unwrap();
        assert_eq!(enc[4], 0, "format 2 starts where format 1 has the federation's length");
        assert_eq!(crate::decode::<PolicyBody>(crate::Tag::Body, &enc, 1 << 20).unwrap(), b);
        // Format 2 with empty rules is not canonical; format 4 is not read.
        let empty = ("", 2u32, &b.federation, b.issued_at_ms, &b.policy, Liveness::default());
        let empty = crate::encode(crate::Tag::Body, &empty, 1 << 20).unwrap();
        let e = crate::decode::<PolicyBody>(crate::Tag::Body, &empty, 1 << 20).unwrap_err();
        assert!(e.to_string().contains("format 2 policy body without"), "{e}");
        let mut four = enc.clone();
        four[5] = 4;
        let e = crate::decode::<PolicyBody>(crate::Tag::Body, &four, 1 << 20).unwrap_err();
        assert!(e.to_string().contains("format 4"), "{e}");
        // The JSON file names its format, 2 exactly when there are rules.
        let signed = SignedPolicy { body: b, signatures: vec![] };
        let json = PolicyFile::to_json(&signed);
        assert!(json.contains("\"format\": 2") && json.contains("capture_keys"), "{json}");
        assert_eq!(PolicyFile::parse(json.as_bytes()).unwrap(), signed);
        let wrong = json.replace("\"format\": 2", "\"format\": 1");
        assert!(PolicyFile::parse(wrong.as_bytes()).unwrap_err().to_string().contains("must have format 2"));
        let plain = PolicyFile::to_json(&SignedPolicy { body: body(Liveness::default()), signatures: vec![] });
        assert!(plain.contains("\"format\": 1") && !plain.contains("liveness"), "{plain}");
    }

    fn counted(liveness: Liveness) -> PolicyBody {
        let mut b = body(liveness);
        let mut ten = super::super::tests::face("ten");
        ten.modality = crate::Modality::Finger;
        ten.fingers = (1..=10).collect();
        ten.dim = 1920;
        ten.thresholds[0].cosine = 2.5;
        ten.thresholds[0].fewer_fingers = vec![0.6, 0.9, 1.1, 1.3, 1.5, 1.7, 1.9, 2.1, 2.3];
        ten.validate().unwrap();
        b.policy.extractors.push(ten);
        b
    }

    #[test]
    fn thresholds_by_finger_count_travel_in_format_3_only() {
        for b in [counted(Liveness::default()), counted(liveness())] {
            assert_eq!(b.format(), 3);
            let enc = crate::encode(crate::Tag::Body, &b, 1 << 20).unwrap();
            assert_eq!((enc[4], enc[5]), (0, 3));
            assert_eq!(crate::decode::<PolicyBody>(crate::Tag::Body, &enc, 1 << 20).unwrap(), b);
            // Without the counts the same policy is format 1 or 2: the
            // thresholds themselves encode as they always did.
            let mut older = b.clone();
            older.policy.extractors[1].thresholds[0].fewer_fingers.clear();
            assert!(older.format() < 3);
            let signed = SignedPolicy { body: b.clone(), signatures: vec![] };
            let json = PolicyFile::to_json(&signed);
            assert!(json.contains("\"format\": 3") && json.contains("fewer_fingers"), "{json}");
            assert_eq!(PolicyFile::parse(json.as_bytes()).unwrap(), signed);
        }
        // Counts of another shape, or format 3 without counts, are refused.
        let b = counted(Liveness::default());
        let short = ("", 3u32, &b.federation, b.issued_at_ms, &b.policy, Liveness::default(), vec![vec![vec![1.0f32]]]);
        let e = crate::decode::<PolicyBody>(
            crate::Tag::Body,
            &crate::encode(crate::Tag::Body, &short, 1 << 20).unwrap(),
            1 << 20,
        )
        .unwrap_err();
        assert!(e.to_string().contains("do not match the policy's extractors"), "{e}");
        let none: Vec<Vec<Vec<f32>>> = vec![vec![vec![]], vec![vec![]]];
        let mut plain = b.clone();
        plain.policy.extractors[1].thresholds[0].fewer_fingers.clear();
        let bare = ("", 3u32, &b.federation, b.issued_at_ms, &plain.policy, Liveness::default(), none);
        let e = crate::decode::<PolicyBody>(
            crate::Tag::Body,
            &crate::encode(crate::Tag::Body, &bare, 1 << 20).unwrap(),
            1 << 20,
        )
        .unwrap_err();
        assert!(e.to_string().contains("format 3 policy body without"), "{e}");
    }

    #[test]
    fn thresholds_by_finger_count_are_validated() {
        let mut ten = counted(Liveness::default()).policy.extractors[1].clone();
        let ok = ten.clone();
        ten.thresholds[0].fewer_fingers.pop();
        assert!(ten.validate().unwrap_err().reason.contains("fewer_fingers"));
        ten.thresholds[0].fewer_fingers = vec![1.2; 9];
        assert!(ten.validate().unwrap_err().reason.contains("the c-th in (0, c)"), "one finger's sum is below 1");
        ten.thresholds[0].fewer_fingers = ok.thresholds[0].fewer_fingers.clone();
        ten.thresholds[0].fewer_fingers[1] = f32::NAN;
        assert!(ten.validate().unwrap_err().reason.contains("fewer_fingers"), "NaN (a binary body can hold one)");
        // A higher band must be higher at every count.
        let mut two = ok.clone();
        let mut probable = ok.thresholds[0].clone();
        (probable.band, probable.cosine, probable.fmr) = (super::super::Band::Probable, 2.7, 1e-9);
        probable.fewer_fingers[4] = 1.0;
        two.thresholds.push(probable);
        assert!(two.validate().unwrap_err().reason.contains("must rise"));
        assert_eq!(ok.score_thresholds_for(1), vec![(0.6f32 * 127.0 * 127.0 / 10.0).round() as i32]);
        assert_eq!(ok.score_thresholds_for(10), ok.score_thresholds());
        assert_eq!(ok.score_thresholds_for(0), ok.score_thresholds_for(1));
        let mut face = super::super::tests::face("f");
        face.thresholds[0].fewer_fingers = vec![0.5];
        assert!(face.validate().unwrap_err().reason.contains("fewer_fingers"), "one part: no counts");
    }
}

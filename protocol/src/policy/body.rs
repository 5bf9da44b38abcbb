//! A policy document's signed body and its two binary formats: format 1,
//! byte for byte what policies were before liveness rules existed, and
//! format 2, marked where format 1 has the federation name's length.

use super::Policy;
use crate::pad::Liveness;
use serde::{Deserialize, Serialize};

/// The signed content of a policy document. Its binary form (what
/// stewards sign and nodes exchange) is format 1, unchanged, while
/// `liveness` is empty, and format 2 otherwise (see `PolicyBody::format`).
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyBody {
    pub federation: String,
    pub issued_at_ms: u64,
    pub policy: Policy,
    /// Capture keys and PAD requirements (format 2).
    pub liveness: Liveness,
}

impl PolicyBody {
    /// 1 for a policy without liveness rules (encoded as before they
    /// existed, so older nodes read it and older signatures verify), 2 with.
    pub fn format(&self) -> u32 {
        if self.liveness.is_empty() {
            1
        } else {
            2
        }
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
    /// policy, liveness`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        if s.is_human_readable() {
            let Self { federation, issued_at_ms, policy, liveness } = self.clone();
            return BodyJson { federation, issued_at_ms, policy, liveness }.serialize(s);
        }
        let format = self.format();
        let mut t = s.serialize_tuple(if format == 1 { 3 } else { 6 })?;
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
                f.write_str("a policy body of format 1 or 2")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<PolicyBody, A::Error> {
                use serde::de::Error;
                let next = |what: &str| Error::custom(format!("policy body ends before its {what}"));
                let first: String = seq.next_element()?.ok_or_else(|| next("federation"))?;
                let (federation, format) = if first.is_empty() {
                    let format: u32 = seq.next_element()?.ok_or_else(|| next("format"))?;
                    if format != 2 {
                        return Err(Error::custom(format!("unsupported policy body format {format} (reads 1 and 2)")));
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
                let body = PolicyBody { federation, issued_at_ms, policy, liveness };
                if body.format() != format {
                    // Format 2 with empty rules would encode as format 1: not canonical.
                    return Err(Error::custom("a format 2 policy body with empty liveness rules"));
                }
                Ok(body)
            }
        }
        d.deserialize_tuple(6, Binary)
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
        // Format 2 with empty rules is not canonical; format 3 is not read.
        let empty = ("", 2u32, &b.federation, b.issued_at_ms, &b.policy, Liveness::default());
        let empty = crate::encode(crate::Tag::Body, &empty, 1 << 20).unwrap();
        let e = crate::decode::<PolicyBody>(crate::Tag::Body, &empty, 1 << 20).unwrap_err();
        assert!(e.to_string().contains("empty liveness"), "{e}");
        let mut three = enc.clone();
        three[5] = 3;
        let e = crate::decode::<PolicyBody>(crate::Tag::Body, &three, 1 << 20).unwrap_err();
        assert!(e.to_string().contains("format 3"), "{e}");
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
}

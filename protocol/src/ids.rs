//! Fixed-size identifiers and signatures. In binary encodings they are raw
//! bytes; in human-readable ones (JSON, TOML) lowercase hex.

use serde::{de::Error as _, Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

macro_rules! fixed_bytes {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            pub const LEN: usize = $len;
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
            pub fn from_hex(s: &str) -> Result<Self, String> {
                let v = hex::decode(s.trim()).map_err(|e| format!("not hex: {e}"))?;
                let arr: [u8; $len] = v.try_into().map_err(|v: Vec<u8>| {
                    format!("expected {} bytes, found {}", $len, v.len())
                })?;
                Ok(Self(arr))
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), &self.to_hex()[..12.min(2 * $len)])
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.serialize_str(&self.to_hex())
                } else {
                    self.0.serialize(s)
                }
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                if d.is_human_readable() {
                    let s = String::deserialize(d)?;
                    Self::from_hex(&s).map_err(D::Error::custom)
                } else {
                    Ok(Self(<[u8; $len]>::deserialize(d)?))
                }
            }
        }
    };
}

fixed_bytes!(
    /// An organisation's identity: its ed25519 public key (also its libp2p PeerId).
    OrgId,
    32
);
fixed_bytes!(
    /// An alert's identity: SHA-256 of its signed body bytes.
    AlertId,
    32
);
fixed_bytes!(
    /// An ed25519 public key that is not an organisation's: a capture
    /// device's or SDK's, which signs presentation-attack detection results.
    PublicKey,
    32
);
fixed_bytes!(
    /// A SHA-256 digest (of a biometric sample, for a PAD attestation).
    Digest,
    32
);
fixed_bytes!(
    /// An opaque, random per-hit handle. It names no record and is never reused.
    Handle,
    16
);

/// An ed25519 signature (64 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sig(pub [u8; 64]);

impl fmt::Debug for Sig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sig({}..)", hex::encode(&self.0[..6]))
    }
}

impl Serialize for Sig {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&hex::encode(self.0))
        } else {
            let (a, b) = self.0.split_at(32);
            let a: [u8; 32] = a.try_into().expect("32 bytes");
            let b: [u8; 32] = b.try_into().expect("32 bytes");
            (a, b).serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Sig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut out = [0u8; 64];
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            let v = hex::decode(s.trim()).map_err(D::Error::custom)?;
            if v.len() != 64 {
                return Err(D::Error::custom(format!("signature must be 64 bytes, found {}", v.len())));
            }
            out.copy_from_slice(&v);
        } else {
            let (a, b) = <([u8; 32], [u8; 32])>::deserialize(d)?;
            out[..32].copy_from_slice(&a);
            out[32..].copy_from_slice(&b);
        }
        Ok(Sig(out))
    }
}

//! Sealing at rest: a 256-bit data key derived from a passphrase (argon2id)
//! or read from a key file, and XChaCha20-Poly1305 sealing with a random
//! nonce and caller-supplied associated data (binding a value to its place).

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::path::Path;
use zeroize::Zeroizing;

const SEAL_VERSION: u8 = 1;
const NONCE: usize = 24;
const KEYRING_VERSION: u32 = 1;
const CHECK_AAD: &[u8] = b"vigil/keyring/check";
const MAX_KEYRING_BYTES: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SealError {
    #[error("sealed value is truncated ({0} bytes)")]
    Truncated(usize),
    #[error("sealed value has unknown version {0}")]
    Version(u8),
    #[error("sealed value does not open: wrong key, or the data was altered or moved")]
    Open,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyringError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("keyring file {path} is malformed: {msg}")]
    Malformed { path: String, msg: String },
    #[error("wrong passphrase or key file for this data directory")]
    WrongKey,
    #[error("key derivation failed: {0}")]
    Kdf(String),
    #[error("a key file must hold 32 bytes as 64 hex characters")]
    BadKeyFile,
    #[error(
        "the passphrase is too weak: use at least {MIN_PASSPHRASE_CHARS} characters, not one repeated \
         (or --key-file with 64 hex characters)"
    )]
    WeakPassphrase,
}

/// Shortest passphrase a new data directory accepts.
pub const MIN_PASSPHRASE_CHARS: usize = 12;
/// argon2id cost of new keyrings: 64 MiB, 3 passes (RFC 9106's memory-
/// constrained choice; it was 19 MiB and 2 passes, OWASP's minimum).
/// Keyrings keep the cost they were made with.
pub const KDF_MEMORY_KIB: u32 = 64 * 1024;
pub const KDF_PASSES: u32 = 3;

/// The data directory's sealing key. Zeroised on drop.
#[derive(Clone)]
pub struct SealKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(..)")
    }
}

impl SealKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    pub fn random() -> Self {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        Self::from_bytes(k)
    }

    /// `version || nonce || ciphertext+tag`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let cipher = XChaCha20Poly1305::new(self.0.as_ref().into());
        let mut nonce = [0u8; NONCE];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plaintext, aad })
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory buffers");
        let mut out = Vec::with_capacity(1 + NONCE + ct.len());
        out.push(SEAL_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < 1 + NONCE + 16 {
            return Err(SealError::Truncated(sealed.len()));
        }
        if sealed[0] != SEAL_VERSION {
            return Err(SealError::Version(sealed[0]));
        }
        let cipher = XChaCha20Poly1305::new(self.0.as_ref().into());
        cipher
            .decrypt(XNonce::from_slice(&sealed[1..1 + NONCE]), Payload { msg: &sealed[1 + NONCE..], aad })
            .map_err(|_| SealError::Open)
    }
}

/// How the data key is obtained, stored beside the data as `keyring.json`.
/// It holds no secret: a salt and cost parameters, and a sealed check value
/// that tells a wrong passphrase from corrupted data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Keyring {
    pub version: u32,
    /// `argon2id` or `keyfile`.
    pub kdf: String,
    pub salt: String,
    pub m_cost_kib: u32,
    pub t_cost: u32,
    pub p_cost: u32,
    pub check: String,
}

impl Keyring {
    /// Creates a keyring for a passphrase (argon2id at `KDF_MEMORY_KIB`,
    /// `KDF_PASSES`); refuses a passphrase shorter than
    /// `MIN_PASSPHRASE_CHARS` or made of one repeated character.
    pub fn for_passphrase(passphrase: &str) -> Result<(Self, SealKey), KeyringError> {
        let mut chars = passphrase.chars();
        let first = chars.next();
        if passphrase.chars().count() < MIN_PASSPHRASE_CHARS || chars.all(|c| Some(c) == first) {
            return Err(KeyringError::WeakPassphrase);
        }
        let mut salt = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        let mut ring = Keyring {
            version: KEYRING_VERSION,
            kdf: "argon2id".into(),
            salt: hex::encode(salt),
            m_cost_kib: KDF_MEMORY_KIB,
            t_cost: KDF_PASSES,
            p_cost: 1,
            check: String::new(),
        };
        let key = ring.derive(passphrase.as_bytes())?;
        ring.check = hex::encode(key.seal(CHECK_AAD, b"ok"));
        Ok((ring, key))
    }

    /// Creates a keyring for a key file (64 hex characters).
    pub fn for_key_file(contents: &str) -> Result<(Self, SealKey), KeyringError> {
        let key = parse_key_file(contents)?;
        let ring = Keyring {
            version: KEYRING_VERSION,
            kdf: "keyfile".into(),
            salt: String::new(),
            m_cost_kib: 0,
            t_cost: 0,
            p_cost: 0,
            check: hex::encode(key.seal(CHECK_AAD, b"ok")),
        };
        Ok((ring, key))
    }

    fn derive(&self, secret: &[u8]) -> Result<SealKey, KeyringError> {
        let salt = hex::decode(&self.salt).map_err(|e| KeyringError::Kdf(e.to_string()))?;
        let params = argon2::Params::new(self.m_cost_kib, self.t_cost, self.p_cost, Some(32))
            .map_err(|e| KeyringError::Kdf(e.to_string()))?;
        let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = Zeroizing::new([0u8; 32]);
        argon.hash_password_into(secret, &salt, out.as_mut()).map_err(|e| KeyringError::Kdf(e.to_string()))?;
        Ok(SealKey(out))
    }

    /// Recovers the data key from a passphrase or key-file contents and
    /// checks it against the sealed check value.
    pub fn unlock(&self, secret: &str) -> Result<SealKey, KeyringError> {
        let key = match self.kdf.as_str() {
            "argon2id" => self.derive(secret.as_bytes())?,
            "keyfile" => parse_key_file(secret)?,
            other => {
                return Err(KeyringError::Malformed { path: "keyring".into(), msg: format!("unknown kdf {other:?}") })
            }
        };
        let check = hex::decode(&self.check).map_err(|_| KeyringError::WrongKey)?;
        key.open(CHECK_AAD, &check).map_err(|_| KeyringError::WrongKey)?;
        Ok(key)
    }

    pub fn load(path: &Path) -> Result<Self, KeyringError> {
        let p = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|source| KeyringError::Io { path: p.clone(), source })?;
        if meta.len() > MAX_KEYRING_BYTES {
            return Err(KeyringError::Malformed { path: p, msg: "file too large".into() });
        }
        let text = std::fs::read_to_string(path).map_err(|source| KeyringError::Io { path: p.clone(), source })?;
        let ring: Keyring =
            serde_json::from_str(&text).map_err(|e| KeyringError::Malformed { path: p.clone(), msg: e.to_string() })?;
        if ring.version != KEYRING_VERSION {
            return Err(KeyringError::Malformed { path: p, msg: format!("unsupported version {}", ring.version) });
        }
        Ok(ring)
    }

    pub fn save(&self, path: &Path) -> Result<(), KeyringError> {
        let text = serde_json::to_string_pretty(self).expect("keyring serialises");
        std::fs::write(path, text).map_err(|source| KeyringError::Io { path: path.display().to_string(), source })
    }
}

fn parse_key_file(contents: &str) -> Result<SealKey, KeyringError> {
    let bytes = Zeroizing::new(hex::decode(contents.trim()).map_err(|_| KeyringError::BadKeyFile)?);
    let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| KeyringError::BadKeyFile)?;
    Ok(SealKey::from_bytes(arr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_binds_aad_and_key() {
        let k = SealKey::random();
        let s = k.seal(b"records/1", b"secret template");
        assert!(!s.windows(6).any(|w| w == b"secret"));
        assert_eq!(k.open(b"records/1", &s).unwrap(), b"secret template");
        assert_eq!(k.open(b"records/2", &s), Err(SealError::Open));
        assert_eq!(SealKey::random().open(b"records/1", &s), Err(SealError::Open));
        let mut t = s.clone();
        t[30] ^= 1;
        assert_eq!(k.open(b"records/1", &t), Err(SealError::Open));
        assert_eq!(k.open(b"records/1", &s[..10]), Err(SealError::Truncated(10)));
    }

    #[test]
    fn keyring_unlocks_only_with_the_right_secret() {
        for weak in ["", "x", "short pass1", "aaaaaaaaaaaaaaaa"] {
            assert!(matches!(Keyring::for_passphrase(weak), Err(KeyringError::WeakPassphrase)), "{weak:?}");
        }
        let (ring, key) = Keyring::for_passphrase("correct horse").unwrap();
        assert_eq!((ring.m_cost_kib, ring.t_cost), (KDF_MEMORY_KIB, KDF_PASSES));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring.json");
        ring.save(&path).unwrap();
        let ring = Keyring::load(&path).unwrap();
        let again = ring.unlock("correct horse").unwrap();
        let sealed = key.seal(b"x", b"y");
        assert_eq!(again.open(b"x", &sealed).unwrap(), b"y");
        assert!(matches!(ring.unlock("wrong"), Err(KeyringError::WrongKey)));
        let (ring, _) = Keyring::for_key_file(&"ab".repeat(32)).unwrap();
        assert!(ring.unlock(&"ab".repeat(32)).is_ok());
        assert!(matches!(ring.unlock(&"cd".repeat(32)), Err(KeyringError::WrongKey)));
        assert!(matches!(ring.unlock("short"), Err(KeyringError::BadKeyFile)));
    }
}

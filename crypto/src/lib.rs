//! Vigil's cryptographic building blocks: organisation identities and
//! signatures (ed25519), operator passwords (argon2id PHC strings), roster and policy threshold verification, PAD attestations, and sealing data
//! at rest (argon2id-derived keys, XChaCha20-Poly1305).

mod alert;
mod identity;
mod pad;
mod password;
mod policy;
mod roster;
mod seal;

pub use alert::{alert_header, alert_id, header_id, payload_hash, sign_alert, verify_alert, verify_withdrawal};
pub use identity::{sign_body, verify_body, Identity, SignError};
pub use pad::{capture_public_key, check_pad, sign_pad, PadError};
pub use password::{
    check_password, hash_password, verify_password, PasswordError, MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS,
};
pub use policy::{sign_policy, verify_policy};
pub use roster::{sign_roster, verify_roster, RosterError, TrustAnchor, VerifiedRoster};
pub use seal::{Keyring, KeyringError, SealError, SealKey, KDF_MEMORY_KIB, KDF_PASSES, MIN_PASSPHRASE_CHARS};

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

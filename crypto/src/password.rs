//! Operator passwords: argon2id hashes in the PHC string format (the
//! algorithm, its cost and a random salt travel inside the string), at the
//! same cost as the data directory's keyring, and a length policy.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// Shortest operator password accepted (as for passphrases).
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest accepted: argon2 takes any length, a form field need not.
pub const MAX_PASSWORD_CHARS: usize = 256;

/// Why a password is refused or cannot be checked.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PasswordError {
    #[error("a password needs at least {MIN_PASSWORD_CHARS} characters (it has {0})")]
    TooShort(usize),
    #[error("a password has at most {MAX_PASSWORD_CHARS} characters (it has {0})")]
    TooLong(usize),
    #[error("a password of one repeated character is refused")]
    Repeated,
    #[error("stored password hash is not an argon2id PHC string: {0}")]
    BadHash(String),
}

/// Checks `password` against the policy: length, and not one character
/// repeated.
pub fn check_password(password: &str) -> Result<(), PasswordError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err(PasswordError::TooShort(n));
    }
    if n > MAX_PASSWORD_CHARS {
        return Err(PasswordError::TooLong(n));
    }
    let mut chars = password.chars();
    let first = chars.next();
    if chars.all(|c| Some(c) == first) {
        return Err(PasswordError::Repeated);
    }
    Ok(())
}

fn argon() -> Argon2<'static> {
    let params = Params::new(crate::KDF_MEMORY_KIB, crate::KDF_PASSES, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The PHC string of `password` (policy checked first).
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    check_password(password)?;
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    argon()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::BadHash(e.to_string()))
}

/// Whether `password` matches the stored PHC string `phc` (at the cost the
/// string names; only argon2id is accepted).
pub fn verify_password(password: &str, phc: &str) -> Result<bool, PasswordError> {
    let parsed = PasswordHash::new(phc).map_err(|e| PasswordError::BadHash(e.to_string()))?;
    if parsed.algorithm.as_str() != "argon2id" {
        return Err(PasswordError::BadHash(format!("algorithm {}", parsed.algorithm)));
    }
    Ok(Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_and_no_other() {
        let phc = hash_password("shelter north desk 7").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=65536,t=3,p=1$"), "{phc}");
        assert!(verify_password("shelter north desk 7", &phc).unwrap());
        assert!(!verify_password("shelter north desk 8", &phc).unwrap());
        // Two hashes of one password differ (fresh salts).
        assert_ne!(phc, hash_password("shelter north desk 7").unwrap());
    }

    #[test]
    fn weak_passwords_and_foreign_hashes_are_refused() {
        assert_eq!(hash_password("x"), Err(PasswordError::TooShort(1)));
        assert_eq!(check_password("aaaaaaaaaaaaaa"), Err(PasswordError::Repeated));
        assert!(matches!(check_password(&"ab".repeat(200)), Err(PasswordError::TooLong(400))));
        assert!(matches!(verify_password("whatever", "not a hash"), Err(PasswordError::BadHash(_))));
        let argon2i = "$argon2i$v=19$m=16,t=2,p=1$c29tZXNhbHQ$Z8VyVJCQxfYtvlTBBHeMUg";
        assert!(matches!(verify_password("whatever", argon2i), Err(PasswordError::BadHash(_))));
    }
}

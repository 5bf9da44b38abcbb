//! An organisation's ed25519 identity and domain-separated signatures over
//! canonical (bincode) encodings of wire bodies.

use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use serde::Serialize;
use vigil_protocol::{encode, limits, OrgId, Sig, Tag};
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    #[error("signature does not verify for {0}")]
    BadSignature(OrgId),
    #[error("{0} is not a valid ed25519 public key")]
    BadKey(OrgId),
    #[error("cannot encode the signed body: {0}")]
    Encode(#[from] vigil_protocol::WireError),
}

/// A node's (or steward's) signing identity.
pub struct Identity {
    key: SigningKey,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity({:?})", self.org_id())
    }
}

impl Identity {
    pub fn generate() -> Self {
        Self { key: SigningKey::generate(&mut rand::rngs::OsRng) }
    }

    pub fn from_secret(secret: &[u8; 32]) -> Self {
        Self { key: SigningKey::from_bytes(secret) }
    }

    /// The 32-byte secret seed (for sealing at rest only).
    pub fn secret(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.key.to_bytes())
    }

    pub fn org_id(&self) -> OrgId {
        OrgId(self.key.verifying_key().to_bytes())
    }

    /// Signs `domain || bytes`.
    pub fn sign_raw(&self, domain: &[u8], bytes: &[u8]) -> Sig {
        let mut msg = Vec::with_capacity(domain.len() + bytes.len());
        msg.extend_from_slice(domain);
        msg.extend_from_slice(bytes);
        Sig(self.key.sign(&msg).to_bytes())
    }
}

fn body_bytes<T: Serialize>(body: &T) -> Result<Vec<u8>, SignError> {
    Ok(encode(Tag::Body, body, limits::MAX_ROSTER_BYTES)?)
}

/// Signs the canonical encoding of `body` under `domain`.
pub fn sign_body<T: Serialize>(id: &Identity, domain: &[u8], body: &T) -> Result<Sig, SignError> {
    Ok(id.sign_raw(domain, &body_bytes(body)?))
}

/// Verifies `sig` by `signer` over the canonical encoding of `body`.
pub fn verify_body<T: Serialize>(signer: &OrgId, domain: &[u8], body: &T, sig: &Sig) -> Result<(), SignError> {
    let key = VerifyingKey::from_bytes(&signer.0).map_err(|_| SignError::BadKey(*signer))?;
    let mut msg = domain.to_vec();
    msg.extend_from_slice(&body_bytes(body)?);
    key.verify(&msg, &ed25519_dalek::Signature::from_bytes(&sig.0)).map_err(|_| SignError::BadSignature(*signer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_domain_separation() {
        let id = Identity::generate();
        let body = (1u64, "hello".to_string());
        let sig = sign_body(&id, b"a", &body).unwrap();
        verify_body(&id.org_id(), b"a", &body, &sig).unwrap();
        assert!(verify_body(&id.org_id(), b"b", &body, &sig).is_err());
        assert!(verify_body(&id.org_id(), b"a", &(2u64, "hello".to_string()), &sig).is_err());
        let other = Identity::generate();
        assert!(verify_body(&other.org_id(), b"a", &body, &sig).is_err());
        let again = Identity::from_secret(&id.secret());
        assert_eq!(again.org_id(), id.org_id());
    }
}

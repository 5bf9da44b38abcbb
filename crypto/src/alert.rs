//! What an alert's id and signature cover: its header, where the payload
//! (protected template, encrypted probe) is replaced by the payload's
//! SHA-256. A withdrawn or expired alert can then be kept as its header
//! alone (`PrunedAlert`) and still verify and link its issuer's log.

use crate::{sha256, sign_body, verify_body, Identity, SignError};
use vigil_protocol::{domain, encode, limits, AlertBody, AlertHeader, AlertId, OrgId, Sig, SignedWithdrawal, Tag};

/// SHA-256 of the encoded `(probe, encrypted)` pair of `body`.
pub fn payload_hash(body: &AlertBody) -> [u8; 32] {
    let payload = (&body.probe, &body.encrypted);
    sha256(&encode(Tag::Body, &payload, limits::MAX_GOSSIP_BYTES).expect("alert payloads are bounded"))
}

/// The header of `body`.
pub fn alert_header(body: &AlertBody) -> AlertHeader {
    AlertHeader {
        issuer: body.issuer,
        seq: body.seq,
        prev: body.prev,
        category: body.category,
        created_at_ms: body.created_at_ms,
        expires_at_ms: body.expires_at_ms,
        payload: payload_hash(body),
    }
}

/// An alert's id (and its log entry's hash): SHA-256 of its header.
pub fn header_id(header: &AlertHeader) -> AlertId {
    AlertId(sha256(&encode(Tag::Body, header, 1024).expect("headers are small")))
}

/// The id of the alert with `body`.
pub fn alert_id(body: &AlertBody) -> AlertId {
    header_id(&alert_header(body))
}

/// The issuer's signature of an alert (over its header).
pub fn sign_alert(signer: &Identity, body: &AlertBody) -> Result<Sig, SignError> {
    sign_body(signer, domain::ALERT, &alert_header(body))
}

/// Whether `signature` is `issuer`'s over `header`.
pub fn verify_alert(issuer: &OrgId, header: &AlertHeader, signature: &Sig) -> bool {
    verify_body(issuer, domain::ALERT, header, signature).is_ok()
}

/// Whether a withdrawal carries its issuer's signature.
pub fn verify_withdrawal(w: &SignedWithdrawal) -> bool {
    verify_body(&w.body.issuer, domain::WITHDRAWAL, &w.body, &w.signature).is_ok()
}

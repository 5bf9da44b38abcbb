//! The node's audit log: a hash chain of signed entries (seq, time, event,
//! previous hash). Any edited, removed, inserted or reordered entry breaks
//! verification; the chain head is stored beside the entries so truncation
//! is caught too. Events name ids and peers, never case details.

use super::{aad_of, StoreError};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use vigil_crypto::{sha256, Identity, SealKey};
use vigil_engine::audit::AuditEvent;
use vigil_protocol::{decode, domain, encode, OrgId, Sig, Tag};

const AUDIT: &str = "audit";
const HEAD: &[u8] = b"head";

/// The signed content of one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: u64,
    pub at_ms: u64,
    pub event: AuditEvent,
    pub prev: [u8; 32],
}

/// An entry with its hash and the node's signature over that hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub entry: AuditEntry,
    pub hash: [u8; 32],
    pub signature: Sig,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditError {
    #[error("audit entry {index} is unreadable: {msg}")]
    Unreadable { index: usize, msg: String },
    #[error("audit entry {found} found where entry {expected} was expected (removed or reordered)")]
    Sequence { expected: u64, found: u64 },
    #[error("audit entry {0} does not hash to its recorded hash (edited)")]
    Hash(u64),
    #[error("audit entry {0} does not link to the previous entry (removed, inserted or reordered)")]
    Link(u64),
    #[error("audit entry {0} has an invalid signature")]
    Signature(u64),
    #[error("audit chain ends at entry {found}, but its head says {expected} (truncated)")]
    Head { expected: u64, found: u64 },
}

fn hash_entry(e: &AuditEntry) -> [u8; 32] {
    sha256(&encode(Tag::Body, e, super::MAX_VALUE_BYTES).expect("audit entries are small"))
}

/// Verifies a chain of records signed by `org`, starting at seq 1.
pub fn verify_chain(records: &[AuditRecord], org: &OrgId) -> Result<(), AuditError> {
    let mut prev = [0u8; 32];
    for (i, r) in records.iter().enumerate() {
        let expected = i as u64 + 1;
        if r.entry.seq != expected {
            return Err(AuditError::Sequence { expected, found: r.entry.seq });
        }
        if hash_entry(&r.entry) != r.hash {
            return Err(AuditError::Hash(r.entry.seq));
        }
        if r.entry.prev != prev {
            return Err(AuditError::Link(r.entry.seq));
        }
        vigil_crypto::verify_body(org, domain::AUDIT, &r.hash, &r.signature)
            .map_err(|_| AuditError::Signature(r.entry.seq))?;
        prev = r.hash;
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Head {
    seq: u64,
    hash: [u8; 32],
}

#[derive(Clone)]
pub(super) struct AuditLog {
    tree: sled::Tree,
    key: SealKey,
    signer: Arc<Identity>,
    head: Arc<Mutex<Head>>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditLog")
    }
}

impl AuditLog {
    pub(super) fn open(db: &sled::Db, key: SealKey, signer: Arc<Identity>) -> Result<Self, StoreError> {
        let tree = db.open_tree(AUDIT)?;
        let log = Self { tree, key, signer, head: Default::default() };
        if let Some(v) = log.tree.get(HEAD)? {
            *log.head.lock().expect("audit head lock") = log.open_value(HEAD, &v)?;
        }
        Ok(log)
    }

    fn open_value<T: serde::de::DeserializeOwned + Serialize>(&self, k: &[u8], v: &[u8]) -> Result<T, StoreError> {
        let bytes = self.key.open(&aad_of(AUDIT, k), v).map_err(|source| StoreError::Seal {
            tree: AUDIT,
            key: hex::encode(k),
            source,
        })?;
        decode(Tag::Stored, &bytes, super::MAX_VALUE_BYTES).map_err(|source| StoreError::Decode {
            tree: AUDIT,
            key: hex::encode(k),
            source,
        })
    }

    fn seal_value<T: Serialize>(&self, k: &[u8], v: &T) -> Result<Vec<u8>, StoreError> {
        let bytes = encode(Tag::Stored, v, super::MAX_VALUE_BYTES).map_err(StoreError::Encode)?;
        Ok(self.key.seal(&aad_of(AUDIT, k), &bytes))
    }

    pub(super) fn append(&self, at_ms: u64, event: AuditEvent) -> Result<AuditEntry, StoreError> {
        let mut head = self.head.lock().expect("audit head lock");
        let entry = AuditEntry { seq: head.seq + 1, at_ms, event, prev: head.hash };
        let hash = hash_entry(&entry);
        let signature =
            vigil_crypto::sign_body(&self.signer, domain::AUDIT, &hash).expect("a 32-byte hash always encodes");
        let record = AuditRecord { entry: entry.clone(), hash, signature };
        let key = entry.seq.to_be_bytes();
        let new_head = Head { seq: entry.seq, hash };
        let mut batch = sled::Batch::default();
        batch.insert(&key, self.seal_value(&key, &record)?);
        batch.insert(HEAD, self.seal_value(HEAD, &new_head)?);
        self.tree.apply_batch(batch)?;
        self.tree.flush()?;
        *head = new_head;
        Ok(entry)
    }

    /// Appends several entries in one batch with one flush (a page of
    /// catch-up, say); durable before it returns.
    pub(super) fn append_many(&self, at_ms: u64, events: Vec<AuditEvent>) -> Result<(), StoreError> {
        self.append_many_with(at_ms, events, true)
    }

    /// As `append_many`; `flush: false` leaves durability to the next
    /// flush (sled's own, within its flush interval, or the next commit).
    pub(super) fn append_many_with(&self, at_ms: u64, events: Vec<AuditEvent>, flush: bool) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut head = self.head.lock().expect("audit head lock");
        let mut new_head = Head { seq: head.seq, hash: head.hash };
        let mut batch = sled::Batch::default();
        for event in events {
            let entry = AuditEntry { seq: new_head.seq + 1, at_ms, event, prev: new_head.hash };
            let hash = hash_entry(&entry);
            let signature =
                vigil_crypto::sign_body(&self.signer, domain::AUDIT, &hash).expect("a 32-byte hash always encodes");
            let key = entry.seq.to_be_bytes();
            new_head = Head { seq: entry.seq, hash };
            batch.insert(&key, self.seal_value(&key, &AuditRecord { entry, hash, signature })?);
        }
        batch.insert(HEAD, self.seal_value(HEAD, &new_head)?);
        self.tree.apply_batch(batch)?;
        if flush {
            self.tree.flush()?;
        }
        *head = new_head;
        Ok(())
    }

    pub(super) fn entries(&self) -> Result<Vec<AuditRecord>, StoreError> {
        self.tree
            .iter()
            .filter(|kv| kv.as_ref().map(|(k, _)| k.len() == 8).unwrap_or(true))
            .map(|kv| {
                let (k, v) = kv?;
                self.open_value(&k, &v)
            })
            .collect()
    }

    pub(super) fn verify(&self) -> Result<usize, AuditError> {
        let records = self.entries().map_err(|e| AuditError::Unreadable { index: 0, msg: e.to_string() })?;
        verify_chain(&records, &self.signer.org_id())?;
        let head = *self.head.lock().expect("audit head lock");
        let found = records.last().map(|r| r.entry.seq).unwrap_or(0);
        if found != head.seq {
            return Err(AuditError::Head { expected: head.seq, found });
        }
        Ok(records.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log() -> (tempfile::TempDir, sled::Db, AuditLog, SealKey) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let key = SealKey::random();
        let log = AuditLog::open(&db, key.clone(), Arc::new(Identity::generate())).unwrap();
        for i in 0..5 {
            log.append(i, AuditEvent::PeerBlocked { peer: format!("p{i}") }).unwrap();
        }
        (dir, db, log, key)
    }

    #[test]
    fn intact_chain_verifies_and_survives_reopen() {
        let (_d, db, log, key) = log();
        assert_eq!(log.verify().unwrap(), 5);
        let again = AuditLog::open(&db, key, log.signer.clone()).unwrap();
        again.append(9, AuditEvent::PeerBlocked { peer: "x".into() }).unwrap();
        assert_eq!(again.verify().unwrap(), 6);
    }

    #[test]
    fn edited_removed_reordered_and_truncated_entries_fail() {
        let (_d, _db, log, _key) = log();
        let recs = log.entries().unwrap();
        let org = log.signer.org_id();

        let mut edited = recs.clone();
        edited[2].entry.event = AuditEvent::PeerBlocked { peer: "mallory".into() };
        assert_eq!(verify_chain(&edited, &org), Err(AuditError::Hash(3)));

        let mut rehashed = edited.clone();
        rehashed[2].hash = hash_entry(&rehashed[2].entry);
        assert_eq!(verify_chain(&rehashed, &org), Err(AuditError::Signature(3)));

        let mut removed = recs.clone();
        removed.remove(1);
        assert_eq!(verify_chain(&removed, &org), Err(AuditError::Sequence { expected: 2, found: 3 }));

        let mut reordered = recs.clone();
        reordered.swap(1, 2);
        assert!(verify_chain(&reordered, &org).is_err());

        assert!(verify_chain(&recs, &Identity::generate().org_id()).is_err());

        // Truncation in the store: remove the last entry, keep the head.
        log.tree.remove(5u64.to_be_bytes()).unwrap();
        assert_eq!(log.verify(), Err(AuditError::Head { expected: 5, found: 4 }));
    }

    #[test]
    fn swapped_sealed_values_do_not_open() {
        let (_d, _db, log, _key) = log();
        let a = log.tree.get(1u64.to_be_bytes()).unwrap().unwrap();
        let b = log.tree.get(2u64.to_be_bytes()).unwrap().unwrap();
        log.tree.insert(1u64.to_be_bytes(), b).unwrap();
        log.tree.insert(2u64.to_be_bytes(), a).unwrap();
        assert!(matches!(log.verify(), Err(AuditError::Unreadable { .. })));
    }
}

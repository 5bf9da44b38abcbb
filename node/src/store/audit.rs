//! The node's audit log: a hash chain of signed entries (seq, time, event,
//! previous hash). Any edited, removed, inserted or reordered entry breaks
//! verification; the chain head is stored beside the entries so truncation
//! is caught too. Events name ids and peers, never case details.

use super::{aad_of, StoreError};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use vigil_crypto::{sha256, Identity, SealKey};
use vigil_protocol::{decode, domain, encode, AlertId, Handle, OrgId, Sig, Tag};

const AUDIT: &str = "audit";
const HEAD: &[u8] = b"head";

/// What happened. Reasons are short, fixed phrases plus ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditEvent {
    NodeStarted {
        org: OrgId,
    },
    RosterApplied {
        version: u64,
        members: usize,
    },
    RosterRefused {
        reason: String,
    },
    Enrolled {
        record: u64,
        category: String,
        extractor: String,
    },
    AlertPublished {
        alert: AlertId,
        seq: u64,
    },
    AlertWithdrawn {
        alert: AlertId,
        by: OrgId,
    },
    AlertAccepted {
        alert: AlertId,
        issuer: OrgId,
        via: String,
    },
    MessageRejected {
        from: String,
        reason: String,
    },
    HitDetected {
        alert: AlertId,
        record: u64,
        handle: Handle,
        issuer: OrgId,
    },
    HitReceived {
        alert: AlertId,
        holder: OrgId,
        handle: Handle,
    },
    HitDelivered {
        handle: Handle,
        issuer: OrgId,
    },
    ConnectionRefused {
        peer: String,
        reason: String,
    },
    PeerPenalised {
        peer: String,
        strikes: u32,
        reason: String,
    },
    PeerBlocked {
        peer: String,
    },
    ProberKeyCreated {
        key_id: String,
    },
    ProberKeyRotated {
        old: String,
        new: String,
    },
    QuerySent {
        query: Handle,
        purpose: String,
        legal_basis: String,
        peers: usize,
    },
    QueryAnswered {
        query: Handle,
        peer: OrgId,
        positives: usize,
        positions: usize,
    },
    QueryFlagged {
        query: Handle,
        peer: OrgId,
        positives: usize,
        positions: usize,
    },
    QueryUnanswered {
        query: Handle,
        peer: OrgId,
        reason: String,
    },
    QueryReceived {
        query: Handle,
        from: OrgId,
        purpose: String,
        legal_basis: String,
        records: usize,
    },
    QueryRefused {
        query: Handle,
        from: OrgId,
        reason: String,
    },
    DisclosureRequested {
        id: Handle,
        hit: Handle,
        holder: OrgId,
        reason: String,
    },
    DisclosureReceived {
        id: Handle,
        from: OrgId,
        record: u64,
        reason: String,
    },
    DisclosureUnresolved {
        id: Handle,
        from: OrgId,
    },
    DisclosureDecided {
        id: Handle,
        approved: bool,
    },
    DisclosureAnswered {
        id: Handle,
        holder: OrgId,
        approved: bool,
    },
    /// Holder: answered an encrypted alert over `records` records (one page),
    /// in column form (`column`, fetched from the issuer) or row form.
    AlertAnswerSent {
        alert: AlertId,
        answer: Handle,
        issuer: OrgId,
        records: usize,
        column: bool,
    },
    /// Holder: the issuer acknowledged (or definitively refused) an answer page.
    AlertAnswerDelivered {
        answer: Handle,
        issuer: OrgId,
        accepted: bool,
    },
    /// Holder: an encrypted alert this node cannot answer, and why.
    AlertNotAnswered {
        alert: AlertId,
        reason: String,
    },
    /// Catch-up: pulled `entries` of `org`'s alert log from `peer`, up to `head`.
    SyncPulled {
        peer: OrgId,
        org: OrgId,
        entries: usize,
        head: u64,
    },
    /// Catch-up: a page from `peer` held a gap, a fork, a broken link or a
    /// forged entry; the pull stopped and the peer got a strike.
    SyncRefused {
        peer: OrgId,
        org: OrgId,
        reason: String,
    },
    /// A message for `peer` waited longer than `network.outbox_ttl`: no
    /// longer resent.
    OutboxExpired {
        key: Handle,
        peer: OrgId,
    },
    /// An issuer created `limit` alerts in an hour (its hourly bound): its
    /// further alerts are ignored for now (audited once an hour).
    IssuerThrottled {
        issuer: OrgId,
        limit: usize,
    },
    /// A backup of the data directory was written to `path`.
    BackupWritten {
        path: String,
    },
    /// A record was erased: on request (right to erasure) or because its
    /// retention date passed. References to it (hits, answers) are scrubbed.
    RecordErased {
        record: u64,
        reason: String,
    },
    /// Issuer: decrypted an answer page from `holder`.
    AlertAnswerReceived {
        alert: AlertId,
        answer: Handle,
        holder: OrgId,
        positives: usize,
        positions: usize,
    },
    /// An issuer created `limit` alerts in a minute (its per-minute bound,
    /// reached first in a burst): further alerts ignored for now (audited
    /// once an hour, as the hourly bound). Appended so that stored audit
    /// chains keep decoding.
    IssuerThrottledPerMinute {
        issuer: OrgId,
        limit: usize,
    },
    /// The payload (template or probe) of a withdrawn or expired alert was
    /// purged, with `hits` of its hits; its signed header stays for its
    /// issuer's log.
    AlertPurged {
        alert: AlertId,
        reason: String,
        hits: usize,
    },
    /// The prober's hits of `query` passed `queries.keep_hits`: purged.
    QueryHitsPurged {
        query: Handle,
        hits: usize,
    },
}

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

    fn open_value<T: serde::de::DeserializeOwned>(&self, k: &[u8], v: &[u8]) -> Result<T, StoreError> {
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

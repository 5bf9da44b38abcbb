//! The node's audit log: a hash chain of signed entries (seq, time, event,
//! previous hash). Any edited, removed, inserted or reordered entry breaks
//! verification; the chain head is stored beside the entries so truncation
//! is caught too. Events name ids and peers, never case details.

use super::{aad_of, read_table, StoreError};
use redb::{ReadableTable, TableDefinition};
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
    let mut check = ChainCheck { org, prev: [0; 32], seq: 0 };
    records.iter().try_for_each(|r| check.next(r))
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(super) struct Head {
    pub(super) seq: u64,
    pub(super) hash: [u8; 32],
}

/// The chain's head, and how entries are sealed and signed. Entries live
/// in the `audit` table of the store's database, written inside the
/// store's transactions (with the state change they record).
pub(super) struct AuditLog {
    key: SealKey,
    signer: Arc<Identity>,
    head: Mutex<Head>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditLog")
    }
}

fn table() -> TableDefinition<'static, &'static [u8], &'static [u8]> {
    TableDefinition::new(AUDIT)
}

impl AuditLog {
    pub(super) fn open(db: &redb::Database, key: SealKey, signer: Arc<Identity>) -> Result<Self, StoreError> {
        let log = Self { key, signer, head: Default::default() };
        let read = db.begin_read()?;
        if let Some(v) = read_table(&read, AUDIT)?.map(|t| t.get(HEAD)).transpose()?.flatten() {
            *log.head.lock().expect("audit head lock") = log.open_value(HEAD, v.value())?;
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

    /// Writes `events` as the next entries (and the new head) into `txn`;
    /// returns the head to `advance` to once `txn` committed (a failed
    /// commit leaves the chain as it was).
    pub(super) fn append_into(
        &self,
        txn: &redb::WriteTransaction,
        at_ms: u64,
        events: Vec<AuditEvent>,
    ) -> Result<Option<Head>, StoreError> {
        if events.is_empty() {
            return Ok(None);
        }
        let head = *self.head.lock().expect("audit head lock");
        let mut new_head = head;
        let mut t = txn.open_table(table())?;
        for event in events {
            let entry = AuditEntry { seq: new_head.seq + 1, at_ms, event, prev: new_head.hash };
            let hash = hash_entry(&entry);
            let signature =
                vigil_crypto::sign_body(&self.signer, domain::AUDIT, &hash).expect("a 32-byte hash always encodes");
            let key = entry.seq.to_be_bytes();
            new_head = Head { seq: entry.seq, hash };
            t.insert(key.as_slice(), self.seal_value(&key, &AuditRecord { entry, hash, signature })?.as_slice())?;
        }
        t.insert(HEAD, self.seal_value(HEAD, &new_head)?.as_slice())?;
        Ok(Some(new_head))
    }

    /// The chain's head as committed.
    pub(super) fn head(&self) -> Head {
        *self.head.lock().expect("audit head lock")
    }

    /// The hash of entry `seq` in `db`, if it holds one.
    pub(super) fn hash_at(&self, db: &redb::Database, seq: u64) -> Result<Option<[u8; 32]>, StoreError> {
        let read = db.begin_read()?;
        let Some(t) = read_table(&read, AUDIT)? else { return Ok(None) };
        let key = seq.to_be_bytes();
        let Some(v) = t.get(key.as_slice())? else { return Ok(None) };
        let record: AuditRecord = self.open_value(&key, v.value())?;
        Ok(Some(record.hash))
    }

    /// The commit holding `append_into`'s entries succeeded.
    pub(super) fn advance(&self, head: Option<Head>) {
        if let Some(h) = head {
            *self.head.lock().expect("audit head lock") = h;
        }
    }

    pub(super) fn entries(&self, db: &redb::Database) -> Result<Vec<AuditRecord>, StoreError> {
        let read = db.begin_read()?;
        let Some(t) = read_table(&read, AUDIT)? else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for kv in t.iter()? {
            let (k, v) = kv?;
            if k.value().len() == 8 {
                out.push(self.open_value(k.value(), v.value())?);
            }
        }
        Ok(out)
    }

    pub(super) fn verify(&self, db: &Arc<redb::Database>) -> Result<usize, AuditError> {
        self.reader(db).verify()
    }

    /// A verification of the chain as it stands when it runs, for another
    /// thread while the node goes on writing (a read transaction is a
    /// snapshot, entries and head alike): entry by entry, in constant memory.
    pub(super) fn reader(&self, db: &Arc<redb::Database>) -> AuditReader {
        AuditReader {
            db: db.clone(),
            log: AuditLog { key: self.key.clone(), signer: self.signer.clone(), head: Default::default() },
        }
    }
}

/// Checks records one after another: sequence, hash, link, signature.
struct ChainCheck<'a> {
    org: &'a OrgId,
    prev: [u8; 32],
    seq: u64,
}

impl ChainCheck<'_> {
    fn next(&mut self, r: &AuditRecord) -> Result<(), AuditError> {
        let expected = self.seq + 1;
        if r.entry.seq != expected {
            return Err(AuditError::Sequence { expected, found: r.entry.seq });
        }
        if hash_entry(&r.entry) != r.hash {
            return Err(AuditError::Hash(r.entry.seq));
        }
        if r.entry.prev != self.prev {
            return Err(AuditError::Link(r.entry.seq));
        }
        vigil_crypto::verify_body(self.org, domain::AUDIT, &r.hash, &r.signature)
            .map_err(|_| AuditError::Signature(r.entry.seq))?;
        (self.prev, self.seq) = (r.hash, expected);
        Ok(())
    }
}

/// A read of the chain to run off the node's event loop
/// (`AuditLog::reader`): a verification, or one page of the newest entries.
#[derive(Debug)]
pub struct AuditReader {
    db: Arc<redb::Database>,
    /// Seals and the org id only; its head is read from the snapshot.
    log: AuditLog,
}

/// One page of the audit log, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditPage {
    pub entries: Vec<AuditRecord>,
    /// Entries in the chain.
    pub total: u64,
    /// Where the next (older) page starts: pass it as `before`; `None`
    /// when the scan reached the first entry.
    pub next: Option<u64>,
}

/// Entries one page view unseals at most, matching or not (a filter that
/// matches nothing costs a bounded amount of work per view).
pub const AUDIT_SCAN_LIMIT: usize = 20_000;

impl AuditReader {
    /// Up to `take` entries older than `before` (all when `None`) that
    /// `keep` accepts, newest first, scanning at most `AUDIT_SCAN_LIMIT`.
    pub fn page(
        self,
        before: Option<u64>,
        take: usize,
        keep: impl Fn(&AuditRecord) -> bool,
    ) -> Result<AuditPage, StoreError> {
        let read = self.db.begin_read()?;
        let Some(t) = read_table(&read, AUDIT)? else { return Ok(AuditPage::default()) };
        let head: Head = match t.get(HEAD)? {
            Some(v) => self.log.open_value(HEAD, v.value())?,
            None => Head::default(),
        };
        let end = before.unwrap_or(u64::MAX).min(head.seq + 1).to_be_bytes();
        let start = 1u64.to_be_bytes();
        let mut page = AuditPage { total: head.seq, ..AuditPage::default() };
        let mut scanned = 0;
        for kv in t.range(start.as_slice()..end.as_slice())?.rev() {
            let (k, v) = kv?;
            let record: AuditRecord = self.log.open_value(k.value(), v.value())?;
            scanned += 1;
            let seq = record.entry.seq;
            if keep(&record) {
                page.entries.push(record);
            }
            if page.entries.len() >= take || scanned >= AUDIT_SCAN_LIMIT {
                page.next = (seq > 1).then_some(seq);
                break;
            }
        }
        Ok(page)
    }

    /// The number of entries, or the first fault.
    pub fn verify(self) -> Result<usize, AuditError> {
        let unreadable = |index: usize, e: &dyn std::fmt::Display| AuditError::Unreadable { index, msg: e.to_string() };
        let read = self.db.begin_read().map_err(|e| unreadable(0, &e))?;
        let Some(t) = read_table(&read, AUDIT).map_err(|e| unreadable(0, &e))? else { return Ok(0) };
        let head: Head = match t.get(HEAD).map_err(|e| unreadable(0, &e))? {
            Some(v) => self.log.open_value(HEAD, v.value()).map_err(|e| unreadable(0, &e))?,
            None => Head::default(),
        };
        let org = self.log.signer.org_id();
        let mut check = ChainCheck { org: &org, prev: [0; 32], seq: 0 };
        for (index, kv) in t.iter().map_err(|e| unreadable(0, &e))?.enumerate() {
            let (k, v) = kv.map_err(|e| unreadable(index, &e))?;
            if k.value().len() != 8 {
                continue;
            }
            let record: AuditRecord = self.log.open_value(k.value(), v.value()).map_err(|e| unreadable(index, &e))?;
            check.next(&record)?;
        }
        if check.seq != head.seq {
            return Err(AuditError::Head { expected: head.seq, found: check.seq });
        }
        Ok(check.seq as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Log {
        _dir: tempfile::TempDir,
        db: Arc<redb::Database>,
        log: AuditLog,
        key: SealKey,
    }

    fn append(l: &Log, at_ms: u64, events: Vec<AuditEvent>) {
        let txn = l.db.begin_write().unwrap();
        let head = l.log.append_into(&txn, at_ms, events).unwrap();
        txn.commit().unwrap();
        l.log.advance(head);
    }

    fn log() -> Log {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(redb::Database::create(dir.path().join("t.redb")).unwrap());
        let key = SealKey::random();
        let log = AuditLog::open(&db, key.clone(), Arc::new(Identity::generate())).unwrap();
        let l = Log { _dir: dir, db, log, key };
        for i in 0..5 {
            append(&l, i, vec![AuditEvent::PeerBlocked { peer: format!("p{i}") }]);
        }
        l
    }

    fn raw(l: &Log, f: impl FnOnce(&mut redb::Table<&'static [u8], &'static [u8]>)) {
        let txn = l.db.begin_write().unwrap();
        f(&mut txn.open_table(table()).unwrap());
        txn.commit().unwrap();
    }

    #[test]
    fn intact_chain_verifies_and_survives_reopen() {
        let l = log();
        assert_eq!(l.log.verify(&l.db).unwrap(), 5);
        let again = AuditLog::open(&l.db, l.key.clone(), l.log.signer.clone()).unwrap();
        let l = Log { log: again, ..l };
        append(&l, 9, vec![AuditEvent::PeerBlocked { peer: "x".into() }]);
        assert_eq!(l.log.verify(&l.db).unwrap(), 6);
    }

    #[test]
    fn pages_run_newest_first_and_continue_where_they_stopped() {
        let l = log();
        let even = |r: &AuditRecord| r.entry.seq.is_multiple_of(2);
        let first = l.log.reader(&l.db).page(None, 1, even).unwrap();
        let seqs = |p: &AuditPage| p.entries.iter().map(|r| r.entry.seq).collect::<Vec<_>>();
        assert_eq!((seqs(&first), first.total, first.next), (vec![4], 5, Some(4)));
        let second = l.log.reader(&l.db).page(first.next, 10, even).unwrap();
        assert_eq!((seqs(&second), second.next), (vec![2], None));
        let all = l.log.reader(&l.db).page(Some(3), 10, |_| true).unwrap();
        assert_eq!(seqs(&all), vec![2, 1]);
    }

    #[test]
    fn a_commit_that_fails_leaves_the_chain_as_it_was() {
        let l = log();
        let txn = l.db.begin_write().unwrap();
        let head = l.log.append_into(&txn, 7, vec![AuditEvent::PeerBlocked { peer: "lost".into() }]).unwrap();
        assert!(head.is_some());
        drop(txn); // aborted: never advanced
        append(&l, 8, vec![AuditEvent::PeerBlocked { peer: "next".into() }]);
        assert_eq!(l.log.verify(&l.db).unwrap(), 6);
    }

    #[test]
    fn edited_removed_reordered_and_truncated_entries_fail() {
        let l = log();
        let recs = l.log.entries(&l.db).unwrap();
        let org = l.log.signer.org_id();

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
        raw(&l, |t| {
            t.remove(5u64.to_be_bytes().as_slice()).unwrap();
        });
        assert_eq!(l.log.verify(&l.db), Err(AuditError::Head { expected: 5, found: 4 }));
    }

    #[test]
    fn swapped_sealed_values_do_not_open() {
        let l = log();
        raw(&l, |t| {
            let a = t.get(1u64.to_be_bytes().as_slice()).unwrap().unwrap().value().to_vec();
            let b = t.get(2u64.to_be_bytes().as_slice()).unwrap().unwrap().value().to_vec();
            t.insert(1u64.to_be_bytes().as_slice(), b.as_slice()).unwrap();
            t.insert(2u64.to_be_bytes().as_slice(), a.as_slice()).unwrap();
        });
        assert!(matches!(l.log.verify(&l.db), Err(AuditError::Unreadable { .. })));
    }
}

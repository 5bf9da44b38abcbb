//! Durable node state in redb (one file, `vigil.redb`): every value is
//! sealed (XChaCha20-Poly1305 under the data key, bound to its table and
//! key as associated data), so no template, probe or case detail lands on
//! disk in the clear. Keys are opaque ids. Every acknowledged commit is one
//! transaction, fsynced before it returns; a damaged file is refused at
//! open (`files`). Why redb and not sled: README, "Storage".

mod audit;
mod files;
mod manifest;

pub use audit::{verify_chain, AuditEntry, AuditError, AuditPage, AuditReader, AuditRecord, AUDIT_SCAN_LIMIT};
pub use files::newest_backup;

use redb::{ReadableTable, TableDefinition, TableHandle};
use serde::{de::DeserializeOwned, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use vigil_crypto::{SealError, SealKey};
use vigil_engine::audit::AuditEvent;
use vigil_engine::model::{
    receipt_key, Meta, StoreOp, StoredAlert, StoredAnswer, StoredBlock, StoredBudget, StoredDisclosure, StoredHit,
    StoredReceipt, StoredRecord,
};
use vigil_protocol::{decode, encode, Tag, WireError};

/// Largest sealed value the store writes or reads.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;
/// The database file in a data directory.
pub const DB_FILE: &str = "vigil.redb";

/// The database file of data directory `dir`.
pub fn db_path(dir: &Path) -> PathBuf {
    dir.join(DB_FILE)
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(Box<redb::Error>),
    /// The file is damaged: the node does not start on it.
    #[error(
        "the database {path} is damaged ({detail}); the node does not start on it. Restore a good backup \
         into a new directory (vigil restore --from FILE --data NEWDIR): {backup}. Keep this directory for \
         inspection."
    )]
    Damaged { path: String, detail: String, backup: String },
    #[error("stored value {tree}/{key} does not open ({source}); wrong key or tampered data")]
    Seal {
        tree: &'static str,
        key: String,
        #[source]
        source: SealError,
    },
    #[error("stored value {tree}/{key} is malformed: {source}")]
    Decode {
        tree: &'static str,
        key: String,
        #[source]
        source: WireError,
    },
    #[error("cannot encode value: {0}")]
    Encode(WireError),
    #[error("cannot rewrite the database at {0}: {1}")]
    Io(String, #[source] std::io::Error),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(Box::new(e.into()))
            }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

const RECORDS: &str = "records";
const ALERTS: &str = "alerts";
const HITS: &str = "hits";
const META: &str = "meta";
const DISCLOSURES: &str = "disclosures";
const ANSWERS: &str = "answers";
const RECEIPTS: &str = "receipts";
const BLOCKS: &str = "blocks";
const BUDGETS: &str = "budgets";
/// The steward-signed biometric policy applied (one value, key `policy`).
const POLICY: &str = "policy";
/// The console's operators, by name.
const OPERATORS: &str = "operators";
/// In `META`: the number of commits made. Every commit rewrites it, so a
/// file that went back to an earlier commit differs from the one it was
/// (`files::check`); enrolments rewrite `META`'s page anyway.
const COMMITS: (&str, &[u8]) = (META, b"commits");

fn table(name: &str) -> TableDefinition<'_, &'static [u8], &'static [u8]> {
    TableDefinition::new(name)
}

type Table = redb::ReadOnlyTable<&'static [u8], &'static [u8]>;

/// Table `name` in a read snapshot; `None` until a first write made it.
fn read_table(read: &redb::ReadTransaction, name: &str) -> Result<Option<Table>, redb::TableError> {
    match read.open_table(table(name)) {
        Ok(t) => Ok(Some(t)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// What `Store::check` found in one table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TableCheck {
    pub table: String,
    /// Values that open under the data key with their table and key.
    pub intact: usize,
    /// Values that do not (tampered, damaged, or copied to another key).
    pub unreadable: usize,
}

/// One table's rows, for backups: (table name, [(key, sealed value)]).
pub type Collection = (String, Vec<(Vec<u8>, Vec<u8>)>);

#[derive(Debug)]
pub struct Store {
    /// Shared with audit verifications running off the event loop.
    db: std::sync::Arc<redb::Database>,
    key: SealKey,
    audit: audit::AuditLog,
    path: PathBuf,
    signer: std::sync::Arc<vigil_crypto::Identity>,
    /// Commits made without waiting for the disk since the last durable one.
    dirty: AtomicBool,
    /// The audit position the manifest holds.
    anchored: std::sync::atomic::AtomicU64,
    /// Commits made so far (the value at `COMMITS`).
    commits: std::sync::atomic::AtomicU64,
    /// Drills: commits left before the disk is "full" (every later write
    /// fails with ENOSPC, as a full disk's would).
    #[cfg(feature = "drill")]
    writes_left: std::sync::atomic::AtomicUsize,
}

impl Store {
    /// Opens (or creates) the database file at `path`, sealed under `key`;
    /// the audit log is signed with `signer`. A damaged file is refused
    /// (`StoreError::Damaged`); a sled directory from before is migrated
    /// first; a compaction a crash interrupted is done again.
    pub fn open(path: &Path, key: SealKey, signer: std::sync::Arc<vigil_crypto::Identity>) -> Result<Self, StoreError> {
        if let Some(n) = files::migrate_from_sled(path)? {
            tracing::info!("migrated {n} stored values from sled to {}", path.display());
        }
        let (db, interrupted) = files::open(path, COMMITS)?;
        let store = Self::with(std::sync::Arc::new(db), key, path.to_path_buf(), signer)?;
        let anchored = manifest::read(path, &store.key)?;
        manifest::check(path, anchored, store.audit.head(), |seq| store.audit.hash_at(&store.db, seq))?;
        store.anchored.store(anchored.map_or(0, |m| m.audit_seq), Ordering::Relaxed);
        if !interrupted {
            return Ok(store);
        }
        tracing::warn!("a compaction was interrupted; compacting {} again", path.display());
        match store.compact()? {
            (store, None) => Ok(store),
            (_, Some(e)) => Err(e),
        }
    }

    fn with(
        db: std::sync::Arc<redb::Database>,
        key: SealKey,
        path: PathBuf,
        signer: std::sync::Arc<vigil_crypto::Identity>,
    ) -> Result<Self, StoreError> {
        let audit = audit::AuditLog::open(&db, key.clone(), signer.clone())?;
        let store = Self {
            db,
            key,
            audit,
            path,
            signer,
            dirty: AtomicBool::new(false),
            anchored: std::sync::atomic::AtomicU64::new(0),
            commits: std::sync::atomic::AtomicU64::new(0),
            #[cfg(feature = "drill")]
            writes_left: std::sync::atomic::AtomicUsize::new(usize::MAX),
        };
        let commits = store.value::<u64>(COMMITS.0, COMMITS.1)?.unwrap_or(0);
        store.commits.store(commits, Ordering::Relaxed);
        Ok(store)
    }

    /// Rewrites the database into a fresh file and renames it over the old
    /// one, so that removed values (erased records) are gone from the
    /// files, not only unreachable (freed pages keep their bytes until
    /// reused). Takes as long as copying the live data. Crash-safe: a start
    /// after a crash at any step finds the old file or the new one whole,
    /// discards the other, and compacts again. Always hands back a usable
    /// store: the compacted one, or (with the error) the original.
    pub fn compact(self) -> Result<(Store, Option<StoreError>), StoreError> {
        self.compact_inner(
            #[cfg(test)]
            None,
        )
    }

    /// As `compact`, stopping (as a crash would) after `step`.
    #[cfg(test)]
    pub(crate) fn compact_crashing(self, step: files::CompactStep) -> Result<(), StoreError> {
        self.compact_inner(Some(step)).map(|_| ())
    }

    fn compact_inner(
        self,
        #[cfg(test)] stop: Option<files::CompactStep>,
    ) -> Result<(Store, Option<StoreError>), StoreError> {
        let Store { db, key, audit, path, signer, .. } = self;
        drop(audit);
        let done = files::compact(
            db,
            &path,
            #[cfg(test)]
            stop,
        );
        match done {
            Ok(()) => Ok((Store::open(&path, key, signer)?, None)),
            Err((Some(db), e)) => Ok((Store::with(db, key, path, signer)?, Some(e))),
            Err((None, e)) => Ok((Store::open(&path, key, signer)?, Some(e))),
        }
    }

    /// The data directory this store lives in.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// Opens the store at this one's path again (after a failed compaction).
    pub fn reopen(&self) -> Result<Store, StoreError> {
        Store::open(&self.path, self.key.clone(), self.signer.clone())
    }

    /// A throw-away in-memory store that stands in while this one is
    /// rewritten (nothing is written to it: the runtime is busy compacting).
    pub fn placeholder(&self) -> Result<Store, StoreError> {
        let db = redb::Builder::new().create_with_backend(redb::backends::InMemoryBackend::new())?;
        Self::with(std::sync::Arc::new(db), self.key.clone(), self.path.clone(), self.signer.clone())
    }

    /// Every table's rows, sealed as stored, from one consistent snapshot
    /// (for a backup), and the data key they are sealed under.
    pub(crate) fn export(&self) -> Result<(&SealKey, Vec<Collection>), StoreError> {
        let read = self.db.begin_read()?;
        let mut out = Vec::new();
        for handle in read.list_tables()? {
            let t = read.open_table(table(handle.name()))?;
            let rows = t
                .iter()?
                .map(|kv| kv.map(|(k, v)| (k.value().to_vec(), v.value().to_vec())))
                .collect::<Result<Vec<_>, _>>()?;
            out.push((handle.name().to_string(), rows));
        }
        Ok((&self.key, out))
    }

    /// Opens every stored value (not only the ones a start reads) and
    /// counts, per table, those that open and those that do not.
    pub fn check(&self) -> Result<Vec<TableCheck>, StoreError> {
        let (_, tables) = self.export()?;
        Ok(tables
            .into_iter()
            .map(|(table, rows)| {
                let intact = rows.iter().filter(|(k, v)| self.key.open(&aad_of(&table, k), v).is_ok()).count();
                TableCheck { unreadable: rows.len() - intact, intact, table }
            })
            .collect())
    }

    /// Writes `collections` (a backup's tables) into a new database file
    /// at `path`, in one durable transaction. Returns the values written.
    pub(crate) fn import(path: &Path, collections: Vec<Collection>) -> Result<usize, StoreError> {
        let db = redb::Database::create(path)?;
        let write = db.begin_write()?;
        let mut n = 0;
        for (name, rows) in collections {
            let mut t = write.open_table(table(&name))?;
            for (k, v) in rows {
                t.insert(k.as_slice(), v.as_slice())?;
                n += 1;
            }
        }
        write.commit()?;
        Ok(n)
    }

    fn seal<T: Serialize>(&self, tree: &str, key: &[u8], value: &T) -> Result<Vec<u8>, StoreError> {
        let bytes = encode(Tag::Stored, value, MAX_VALUE_BYTES).map_err(StoreError::Encode)?;
        Ok(self.key.seal(&aad_of(tree, key), &bytes))
    }

    fn unseal<T: DeserializeOwned + Serialize>(
        &self,
        tree: &'static str,
        key: &[u8],
        sealed: &[u8],
    ) -> Result<T, StoreError> {
        let bytes = self.key.open(&aad_of(tree, key), sealed).map_err(|source| StoreError::Seal {
            tree,
            key: hex::encode(key),
            source,
        })?;
        decode(Tag::Stored, &bytes, MAX_VALUE_BYTES).map_err(|source| StoreError::Decode {
            tree,
            key: hex::encode(key),
            source,
        })
    }

    fn all<T: DeserializeOwned + Serialize>(&self, tree: &'static str) -> Result<Vec<T>, StoreError> {
        let read = self.db.begin_read()?;
        let Some(t) = read_table(&read, tree)? else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for kv in t.iter()? {
            let (k, v) = kv?;
            out.push(self.unseal(tree, k.value(), v.value())?);
        }
        Ok(out)
    }

    /// As `all`, for a table whose values gained fields: a value that does
    /// not decode as `T` is read as its older form `Old`. A value that is
    /// neither is reported as `T`'s decode error.
    fn all_or_older<T, Old>(&self, tree: &'static str) -> Result<Vec<T>, StoreError>
    where
        T: DeserializeOwned + Serialize,
        Old: DeserializeOwned + Serialize + Into<T>,
    {
        let read = self.db.begin_read()?;
        let Some(t) = read_table(&read, tree)? else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for kv in t.iter()? {
            let (k, v) = kv?;
            out.push(self.unseal_or_older::<T, Old>(tree, k.value(), v.value())?);
        }
        Ok(out)
    }

    /// A value as `T`, or as its older form `Old` (see `all_or_older`).
    fn unseal_or_older<T, Old>(&self, tree: &'static str, key: &[u8], sealed: &[u8]) -> Result<T, StoreError>
    where
        T: DeserializeOwned + Serialize,
        Old: DeserializeOwned + Serialize + Into<T>,
    {
        match self.unseal::<T>(tree, key, sealed) {
            Err(e @ StoreError::Decode { .. }) => self.unseal::<Old>(tree, key, sealed).map(Into::into).map_err(|_| e),
            other => other,
        }
    }

    /// The records of `ids` that exist (in the order asked).
    pub fn records_by_id(&self, ids: &[u64]) -> Result<Vec<StoredRecord>, StoreError> {
        let read = self.db.begin_read()?;
        let Some(t) = read_table(&read, RECORDS)? else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for id in ids {
            let key = id.to_be_bytes();
            if let Some(v) = t.get(key.as_slice())? {
                out.push(self.unseal_or_older::<StoredRecord, vigil_engine::model::StoredRecordV1>(
                    RECORDS,
                    &key,
                    v.value(),
                )?);
            }
        }
        Ok(out)
    }

    /// Applies `ops` in one transaction, durable before it returns.
    pub fn apply(&self, ops: &[StoreOp]) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        self.transact(true, ops, 0, Vec::new())
    }

    /// Applies `ops` and appends `audits` in one transaction, durable
    /// before it returns.
    pub fn commit(&self, ops: &[StoreOp], at_ms: u64, audits: Vec<AuditEvent>) -> Result<(), StoreError> {
        self.transact(true, ops, at_ms, audits)
    }

    /// Applies `ops` and appends `audits` without waiting for the disk:
    /// for state nobody was promised (an alert received by gossip, which
    /// catch-up restores if it is lost). The next durable commit, or
    /// `flush_if_dirty` on the runtime's tick, makes it durable.
    pub fn commit_unflushed(&self, ops: &[StoreOp], at_ms: u64, audits: Vec<AuditEvent>) -> Result<(), StoreError> {
        self.transact(false, ops, at_ms, audits)
    }

    fn transact(&self, durable: bool, ops: &[StoreOp], at_ms: u64, audits: Vec<AuditEvent>) -> Result<(), StoreError> {
        if ops.is_empty() && audits.is_empty() {
            return Ok(());
        }
        #[cfg(feature = "drill")]
        if self.writes_left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_err() {
            let full = std::io::Error::from_raw_os_error(28); // ENOSPC
            return Err(StoreError::Io(self.path.display().to_string(), full));
        }
        let mut txn = self.db.begin_write()?;
        if !durable {
            txn.set_durability(redb::Durability::None);
        }
        self.write(&txn, ops)?;
        let head = self.audit.append_into(&txn, at_ms, audits)?;
        // Under the write lock; a commit that fails leaves a gap, not a repeat.
        let commits = self.commits.fetch_add(1, Ordering::Relaxed) + 1;
        let counted = self.seal(COMMITS.0, COMMITS.1, &commits)?;
        txn.open_table(table(COMMITS.0))?.insert(COMMITS.1, counted.as_slice())?;
        txn.commit()?;
        self.audit.advance(head);
        self.dirty.store(!durable, Ordering::Relaxed);
        Ok(())
    }

    fn write(&self, txn: &redb::WriteTransaction, ops: &[StoreOp]) -> Result<(), StoreError> {
        for op in ops {
            let removed = match op {
                StoreOp::DeleteRecord(id) => Some((RECORDS, id.to_be_bytes().to_vec())),
                StoreOp::DeleteHit(h) => Some((HITS, h.0.to_vec())),
                StoreOp::DeleteAnswer(h) => Some((ANSWERS, h.0.to_vec())),
                StoreOp::DeleteReceipt(h) => Some((RECEIPTS, h.0.to_vec())),
                StoreOp::DeleteBlock(o) => Some((BLOCKS, o.0.to_vec())),
                _ => None,
            };
            if let Some((tree, key)) = removed {
                txn.open_table(table(tree))?.remove(key.as_slice())?;
                continue;
            }
            let (tree, key, value) = match op {
                StoreOp::DeleteRecord(_)
                | StoreOp::DeleteHit(_)
                | StoreOp::DeleteAnswer(_)
                | StoreOp::DeleteReceipt(_)
                | StoreOp::DeleteBlock(_) => unreachable!("handled above"),
                StoreOp::PutRecord(r) => {
                    (RECORDS, r.id.to_be_bytes().to_vec(), self.seal(RECORDS, &r.id.to_be_bytes(), r)?)
                }
                StoreOp::PutAlert(a) => (ALERTS, a.id.0.to_vec(), self.seal(ALERTS, &a.id.0, a)?),
                StoreOp::PutHit(h) => (HITS, h.handle.0.to_vec(), self.seal(HITS, &h.handle.0, h)?),
                StoreOp::PutMeta(m) => (META, b"meta".to_vec(), self.seal(META, b"meta", m)?),
                StoreOp::PutDisclosure(d) => (DISCLOSURES, d.id.0.to_vec(), self.seal(DISCLOSURES, &d.id.0, d)?),
                StoreOp::PutAnswer(a) => (ANSWERS, a.id.0.to_vec(), self.seal(ANSWERS, &a.id.0, a)?),
                StoreOp::PutBlock(b) => (BLOCKS, b.peer.0.to_vec(), self.seal(BLOCKS, &b.peer.0, b)?),
                StoreOp::PutBudget(b) => {
                    let key = StoredBudget::key(&b.peer, b.kind);
                    let sealed = self.seal(BUDGETS, &key, b)?;
                    (BUDGETS, key, sealed)
                }
                StoreOp::PutPolicy(p) => (POLICY, b"policy".to_vec(), self.seal(POLICY, b"policy", p)?),
                StoreOp::PutOperator(o) => {
                    (OPERATORS, o.name.as_bytes().to_vec(), self.seal(OPERATORS, o.name.as_bytes(), o)?)
                }
                StoreOp::PutReceipt(r) => {
                    let key = receipt_key(&r.alert, &r.member);
                    (RECEIPTS, key.0.to_vec(), self.seal(RECEIPTS, &key.0, r)?)
                }
            };
            txn.open_table(table(tree))?.insert(key.as_slice(), value.as_slice())?;
        }
        Ok(())
    }

    /// Records, those stored before PAD attestations included.
    pub fn records(&self) -> Result<Vec<StoredRecord>, StoreError> {
        self.all_or_older::<StoredRecord, vigil_engine::model::StoredRecordV1>(RECORDS)
    }
    /// Alerts, those stored before PAD attestations included.
    pub fn alerts(&self) -> Result<Vec<StoredAlert>, StoreError> {
        self.all_or_older::<StoredAlert, vigil_engine::model::StoredAlertV1>(ALERTS)
    }
    /// Hits, those stored before bands included.
    pub fn hits(&self) -> Result<Vec<StoredHit>, StoreError> {
        self.all_or_older::<StoredHit, vigil_engine::model::StoredHitV1>(HITS)
    }
    /// Disclosures, those stored before the four-eyes rule included.
    pub fn disclosures(&self) -> Result<Vec<StoredDisclosure>, StoreError> {
        self.all_or_older::<StoredDisclosure, vigil_engine::model::StoredDisclosureV1>(DISCLOSURES)
    }
    pub fn operators(&self) -> Result<Vec<vigil_engine::operators::StoredOperator>, StoreError> {
        self.all(OPERATORS)
    }
    pub fn answers(&self) -> Result<Vec<StoredAnswer>, StoreError> {
        self.all(ANSWERS)
    }
    pub fn receipts(&self) -> Result<Vec<StoredReceipt>, StoreError> {
        self.all(RECEIPTS)
    }
    pub fn blocks(&self) -> Result<Vec<StoredBlock>, StoreError> {
        self.all(BLOCKS)
    }
    pub fn budgets(&self) -> Result<Vec<StoredBudget>, StoreError> {
        self.all(BUDGETS)
    }
    /// The biometric policy last applied, if any.
    pub fn policy(&self) -> Result<Option<vigil_protocol::SignedPolicy>, StoreError> {
        self.value(POLICY, b"policy")
    }
    pub fn meta(&self) -> Result<Meta, StoreError> {
        Ok(self.value(META, b"meta")?.unwrap_or_else(|| Meta { next_record: 1, ..Meta::default() }))
    }

    /// The one value at `key` in `tree`, if stored.
    fn value<T: DeserializeOwned + Serialize>(&self, tree: &'static str, key: &[u8]) -> Result<Option<T>, StoreError> {
        let read = self.db.begin_read()?;
        let Some(t) = read_table(&read, tree)? else { return Ok(None) };
        let found = t.get(key)?;
        found.map(|v| self.unseal(tree, key, v.value())).transpose()
    }

    /// Appends an audit entry (durable before it returns).
    pub fn audit(&self, at_ms: u64, event: AuditEvent) -> Result<(), StoreError> {
        self.commit(&[], at_ms, vec![event])
    }

    pub fn audit_entries(&self) -> Result<Vec<AuditRecord>, StoreError> {
        self.audit.entries(&self.db)
    }

    pub fn audit_verify(&self) -> Result<usize, AuditError> {
        self.audit.verify(&self.db)
    }

    /// A read of the audit chain (verification or a page) to run on
    /// another thread.
    pub fn audit_reader(&self) -> AuditReader {
        self.audit.reader(&self.db)
    }

    /// Makes every commit so far durable (on shutdown, and on the
    /// runtime's tick after commits that did not wait for the disk).
    pub fn flush(&self) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        txn.commit()?;
        self.dirty.store(false, Ordering::Relaxed);
        Ok(())
    }

    /// Drills: after `n` more commits, every write fails as on a full disk.
    #[cfg(feature = "drill")]
    pub fn fill_disk_after(&self, n: usize) {
        self.writes_left.store(n, Ordering::Relaxed);
    }

    /// `flush_if_dirty`, then the manifest beside the database records the audit
    /// head (if it moved since the last time): what a later start checks
    /// the database against.
    pub fn flush_and_anchor(&self, now_ms: u64) -> Result<(), StoreError> {
        self.flush_if_dirty()?;
        let head = self.audit.head();
        if head.seq != self.anchored.load(Ordering::Relaxed) {
            manifest::write(&self.path, &self.key, head, now_ms)?;
            self.anchored.store(head.seq, Ordering::Relaxed);
        }
        Ok(())
    }

    /// `flush`, if a commit since the last durable one did not wait.
    pub fn flush_if_dirty(&self) -> Result<(), StoreError> {
        if self.dirty.load(Ordering::Relaxed) {
            self.flush()?;
        }
        Ok(())
    }
}

pub(crate) fn aad_of(tree: &str, key: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(tree.len() + 1 + key.len());
    a.extend_from_slice(tree.as_bytes());
    a.push(b'/');
    a.extend_from_slice(key);
    a
}

#[cfg(test)]
mod tests;

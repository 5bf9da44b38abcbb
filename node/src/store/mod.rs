//! Durable node state in sled. Every value is sealed (XChaCha20-Poly1305
//! under the data key, bound to its tree and key as associated data), so no
//! template, probe or case detail lands on disk in the clear. Keys are
//! opaque ids. Every batch is flushed before it is acknowledged.

mod audit;

pub use audit::{verify_chain, AuditEntry, AuditError, AuditRecord};

use serde::{de::DeserializeOwned, Serialize};
use std::path::Path;
use vigil_crypto::{SealError, SealKey};
use vigil_engine::audit::AuditEvent;
use vigil_engine::model::{
    receipt_key, Meta, StoreOp, StoredAlert, StoredAnswer, StoredDisclosure, StoredHit, StoredReceipt, StoredRecord,
};
use vigil_protocol::{decode, encode, Tag, WireError};

/// Largest sealed value the store writes or reads.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("database error: {0}")]
    Sled(#[from] sled::Error),
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

const RECORDS: &str = "records";
const ALERTS: &str = "alerts";
const HITS: &str = "hits";
const META: &str = "meta";
const DISCLOSURES: &str = "disclosures";
const ANSWERS: &str = "answers";
const RECEIPTS: &str = "receipts";

#[derive(Debug)]
pub struct Store {
    db: sled::Db,
    key: SealKey,
    audit: audit::AuditLog,
    path: std::path::PathBuf,
    signer: std::sync::Arc<vigil_crypto::Identity>,
}

impl Store {
    /// Opens (or creates) the sled database at `path`, sealed under `key`.
    /// The audit log is signed with `signer`.
    pub fn open(path: &Path, key: SealKey, signer: std::sync::Arc<vigil_crypto::Identity>) -> Result<Self, StoreError> {
        let db = sled::Config::new().path(path).mode(sled::Mode::HighThroughput).open()?;
        let audit = audit::AuditLog::open(&db, key.clone(), signer.clone())?;
        Ok(Self { db, key, audit, path: path.to_path_buf(), signer })
    }

    /// Rewrites the database into a fresh directory and swaps it in, so
    /// that removed values (erased records) are gone from the files, not
    /// only unreachable: sled keeps old versions in its log segments until
    /// it reuses them. Takes as long as copying the live data. Always hands
    /// back a usable store: the compacted one, or (with the error) the
    /// original, reopened, if a step failed.
    pub fn compact(self) -> Result<(Store, Option<StoreError>), StoreError> {
        let fresh = self.path.with_extension("compact");
        let old = self.path.with_extension("old");
        let io = |p: &Path| {
            let p = p.display().to_string();
            move |e| StoreError::Io(p, e)
        };
        let copy = || -> Result<(), StoreError> {
            for p in [&fresh, &old] {
                if p.exists() {
                    std::fs::remove_dir_all(p).map_err(io(p))?;
                }
            }
            self.db.flush()?;
            let new = sled::Config::new().path(&fresh).mode(sled::Mode::HighThroughput).open()?;
            new.import(self.db.export());
            new.flush()?;
            Ok(())
        };
        if let Err(e) = copy() {
            return Ok((self, Some(e)));
        }
        let Store { db, key, audit, path, signer } = self;
        drop(audit);
        drop(db);
        if let Err(e) = std::fs::rename(&path, &old).map_err(io(&path)) {
            return Ok((Store::open(&path, key, signer)?, Some(e)));
        }
        if let Err(e) = std::fs::rename(&fresh, &path).map_err(io(&fresh)) {
            std::fs::rename(&old, &path).map_err(io(&old))?;
            return Ok((Store::open(&path, key, signer)?, Some(e)));
        }
        let removed = std::fs::remove_dir_all(&old).map_err(io(&old)).err();
        Ok((Store::open(&path, key, signer)?, removed))
    }

    /// The data directory this store lives in.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// The data key and the database, for a backup (`crate::backup`).
    pub(crate) fn parts(&self) -> (&SealKey, &sled::Db) {
        (&self.key, &self.db)
    }

    /// Opens the store at this one's path again (after a failed compaction).
    pub fn reopen(&self) -> Result<Store, StoreError> {
        Store::open(&self.path, self.key.clone(), self.signer.clone())
    }

    /// A throw-away in-memory store that stands in while this one is
    /// rewritten (nothing is written to it: the runtime is busy compacting).
    pub fn placeholder(&self) -> Result<Store, StoreError> {
        let db = sled::Config::new().temporary(true).open()?;
        let audit = audit::AuditLog::open(&db, self.key.clone(), self.signer.clone())?;
        Ok(Self { db, key: self.key.clone(), audit, path: self.path.clone(), signer: self.signer.clone() })
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
        let t = self.db.open_tree(tree)?;
        t.iter()
            .map(|kv| {
                let (k, v) = kv?;
                self.unseal(tree, &k, &v)
            })
            .collect()
    }

    /// Applies `ops` and flushes them to disk before returning.
    pub fn apply(&self, ops: &[StoreOp]) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        self.write(ops)?;
        self.db.flush()?;
        Ok(())
    }

    /// Applies `ops`, then appends `audits`, with one flush for both:
    /// everything is durable when it returns.
    pub fn commit(&self, ops: &[StoreOp], at_ms: u64, audits: Vec<AuditEvent>) -> Result<(), StoreError> {
        if audits.is_empty() {
            return self.apply(ops);
        }
        self.write(ops)?;
        self.audit.append_many(at_ms, audits)
    }

    /// Applies `ops` and appends `audits` without waiting for them to be
    /// durable: for state nobody was promised (an alert received by
    /// gossip, which catch-up restores if it is lost). The next flushing
    /// commit, or sled's periodic flush, makes it durable.
    pub fn commit_unflushed(&self, ops: &[StoreOp], at_ms: u64, audits: Vec<AuditEvent>) -> Result<(), StoreError> {
        self.write(ops)?;
        self.audit.append_many_with(at_ms, audits, false)
    }

    fn write(&self, ops: &[StoreOp]) -> Result<(), StoreError> {
        for op in ops {
            match op {
                StoreOp::DeleteRecord(id) => {
                    self.db.open_tree(RECORDS)?.remove(id.to_be_bytes())?;
                    continue;
                }
                StoreOp::DeleteHit(h) => {
                    self.db.open_tree(HITS)?.remove(h.0)?;
                    continue;
                }
                StoreOp::DeleteAnswer(h) => {
                    self.db.open_tree(ANSWERS)?.remove(h.0)?;
                    continue;
                }
                StoreOp::DeleteReceipt(h) => {
                    self.db.open_tree(RECEIPTS)?.remove(h.0)?;
                    continue;
                }
                _ => {}
            }
            let (tree, key, value) = match op {
                StoreOp::DeleteRecord(_)
                | StoreOp::DeleteHit(_)
                | StoreOp::DeleteAnswer(_)
                | StoreOp::DeleteReceipt(_) => {
                    unreachable!("handled above")
                }
                StoreOp::PutRecord(r) => {
                    (RECORDS, r.id.to_be_bytes().to_vec(), self.seal(RECORDS, &r.id.to_be_bytes(), r)?)
                }
                StoreOp::PutAlert(a) => (ALERTS, a.id.0.to_vec(), self.seal(ALERTS, &a.id.0, a)?),
                StoreOp::PutHit(h) => (HITS, h.handle.0.to_vec(), self.seal(HITS, &h.handle.0, h)?),
                StoreOp::PutMeta(m) => (META, b"meta".to_vec(), self.seal(META, b"meta", m)?),
                StoreOp::PutDisclosure(d) => (DISCLOSURES, d.id.0.to_vec(), self.seal(DISCLOSURES, &d.id.0, d)?),
                StoreOp::PutAnswer(a) => (ANSWERS, a.id.0.to_vec(), self.seal(ANSWERS, &a.id.0, a)?),
                StoreOp::PutReceipt(r) => {
                    let key = receipt_key(&r.alert, &r.member);
                    (RECEIPTS, key.0.to_vec(), self.seal(RECEIPTS, &key.0, r)?)
                }
            };
            self.db.open_tree(tree)?.insert(key, value)?;
        }
        Ok(())
    }

    pub fn records(&self) -> Result<Vec<StoredRecord>, StoreError> {
        self.all(RECORDS)
    }
    pub fn alerts(&self) -> Result<Vec<StoredAlert>, StoreError> {
        self.all(ALERTS)
    }
    pub fn hits(&self) -> Result<Vec<StoredHit>, StoreError> {
        self.all(HITS)
    }
    pub fn disclosures(&self) -> Result<Vec<StoredDisclosure>, StoreError> {
        self.all(DISCLOSURES)
    }
    pub fn answers(&self) -> Result<Vec<StoredAnswer>, StoreError> {
        self.all(ANSWERS)
    }
    pub fn receipts(&self) -> Result<Vec<StoredReceipt>, StoreError> {
        self.all(RECEIPTS)
    }
    pub fn meta(&self) -> Result<Meta, StoreError> {
        match self.db.open_tree(META)?.get(b"meta")? {
            Some(v) => self.unseal(META, b"meta", &v),
            None => Ok(Meta { next_record: 1, ..Meta::default() }),
        }
    }

    /// Appends an audit entry (durable before it returns).
    pub fn audit(&self, at_ms: u64, event: AuditEvent) -> Result<AuditEntry, StoreError> {
        self.audit.append(at_ms, event)
    }

    pub fn audit_entries(&self) -> Result<Vec<AuditRecord>, StoreError> {
        self.audit.entries()
    }

    pub fn audit_verify(&self) -> Result<usize, AuditError> {
        self.audit.verify()
    }

    /// Flushes everything (on shutdown).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
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

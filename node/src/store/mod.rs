//! Durable node state in sled. Every value is sealed (XChaCha20-Poly1305
//! under the data key, bound to its tree and key as associated data), so no
//! template, probe or case detail lands on disk in the clear. Keys are
//! opaque ids. Every batch is flushed before it is acknowledged.

mod audit;

pub use audit::{verify_chain, AuditEntry, AuditError, AuditEvent, AuditRecord};

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::path::Path;
use vigil_crypto::{SealError, SealKey};
use vigil_matcher::Template;
use vigil_protocol::{decode, encode, AlertId, Category, Handle, OrgId, SignedAlert, SignedRoster, Tag, WireError};

/// Largest sealed value the store writes or reads.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
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

/// Legal regime a record falls under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Regime {
    /// General Data Protection Regulation.
    Gdpr,
    /// Law Enforcement Directive (EU 2016/680).
    Led,
}

/// An enrolled gallery record (sealed at rest; never leaves the node).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRecord {
    pub id: u64,
    pub template: Template,
    pub category: Category,
    pub case_ref: String,
    pub consent: String,
    pub regime: Regime,
    pub enrolled_at_ms: u64,
    pub retain_until_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Active,
    Withdrawn,
    /// Withdrawn or expired, and its payload (template or probe) purged:
    /// kept as its header (the payload's hash) to serve and link its
    /// issuer's log.
    Purged {
        payload: [u8; 32],
    },
}

/// An alert this node issued or received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredAlert {
    pub id: AlertId,
    pub alert: SignedAlert,
    pub status: AlertStatus,
    pub received_at_ms: u64,
    /// The case reference, only for alerts this node issued.
    pub case_ref: Option<String>,
    /// The quantised probe, only for encrypted alerts this node issued and
    /// while they are active (to encrypt the column form on request).
    pub probe_vector: Option<Vec<i8>>,
    /// The issuer's signed withdrawal, once withdrawn (an entry of its log).
    pub withdrawal: Option<vigil_protocol::SignedWithdrawal>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HitRole {
    /// This node holds the matching record and notified the issuer.
    Holder,
    /// This node issued the alert and was notified by the holder.
    Issuer,
    /// This node sent an identification query and decrypted a match.
    Prober,
}

/// What produced a hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HitSource {
    /// A hit notice for an alert with a protected template.
    Alert(AlertId),
    Query(Handle),
    /// A position of a holder's encrypted answer to an alert (issuer only).
    #[serde(rename = "encrypted_alert")]
    EncryptedAlert {
        alert: AlertId,
        answer: Handle,
    },
}

impl HitSource {
    /// The alert a hit is for (none for a query's hit).
    pub fn alert(&self) -> Option<AlertId> {
        match self {
            HitSource::Alert(a) | HitSource::EncryptedAlert { alert: a, .. } => Some(*a),
            HitSource::Query(_) => None,
        }
    }
}

/// A holder's encrypted answer (one page) to an alert: kept to resend it
/// until the issuer acknowledges it, and to resolve its positions to
/// records when the issuer asks for disclosure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredAnswer {
    pub id: Handle,
    pub alert: AlertId,
    pub issuer: OrgId,
    /// Record id of each answer position (0: padding).
    pub records: Vec<u64>,
    /// The encoded `RowAnswer`; emptied once delivered. As bytes, not a
    /// sequence of numbers (the same bincode encoding, encoded in one copy).
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    pub created_at_ms: u64,
    pub delivered: bool,
}

/// A hit, seen from either end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredHit {
    pub handle: Handle,
    pub role: HitRole,
    pub source: HitSource,
    /// The other end: the issuer (for a holder), the holder (for an issuer
    /// or a prober).
    pub peer: OrgId,
    /// The matching local record (holder only).
    pub record: Option<u64>,
    pub at_ms: u64,
    /// Holder: whether the issuer acknowledged the notice.
    pub delivered: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DisclosureRole {
    /// A peer asked this node (which holds the record) to disclose.
    Holder,
    /// This node asked a holder.
    Requester,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DisclosureStatus {
    /// Waiting for a person at this (holding) node to decide.
    Pending,
    /// Sent; waiting for the holder's decision.
    Requested,
    Approved,
    Refused,
}

/// A disclosure request, at either end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredDisclosure {
    pub id: Handle,
    pub role: DisclosureRole,
    pub peer: OrgId,
    pub hit: Handle,
    pub query: Option<Handle>,
    /// The matching local record (holder only).
    pub record: Option<u64>,
    pub reason: String,
    pub status: DisclosureStatus,
    /// The case contact (holder: what it approved; requester: what it received).
    pub contact: Option<String>,
    pub requested_at_ms: u64,
    pub decided_at_ms: Option<u64>,
    /// Whether the other end acknowledged our last message about it.
    pub delivered: bool,
}

/// Counters and singletons.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    pub next_record: u64,
    pub alert_seq: u64,
    pub roster: Option<SignedRoster>,
    /// This node's GLWE secret key for encrypted queries (sealed with the rest).
    pub prober_key: Option<Vec<u8>>,
    /// Keys replaced by rotation, kept so that answers to alerts encrypted
    /// under them can still be read (newest last, bounded).
    pub retired_prober_keys: Vec<Vec<u8>>,
}

/// One durable write, produced by the services and applied by the runtime.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreOp {
    PutRecord(Box<StoredRecord>),
    PutAlert(Box<StoredAlert>),
    PutHit(StoredHit),
    PutMeta(Box<Meta>),
    PutDisclosure(Box<StoredDisclosure>),
    PutAnswer(Box<StoredAnswer>),
    /// Erasure: the record's sealed value is removed (gone from the files
    /// after `Store::compact`).
    DeleteRecord(u64),
    /// A hit of a purged alert is removed.
    DeleteHit(Handle),
    /// A holder's answer page to an alert that was purged.
    DeleteAnswer(Handle),
}

const RECORDS: &str = "records";
const ALERTS: &str = "alerts";
const HITS: &str = "hits";
const META: &str = "meta";
const DISCLOSURES: &str = "disclosures";
const ANSWERS: &str = "answers";

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

    /// Writes a sealed, consistent backup of the data directory to `out`.
    pub fn backup(&self, out: &Path) -> Result<u64, crate::backup::BackupError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        crate::backup::write(dir, &self.key, &self.db, out)
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

    fn unseal<T: DeserializeOwned>(&self, tree: &'static str, key: &[u8], sealed: &[u8]) -> Result<T, StoreError> {
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

    fn all<T: DeserializeOwned>(&self, tree: &'static str) -> Result<Vec<T>, StoreError> {
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
                _ => {}
            }
            let (tree, key, value) = match op {
                StoreOp::DeleteRecord(_) | StoreOp::DeleteHit(_) | StoreOp::DeleteAnswer(_) => {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `StoredAnswer.body` as bytes encodes exactly as the plain `Vec<u8>` did,
    /// so stores written before still open.
    #[test]
    fn answer_bodies_encode_as_before() {
        #[derive(Serialize)]
        struct Before {
            id: Handle,
            alert: AlertId,
            issuer: OrgId,
            records: Vec<u64>,
            body: Vec<u8>,
            created_at_ms: u64,
            delivered: bool,
        }
        let now = StoredAnswer {
            id: Handle([1; 16]),
            alert: AlertId([2; 32]),
            issuer: OrgId([3; 32]),
            records: vec![4, 5],
            body: (0..=255u8).collect(),
            created_at_ms: 6,
            delivered: false,
        };
        let before = Before {
            id: now.id,
            alert: now.alert,
            issuer: now.issuer,
            records: now.records.clone(),
            body: now.body.clone(),
            created_at_ms: 6,
            delivered: false,
        };
        let a = encode(Tag::Stored, &now, MAX_VALUE_BYTES).unwrap();
        assert_eq!(a, encode(Tag::Stored, &before, MAX_VALUE_BYTES).unwrap());
        let back: StoredAnswer = vigil_protocol::decode(Tag::Stored, &a, MAX_VALUE_BYTES).unwrap();
        assert_eq!(back.body, now.body);
    }
}

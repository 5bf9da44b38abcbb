//! `vigil backup` / `vigil restore`: a consistent snapshot of a node's data
//! directory in one file, sealed under the node's data key, that restores on
//! another machine with the same passphrase (or key file).
//!
//! File: `VGBAK1` · keyring length (u32 LE) · `keyring.json` (salt and KDF
//! cost, no secret) · the sealed bundle (XChaCha20-Poly1305, associated
//! data `vigil/backup/v1`): the data directory's files and every table of
//! the database (backups made when the store was sled restore the same
//! way: one collection per sled tree). The snapshot is one read
//! transaction, so it is consistent; the values inside stay sealed as they
//! are on disk. A damaged directory is refused (the store does not open).

use crate::datadir::{self, DataDirError, Secret};
use crate::store::Store;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use std::path::Path;
use vigil_crypto::Keyring;
use vigil_protocol::{decode, encode, Tag};

const MAGIC: &[u8; 6] = b"VGBAK1";
const AAD: &[u8] = b"vigil/backup/v1";
/// Largest backup file read (restore holds it in memory).
pub const MAX_BACKUP_BYTES: u64 = 16 * 1024 * 1024 * 1024;
/// The data directory's files that travel (the database goes separately).
const FILES: &[&str] =
    &["keyring.json", "identity.sealed", "epoch.sealed", "vigil.toml", "org.json", "api.token", "roster.json"];

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("{0} is not a Vigil backup (bad magic or truncated header)")]
    NotABackup(String),
    #[error("{0} is larger than {MAX_BACKUP_BYTES} bytes")]
    TooLarge(String),
    #[error("the backup does not open with this passphrase or key file (or it was altered)")]
    WrongKeyOrTampered,
    #[error("the backup's contents are malformed: {0}")]
    Malformed(String),
    #[error("{0} already holds a Vigil node; restore into an empty directory")]
    Exists(String),
    #[error("a backup named {0:?} exists already; backups never overwrite a file")]
    OutExists(String),
    #[error("backup name {0:?}: use 1 to 128 letters, digits, '.', '-' or '_', not starting with '.'")]
    BadName(String),
}

/// The directory of a data directory's backups (made by the node, 0700):
/// the only place the node writes a backup for the API.
pub fn backups_dir(data: &Path) -> std::path::PathBuf {
    data.join("backups")
}

/// Where backup `name` goes in `data`'s backups directory: a plain file
/// name, so no API caller can make the node write anywhere else.
pub fn named(data: &Path, name: &str) -> Result<std::path::PathBuf, BackupError> {
    let ok = (1..=128).contains(&name.len())
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if !ok {
        return Err(BackupError::BadName(name.chars().take(128).collect()));
    }
    let dir = backups_dir(data);
    datadir::private_dir(&dir)?;
    Ok(dir.join(name))
}

/// The kind of every collection: sled called its trees so, and backups
/// made with sled restore unchanged.
const TABLE_KIND: &[u8] = b"tree";

#[derive(Serialize, Deserialize)]
struct Collection {
    kind: ByteBuf,
    name: ByteBuf,
    rows: Vec<Vec<ByteBuf>>,
}

#[derive(Serialize, Deserialize)]
struct Bundle {
    created_at_ms: u64,
    files: Vec<(String, ByteBuf)>,
    db: Vec<Collection>,
}

/// Writes a backup of `store`'s data directory to `out`, a file that must
/// not exist (via a temporary file, synced, then linked in place, which
/// fails rather than replace a file). Returns its size.
pub fn write(store: &Store, out: &Path) -> Result<u64, BackupError> {
    let shown = || out.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    if out.exists() {
        return Err(BackupError::OutExists(shown()));
    }
    let dir = store.dir();
    let (key, tables) = store.export()?;
    let mut files = Vec::new();
    for name in FILES {
        let p = dir.join(name);
        if p.exists() {
            files.push((name.to_string(), ByteBuf::from(std::fs::read(&p).map_err(datadir::io(&p))?)));
        }
    }
    let db = tables
        .into_iter()
        .map(|(name, rows)| Collection {
            kind: ByteBuf::from(TABLE_KIND.to_vec()),
            name: ByteBuf::from(name.into_bytes()),
            rows: rows.into_iter().map(|(k, v)| vec![ByteBuf::from(k), ByteBuf::from(v)]).collect(),
        })
        .collect();
    let bundle = Bundle { created_at_ms: crate::now_ms(), files, db };
    let plain = encode(Tag::Stored, &bundle, usize::MAX).map_err(|e| BackupError::Malformed(e.to_string()))?;
    let ring = std::fs::read(dir.join("keyring.json")).map_err(datadir::io(&dir.join("keyring.json")))?;
    let mut bytes = Vec::with_capacity(plain.len() + ring.len() + 64);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(ring.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&ring);
    bytes.extend_from_slice(&key.seal(AAD, &plain));
    let tmp = out.with_extension("partial");
    datadir::write_private(&tmp, &bytes)?;
    let placed = match std::fs::hard_link(&tmp, out) {
        Ok(()) => std::fs::remove_file(&tmp).map_err(datadir::io(&tmp)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let _ = std::fs::remove_file(&tmp);
            return Err(BackupError::OutExists(shown()));
        }
        // A filesystem without hard links (a FAT stick): checked above.
        Err(_) => std::fs::rename(&tmp, out).map_err(datadir::io(out)),
    };
    placed?;
    Ok(bytes.len() as u64)
}

/// What a backup holds, without restoring it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupSummary {
    pub file: String,
    pub created_at_ms: u64,
    /// Values per table (records, alerts, audit entries and so on).
    pub tables: Vec<(String, usize)>,
}

/// Opens backup `from` with `secret` and counts what a restore would
/// bring back.
pub fn inspect(from: &Path, secret: &Secret) -> Result<BackupSummary, BackupError> {
    let (_, bundle) = open_bundle(from, secret)?;
    let tables = bundle.db.iter().map(|c| (String::from_utf8_lossy(&c.name).to_string(), c.rows.len())).collect();
    Ok(BackupSummary { file: from.display().to_string(), created_at_ms: bundle.created_at_ms, tables })
}

/// Reads, unlocks and decodes backup `from`: its keyring bytes and bundle.
fn open_bundle(from: &Path, secret: &Secret) -> Result<(Vec<u8>, Bundle), BackupError> {
    let name = from.display().to_string();
    let len = std::fs::metadata(from).map_err(datadir::io(from))?.len();
    if len > MAX_BACKUP_BYTES {
        return Err(BackupError::TooLarge(name));
    }
    let bytes = std::fs::read(from).map_err(datadir::io(from))?;
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(BackupError::NotABackup(name));
    }
    let ring_len = u32::from_le_bytes(bytes[6..10].try_into().expect("4 bytes")) as usize;
    let ring_bytes = bytes.get(10..10 + ring_len).ok_or_else(|| BackupError::NotABackup(name.clone()))?;
    let ring: Keyring = serde_json::from_slice(ring_bytes).map_err(|e| BackupError::Malformed(e.to_string()))?;
    let key = ring.unlock(secret.text()).map_err(|_| BackupError::WrongKeyOrTampered)?;
    let plain = key.open(AAD, &bytes[10 + ring_len..]).map_err(|_| BackupError::WrongKeyOrTampered)?;
    let bundle: Bundle = decode(Tag::Stored, &plain, plain.len()).map_err(|e| BackupError::Malformed(e.to_string()))?;
    Ok((ring_bytes.to_vec(), bundle))
}

/// Restores backup `from` into `dir` (empty or absent), unlocking it with
/// `secret`. Returns the number of database entries restored.
pub fn restore(from: &Path, dir: &Path, secret: &Secret) -> Result<usize, BackupError> {
    if dir.join("keyring.json").exists() {
        return Err(BackupError::Exists(dir.display().to_string()));
    }
    let (ring_bytes, bundle) = open_bundle(from, secret)?;
    std::fs::create_dir_all(dir).map_err(datadir::io(dir))?;
    // The keyring last: its presence marks a complete directory.
    for (name, data) in bundle.files.iter().filter(|(n, _)| n != "keyring.json") {
        if !FILES.contains(&name.as_str()) {
            return Err(BackupError::Malformed(format!("unexpected file {name:?}")));
        }
        datadir::write_private(&dir.join(name), data)?;
    }
    let mut tables = Vec::new();
    for c in bundle.db {
        if c.kind.as_slice() != TABLE_KIND {
            return Err(BackupError::Malformed(format!("a collection of kind {:?}", String::from_utf8_lossy(&c.kind))));
        }
        let name = String::from_utf8(c.name.into_vec()).map_err(|_| BackupError::Malformed("a table name".into()))?;
        let rows = c
            .rows
            .into_iter()
            .map(|r| match <[ByteBuf; 2]>::try_from(r) {
                Ok([k, v]) => Ok((k.into_vec(), v.into_vec())),
                Err(r) => Err(BackupError::Malformed(format!("a row of {} cells in {name}", r.len()))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        tables.push((name, rows));
    }
    let entries = Store::import(&crate::store::db_path(dir), tables)?;
    let ring = bundle.files.iter().find(|(n, _)| n == "keyring.json").map(|(_, d)| d.to_vec()).unwrap_or(ring_bytes);
    datadir::write_private(&dir.join("keyring.json"), &ring)?;
    datadir::make_private(dir)?;
    Ok(entries)
}

//! The sealed manifest beside the database (`vigil.redb.manifest`): the
//! audit chain's head as of its last durable flush, written at every clean
//! stop and at most once a minute while the node runs. A start checks that
//! the database continues that chain: a copy put back from before, or a
//! file that lost committed entries, has no entry at the manifest's
//! position, or another one there, and is refused as damaged.

use super::audit::Head;
use super::files::{damaged, io, suffixed, sync_dir};
use super::{aad_of, StoreError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use vigil_crypto::SealKey;
use vigil_protocol::{decode, encode, Tag};

/// What the manifest holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Manifest {
    pub(super) audit_seq: u64,
    pub(super) audit_hash: [u8; 32],
    pub(super) written_at_ms: u64,
}

const AAD: &str = "manifest";
const MAX_BYTES: usize = 4096;

pub(super) fn path(db: &Path) -> PathBuf {
    suffixed(db, ".manifest")
}

/// Writes the manifest for `head` atomically (a temporary file synced,
/// renamed over the old one, the directory synced).
pub(super) fn write(db: &Path, key: &SealKey, head: Head, now_ms: u64) -> Result<(), StoreError> {
    let m = Manifest { audit_seq: head.seq, audit_hash: head.hash, written_at_ms: now_ms };
    let bytes = encode(Tag::Stored, &m, MAX_BYTES).map_err(StoreError::Encode)?;
    let sealed = key.seal(&aad_of(AAD, b""), &bytes);
    let (target, tmp) = (path(db), suffixed(db, ".manifest.tmp"));
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&sealed)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &target)
    };
    write().map_err(io(&target))?;
    sync_dir(db)
}

/// The manifest beside `db`, if there is one.
pub(super) fn read(db: &Path, key: &SealKey) -> Result<Option<Manifest>, StoreError> {
    let p = path(db);
    let sealed = match std::fs::read(&p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&p)(e)),
    };
    let bytes = key.open(&aad_of(AAD, b""), &sealed).map_err(|_| damaged(db, "its manifest does not open"))?;
    decode(Tag::Stored, &bytes, MAX_BYTES).map(Some).map_err(|e| damaged(db, format!("its manifest: {e}")))
}

/// Refuses a database whose audit chain does not hold the manifest's
/// head: `hash_at` gives the hash of the entry at a position, if any.
pub(super) fn check(
    db: &Path,
    manifest: Option<Manifest>,
    head: Head,
    hash_at: impl FnOnce(u64) -> Result<Option<[u8; 32]>, StoreError>,
) -> Result<(), StoreError> {
    let Some(m) = manifest else { return Ok(()) };
    if m.audit_seq == 0 {
        return Ok(());
    }
    if head.seq < m.audit_seq {
        return Err(damaged(
            db,
            format!(
                "its audit chain ends at entry {} but its manifest saw entry {} (an older copy put back, or \
                 committed writes lost)",
                head.seq, m.audit_seq
            ),
        ));
    }
    match hash_at(m.audit_seq)? {
        Some(h) if h == m.audit_hash => Ok(()),
        _ => Err(damaged(
            db,
            format!("audit entry {} is not the one its manifest saw (another database's history?)", m.audit_seq),
        )),
    }
}

//! The database file's life on disk: opening it with damage detection
//! (redb's checksums and integrity check, whose repair is refused when it
//! took the file back to an earlier commit; a panic inside the engine on
//! a truncated file becomes an error), crash-safe compaction (a fresh file,
//! synced, renamed over the old one in one atomic step, the directory
//! synced), recovery from a compaction a crash interrupted, and the
//! one-time migration of a data directory from sled.

use super::{read_table, table, StoreError};
use redb::{ReadableTable, ReadableTableMetadata, TableHandle};
use std::path::{Path, PathBuf};

/// Where a compaction writes its fresh copy of `db`.
pub(super) fn compact_path(db: &Path) -> PathBuf {
    suffixed(db, ".compact")
}

pub(super) fn suffixed(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    db.with_file_name(name)
}

pub(super) fn io(p: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |e| StoreError::Io(p.display().to_string(), e)
}

/// Makes a rename or a new file in `file`'s directory durable.
pub(super) fn sync_dir(file: &Path) -> Result<(), StoreError> {
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// The newest complete backup in `data`'s backups directory (by time).
pub fn newest_backup(data: &Path) -> Option<PathBuf> {
    std::fs::read_dir(data.join("backups"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .filter(|(_, p)| p.extension().is_none_or(|x| x != "partial"))
        .max_by_key(|(t, _)| *t)
        .map(|(_, p)| p)
}

/// The newest backup, as damage messages name it.
fn last_backup(db: &Path) -> String {
    let data = db.parent().unwrap_or(Path::new("."));
    match newest_backup(data) {
        Some(p) => format!("the last backup here is {}", p.display()),
        None => format!("no backup found in {}", data.join("backups").display()),
    }
}

pub(super) fn damaged(db: &Path, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Damaged { path: db.display().to_string(), detail: detail.to_string(), backup: last_backup(db) }
}

/// Beside the database once it exists: a database missing where this is
/// was lost (or its directory entry never reached the disk), not new.
pub(super) fn started_path(db: &Path) -> PathBuf {
    suffixed(db, ".started")
}

/// Opens (or creates) the database at `db`, refusing a damaged file, and a
/// missing one in a directory where it existed. A crash-interrupted
/// compaction's copy is discarded first; `true` tells the caller to
/// compact again (the erasure it was for is not done yet).
pub(super) fn open(db: &Path, counter: Row) -> Result<(redb::Database, bool), StoreError> {
    let fresh = compact_path(db);
    let interrupted = fresh.exists();
    if interrupted {
        std::fs::remove_file(&fresh).map_err(io(&fresh))?;
        sync_dir(db)?;
    }
    let existed = db.exists();
    let started = started_path(db);
    if !existed && started.exists() {
        return Err(damaged(db, "the database file is missing from a data directory that had one"));
    }
    // redb asserts on some damage (a file cut short) instead of failing.
    let opened = std::panic::catch_unwind(|| redb::Database::create(db));
    let mut database = match opened {
        Ok(Ok(d)) => d,
        // Not damage: the file is in use, unreadable, or from another version.
        Ok(Err(e @ (redb::DatabaseError::DatabaseAlreadyOpen | redb::DatabaseError::UpgradeRequired(_)))) => {
            return Err(e.into())
        }
        // A file redb cannot read as its own (bad magic, cut short) is
        // damage; other I/O errors (permissions, a missing directory) are not.
        Ok(Err(redb::DatabaseError::Storage(redb::StorageError::Io(e))))
            if !matches!(e.kind(), std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof) =>
        {
            return Err(io(db)(e))
        }
        Ok(Err(e)) => return Err(damaged(db, e)),
        Err(_) => return Err(damaged(db, "the storage engine could not read the file's layout (truncated?)")),
    };
    if !started.exists() {
        // The new file's directory entry, then the marker's, reach the disk
        // before anything stored in it is acknowledged.
        sync_dir(db)?;
        std::fs::File::create(&started).and_then(|f| f.sync_all()).map_err(io(&started))?;
        sync_dir(db)?;
    }
    if existed {
        check(&mut database, db, counter)?;
    }
    Ok((database, interrupted))
}

/// A table's name, length and last row (key, value).
pub(super) type TableEnd = (String, u64, Option<(Vec<u8>, Vec<u8>)>);

/// A value's place: (table, key).
pub(super) type Row = (&'static str, &'static [u8]);

/// What a repair by the integrity check must leave as it was: every
/// table's length and last row, and the store's commit counter (a value
/// every commit rewrites), so that any two commits of the store differ.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Fingerprint {
    pub(super) tables: Vec<TableEnd>,
    pub(super) counter: Option<Vec<u8>>,
}

pub(super) fn fingerprint(database: &redb::Database, counter: Row) -> Result<Fingerprint, StoreError> {
    let read = database.begin_read()?;
    let mut tables = Vec::new();
    for handle in read.list_tables()? {
        let t = read.open_table(table(handle.name()))?;
        let last = t.last()?.map(|(k, v)| (k.value().to_vec(), v.value().to_vec()));
        tables.push((handle.name().to_string(), t.len()?, last));
    }
    let counter = match read_table(&read, counter.0)? {
        Some(t) => t.get(counter.1)?.map(|v| v.value().to_vec()),
        None => None,
    };
    Ok(Fingerprint { tables, counter })
}

/// The integrity check (checksums of every page, the map of free pages
/// rebuilt from the tables) on a file the engine opened. redb reports a
/// repair (`Ok(false)`) both when it went back to the previous commit,
/// which loses committed changes (damage), and when only its map of free
/// pages on disk differed from the rebuilt one, which loses nothing (a
/// byte flipped there does it; a freshly restored file once did it in
/// CI). The fingerprint taken before and after tells the two apart: in
/// the second case the node starts, and says so.
fn check(database: &mut redb::Database, db: &Path, counter: Row) -> Result<(), StoreError> {
    let engine_panicked = |what: &str| damaged(db, format!("{what} failed inside the storage engine"));
    let read = |database: &redb::Database| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fingerprint(database, counter)))
            .map_err(|_| engine_panicked("reading the file"))?
            .map_err(|e| damaged(db, e))
    };
    let before = read(database)?;
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| database.check_integrity())) {
        Ok(Ok(true)) => Ok(()),
        Ok(Ok(false)) if read(database)? == before => {
            tracing::warn!(
                "the storage engine rebuilt its map of free pages in {}; every stored value is as it was",
                db.display()
            );
            Ok(())
        }
        Ok(Ok(false)) => Err(damaged(
            db,
            "the integrity check found damaged pages and went back to the commit before them, which lacks \
             committed changes",
        )),
        Ok(Err(e)) => Err(damaged(db, e)),
        Err(_) => Err(engine_panicked("the integrity check")),
    }
}

/// Copies every table of `from` into a fresh database at `to`, in one
/// durable transaction. Returns the number of values copied.
pub(super) fn copy_all(from: &redb::Database, to: &Path) -> Result<usize, StoreError> {
    let new = redb::Database::create(to)?;
    let read = from.begin_read()?;
    let write = new.begin_write()?;
    let mut copied = 0;
    for handle in read.list_tables()? {
        let src = read.open_table(table(handle.name()))?;
        let mut dst = write.open_table(table(handle.name()))?;
        for kv in src.iter()? {
            let (k, v) = kv?;
            dst.insert(k.value(), v.value())?;
            copied += 1;
        }
    }
    write.commit()?;
    Ok(copied)
}

/// Where compaction stops in a test that crashes it at every step.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CompactStep {
    /// The fresh copy holds some tables, not yet committed whole.
    Copying,
    /// The fresh copy is complete and synced, not yet renamed.
    Copied,
    /// Renamed over the old file, the directory not yet synced.
    Renamed,
}

/// Compaction of the (closed) database at `db` from `source`: a fresh
/// copy, synced, renamed over `db` (atomic: a crash leaves the old file
/// or the new one, never neither), then the directory synced.
/// `source` may be shared with an audit verification still reading it: the
/// rename leaves that reader on the old file until it finishes.
pub(super) fn compact(
    source: std::sync::Arc<redb::Database>,
    db: &Path,
    #[cfg(test)] stop: Option<CompactStep>,
) -> Result<(), (Option<std::sync::Arc<redb::Database>>, StoreError)> {
    let fresh = compact_path(db);
    let _ = std::fs::remove_file(&fresh);
    #[cfg(test)]
    if stop == Some(CompactStep::Copying) {
        // A crash mid-copy: a partial file, as a dying process leaves it.
        let partial = redb::Database::create(&fresh).map_err(|e| (None, e.into()))?;
        drop(partial);
        return Ok(());
    }
    if let Err(e) = copy_all(&source, &fresh) {
        let _ = std::fs::remove_file(&fresh);
        return Err((Some(source), e));
    }
    #[cfg(test)]
    if stop == Some(CompactStep::Copied) {
        return Ok(());
    }
    drop(source);
    std::fs::rename(&fresh, db).map_err(|e| (None, io(db)(e)))?;
    #[cfg(test)]
    if stop == Some(CompactStep::Renamed) {
        return Ok(());
    }
    sync_dir(db).map_err(|e| (None, e))
}

/// A data directory from before redb keeps sled's database in `db/`:
/// copied, value for value (they stay sealed as they were), into a
/// `.migrating` file, counted, synced and renamed into place; only then is
/// `db/` removed. A crash at any point leaves `db/` to migrate again.
pub(super) fn migrate_from_sled(db: &Path) -> Result<Option<usize>, StoreError> {
    let old = db.with_file_name("db");
    if !old.join("conf").exists() {
        return Ok(None);
    }
    if db.exists() {
        // Migrated, and the crash came before `db/` was removed.
        std::fs::remove_dir_all(&old).map_err(io(&old))?;
        return Ok(None);
    }
    let target = suffixed(db, ".migrating");
    let _ = std::fs::remove_file(&target);
    // sled releases its file lock from a background thread after a close:
    // a directory closed a moment ago may still be locked for a while.
    let mut tries = 0;
    let sled = loop {
        match sled::open(&old) {
            Ok(db) => break db,
            Err(sled::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock && tries < 250 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(damaged(&old, e)),
        }
    };
    let mut expected = 0;
    {
        let new = redb::Database::create(&target)?;
        let write = new.begin_write()?;
        for name in sled.tree_names() {
            let tree = sled.open_tree(&name).map_err(|e| damaged(&old, e))?;
            let name = String::from_utf8_lossy(&name).to_string();
            let mut dst = write.open_table(table(&name))?;
            for kv in tree.iter() {
                let (k, v) = kv.map_err(|e| damaged(&old, e))?;
                dst.insert(k.as_ref(), v.as_ref())?;
                expected += 1;
            }
        }
        write.commit()?;
        let read = new.begin_read()?;
        let mut found = 0;
        for handle in read.list_tables()? {
            found += read.open_table(table(handle.name()))?.len()? as usize;
        }
        if found != expected {
            return Err(damaged(&target, format!("migration copied {found} of {expected} values")));
        }
    }
    drop(sled);
    std::fs::rename(&target, db).map_err(io(db))?;
    sync_dir(db)?;
    std::fs::remove_dir_all(&old).map_err(io(&old))?;
    Ok(Some(expected))
}

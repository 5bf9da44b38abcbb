//! `vigil bench store`: the storage engine kept (sled 0.34) beside the one
//! compared (redb 2), on the same work and the same sealed values as the
//! node writes: acknowledged writes per second and commit latency (one
//! durable commit per write, and per batch of 8 as group commit does),
//! start time over a large gallery (open, read and open every sealed
//! value), bytes on disk, and what each engine makes of a damaged file
//! (flipped bytes, a flipped 64-byte run, the file cut in half).

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;
use vigil_crypto::SealKey;

const TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("records");
/// The size of a sealed d = 128 record (template, case facts, seal).
const VALUE_BYTES: usize = 700;

#[derive(Debug, Serialize)]
pub struct StoreBench {
    pub acked_writes: usize,
    pub records: usize,
    pub engines: Vec<EngineFigures>,
    /// redb over sled, per figure (below 1: redb smaller or faster).
    pub ratios: Ratios,
}

#[derive(Debug, Serialize)]
pub struct EngineFigures {
    pub engine: &'static str,
    /// How a commit reaches the disk with this engine.
    pub commit: &'static str,
    pub writes_per_s: f64,
    pub commit_p50_ms: f64,
    pub commit_p99_ms: f64,
    /// Eight values per durable commit (what one group commit carries).
    pub batched_writes_per_s: f64,
    pub start_ms: f64,
    /// Start with the engine's full integrity check first (redb only).
    pub start_checked_ms: Option<f64>,
    pub bytes_on_disk: u64,
    /// After the rewrite that erasure does (the live data into a fresh file).
    pub bytes_compacted: u64,
    pub damage: Vec<DamageOutcome>,
}

#[derive(Debug, Serialize)]
pub struct Ratios {
    pub writes_per_s: f64,
    pub commit_p99_ms: f64,
    pub batched_writes_per_s: f64,
    pub start_ms: f64,
    pub bytes_on_disk: f64,
    pub bytes_compacted: f64,
}

/// One damage case: what a start made of it.
#[derive(Debug, Clone, Serialize)]
pub struct DamageOutcome {
    pub case: String,
    /// `detected` (an error at open, read or unseal), `panic`, `silent`
    /// (fewer records, no error), or `intact` (every record there).
    pub outcome: &'static str,
    pub records_read: usize,
    pub detail: String,
}

trait Engine {
    fn name(&self) -> &'static str;
    fn commit(&self) -> &'static str;
    /// The file damage is done to.
    fn data_file(&self, dir: &Path) -> PathBuf;
    /// Writes `values` under consecutive ids from `first`, durable on return.
    fn put(&self, dir: &Path, first: u64, values: &[Vec<u8>]) -> anyhow::Result<()>;
    /// Opens, reads every value (optionally after an integrity check).
    fn read_all(&self, dir: &Path, check: bool) -> anyhow::Result<Vec<(u64, Vec<u8>)>>;
    fn open(&self, dir: &Path) -> anyhow::Result<()>;
    fn close(&self);
    /// Rewrites the live data of `dir` into `to`, as compaction does.
    fn rewrite(&self, dir: &Path, to: &Path) -> anyhow::Result<()>;
}

/// sled as the node uses it: high-throughput mode, `flush` per commit
/// (sled writes with `sync_file_range`), plus an fsync of its data file
/// so an acknowledged write also survives a power cut.
struct Sled(std::cell::RefCell<Option<sled::Db>>);

/// Opens sled at `dir`, waiting while a just-dropped handle's background
/// thread still holds the directory's lock (sled releases it when that
/// thread ends, a moment after the drop; reopening at once failed with
/// "could not acquire lock" in about one run in ten).
fn open_sled(dir: &Path) -> anyhow::Result<sled::Db> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match sled::Config::new().path(dir).mode(sled::Mode::HighThroughput).open() {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock") && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return Ok(other?),
        }
    }
}

impl Engine for Sled {
    fn name(&self) -> &'static str {
        "sled 0.34"
    }
    fn commit(&self) -> &'static str {
        "flush (sync_file_range) + fsync of db/db"
    }
    fn data_file(&self, dir: &Path) -> PathBuf {
        dir.join("db")
    }
    fn open(&self, dir: &Path) -> anyhow::Result<()> {
        *self.0.borrow_mut() = Some(open_sled(dir)?);
        Ok(())
    }
    fn close(&self) {
        self.0.borrow_mut().take();
    }
    fn put(&self, dir: &Path, first: u64, values: &[Vec<u8>]) -> anyhow::Result<()> {
        let db = self.0.borrow();
        let db = db.as_ref().expect("open");
        let mut batch = sled::Batch::default();
        for (i, v) in values.iter().enumerate() {
            batch.insert(&(first + i as u64).to_be_bytes(), v.as_slice());
        }
        db.apply_batch(batch)?;
        db.flush()?;
        std::fs::File::open(self.data_file(dir))?.sync_all()?;
        Ok(())
    }
    fn rewrite(&self, dir: &Path, to: &Path) -> anyhow::Result<()> {
        let old = open_sled(dir)?;
        let new = open_sled(to)?;
        new.import(old.export());
        new.flush()?;
        Ok(())
    }
    fn read_all(&self, dir: &Path, _check: bool) -> anyhow::Result<Vec<(u64, Vec<u8>)>> {
        let db = open_sled(dir)?;
        let mut out = Vec::new();
        for kv in db.iter() {
            let (k, v) = kv?;
            let id =
                u64::from_be_bytes(k.as_ref().try_into().map_err(|_| anyhow::anyhow!("key of {} bytes", k.len()))?);
            out.push((id, v.to_vec()));
        }
        Ok(out)
    }
}

/// redb with its default durability (`Immediate`: fsync on commit).
struct Redb(std::cell::RefCell<Option<redb::Database>>);

impl Engine for Redb {
    fn name(&self) -> &'static str {
        "redb 2"
    }
    fn commit(&self) -> &'static str {
        "commit, Durability::Immediate (fsync)"
    }
    fn data_file(&self, dir: &Path) -> PathBuf {
        dir.join("vigil.redb")
    }
    fn open(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        *self.0.borrow_mut() = Some(redb::Database::create(self.data_file(dir))?);
        Ok(())
    }
    fn close(&self) {
        self.0.borrow_mut().take();
    }
    fn put(&self, _dir: &Path, first: u64, values: &[Vec<u8>]) -> anyhow::Result<()> {
        let db = self.0.borrow();
        let txn = db.as_ref().expect("open").begin_write()?;
        {
            let mut t = txn.open_table(TABLE)?;
            for (i, v) in values.iter().enumerate() {
                t.insert(first + i as u64, v.as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }
    fn rewrite(&self, dir: &Path, to: &Path) -> anyhow::Result<()> {
        let old = redb::Database::open(self.data_file(dir))?;
        std::fs::create_dir_all(to)?;
        let new = redb::Database::create(self.data_file(to))?;
        let (read, write) = (old.begin_read()?, new.begin_write()?);
        {
            let (src, mut dst) = (read.open_table(TABLE)?, write.open_table(TABLE)?);
            for kv in src.iter()? {
                let (k, v) = kv?;
                dst.insert(k.value(), v.value())?;
            }
        }
        write.commit()?;
        Ok(())
    }
    fn read_all(&self, dir: &Path, check: bool) -> anyhow::Result<Vec<(u64, Vec<u8>)>> {
        let mut db = redb::Database::open(self.data_file(dir))?;
        if check && !db.check_integrity()? {
            anyhow::bail!("integrity check repaired the file");
        }
        let txn = db.begin_read()?;
        let t = txn.open_table(TABLE)?;
        let mut out = Vec::with_capacity(t.len()? as usize);
        for kv in t.iter()? {
            let (k, v) = kv?;
            out.push((k.value(), v.value().to_vec()));
        }
        Ok(out)
    }
}

fn sealed(key: &SealKey, id: u64) -> Vec<u8> {
    let mut plain = vec![0u8; VALUE_BYTES - 40];
    plain[..8].copy_from_slice(&id.to_le_bytes());
    key.seal(&id.to_be_bytes(), &plain)
}

/// Bytes the files under `path` occupy on disk (allocated blocks: a
/// file's length can be larger where the engine grew it sparsely).
fn disk_bytes(path: &Path) -> u64 {
    let Ok(meta) = std::fs::metadata(path) else { return 0 };
    if meta.is_file() {
        #[cfg(unix)]
        return std::os::unix::fs::MetadataExt::blocks(&meta) * 512;
        #[cfg(not(unix))]
        return meta.len();
    }
    std::fs::read_dir(path).map_or(0, |d| d.flatten().map(|e| disk_bytes(&e.path())).sum())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Acknowledged writes: one durable commit each, then batches of 8.
fn writes(e: &dyn Engine, key: &SealKey, n: usize) -> anyhow::Result<(f64, f64, f64, f64)> {
    let dir = tempfile::tempdir()?;
    e.open(dir.path())?;
    let mut lat = Vec::with_capacity(n);
    let start = Instant::now();
    for i in 0..n as u64 {
        let t = Instant::now();
        e.put(dir.path(), i, &[sealed(key, i)])?;
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let per_s = n as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    for b in 0..(n / 8) as u64 {
        let values: Vec<Vec<u8>> = (0..8).map(|i| sealed(key, n as u64 + b * 8 + i)).collect();
        e.put(dir.path(), n as u64 + b * 8, &values)?;
    }
    let batched = (n / 8 * 8) as f64 / start.elapsed().as_secs_f64();
    e.close();
    lat.sort_by(f64::total_cmp);
    Ok((per_s, percentile(&lat, 0.5), percentile(&lat, 0.99), batched))
}

/// Fills `records` values, then times a start: open, read, unseal all.
/// Also returns the bytes on disk, before and after a rewrite.
fn start(e: &dyn Engine, key: &SealKey, records: usize) -> anyhow::Result<(f64, Option<f64>, u64, u64)> {
    let dir = tempfile::tempdir()?;
    e.open(dir.path())?;
    for chunk in (0..records as u64).collect::<Vec<_>>().chunks(10_000) {
        let values: Vec<Vec<u8>> = chunk.iter().map(|i| sealed(key, *i)).collect();
        e.put(dir.path(), chunk[0], &values)?;
    }
    e.close();
    let bytes = disk_bytes(dir.path());
    let timed = |check: bool| -> anyhow::Result<f64> {
        let t = Instant::now();
        let all = e.read_all(dir.path(), check)?;
        for (id, v) in &all {
            key.open(&id.to_be_bytes(), v).map_err(|err| anyhow::anyhow!("record {id}: {err}"))?;
        }
        anyhow::ensure!(all.len() == records, "read {} of {records}", all.len());
        Ok(t.elapsed().as_secs_f64() * 1e3)
    };
    let plain = timed(false)?;
    let checked = (e.name() == "redb 2").then(|| timed(true)).transpose()?;
    let compacted = tempfile::tempdir()?;
    e.rewrite(dir.path(), compacted.path())?;
    Ok((plain, checked, bytes, disk_bytes(compacted.path())))
}

/// A fresh 300-record store, cleanly closed, damaged by `harm`, then read.
fn damaged(e: &dyn Engine, key: &SealKey, case: &str, harm: &dyn Fn(&Path)) -> anyhow::Result<DamageOutcome> {
    const N: usize = 300;
    let dir = tempfile::tempdir()?;
    e.open(dir.path())?;
    for i in 0..N as u64 {
        e.put(dir.path(), i, &[sealed(key, i)])?;
    }
    e.close();
    harm(&e.data_file(dir.path()));
    let check = e.name() == "redb 2";
    let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| e.read_all(dir.path(), check)));
    let (outcome, records_read, detail) = match read {
        Err(p) => {
            let msg = p.downcast_ref::<String>().cloned().or(p.downcast_ref::<&str>().map(|s| s.to_string()));
            ("panic", 0, msg.unwrap_or_default())
        }
        Ok(Err(err)) => ("detected", 0, err.to_string()),
        Ok(Ok(all)) => match all.iter().find(|(id, v)| key.open(&id.to_be_bytes(), v).is_err()) {
            Some((id, _)) => ("detected", all.len(), format!("record {id} does not unseal")),
            None if all.len() == N => ("intact", N, String::new()),
            None => ("silent", all.len(), format!("{} of {N} records, no error", all.len())),
        },
    };
    let detail: String = detail.chars().take(160).collect();
    Ok(DamageOutcome { case: case.into(), outcome, records_read, detail })
}

fn flip_at(fraction: f64, len: usize) -> impl Fn(&Path) {
    move |p: &Path| {
        let mut b = std::fs::read(p).expect("data file");
        let at = ((b.len() as f64 * fraction) as usize).min(b.len().saturating_sub(len));
        for x in &mut b[at..at + len] {
            *x ^= 0x5a;
        }
        std::fs::write(p, b).expect("write back");
    }
}

fn damage_cases(e: &dyn Engine, key: &SealKey) -> anyhow::Result<Vec<DamageOutcome>> {
    let mut out = Vec::new();
    for f in [0.05, 0.4, 0.6, 0.8, 0.95] {
        out.push(damaged(e, key, &format!("byte flipped at {:.0} %", f * 100.0), &flip_at(f, 1))?);
    }
    out.push(damaged(e, key, "64 bytes flipped at 50 %", &flip_at(0.5, 64))?);
    let halve = |p: &Path| {
        let f = std::fs::OpenOptions::new().write(true).open(p).expect("data file");
        let len = f.metadata().expect("metadata").len();
        f.set_len(len / 2).expect("truncate");
    };
    out.push(damaged(e, key, "file cut in half", &halve)?);
    Ok(out)
}

/// One engine's figures: writes, start, size and damage.
fn figures_of(e: &dyn Engine, key: &SealKey, acked_writes: usize, records: usize) -> anyhow::Result<EngineFigures> {
    let (writes_per_s, commit_p50_ms, commit_p99_ms, batched_writes_per_s) = writes(e, key, acked_writes)?;
    let (start_ms, start_checked_ms, bytes_on_disk, bytes_compacted) = start(e, key, records)?;
    Ok(EngineFigures {
        engine: e.name(),
        commit: e.commit(),
        writes_per_s,
        commit_p50_ms,
        commit_p99_ms,
        batched_writes_per_s,
        start_ms,
        start_checked_ms,
        bytes_on_disk,
        bytes_compacted,
        damage: damage_cases(e, key)?,
    })
}

pub fn run(acked_writes: usize, records: usize) -> anyhow::Result<StoreBench> {
    anyhow::ensure!(acked_writes >= 8 && records >= 1, "need at least 8 writes and one record");
    let key = SealKey::random();
    let engines: [Box<dyn Engine>; 2] = [Box::new(Sled(Default::default())), Box::new(Redb(Default::default()))];
    // sled prints its own panics; keep the figures readable (the hook is
    // put back whatever happens, so a failure still reports its message).
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let figures: anyhow::Result<Vec<EngineFigures>> =
        engines.iter().map(|e| figures_of(e.as_ref(), &key, acked_writes, records)).collect();
    std::panic::set_hook(hook);
    let figures = figures?;
    let (s, r) = (&figures[0], &figures[1]);
    let ratios = Ratios {
        writes_per_s: r.writes_per_s / s.writes_per_s,
        commit_p99_ms: r.commit_p99_ms / s.commit_p99_ms,
        batched_writes_per_s: r.batched_writes_per_s / s.batched_writes_per_s,
        start_ms: r.start_ms / s.start_ms,
        bytes_on_disk: r.bytes_on_disk as f64 / s.bytes_on_disk as f64,
        bytes_compacted: r.bytes_compacted as f64 / s.bytes_compacted as f64,
    };
    Ok(StoreBench { acked_writes, records, engines: figures, ratios })
}

#[cfg(test)]
mod tests {
    #[test]
    fn both_engines_run_and_redb_never_loads_a_damaged_file_short() {
        let b = super::run(16, 100).unwrap();
        assert_eq!(b.engines.len(), 2);
        let redb = &b.engines[1];
        assert!(redb.damage.iter().all(|d| d.outcome != "silent"), "{:?}", redb.damage);
        assert!(redb.damage.iter().any(|d| d.outcome != "intact"), "some damage hits live pages");
    }
}

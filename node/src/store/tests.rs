//! The store on real files: compaction crashed at every step, damaged
//! files refused (never loaded short), and the migration from sled.

use super::files::CompactStep;
use super::*;
use std::sync::Arc;
use vigil_crypto::Identity;
use vigil_engine::model::Regime;
use vigil_matcher::synth::Population;
use vigil_protocol::Category;

const N: u64 = 50;

fn record(pop: &Population, id: u64) -> StoredRecord {
    StoredRecord {
        pad: None,
        id,
        template: pop.sample(id as usize, 1),
        category: Category::Found,
        case_ref: format!("CASE-{id}"),
        consent: "intake form".into(),
        regime: Regime::Gdpr,
        enrolled_at_ms: 1,
        retain_until_ms: u64::MAX,
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    key: SealKey,
    signer: Arc<Identity>,
}

impl Fixture {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap(), key: SealKey::random(), signer: Arc::new(Identity::generate()) }
    }
    fn path(&self) -> PathBuf {
        db_path(self.dir.path())
    }
    fn open(&self) -> Result<Store, StoreError> {
        Store::open(&self.path(), self.key.clone(), self.signer.clone())
    }
    /// A store of N records, cleanly closed.
    fn filled(&self) -> Store {
        let store = self.open().unwrap();
        let pop = Population::new(5, "vigil-synth-128", N as usize + 1);
        for id in 1..=N {
            let ops = [StoreOp::PutRecord(Box::new(record(&pop, id)))];
            store.commit(&ops, id, vec![AuditEvent::PeerBlocked { peer: format!("r{id}") }]).unwrap();
        }
        store
    }
}

/// The sealed value of record `id` as stored.
fn sealed_record(store: &Store, id: u64) -> Vec<u8> {
    let (_, tables) = store.export().unwrap();
    let (_, rows) = tables.into_iter().find(|(n, _)| n == RECORDS).unwrap();
    rows.into_iter().find(|(k, _)| k.as_slice() == id.to_be_bytes()).unwrap().1
}

/// Whether any file under `dir` holds `needle`.
fn on_disk(dir: &Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().flatten().any(|e| {
        let p = e.path();
        if p.is_dir() {
            return on_disk(&p, needle);
        }
        std::fs::read(&p).unwrap().windows(needle.len()).any(|w| w == needle)
    })
}

#[test]
fn compaction_crashed_at_every_step_keeps_every_record_and_no_erased_bytes() {
    for step in [CompactStep::Copying, CompactStep::Copied, CompactStep::Renamed] {
        let f = Fixture::new();
        let store = f.filled();
        let erased = sealed_record(&store, 7);
        store.commit(&[StoreOp::DeleteRecord(7)], 99, vec![]).unwrap();
        assert!(on_disk(f.dir.path(), &erased), "{step:?}: freed pages keep the bytes until compaction");
        store.compact_crashing(step).unwrap();
        // The next start finds one whole database, and finishes the erasure.
        let store = f.open().unwrap();
        let ids: Vec<u64> = store.records().unwrap().iter().map(|r| r.id).collect();
        assert_eq!(ids, (1..=N).filter(|i| *i != 7).collect::<Vec<_>>(), "{step:?}");
        assert_eq!(store.audit_verify().unwrap(), N as usize, "{step:?}");
        drop(store);
        assert!(!on_disk(f.dir.path(), &erased), "{step:?}: the erased record's bytes are gone");
        assert!(!files::compact_path(&f.path()).exists(), "{step:?}: no copy left behind");
    }
}

#[test]
fn compaction_without_a_crash_removes_erased_bytes_and_keeps_the_rest() {
    let f = Fixture::new();
    let store = f.filled();
    let erased = sealed_record(&store, 3);
    store.commit(&[StoreOp::DeleteRecord(3)], 99, vec![]).unwrap();
    let (store, failed) = store.compact().unwrap();
    assert!(failed.is_none());
    assert_eq!(store.records().unwrap().len(), N as usize - 1);
    assert!(!on_disk(f.dir.path(), &erased));
}

/// Damages the closed database file with `harm`, then starts on it.
fn start_after(harm: impl Fn(&mut Vec<u8>)) -> Result<usize, StoreError> {
    let f = Fixture::new();
    drop(f.filled());
    let mut bytes = std::fs::read(f.path()).unwrap();
    harm(&mut bytes);
    std::fs::write(f.path(), &bytes).unwrap();
    let store = f.open()?;
    store.audit_verify().map_err(|e| files::damaged(&f.path(), e))?;
    Ok(store.records()?.len())
}

#[test]
fn damaged_files_are_refused_never_loaded_short() {
    // One byte at many places, a 64-byte run, the file cut in half: the
    // start either refuses with `Damaged` (or a value that does not
    // unseal), or every record is there (the damage hit unused pages).
    // sled loaded 17 to 287 of 300 records with no error in these cases.
    let mut refused = 0;
    for at in [0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.999] {
        let outcome = start_after(|b| {
            let i = ((b.len() as f64 * at) as usize).min(b.len() - 1);
            b[i] ^= 0x5a;
        });
        match outcome {
            Ok(n) => assert_eq!(n, N as usize, "a flip at {at} loaded {n} of {N} records"),
            Err(StoreError::Damaged { .. } | StoreError::Seal { .. } | StoreError::Decode { .. }) => refused += 1,
            Err(e) => panic!("a flip at {at}: {e}"),
        }
    }
    assert!(refused > 0, "some flips hit live pages");
    let run = start_after(|b| {
        let i = b.len() / 2;
        b[i..i + 64].iter_mut().for_each(|x| *x ^= 0xff)
    });
    assert!(matches!(run, Ok(n) if n == N as usize) || matches!(run, Err(StoreError::Damaged { .. })), "{run:?}");
    let cut = start_after(|b| b.truncate(b.len() / 2));
    let Err(StoreError::Damaged { detail, backup, .. }) = cut else { panic!("a file cut in half: {cut:?}") };
    assert!(!detail.is_empty());
    assert!(backup.contains("no backup found"), "{backup}");
}

#[test]
fn a_sled_directory_from_before_is_migrated_once() {
    let f = Fixture::new();
    let pop = Population::new(6, "vigil-synth-128", 10);
    let old = f.dir.path().join("db");
    {
        // What the sled store wrote: the same sealed values, per tree.
        let db = sled::open(&old).unwrap();
        let t = db.open_tree(RECORDS).unwrap();
        for id in 1..=5u64 {
            let bytes = encode(Tag::Stored, &record(&pop, id), MAX_VALUE_BYTES).unwrap();
            t.insert(id.to_be_bytes(), f.key.seal(&aad_of(RECORDS, &id.to_be_bytes()), &bytes)).unwrap();
        }
        db.flush().unwrap();
    }
    let store = f.open().unwrap();
    assert_eq!(store.records().unwrap().iter().map(|r| r.id).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5]);
    assert!(!old.exists(), "sled's files are removed once the copy is in place");
    drop(store);
    assert_eq!(f.open().unwrap().records().unwrap().len(), 5);
}

#[test]
fn disclosures_stored_before_the_four_eyes_rule_still_load_and_operators_persist() {
    use vigil_engine::model::{DisclosureRole, DisclosureStatus, StoredDisclosureV1};
    use vigil_engine::operators::{Lockout, Operators, Role};
    let f = Fixture::new();
    let store = f.open().unwrap();
    let old = StoredDisclosureV1 {
        id: vigil_protocol::Handle([7; 16]),
        role: DisclosureRole::Holder,
        peer: vigil_protocol::OrgId([1; 32]),
        hit: vigil_protocol::Handle([8; 16]),
        query: None,
        record: Some(3),
        reason: "family asks".into(),
        status: DisclosureStatus::Pending,
        contact: None,
        requested_at_ms: 5,
        decided_at_ms: None,
        delivered: true,
    };
    // Written as a node before this change wrote it.
    let sealed = store.seal(DISCLOSURES, &old.id.0, &old).unwrap();
    let txn = store.db.begin_write().unwrap();
    txn.open_table(table(DISCLOSURES)).unwrap().insert(old.id.0.as_slice(), sealed.as_slice()).unwrap();
    txn.commit().unwrap();
    let mut ops = Operators::new(vec![], Lockout { max_failures: 5, lockout_ms: 1 });
    let actions = ops.add(9, "amira", Role::Approver, "$argon2id$v=19$x".into(), "fr").unwrap();
    let (writes, audits): (Vec<_>, Vec<_>) =
        actions.into_iter().partition(|a| matches!(a, vigil_engine::Action::Store(_)));
    let writes: Vec<StoreOp> = writes
        .into_iter()
        .filter_map(|a| if let vigil_engine::Action::Store(op) = a { Some(op) } else { None })
        .collect();
    let audits: Vec<AuditEvent> = audits
        .into_iter()
        .filter_map(|a| if let vigil_engine::Action::Audit(e) = a { Some(e) } else { None })
        .collect();
    store.commit(&writes, 9, audits).unwrap();
    drop(store);

    let store = f.open().unwrap();
    let loaded = store.disclosures().unwrap();
    assert_eq!(loaded, vec![vigil_engine::model::StoredDisclosure::from(old)]);
    assert_eq!(loaded[0].first_approval, None);
    let operators = store.operators().unwrap();
    assert_eq!((operators.len(), operators[0].role, operators[0].language.as_str()), (1, Role::Approver, "fr"));
    assert!(
        matches!(&store.audit_entries().unwrap().last().unwrap().entry.event, AuditEvent::OperatorAdded { name, .. } if name == "amira")
    );
}

#[test]
fn hits_stored_before_bands_still_load_beside_banded_ones() {
    use vigil_engine::model::{HitRole, HitSource, StoredHit, StoredHitV1};
    let f = Fixture::new();
    let store = f.open().unwrap();
    let old = StoredHitV1 {
        handle: vigil_protocol::Handle([3; 16]),
        role: HitRole::Issuer,
        source: HitSource::Alert(vigil_protocol::AlertId([4; 32])),
        peer: vigil_protocol::OrgId([1; 32]),
        record: None,
        at_ms: 5,
        delivered: true,
    };
    let sealed = store.seal(HITS, &old.handle.0, &old).unwrap();
    let txn = store.db.begin_write().unwrap();
    txn.open_table(table(HITS)).unwrap().insert(old.handle.0.as_slice(), sealed.as_slice()).unwrap();
    txn.commit().unwrap();
    let banded = StoredHit {
        handle: vigil_protocol::Handle([9; 16]),
        band: Some(vigil_protocol::policy::Band::Strong),
        ..StoredHit::from(old.clone())
    };
    store.commit(&[StoreOp::PutHit(banded.clone())], 6, vec![]).unwrap();
    drop(store);
    let mut loaded = f.open().unwrap().hits().unwrap();
    loaded.sort_by_key(|h| h.handle.0);
    assert_eq!(loaded, vec![StoredHit::from(old), banded]);
    assert_eq!(loaded[0].band, None);
}

#[test]
fn records_stored_before_pad_attestations_still_load_and_read_by_id() {
    use vigil_engine::model::StoredRecordV1;
    let f = Fixture::new();
    let store = f.open().unwrap();
    let pop = Population::new(1, "vigil-synth-128", 4);
    let StoredRecord { template, category, case_ref, consent, regime, enrolled_at_ms, retain_until_ms, .. } =
        record(&pop, 1);
    let old = StoredRecordV1 { id: 1, template, category, case_ref, consent, regime, enrolled_at_ms, retain_until_ms };
    let key = 1u64.to_be_bytes();
    let sealed = store.seal(RECORDS, &key, &old).unwrap();
    let txn = store.db.begin_write().unwrap();
    txn.open_table(table(RECORDS)).unwrap().insert(key.as_slice(), sealed.as_slice()).unwrap();
    txn.commit().unwrap();
    store.commit(&[StoreOp::PutRecord(Box::new(record(&pop, 2)))], 2, vec![]).unwrap();
    drop(store);
    let store = f.open().unwrap();
    let all = store.records().unwrap();
    assert_eq!(all, vec![StoredRecord::from(old.clone()), record(&pop, 2)]);
    assert_eq!(store.records_by_id(&[2, 9, 1]).unwrap(), vec![record(&pop, 2), StoredRecord::from(old)]);
}

#[test]
fn a_database_missing_from_a_directory_that_had_one_is_refused_not_recreated() {
    let f = Fixture::new();
    drop(f.filled());
    assert!(super::files::started_path(&f.path()).exists(), "the marker is written with the database");
    std::fs::remove_file(f.path()).unwrap();
    match f.open() {
        Err(StoreError::Damaged { detail, .. }) => assert!(detail.contains("missing"), "{detail}"),
        other => panic!("a missing database must be refused, got {:?}", other.map(|_| "a store")),
    }
    assert!(!f.path().exists(), "no empty database was made in its place");
}

#[test]
fn a_database_behind_its_manifest_is_refused() {
    let f = Fixture::new();
    let store = f.filled();
    store.flush_and_anchor(1).unwrap();
    drop(store);
    let older = std::fs::read(f.path()).unwrap();
    // More history, anchored; a clean reopen passes the check.
    let store = f.open().unwrap();
    store.commit(&[], 2, vec![AuditEvent::PeerBlocked { peer: "later".into() }]).unwrap();
    store.flush_and_anchor(2).unwrap();
    drop(store);
    drop(f.open().expect("the database continues its manifest's chain"));
    // The older copy put back: its chain ends before the manifest's head.
    std::fs::write(f.path(), &older).unwrap();
    match f.open() {
        Err(StoreError::Damaged { detail, .. }) => assert!(detail.contains("older copy"), "{detail}"),
        other => panic!("an older database must be refused, got {:?}", other.map(|_| "a store")),
    }
    // Another node's database of the same length: another entry there.
    let other = Fixture { key: f.key.clone(), signer: f.signer.clone(), ..Fixture::new() };
    let s = other.filled();
    s.commit(&[], 2, vec![AuditEvent::PeerBlocked { peer: "elsewhere".into() }]).unwrap();
    drop(s);
    std::fs::copy(other.path(), f.path()).unwrap();
    match f.open() {
        Err(StoreError::Damaged { detail, .. }) => assert!(detail.contains("not the one"), "{detail}"),
        other => panic!("another history must be refused, got {:?}", other.map(|_| "a store")),
    }
}

/// Rows per table of the database file at `path`, opened by redb alone
/// after its integrity check: (clean, rows).
fn engine_view(path: &Path) -> Result<(bool, Vec<(String, u64)>), String> {
    let mut db = redb::Database::create(path).map_err(|e| e.to_string())?;
    let clean = db.check_integrity().map_err(|e| e.to_string())?;
    let read = db.begin_read().map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    for h in read.list_tables().map_err(|e| e.to_string())? {
        let t = read.open_table(table(h.name())).map_err(|e| e.to_string())?;
        rows.push((h.name().to_string(), redb::ReadableTableMetadata::len(&t).map_err(|e| e.to_string())?));
    }
    Ok((clean, rows))
}

#[test]
fn a_damaged_map_of_free_pages_is_rebuilt_and_every_value_kept() {
    // A byte flipped in each of the file's first pages in turn (the engine
    // keeps its map of free pages there): redb's check repairs the map
    // and reports so (Ok(false)) while every table keeps its rows. Such a
    // start goes on with every record and a verifying audit chain; a flip
    // the engine cannot repair is refused. No start loads fewer records.
    let f = Fixture::new();
    drop(f.filled());
    let good = std::fs::read(f.path()).unwrap();
    let scratch = f.dir.path().join("scratch.redb");
    std::fs::write(&scratch, &good).unwrap();
    let (clean, rows) = engine_view(&scratch).unwrap();
    assert!(clean, "a cleanly closed file passes the engine's check");
    let (mut rebuilt, mut refused) = (0, 0);
    for page in 1..160 {
        let mut bytes = good.clone();
        bytes[page * 4096 + 2048] ^= 0x5a;
        std::fs::write(&scratch, &bytes).unwrap();
        let engine = engine_view(&scratch);
        std::fs::remove_file(&scratch).unwrap();
        std::fs::write(f.path(), &bytes).unwrap();
        match (engine, f.open()) {
            (Ok((false, r)), Ok(store)) if r == rows => {
                assert_eq!(store.records().unwrap().len(), N as usize, "page {page}");
                assert_eq!(store.audit_verify().unwrap(), N as usize, "page {page}");
                rebuilt += 1;
            }
            (Ok((false, r)), opened) if r == rows => {
                panic!("page {page}: a repair that kept every value refused: {:?}", opened.err())
            }
            (_, Ok(store)) => assert_eq!(store.records().unwrap().len(), N as usize, "page {page}"),
            (_, Err(StoreError::Damaged { .. })) => refused += 1,
            (_, Err(e)) => panic!("page {page}: {e}"),
        }
    }
    assert!(rebuilt > 0, "some flips hit the map of free pages");
    println!("{rebuilt} rebuilt, {refused} refused of 159 pages");
}

#[test]
fn a_file_one_commit_back_has_another_fingerprint() {
    // What a start compares across the integrity check's repair: the same
    // file twice is the same; the file as it was one commit before is not,
    // even when that commit only rewrote a value in place.
    let f = Fixture::new();
    let store = f.filled();
    let before = files::fingerprint(&store.db, COMMITS).unwrap();
    assert_eq!(files::fingerprint(&store.db, COMMITS).unwrap(), before);
    assert!(before.counter.is_some());
    let meta = store.meta().unwrap();
    store.commit(&[StoreOp::PutMeta(Box::new(meta))], 2, Vec::new()).unwrap();
    let after = files::fingerprint(&store.db, COMMITS).unwrap();
    assert_ne!(after.counter, before.counter, "the commit counter moved");
    assert_ne!(after, before);
    assert_eq!(store.commits.load(Ordering::Relaxed), N + 1);
    drop(store);
    assert_eq!(f.open().unwrap().commits.load(Ordering::Relaxed), N + 1, "the count survives a restart");
}

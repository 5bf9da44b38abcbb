//! Replays the fuzz corpus (`fuzz/corpus/TARGET/*`, kept in the repository)
//! through the same entry points the fuzzers drive: a once-crashing input
//! stays fixed. Runs on stable Rust, in CI.

use std::path::Path;

#[test]
fn every_corpus_input_decodes_or_fails_cleanly() {
    // The manifest directory at run time (cargo sets it for the test), not
    // the one compiled in: a build reused from another checkout of the
    // same target directory would look in that checkout.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let root = Path::new(&manifest).join("corpus");
    let mut total = 0;
    for (name, target) in vigil_fuzzing::TARGETS {
        let dir = root.join(name);
        let entries =
            std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("no corpus for {name} at {}: {e}", dir.display()));
        let mut n = 0;
        for e in entries {
            let p = e.unwrap().path();
            target(&std::fs::read(&p).unwrap());
            n += 1;
        }
        assert!(n > 0, "the corpus of {name} is empty");
        total += n;
    }
    eprintln!("replayed {total} corpus inputs");
}

/// Every truncation of `seed` and every single-byte change (each byte set
/// to 0x00, 0xff, 0x1c–0x1f and flipped bit by bit) through `target`: a
/// decode or a clean error, never a panic. Returns the runs made.
fn one_byte_changes_and_cuts(seed: &[u8], target: impl Fn(&[u8])) -> usize {
    let mut runs = 0;
    for cut in 0..seed.len() {
        target(&seed[..cut]);
        runs += 1;
    }
    for i in 0..seed.len() {
        let values = [0x00u8, 0xff, 0x1c, 0x1d, 0x1e, 0x1f].into_iter().chain((0..8).map(|b| seed[i] ^ (1 << b)));
        for v in values {
            let mut m = seed.to_vec();
            m[i] = v;
            target(&m);
            runs += 1;
        }
    }
    runs
}

fn seed(target: &str, name: &str) -> Vec<u8> {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    std::fs::read(Path::new(&manifest).join("corpus").join(target).join(name)).unwrap()
}

/// The record decoders (structure only; the vectors are the corpus
/// replay's) under every one-byte change and cut of their seeds.
#[test]
fn every_one_byte_change_and_cut_of_the_record_seeds_fails_cleanly() {
    let runs: usize = ["iso", "ansi", "an2k"]
        .iter()
        .map(|name| one_byte_changes_and_cuts(&seed("record", name), |d| drop(vigil_fuzzing::record_structure(d))))
        .sum();
    assert!(runs > 10_000, "{runs}");
}

/// Binary policies of every body format and a PAD attestation, likewise.
#[test]
fn every_one_byte_change_and_cut_of_the_policy_seeds_fails_cleanly() {
    let runs: usize = ["format-1.bin", "format-2.bin", "format-3.bin", "pad.json"]
        .iter()
        .map(|name| one_byte_changes_and_cuts(&seed("policy", name), vigil_fuzzing::policy))
        .sum();
    assert!(runs > 10_000, "{runs}");
}

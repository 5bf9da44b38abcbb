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

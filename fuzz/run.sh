#!/usr/bin/env bash
# Fuzzes every decoder of untrusted bytes for SECONDS each (default 300),
# growing fuzz/corpus/. Installs cargo-fuzz; runs on the stable toolchain
# with no sanitizer (`-s none`): the targets look for panics and failed
# round trips, and libFuzzer still gets its coverage feedback.
# A crash leaves its input in fuzz/libfuzzer/artifacts/TARGET/: fix the decoder, then
# copy the input into fuzz/corpus/TARGET/ so the stable replay test
# (fuzz/tests/corpus.rs, part of `cargo test --workspace`) keeps it fixed.
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_EACH="${1:-300}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
for t in gossip request response roster policy template ciphertext record; do
  max_len=66000
  [ "$t" = ciphertext ] && max_len=140000
  echo "== $t ($SECONDS_EACH s)"
  cargo fuzz run --fuzz-dir libfuzzer -s none -O "$t" "$PWD/corpus/$t" -- \
    -max_total_time="$SECONDS_EACH" -max_len="$max_len" -rss_limit_mb=4096 -print_final_stats=1
done

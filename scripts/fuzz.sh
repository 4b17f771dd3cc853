#!/usr/bin/env bash
# Fuzzes the push-request handling, the SSE encoder and whole connections with cargo
# fuzz (libFuzzer), FUZZ_SECONDS per target (default 60), starting from the checked-in
# corpus in fuzz/corpus/. A crash fails the run and leaves its input in fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

seconds=${FUZZ_SECONDS:-60}
# cargo fuzz needs nightly-only flags (sanitizers); the machine's one toolchain is
# stable, which accepts them with RUSTC_BOOTSTRAP. Its own target directory: the
# sanitizer flags would otherwise rebuild the main one.
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${HERALD_FUZZ_TARGET_DIR:-$(dirname "$CARGO_TARGET_DIR")/fuzz-target}"
log=$(mktemp)
new_inputs=$(mktemp -d)
trap 'rm -rf "$log" "$new_inputs"' EXIT
for target in push_request encoder connection; do
  echo "fuzz: $target for $seconds s"
  # New inputs go to a scratch directory; the checked-in corpus is only read.
  mkdir -p "$new_inputs/$target"
  if ! cargo fuzz run "$target" "$new_inputs/$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz: $target failed; the input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
  grep -E "^Done [0-9]+ runs" "$log" || tail -n 3 "$log"
done

#!/usr/bin/env bash
# Every check CI runs: formatting, lints, unit and integration tests, then the
# Playwright end-to-end tests against the real server in Debian's chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

bash scripts/setup.sh

phase() { echo; echo "==> $*"; }

phase "cargo fmt --check"
cargo fmt --all --check

with_cfg() { RUSTFLAGS="$LEPTOS_DEBUG_RUSTFLAGS" "$@"; }

phase "cargo clippy (server, app; and the wasm frontend)"
with_cfg cargo clippy --workspace --all-targets -- -D warnings
with_cfg cargo clippy -p app --features ssr -- -D warnings
with_cfg cargo clippy -p frontend --target wasm32-unknown-unknown --features hydrate -- -D warnings

phase "cargo test"
with_cfg cargo test --workspace
# The hub must stand alone, without Leptos (docs/contract.md §2).
with_cfg cargo test -p server --no-default-features --lib

phase "herald-client (clients/js): unit tests (node --test) and its types (tsc)"
(cd clients/js && npm test)

# The delivery checker under faults, one minute with a fixed seed (make chaos runs
# 20 minutes; docs/reliability.md). A failure prints the seed and the evidence.
phase "delivery checker under faults (herald-chaos, 60 s, seed 1)"
CHAOS_SECONDS=60 CHAOS_SEED=1 bash scripts/chaos.sh

phase "cargo fuzz (${FUZZ_SECONDS:-60} s per target)"
bash scripts/fuzz.sh

# Release, as `make run` serves it: this also proves the wasm-opt step (npm binaryen)
# and the deep view types that only a release build meets. make dist's tarball is then
# unpacked into an empty directory and its binary must serve the app alone.
phase "make dist (the release build) and its tarball checked from an empty directory"
bash scripts/dist.sh
bash scripts/check-dist.sh

# The static build of the page (Trunk), for the Playwright tests that host it on
# another origin.
phase "make static (trunk build --release)"
bash scripts/static.sh

phase "playwright"
# Free loopback ports for the in-memory node, the Redis, the two cluster nodes and
# the secured node and the HTTPS node.
read -r E2E_PORT E2E_REDIS_PORT E2E_NODE_A_PORT E2E_NODE_B_PORT E2E_SECURE_PORT E2E_TLS_PORT < <(python3 -c '
import socket
sockets = [socket.socket() for _ in range(6)]
for s in sockets: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in sockets))')
export E2E_PORT E2E_REDIS_PORT E2E_NODE_A_PORT E2E_NODE_B_PORT E2E_SECURE_PORT E2E_TLS_PORT
export HERALD_BIN="$CARGO_TARGET_DIR/release/herald"
(cd end2end && npx playwright test)

# The benchmark must keep working; its real figures are in docs/benchmarks.md.
phase "benchmark smoke run (herald-bench against Herald and nchan)"
BENCH_SMOKE=1 bash scripts/bench.sh

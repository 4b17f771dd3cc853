#!/usr/bin/env bash
# The delivery checker under faults (README, "make chaos"; docs/reliability.md):
# builds herald and herald-chaos, then runs three Herald nodes on a Redis primary
# with a replica and three sentinels, 120 EventSource-like clients and steady
# publishers, under a seeded schedule of faults, and checks every delivery against
# the contract. Exits non-zero on any broken rule (2 when the cluster could not be
# set up). Everything runs on loopback in a temporary directory and is stopped at
# the end.
#
#   make chaos                                   # 20 minutes, a random seed (printed)
#   CHAOS_SEED=42 make chaos                     # replay a run's schedule
#   CHAOS_SECONDS=60 CHAOS_SEED=1 make chaos     # one minute: what make test runs
#   CHAOS_RELEASE=1 make chaos                   # against the release build (make run's)
#   CHAOS_ARGS="--clients 300 --rate 100 --keep" make chaos   # any other herald-chaos flag
#   CHAOS_BUILD=0 make chaos                     # use the binaries already built
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

seconds=${CHAOS_SECONDS:-1200}
if [ "${CHAOS_RELEASE:-0}" = 1 ]; then profile=release; else profile=debug; fi
if [ "${CHAOS_BUILD:-1}" != 0 ]; then
  echo "chaos: building herald ($profile) and herald-chaos"
  if [ "$profile" = release ]; then
    # As make run and make bench build it.
    cargo leptos build --release --precompress >/dev/null 2>&1 || cargo leptos build --release --precompress
  else
    # As the tests build it (docs/toolchain.md, P9), so the build is shared.
    RUSTFLAGS="$LEPTOS_DEBUG_RUSTFLAGS" cargo build -q -p server --bin herald
  fi
  RUSTFLAGS="$LEPTOS_DEBUG_RUSTFLAGS" cargo build -q -p herald-bench --bin herald-chaos
fi

args=(--herald "$CARGO_TARGET_DIR/$profile/herald" --seconds "$seconds")
# Without a seed, herald-chaos picks one and prints it first.
if [ -n "${CHAOS_SEED:-}" ]; then args+=(--seed "$CHAOS_SEED"); fi
# CHAOS_ARGS is split on spaces on purpose: it holds flags.
# shellcheck disable=SC2206
args+=(${CHAOS_ARGS:-})
exec "$CARGO_TARGET_DIR/debug/herald-chaos" "${args[@]}"

#!/usr/bin/env bash
# Installs whatever is missing to build and test Herald; skips what is already there.
# Idempotent. Nothing here downloads from GitHub: every tool comes from crates.io,
# npm or Debian (see docs/toolchain.md for why each version is pinned).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

CARGO_LEPTOS_VERSION=0.3.10   # 0.3.11 needs rustc >= 1.96
TRUNK_VERSION=0.21.14         # 0.22 needs rustc >= 1.96.1; the static build (make static)
WASM_BINDGEN_VERSION=$(awk '$0 == "name = \"wasm-bindgen\"" { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)

has() { "$1" --version 2>/dev/null | grep -qF " $2"; }
step() { local started=$SECONDS; echo "setup: $*"; "$@"; echo "setup: done in $((SECONDS - started)) s"; }
sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing_debs=()
command -v chromium >/dev/null || missing_debs+=(chromium)
# Redis for the scale-out tests: each test run starts its own on a loopback port.
command -v redis-server >/dev/null || missing_debs+=(redis-server)
# Sentinel for the failover tests and the delivery checker (make chaos); openssl makes
# the certificates of the TLS tests.
command -v redis-sentinel >/dev/null || missing_debs+=(redis-sentinel)
command -v openssl >/dev/null || missing_debs+=(openssl)
# The reverse-proxy recipes in deploy/ are tested in front of a node.
command -v nginx >/dev/null || missing_debs+=(nginx)
command -v caddy >/dev/null || missing_debs+=(caddy)
if [ ${#missing_debs[@]} -gt 0 ]; then
  step sudo_if_needed apt-get update -qq
  step sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing_debs[@]}"
fi

rustup target list --installed | grep -qx wasm32-unknown-unknown || step rustup target add wasm32-unknown-unknown
rustup component list --installed 2>/dev/null | grep -q '^clippy' || step rustup component add clippy rustfmt

has cargo-leptos "$CARGO_LEPTOS_VERSION" ||
  step cargo install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked
has cargo-fuzz 0.13.2 || step cargo install cargo-fuzz --version 0.13.2 --locked
has trunk "$TRUNK_VERSION" || step cargo install trunk --version "$TRUNK_VERSION" --locked
# No --locked: its lockfile pins a webpki-roots release this registry does not serve.
has wasm-bindgen "$WASM_BINDGEN_VERSION" ||
  step cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force

# @playwright/test (no browser download: tests use Debian's chromium) and binaryen's
# wasm-opt for release builds (Debian's binaryen 108 breaks release wasm).
if [ ! -x end2end/node_modules/.bin/playwright ] || [ end2end/package-lock.json -nt end2end/node_modules/.package-lock.json ]; then
  (cd end2end && step npm ci --no-audit --no-fund)
fi
# TypeScript, to check herald-client's type declarations (clients/js).
if [ ! -x clients/js/node_modules/.bin/tsc ] || [ clients/js/package-lock.json -nt clients/js/node_modules/.package-lock.json ]; then
  (cd clients/js && step npm ci --no-audit --no-fund)
fi

#!/usr/bin/env bash
# Builds Herald and serves it on http://127.0.0.1:3000 with the in-memory broker.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bash scripts/setup.sh
cargo leptos build --release --precompress
exec "$CARGO_TARGET_DIR/release/herald" "$@"

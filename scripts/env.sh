# Shared environment for the build scripts; sourced, not run.
# Builds go outside the clone by default so a fresh clone on a warm machine
# rebuilds in seconds.
export HOME="${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/herald/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# cargo-leptos adds `--cfg erase_components` to RUSTFLAGS in debug builds (`make
# watch`); cargo test and clippy use the same flags (scripts/test.sh) so both share
# compiled dependencies (docs/toolchain.md, P9). Not exported: cargo-leptos would add it twice.
LEPTOS_DEBUG_RUSTFLAGS="--cfg erase_components"
# npm's wasm-opt (binaryen 132) must win over any older wasm-opt on PATH.
export PATH="$PWD/end2end/node_modules/.bin:$HOME/.cargo/bin:$PATH"

# Shared environment for the build scripts; sourced, not run.
# Builds go outside the clone by default so a fresh clone on a warm machine
# rebuilds in seconds.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/herald/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# cargo-leptos builds with this cfg in debug; using it for cargo test and clippy too
# lets them reuse the same compiled dependencies (TOOLCHAIN.md, P9).
export RUSTFLAGS="${RUSTFLAGS:---cfg erase_components}"
# npm's wasm-opt (binaryen 132) must win over any older wasm-opt on PATH.
export PATH="$PWD/end2end/node_modules/.bin:$HOME/.cargo/bin:$PATH"

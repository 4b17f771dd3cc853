#!/usr/bin/env bash
# make dist: the self-contained release binary (its web app embedded, see
# server/src/web/site.rs) in target/dist/herald-VERSION-ARCH-linux.tar.gz, with the
# README, the licences and the systemd unit of deploy/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bash scripts/setup.sh
# --precompress builds the site before the server (which embeds it), and writes the
# .br/.gz copies served to browsers that accept them.
cargo leptos build --release --precompress
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
name="herald-$version-$(uname -m)-linux"
out=target/dist
rm -rf "${out:?}/$name" "$out/$name.tar.gz"
mkdir -p "$out/$name"
cp "$CARGO_TARGET_DIR/release/herald" README.md LICENSE-MIT LICENSE-APACHE deploy/herald.service \
  "$out/$name/"
tar -C "$out" -czf "$out/$name.tar.gz" "$name"
rm -rf "${out:?}/$name"
echo "dist: $out/$name.tar.gz ($(du -h "$out/$name.tar.gz" | cut -f1))"

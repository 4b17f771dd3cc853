#!/usr/bin/env bash
# make static: the client-side build of Herald's page (Trunk.toml) in target/trunk-dist/,
# for hosting on any static server. It reads config.json beside index.html to learn
# which Herald to talk to (README, "Static hosting (Trunk)").
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bash scripts/setup.sh
trunk build --release
echo "static: target/trunk-dist/ (add a config.json beside index.html: {\"server\": \"https://your-herald\"})"

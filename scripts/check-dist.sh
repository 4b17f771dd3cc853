#!/usr/bin/env bash
# The test of make dist's tarball: unpacked into an empty directory, its binary
# started from another empty directory, with no LEPTOS_* setting, serves the page and
# every file the page loads; the systemd unit beside it passes systemd-analyze verify
# and its command and environment serve the same way.
set -euo pipefail
cd "$(dirname "$0")/.."
tarball=$(ls -t target/dist/herald-*.tar.gz | head -n 1)
work=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "check-dist: $*" >&2; [ -f "$work/log" ] && cat "$work/log" >&2; exit 1; }

tar -C "$work" -xzf "$tarball"
unpacked=$(ls -d "$work"/herald-*/)
for file in herald README.md LICENSE-MIT LICENSE-APACHE herald.service; do
  [ -f "$unpacked/$file" ] || fail "the tarball has no $file"
done
mkdir "$work/empty"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"

# Starts the binary from the empty directory with `env` settings; waits for /livez.
start() {
  (cd "$work/empty" && exec env -u LEPTOS_SITE_ROOT -u LEPTOS_OUTPUT_NAME "$@" \
    "$unpacked/herald" >"$work/log" 2>&1) &
  pid=$!
  for _ in $(seq 100); do
    curl -sf "$base/livez" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  fail "herald did not start"
}
stop() { kill "$pid"; wait "$pid" || true; pid=; }

# Checks one path's status and content type; prints the body to $work/body.
expect() {
  local path=$1 type=$2
  local got
  got=$(curl -s -o "$work/body" -w '%{http_code} %{content_type}' "$base$path")
  [ "${got%% *}" = 200 ] || fail "$path answered ${got%% *}"
  case "${got#* }" in "$type"*) ;; *) fail "$path is ${got#* }, not $type" ;; esac
}

serves_the_app() {
  expect / text/html
  grep -q '/pkg/herald.js' "$work/body" || fail "the page does not load /pkg/herald.js"
  expect /pkg/herald.js text/javascript
  expect /pkg/herald.wasm application/wasm
  expect /pkg/herald.css text/css
  expect /favicon.svg image/svg+xml
  # The wasm, compressed for a browser that accepts brotli, and 304 once it has it.
  local headers etag
  headers=$(curl -s -D - -o /dev/null -H 'Accept-Encoding: gzip, br' "$base/pkg/herald.wasm")
  grep -qi '^content-encoding: br' <<<"$headers" || fail "no brotli wasm: $headers"
  etag=$(sed -n 's/^etag: *//Ip' <<<"$headers" | tr -d '\r')
  [ "$(curl -s -o /dev/null -w '%{http_code}' -H 'Accept-Encoding: br' -H "If-None-Match: $etag" \
    "$base/pkg/herald.wasm")" = 304 ] || fail "no 304 for an unchanged file"
  grep -q "serving the web app's files from the binary" "$work/log" || fail "not from the binary"
}

echo "check-dist: $tarball, started from an empty directory"
start HERALD_LISTEN="127.0.0.1:$port"
serves_the_app
stop

echo "check-dist: the systemd unit"
unit="$work/herald.service"
sed "s|^ExecStart=/usr/local/bin/herald|ExecStart=$unpacked/herald|" "$unpacked/herald.service" >"$unit"
systemd-analyze verify "$unit" || fail "systemd-analyze verify refused the unit"
# The unit's Environment= lines, its port replaced, as systemd would pass them.
mapfile -t environment < <(sed -n 's/^Environment=//p' "$unit" | sed "s/:3000$/:$port/")
start "${environment[@]}"
serves_the_app
grep -q '"level":"INFO"' "$work/log" || fail "the unit's JSON logs are not JSON"
stop
echo "check-dist: ok"

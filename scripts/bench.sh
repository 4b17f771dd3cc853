#!/usr/bin/env bash
# Runs herald-bench against Herald and, in the same run with the same generator,
# against nchan (Debian's nginx + libnginx-mod-nchan, one worker), then prints a
# side-by-side table. Everything on loopback; every scenario stops by itself.
#
#   make bench                 # N = 1k and 10k, plus the largest idle hold the fd limit allows
#   BENCH_SMOKE=1 make bench   # a few seconds, for CI: proves the benchmark still runs
#   BENCH_RUNS="broadcast 1000 200 40;hold 5000" make bench   # chosen scenarios
#   BENCH_ROUNDS=5 make bench  # rounds of each latency run (default 3; the table shows the median)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if [ ! -e /usr/lib/nginx/modules/ngx_nchan_module.so ]; then
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    nginx libnginx-mod-nchan
fi

echo "bench: building herald (as make run serves it) and herald-bench, release"
cargo leptos build --release >/dev/null 2>&1 || cargo leptos build --release
cargo build --release -q -p herald-bench
bin="$CARGO_TARGET_DIR/release"
work=$(mktemp -d)
results="$work/results.jsonl"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for_port() {
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "bench: nothing listens on $1" >&2; return 1
}

# Limits that would otherwise refuse a load test (they are per source address).
herald_port=$(free_port)
"$bin/herald" --listen "127.0.0.1:$herald_port" --log warn --history 10 \
  --max-connections 1000000 --max-connections-per-ip 1000000 \
  --push-rate 1000000 --push-burst 1000000 --queue-capacity 4096 &
pids+=($!)
herald_pid=$!
wait_for_port "$herald_port"

nchan_port=$(free_port)
mkdir -p "$work/nchan"
sed "s|@PORT@|$nchan_port|; s|@DIR@|$work/nchan|g" bench/nchan.conf >"$work/nchan/nginx.conf"
nginx -c "$work/nchan/nginx.conf" -p "$work/nchan" 2>/dev/null &
pids+=($!)
wait_for_port "$nchan_port"
nchan_worker=$(pgrep -P "$(cat "$work/nchan/nginx.pid")" | head -n 1)

# The generator and the server each need a descriptor per connection.
fd_limit=$(ulimit -Hn)
max_hold=$(( fd_limit > 101000 ? 100000 : fd_limit - 1000 ))
if [ -n "${BENCH_RUNS:-}" ]; then # e.g. BENCH_RUNS="hold 1000;broadcast 1000 200 40"
  IFS=';' read -r -a runs <<<"$BENCH_RUNS"
elif [ "${BENCH_SMOKE:-0}" = 1 ]; then
  runs=("hold 200" "unicast 200 200 500" "broadcast 200 20")
else
  # Unicast: 10 000 pushes, so that p99 rests on 100 samples. Broadcast back to back,
  # then paced: well below both hubs' limits, and at about the most nchan sustains.
  runs=("hold 1000" "hold 10000" "hold $max_hold"
        "unicast 1000 10000 1000" "unicast 10000 10000 1000"
        "broadcast 1000 500" "broadcast 10000 100"
        "broadcast 1000 200 40" "broadcast 10000 40 4" "broadcast 10000 70 7")
fi

# Latency on a shared machine moves from run to run: unicast runs and back-to-back
# broadcasts are repeated, Herald and nchan taking turns, and the table shows the
# median round. (Paced broadcasts last long enough to settle.)
latency_rounds=${BENCH_ROUNDS:-3}
if [ "${BENCH_SMOKE:-0}" = 1 ]; then latency_rounds=1; fi

net=0
bench() { # target address pid scenario...
  local target=$1 addr=$2 pid=$3
  shift 3
  net=$((net + 1)) # fresh source addresses: no run meets another's TIME_WAIT ports
  "$bin/herald-bench" --target "$target" --addr "$addr" --pid "$pid" --deadline 120s \
    --source-net "$net" --label "$*" "$@" >>"$results"
  sleep 2 # let both sides close the run's sockets before the next
}
for run in "${runs[@]}"; do
  read -r -a scenario <<<"$run"
  rounds=1
  case "${scenario[0]}:${#scenario[@]}" in
    unicast:* | broadcast:3) rounds=$latency_rounds ;;
  esac
  for _ in $(seq "$rounds"); do
    bench herald "127.0.0.1:$herald_port" "$herald_pid" "${scenario[@]}"
    bench nchan "127.0.0.1:$nchan_port" "$nchan_worker" "${scenario[@]}"
  done
done

python3 scripts/bench_table.py "$results"
if [ -n "${BENCH_RESULTS:-}" ]; then cp "$results" "$BENCH_RESULTS"; fi

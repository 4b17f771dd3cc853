#!/usr/bin/env bash
# Runs herald-bench against Herald and, in the same run with the same generator,
# against nchan (Debian's nginx + libnginx-mod-nchan, one worker), then prints a
# side-by-side table. Everything on loopback; every scenario stops by itself.
#
# After the single-node runs comes a cluster round: two Herald nodes on one Redis
# against two nginx+nchan instances on the same Redis (bench/nchan-redis.conf). Unicast
# pushes go through node A to subscribers all on node B; broadcasts go through node A
# to subscribers split over both. Its rows are labelled "cluster …".
#
#   make bench                 # N = 1k and 10k, plus the largest idle hold the fd limit allows; then the cluster round
#   BENCH_SMOKE=1 make bench   # a few seconds, for CI: proves the benchmark (cluster round too) still runs
#   BENCH_RUNS="broadcast 1000 200 40;hold 5000" make bench   # chosen scenarios, single node
#   BENCH_CLUSTER_RUNS="unicast 1000 5000 1000" make bench    # chosen scenarios, cluster
#                              # (with either or both set, only the chosen ones run)
#   BENCH_CLUSTER_ONLY=1 make bench   # the cluster round alone (with BENCH_SMOKE=1 too)
#   BENCH_ROUNDS=5 make bench  # rounds of each latency run (default 3; the table shows the median)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
missing_debs=()
[ -e /usr/lib/nginx/modules/ngx_nchan_module.so ] || missing_debs+=(nginx libnginx-mod-nchan)
command -v redis-server >/dev/null || missing_debs+=(redis-server)
if [ "${#missing_debs[@]}" -gt 0 ]; then
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing_debs[@]}"
fi

echo "bench: building herald (as make run serves it) and herald-bench, release"
cargo leptos build --release --precompress >/dev/null 2>&1 || cargo leptos build --release --precompress
cargo build --release -q -p herald-bench
bin="$CARGO_TARGET_DIR/release"
work=$(mktemp -d)
results="$work/results.jsonl"
pids=()
# Stops everything the script started. On failure, what nginx logged first: the work
# dir and its logs go with the exit.
cleanup() {
  local status=$?
  if [ "$status" != 0 ]; then
    for log in "$work"/*/error.log; do
      [ -e "$log" ] || continue
      echo "bench: ${log#"$work"/}, its last lines:" >&2
      grep -v 'setrlimit' "$log" | tail -n 20 >&2 || true
    done
  fi
  # What ran, kept even when a later run failed.
  if [ -n "${BENCH_RESULTS:-}" ] && [ -e "$results" ]; then cp "$results" "$BENCH_RESULTS" || true; fi
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  # Redis and nginx log their exit into the work dir: removing it under them fails.
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for_port() {
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "bench: nothing listens on $1" >&2; return 1
}
# A Herald node on Redis listens before its broker is up: wait for GET /healthz (200
# once the broker answers).
wait_for_ready() {
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$1/healthz" && return 0; sleep 0.1; done
  echo "bench: the Herald node on $1 is not ready" >&2; return 1
}

# Starts a Herald node on 127.0.0.1:PORT (further flags after the port); its pid in
# $started. Limits that would otherwise refuse a load test (they are per source address).
start_herald() {
  local port=$1
  shift
  "$bin/herald" --listen "127.0.0.1:$port" --log warn --history 10 \
    --max-connections 1000000 --max-connections-per-ip 1000000 \
    --push-rate 1000000 --push-burst 1000000 --queue-capacity 4096 "$@" &
  pids+=($!)
  started=$!
  wait_for_port "$port"
}

# Starts nginx on CONF (placeholders filled in) in DIR on PORT, with Redis on REDIS
# when given; its one worker's pid (the process that serves) in $started.
start_nchan() {
  local conf=$1 dir=$2 port=$3 redis=${4:-}
  mkdir -p "$dir"
  sed "s|@PORT@|$port|; s|@DIR@|$dir|g; s|@REDIS@|$redis|" "$conf" >"$dir/nginx.conf"
  nginx -c "$dir/nginx.conf" -p "$dir" 2>/dev/null &
  pids+=($!)
  wait_for_port "$port"
  # The master listens before it writes its pid file and forks the worker.
  started=""
  for _ in $(seq 100); do
    [ -s "$dir/nginx.pid" ] && started=$(pgrep -P "$(cat "$dir/nginx.pid")" | head -n 1) && break
    sleep 0.1
  done
  if [ -z "$started" ]; then echo "bench: nginx on $port has no worker" >&2; return 1; fi
}

# A Redis that keeps nothing on disk, on 127.0.0.1:PORT; its pid in $started.
start_redis() {
  local port=$1
  redis-server --save "" --appendonly no --bind 127.0.0.1 --port "$port" \
    --logfile "$work/redis-$port.log" &
  pids+=($!)
  started=$!
  wait_for_port "$port"
}

# The generator and the server each need a descriptor per connection.
fd_limit=$(ulimit -Hn)
max_hold=$(( fd_limit > 101000 ? 100000 : fd_limit - 1000 ))
smoke=${BENCH_SMOKE:-0}
if [ -n "${BENCH_RUNS:-}${BENCH_CLUSTER_RUNS:-}${BENCH_TRANSPORT_RUNS:-}" ]; then
  # Chosen scenarios, and only those: e.g. BENCH_RUNS="hold 1000;broadcast 1000 200 40"
  IFS=';' read -r -a runs <<<"${BENCH_RUNS:-}"
  IFS=';' read -r -a cluster_runs <<<"${BENCH_CLUSTER_RUNS:-}"
  IFS=';' read -r -a transport_runs <<<"${BENCH_TRANSPORT_RUNS:-}"
elif [ "$smoke" = 1 ]; then
  runs=("hold 200" "unicast 200 200 500" "broadcast 200 20")
  cluster_runs=("unicast 100 100 500" "broadcast 100 10")
  transport_runs=("hold 200" "broadcast 200 20")
else
  # Unicast: 10 000 pushes, so that p99 rests on 100 samples. Broadcast back to back,
  # then paced: well below both hubs' limits, and at about the most nchan sustains.
  runs=("hold 1000" "hold 10000" "hold $max_hold"
        "unicast 1000 10000 1000" "unicast 10000 10000 1000"
        "broadcast 1000 500" "broadcast 10000 100"
        "broadcast 1000 200 40" "broadcast 10000 40 4" "broadcast 10000 70 7")
  # As the single node's runs: what a second node and Redis add to a push, and how a
  # fan-out to 10 000 split over two nodes compares, back to back and paced.
  cluster_runs=("unicast 1000 10000 1000" "broadcast 10000 100" "broadcast 10000 40 4")
  # Herald alone over TLS and HTTP/2 (100 streams per connection): what an idle
  # stream costs, and a fan-out to 10 000 (docs/benchmarks.md).
  transport_runs=("hold 10000" "broadcast 10000 100")
fi
if [ "${BENCH_CLUSTER_ONLY:-0}" = 1 ]; then runs=(); transport_runs=(); fi
if [ "${#runs[@]}" = 0 ] && [ "${#cluster_runs[@]}" = 0 ] && [ "${#transport_runs[@]}" = 0 ]; then
  echo "bench: no scenario to run (BENCH_CLUSTER_ONLY=1 with BENCH_RUNS alone?)" >&2
  exit 1
fi

# Latency on a shared machine moves from run to run: unicast runs and back-to-back
# broadcasts are repeated, Herald and nchan taking turns, and the table shows the
# median round. (Paced broadcasts last long enough to settle.)
latency_rounds=${BENCH_ROUNDS:-3}
if [ "$smoke" = 1 ]; then latency_rounds=1; fi

net=0
bench() { # target label flags... -- scenario...
  local target=$1 label=$2 flags=()
  shift 2
  while [ "$1" != -- ]; do flags+=("$1"); shift; done
  shift
  net=$((net % 254 + 1)) # fresh source addresses: no run meets another's TIME_WAIT ports
  if ! "$bin/herald-bench" --target "$target" "${flags[@]}" --deadline 120s \
    --source-net "$net" --label "$label" "$@" >>"$results"; then
    # The reference failing is a finding, not a broken benchmark (nchan's Redis mode
    # now and then ends a subscribe without answering): its row stays empty.
    [ "$target" = nchan ] || return 1
    echo "bench: nchan's run \"$label\" failed; its figures are missing" >&2
  fi
  sleep 2 # let both sides close the run's sockets before the next
}

# Runs every scenario of the array named $1, Herald and nchan taking turns; $2
# prefixes the labels; $3 names the function that prints a target's herald-bench
# flags (addresses, pids) for a kind of scenario.
play() {
  local -n scenarios=$1
  local prefix=$2 flags_for=$3 run scenario rounds target flags
  for run in "${scenarios[@]}"; do
    read -r -a scenario <<<"$run"
    rounds=1
    case "${scenario[0]}:${#scenario[@]}" in
      unicast:* | broadcast:3) rounds=$latency_rounds ;;
    esac
    for _ in $(seq "$rounds"); do
      for target in herald nchan; do
        read -r -a flags <<<"$("$flags_for" "$target" "${scenario[0]}")"
        bench "$target" "$prefix${scenario[*]}" "${flags[@]}" -- "${scenario[@]}"
      done
    done
  done
}

if [ "${#runs[@]}" -gt 0 ]; then
  herald_port=$(free_port)
  start_herald "$herald_port"
  herald_pid=$started
  nchan_port=$(free_port)
  start_nchan bench/nchan.conf "$work/nchan" "$nchan_port"
  nchan_worker=$started
  single_flags() { # target kind
    case $1 in
      herald) echo "--addr 127.0.0.1:$herald_port --pid $herald_pid" ;;
      nchan) echo "--addr 127.0.0.1:$nchan_port --pid $nchan_worker" ;;
    esac
  }
  play runs "" single_flags
fi

if [ "${#transport_runs[@]}" -gt 0 ]; then
  # A private CA and a certificate for 127.0.0.1, as an operator would make them.
  tls="$work/tls"
  mkdir -p "$tls"
  new_key=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  openssl req -x509 "${new_key[@]}" -days 2 -subj "/CN=bench CA" \
    -keyout "$tls/ca.key" -out "$tls/ca.crt" 2>/dev/null
  openssl req "${new_key[@]}" -subj /CN=127.0.0.1 -keyout "$tls/server.key" \
    -out "$tls/server.csr" 2>/dev/null
  echo "subjectAltName=IP:127.0.0.1" >"$tls/san.ext"
  openssl x509 -req -days 2 -in "$tls/server.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" \
    -CAcreateserial -extfile "$tls/san.ext" -out "$tls/server.crt" 2>/dev/null
  # A fresh node for every run: memory a process has used is not given back, so a
  # node that held one run's streams would hide the next run's cost.
  on_fresh_node() { # label tls|plain herald-bench flags... -- scenario...
    local label=$1 mode=$2 port
    shift 2
    port=$(free_port)
    if [ "$mode" = tls ]; then
      start_herald "$port" --tls-cert "$tls/server.crt" --tls-key "$tls/server.key"
      set -- --tls --tls-ca "$tls/ca.crt" "$@"
    else
      start_herald "$port"
    fi
    bench herald "$label" --addr "127.0.0.1:$port" --pid "$started" "$@"
    kill "$started"
    wait "$started" 2>/dev/null || true
  }
  for run in "${transport_runs[@]}"; do
    read -r -a scenario <<<"$run"
    on_fresh_node "plain $run" plain -- "${scenario[@]}"
    on_fresh_node "tls $run" tls -- "${scenario[@]}"
    on_fresh_node "tls h2 $run" tls --http2 -- "${scenario[@]}"
    on_fresh_node "h2c $run" plain --http2 -- "${scenario[@]}"
  done
fi

if [ "${#cluster_runs[@]}" -gt 0 ]; then
  # One Redis for both clusters (each uses its own keys), in turn as the hubs are.
  redis_port=$(free_port)
  start_redis "$redis_port"
  redis_pid=$started
  declare -A cluster_port cluster_pid
  for node in a b; do
    cluster_port[herald_$node]=$(free_port)
    start_herald "${cluster_port[herald_$node]}" \
      --redis-url "redis://127.0.0.1:$redis_port" --redis-prefix bench
    cluster_pid[herald_$node]=$started
    wait_for_ready "${cluster_port[herald_$node]}"
    cluster_port[nchan_$node]=$(free_port)
    start_nchan bench/nchan-redis.conf "$work/nchan-$node" "${cluster_port[nchan_$node]}" "$redis_port"
    cluster_pid[nchan_$node]=$started
  done
  # Unicast: every subscriber on node B, every push through node A, so that each
  # message crosses Redis. Broadcast: subscribers split over both nodes, published
  # through A. The CPU figures are the sum of both nodes and Redis.
  cluster_flags() { # target kind
    local a="127.0.0.1:${cluster_port[$1_a]}" b="127.0.0.1:${cluster_port[$1_b]}"
    local measured="${cluster_pid[$1_a]},${cluster_pid[$1_b]},$redis_pid"
    case $2 in
      unicast) echo "--addr $b --publish-addr $a --pid $measured" ;;
      *) echo "--addr $a,$b --publish-addr $a --pid $measured" ;;
    esac
  }
  play cluster_runs "cluster " cluster_flags
fi

python3 scripts/bench_table.py "$results"

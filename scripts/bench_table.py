"""Prints herald-bench results (one JSON object per line) as a side-by-side table of
Herald and nchan, with Herald's figure over nchan's. A run repeated in rounds (the
same label several times) shows each figure's median over the rounds and its range;
losses are summed. Each label is its own rows: the cluster round's ("cluster …")
stand apart from the single node's."""
import json
import statistics
import sys

COLUMNS = {
    "hold": [("connects_per_second", "connects/s", True),
             ("rss_bytes_per_connection", "server RSS B/conn", False),
             ("kernel_tcp_bytes_per_connection", "kernel TCP B/conn", False),
             ("server_cpu_us_per_connect", "server CPU µs/conn", False)],
    "unicast": [("latency_p50_us", "p50 µs", False), ("latency_p99_us", "p99 µs", False),
                ("latency_max_us", "max µs", False), ("lost", "lost", False),
                ("server_cpu_us_per_push", "server CPU µs/push", False)],
    "broadcast": [("deliveries_per_second", "deliveries/s", True),
                  ("fan_out_p50_us", "fan-out p50 µs", False),
                  ("fan_out_p99_us", "fan-out p99 µs", False), ("lost", "lost", False),
                  ("server_cpu_us_per_delivery", "server CPU µs/delivery", False)],
}

runs = {}
for line in open(sys.argv[1]):
    if line.strip():
        result = json.loads(line)
        runs.setdefault(result["label"], {}).setdefault(result["target"], []).append(result)


def median(results, key):
    """The median over rounds; for losses, their total (no loss may hide in a median)."""
    values = [r[key] for r in results if isinstance(r.get(key), (int, float))]
    if not values:
        return None
    return sum(values) if key in ("lost", "duplicates") else statistics.median(values)


def ahead(herald, nchan, key, higher_is_better):
    """In how many rounds Herald's figure beat nchan's from the run right after it."""
    pairs = [(h[key], n[key]) for h, n in zip(herald, nchan)
             if isinstance(h.get(key), (int, float)) and isinstance(n.get(key), (int, float))]
    wins = sum(1 for h, n in pairs if (h > n if higher_is_better else h < n))
    return f"herald ahead in {wins} of {len(pairs)}"


def spread(results, key):
    values = [r[key] for r in results if isinstance(r.get(key), (int, float))]
    return f"{min(values):g}–{max(values):g}" if len(values) > 1 else ""


# Wide enough for the longest label ("cluster broadcast 10000 40 4" and the like).
width = max([26] + [len(label) for label in runs])
print(f"{'run':<{width}} {'figure':<24} {'herald':>12} {'nchan':>12} {'herald/nchan':>13}")
for label, by_target in runs.items():
    herald, nchan = by_target.get("herald", []), by_target.get("nchan", [])
    rounds = max(len(herald), len(nchan))
    scenario = (herald or nchan)[0]["scenario"]
    for key, name, higher_is_better in COLUMNS[scenario]:
        h, n = median(herald, key), median(nchan, key)
        ratio = f"{h / n:.2f}" if h is not None and n else "-"
        notes = ["higher is better"] if higher_is_better else []
        if rounds > 1 and key in ("lost", "duplicates"):
            notes.append(f"total of {rounds} rounds")
        elif rounds > 1:
            notes.append(f"median of {rounds} rounds; herald {spread(herald, key)}, "
                         f"nchan {spread(nchan, key)}; "
                         f"{ahead(herald, nchan, key, higher_is_better)}")
        print(f"{label:<{width}} {name:<24} {h if h is not None else '-':>12} "
              f"{n if n is not None else '-':>12} {ratio:>13}  {'; '.join(notes)}")
if any(label.startswith(("plain ", "tls ", "h2c ")) for label in runs):
    print("plain: HTTP/1.1 in clear text; tls: HTTPS over HTTP/1.1, a connection per stream; tls h2: HTTP/2 by ALPN, 100 "
          "streams per connection; h2c: HTTP/2 in clear text, 100 per connection; Herald "
          "alone (pushes over HTTP/1.1)")
if any(label.startswith("cluster ") for label in runs):
    print("cluster: two nodes on one Redis (Herald: --redis-url; nchan: nchan_redis_pass); "
          "unicast subscribers all on node B, pushes through node A; broadcast subscribers "
          "split over both, published through A; server CPU is both nodes' and Redis's")

"""Prints herald-bench results (one JSON object per line) as a side-by-side table of
Herald and nchan, with Herald's figure over nchan's."""
import json
import sys

COLUMNS = {
    "hold": [("connects_per_second", "connects/s", True),
             ("rss_bytes_per_connection", "server RSS B/conn", False),
             ("kernel_tcp_bytes_per_connection", "kernel TCP B/conn", False)],
    "unicast": [("latency_p50_us", "p50 µs", False), ("latency_p99_us", "p99 µs", False),
                ("latency_max_us", "max µs", False), ("lost", "lost", False)],
    "broadcast": [("deliveries_per_second", "deliveries/s", True),
                  ("fan_out_p50_us", "fan-out p50 µs", False),
                  ("fan_out_p99_us", "fan-out p99 µs", False), ("lost", "lost", False)],
}

runs = {}
for line in open(sys.argv[1]):
    if line.strip():
        result = json.loads(line)
        runs.setdefault(result["label"], {})[result["target"]] = result

print(f"{'run':<26} {'figure':<20} {'herald':>12} {'nchan':>12} {'herald/nchan':>13}")
for label, by_target in runs.items():
    herald, nchan = by_target.get("herald", {}), by_target.get("nchan", {})
    for key, name, higher_is_better in COLUMNS[(herald or nchan)["scenario"]]:
        h, n = herald.get(key), nchan.get(key)
        ratio = f"{h / n:.2f}" if isinstance(h, (int, float)) and n else "-"
        better = "higher is better" if higher_is_better else ""
        print(f"{label:<26} {name:<20} {h if h is not None else '-':>12} "
              f"{n if n is not None else '-':>12} {ratio:>13}  {better}")

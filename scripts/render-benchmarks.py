#!/usr/bin/env python3
"""Renders fleet-bench results (JSON lines) into the table of docs/benchmarks.md
(between the BEGIN/END markers) and a PNG plot."""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

results_path, md_path, png_path = sys.argv[1:4]
rows = [json.loads(l) for l in open(results_path) if l.strip()]
rows.sort(key=lambda r: (r["devices"], r["broker"]))


def fmt(v, digits=1):
    if v is None:
        return "n/a"
    return f"{v:,.{digits}f}"


header = (
    "| devices | broker | all nodes Ready after start (s) | pod created→Running p50 (ms) | p99 (ms) "
    "| gateway RSS (MiB) | RSS per device (KiB) | gateway CPU idle (% of a core) "
    "| CPU per device (ms/min) | API writes/s per idle device | MQTT bytes per idle device per min "
    "| all Ready after gateway restart (s) |\n"
    "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
)
lines = [
    f"| {r['devices']:,} | {r['broker']} | {fmt(r['register_seconds'])} | {fmt(r['pod_running_p50_ms'], 0)} "
    f"| {fmt(r['pod_running_p99_ms'], 0)} | {fmt(r['gateway_rss_mib'])} | {fmt(r['gateway_rss_kib_per_device'])} "
    f"| {fmt(r['gateway_cpu_percent_idle'])} | {fmt(r['gateway_cpu_ms_per_device_per_min'], 2)} "
    f"| {fmt(r['api_writes_per_sec_per_device'], 3)} | {fmt(r['mqtt_bytes_per_device_per_min'], 0)} "
    f"| {fmt(r['restart_all_ready_seconds'])} |"
    for r in rows
]
table = header + "\n".join(lines) + "\n"

md = open(md_path).read()
begin, end = "<!-- BEGIN RESULTS -->\n", "<!-- END RESULTS -->"
pre, rest = md.split(begin, 1)
_, post = rest.split(end, 1)
open(md_path, "w").write(pre + begin + table + end + post)

fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
for broker, marker in (("embedded", "o"), ("mosquitto", "s")):
    rs = [r for r in rows if r["broker"] == broker]
    if not rs:
        continue
    n = [r["devices"] for r in rs]
    axes[0].plot(n, [r["pod_running_p50_ms"] for r in rs], marker=marker, label=f"{broker} p50")
    axes[0].plot(n, [r["pod_running_p99_ms"] for r in rs], marker=marker, linestyle="--", label=f"{broker} p99")
    axes[1].plot(n, [r["gateway_rss_mib"] for r in rs], marker=marker, label=broker)
    axes[2].plot(n, [r["gateway_cpu_percent_idle"] for r in rs], marker=marker, label=broker)
titles = ("pod created → Running (ms)", "gateway RSS (MiB)", "gateway CPU while idle (% of one core)")
for ax, title in zip(axes, titles):
    ax.set_xscale("log")
    ax.set_xlabel("devices")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
axes[0].axhline(5000, color="red", alpha=0.4, linestyle=":")
axes[0].text(100, 5200, "Kubernetes SLO 5 s", color="red", alpha=0.6)
fig.suptitle("edge-gateway fleet benchmark (one process, 2 cores)")
fig.tight_layout()
fig.savefig(png_path, dpi=110)

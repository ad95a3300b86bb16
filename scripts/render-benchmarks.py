#!/usr/bin/env python3
"""Renders fleet-bench results (JSON lines) into the tables of docs/benchmarks.md and a
PNG plot.

    render-benchmarks.py RESULTS.jsonl docs/benchmarks.md PLOT.png

Tables (between the BEGIN/END markers of the page):
  RESULTS               one row per (devices, broker, API): emulator and real control
                        plane side by side
  CONTROL PLANE RESULTS CPU and RSS per process of the control plane runs

A row of the results replaces the row of the page with the same key; rows the results
do not have (other sizes, the other API) stay, so an emulator run keeps the control
plane rows and the other way round. The plot shows the results file only.
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

results_path, md_path, png_path = sys.argv[1:4]
rows = [json.loads(l) for l in open(results_path) if l.strip()]
API_NAMES = {"emulator": "emulator", "control-plane": "control plane"}
API_ORDER = {"emulator": 0, "control plane": 1}


def api_of(r):
    return API_NAMES.get(r.get("api", "emulator"), r.get("api"))


def fmt(v, digits=1):
    if v is None or v != v:  # None or NaN
        return "n/a"
    return f"{v:,.{digits}f}"


def cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def devices_of(cell):
    return int(cell.replace(",", ""))


def merge_table(md, marker, header, new_rows, key_of_cells, sort_key, legacy=None):
    """Replaces the table between the marker comments: existing rows keyed by
    key_of_cells(cells) stay unless new_rows (key -> line) has the key."""
    begin, end = f"<!-- BEGIN {marker} -->\n", f"<!-- END {marker} -->"
    if begin not in md:
        raise SystemExit(f"{md_path}: no '{begin.strip()}' marker")
    pre, rest = md.split(begin, 1)
    old, post = rest.split(end, 1)
    merged = {}
    for line in old.splitlines():
        if not line.startswith("|") or line.startswith("|---") or line.startswith("| devices"):
            continue
        c = cells(line)
        if legacy:
            c, line = legacy(c, line)
        merged[key_of_cells(c)] = line
    merged.update(new_rows)
    lines = [merged[k] for k in sorted(merged, key=sort_key)]
    return pre + begin + header + "\n".join(lines) + ("\n" if lines else "") + end + post


md = open(md_path).read()

# The main table: the same figures for both APIs.
header = (
    "| devices | broker | API | all nodes Ready after start (s) | all nodes schedulable after start (s) "
    "| pod created→Running p50 (ms) | p99 (ms) "
    "| gateway RSS (MiB) | RSS per device (KiB) | gateway CPU idle (% of a core) "
    "| CPU per device (ms/min) | API writes/s per idle device | MQTT bytes per idle device per min "
    "| all Ready after gateway restart (s) |\n"
    "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
)
main_rows = {
    (r["devices"], r["broker"], api_of(r)): (
        f"| {r['devices']:,} | {r['broker']} | {api_of(r)} | {fmt(r['register_seconds'])} "
        f"| {fmt(r.get('schedulable_seconds'))} "
        f"| {fmt(r['pod_running_p50_ms'], 0)} "
        f"| {fmt(r['pod_running_p99_ms'], 0)} | {fmt(r['gateway_rss_mib'])} | {fmt(r['gateway_rss_kib_per_device'])} "
        f"| {fmt(r['gateway_cpu_percent_idle'])} | {fmt(r['gateway_cpu_ms_per_device_per_min'], 2)} "
        f"| {fmt(r['api_writes_per_sec_per_device'], 3)} | {fmt(r['mqtt_bytes_per_device_per_min'], 0)} "
        f"| {fmt(r['restart_all_ready_seconds'])} |"
    )
    for r in rows
}


def legacy_main(c, line):
    # Rows from before the API column were all on the emulator; rows from before the
    # schedulable column have none.
    if len(c) == 12:
        c = c[:2] + ["emulator"] + c[2:]
    if len(c) == 13:
        c = c[:4] + ["n/a"] + c[4:]
    return c, "| " + " | ".join(c) + " |"


md = merge_table(
    md,
    "RESULTS",
    header,
    main_rows,
    key_of_cells=lambda c: (devices_of(c[0]), c[1], c[2]),
    sort_key=lambda k: (k[0], k[1], API_ORDER.get(k[2], 9)),
    legacy=legacy_main,
)

# The control plane's processes (and the gateway, for comparison).
PROCESS_ORDER = ["kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler", "edge-gateway"]
cp_header = (
    "| devices | broker | process | CPU while devices connect (% of a core) "
    "| CPU idle (% of a core) | RSS after idle (MiB) | peak RSS (MiB) |\n"
    "|---:|---|---|---:|---:|---:|---:|\n"
)
cp_rows = {}
for r in rows:
    if not r.get("components"):
        continue
    procs = list(r["components"]) + [
        {
            "name": "edge-gateway",
            "cpu_percent_connect": r.get("gateway_cpu_percent_connect"),
            "cpu_percent_idle": r["gateway_cpu_percent_idle"],
            "rss_mib": r["gateway_rss_mib"],
            "rss_peak_mib": r.get("gateway_rss_peak_mib"),
        }
    ]
    for p in procs:
        cp_rows[(r["devices"], r["broker"], p["name"])] = (
            f"| {r['devices']:,} | {r['broker']} | {p['name']} | {fmt(p.get('cpu_percent_connect'), 0)} "
            f"| {fmt(p.get('cpu_percent_idle'))} | {fmt(p.get('rss_mib'), 0)} | {fmt(p.get('rss_peak_mib'), 0)} |"
        )


def process_rank(name):
    return PROCESS_ORDER.index(name) if name in PROCESS_ORDER else len(PROCESS_ORDER)


if cp_rows or "<!-- BEGIN CONTROL PLANE RESULTS -->" in md:
    md = merge_table(
        md,
        "CONTROL PLANE RESULTS",
        cp_header,
        cp_rows,
        key_of_cells=lambda c: (devices_of(c[0]), c[1], c[2]),
        sort_key=lambda k: (k[0], k[1], process_rank(k[2])),
    )
open(md_path, "w").write(md)

# The plot: the results file's rows, one line per broker and API.
fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
series = sorted({(r["broker"], api_of(r)) for r in rows}, key=lambda s: (API_ORDER.get(s[1], 9), s[0]))
markers = {"embedded": "o", "mosquitto": "s"}
for broker, api in series:
    rs = sorted((r for r in rows if r["broker"] == broker and api_of(r) == api), key=lambda r: r["devices"])
    label = broker if api == "emulator" else f"{broker}, {api}"
    marker = markers.get(broker, "^")
    n = [r["devices"] for r in rs]
    axes[0].plot(n, [r["pod_running_p50_ms"] for r in rs], marker=marker, label=f"{label} p50")
    axes[0].plot(n, [r["pod_running_p99_ms"] for r in rs], marker=marker, linestyle="--", label=f"{label} p99")
    axes[1].plot(n, [r["gateway_rss_mib"] for r in rs], marker=marker, label=label)
    axes[2].plot(n, [r["gateway_cpu_percent_idle"] for r in rs], marker=marker, label=label)
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

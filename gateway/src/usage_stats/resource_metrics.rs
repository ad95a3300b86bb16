//! The kubelet's resource metrics (`/metrics/resource`) in the Prometheus text format
//! metrics-server parses: cumulative CPU in core-seconds and working set in bytes for
//! the node, each pod and each container, container start times, each point with the
//! sample's time in milliseconds as the kubelet writes it. No fresh sample: no points
//! and `scrape_error 1`, so metrics-server leaves the node out instead of showing old
//! figures.

use std::fmt::Write;

use edge_protocol::NodeStats;

/// One metric family: name, help, type.
struct Family(&'static str, &'static str, &'static str);

const CONTAINER_CPU: Family = Family(
    "container_cpu_usage_seconds_total",
    "[STABLE] Cumulative cpu time consumed by the container in core-seconds",
    "counter",
);
const CONTAINER_MEMORY: Family = Family(
    "container_memory_working_set_bytes",
    "[STABLE] Current working set of the container in bytes",
    "gauge",
);
const CONTAINER_START: Family = Family(
    "container_start_time_seconds",
    "[STABLE] Start time of the container since unix epoch in seconds",
    "gauge",
);
const NODE_CPU: Family = Family(
    "node_cpu_usage_seconds_total",
    "[STABLE] Cumulative cpu time consumed by the node in core-seconds",
    "counter",
);
const NODE_MEMORY: Family = Family(
    "node_memory_working_set_bytes",
    "[STABLE] Current working set of the node in bytes",
    "gauge",
);
const POD_CPU: Family = Family(
    "pod_cpu_usage_seconds_total",
    "[STABLE] Cumulative cpu time consumed by the pod in core-seconds",
    "counter",
);
const POD_MEMORY: Family = Family(
    "pod_memory_working_set_bytes",
    "[STABLE] Current working set of the pod in bytes",
    "gauge",
);
const RESOURCE_SCRAPE_ERROR: Family = Family(
    "resource_scrape_error",
    "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise",
    "gauge",
);
const SCRAPE_ERROR: Family = Family(
    "scrape_error",
    "[ALPHA] 1 if there was an error while getting container metrics, 0 otherwise",
    "gauge",
);

/// A label value with `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

fn header(out: &mut String, f: &Family) {
    let _ = writeln!(out, "# HELP {} {}", f.0, f.1);
    let _ = writeln!(out, "# TYPE {} {}", f.0, f.2);
}

fn seconds(core_nanoseconds: u64) -> f64 {
    core_nanoseconds as f64 / 1e9
}

/// The exposition for one node: `stats` is its fresh sample, `None` when there is none.
pub fn render(stats: Option<&NodeStats>) -> String {
    let mut out = String::new();
    if let Some(s) = stats {
        let ts = s.sampled_at;
        let containers = || {
            s.pods.iter().flat_map(|p| {
                p.containers.iter().map(move |c| {
                    let labels = format!(
                        "container=\"{}\",namespace=\"{}\",pod=\"{}\"",
                        escape(&c.name),
                        escape(&p.namespace),
                        escape(&p.name)
                    );
                    (labels, c)
                })
            })
        };
        header(&mut out, &CONTAINER_CPU);
        for (labels, c) in containers() {
            let v = seconds(c.usage.cpu_usage_core_nanoseconds);
            let _ = writeln!(out, "{}{{{labels}}} {v} {ts}", CONTAINER_CPU.0);
        }
        header(&mut out, &CONTAINER_MEMORY);
        for (labels, c) in containers() {
            let v = c.usage.memory_working_set_bytes;
            let _ = writeln!(out, "{}{{{labels}}} {v} {ts}", CONTAINER_MEMORY.0);
        }
        header(&mut out, &CONTAINER_START);
        for (labels, c) in containers() {
            let v = c.started_at as f64 / 1e3;
            let _ = writeln!(out, "{}{{{labels}}} {v} {ts}", CONTAINER_START.0);
        }
        header(&mut out, &NODE_CPU);
        let node = &s.node.usage;
        let _ = writeln!(
            out,
            "{} {} {ts}",
            NODE_CPU.0,
            seconds(node.cpu_usage_core_nanoseconds)
        );
        header(&mut out, &NODE_MEMORY);
        let _ = writeln!(
            out,
            "{} {} {ts}",
            NODE_MEMORY.0, node.memory_working_set_bytes
        );
        let pods = || {
            s.pods.iter().map(|p| {
                let labels = format!(
                    "namespace=\"{}\",pod=\"{}\"",
                    escape(&p.namespace),
                    escape(&p.name)
                );
                (labels, p)
            })
        };
        header(&mut out, &POD_CPU);
        for (labels, p) in pods() {
            let v: u64 = p
                .containers
                .iter()
                .map(|c| c.usage.cpu_usage_core_nanoseconds)
                .sum();
            let _ = writeln!(out, "{}{{{labels}}} {} {ts}", POD_CPU.0, seconds(v));
        }
        header(&mut out, &POD_MEMORY);
        for (labels, p) in pods() {
            let v: u64 = p
                .containers
                .iter()
                .map(|c| c.usage.memory_working_set_bytes)
                .sum();
            let _ = writeln!(out, "{}{{{labels}}} {v} {ts}", POD_MEMORY.0);
        }
    }
    let error = u8::from(stats.is_none());
    header(&mut out, &RESOURCE_SCRAPE_ERROR);
    let _ = writeln!(out, "{} {error}", RESOURCE_SCRAPE_ERROR.0);
    header(&mut out, &SCRAPE_ERROR);
    let _ = writeln!(out, "{} {error}", SCRAPE_ERROR.0);
    out
}

//! What the emulator's metrics API knows, pure: the last two resource-metric points of
//! every node and container series scraped from the nodes' kubelet endpoints, and the
//! usage metrics-server computes from them (CPU as the rate between the two points,
//! memory as the latest working set). A node whose scrape fails or carries no node
//! point (a kubelet with no fresh sample) is forgotten, so it drops out of `kubectl top`
//! instead of showing old figures, as with metrics-server.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use crate::prometheus_text::Sample;

/// Usage over a window ending at `timestamp_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub nano_cores: u64,
    pub memory_bytes: u64,
    pub timestamp_ms: i64,
    pub window_ms: i64,
}

/// A container series of a node.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerKey {
    pub namespace: String,
    pub pod: String,
    pub container: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct Point {
    cpu_seconds: f64,
    memory_bytes: u64,
    at_ms: i64,
}

/// The latest point of a series and the one before it (with an older time).
#[derive(Debug, Clone, Copy)]
struct Series {
    previous: Option<Point>,
    latest: Point,
}

impl Series {
    fn new(first: Point) -> Self {
        Self {
            previous: None,
            latest: first,
        }
    }

    fn push(&mut self, p: Point) {
        if p.at_ms > self.latest.at_ms {
            self.previous = Some(self.latest);
        }
        self.latest = p;
    }

    fn usage(&self) -> Option<Usage> {
        let prev = self.previous?;
        let window_ms = self.latest.at_ms - prev.at_ms;
        let cpu = self.latest.cpu_seconds - prev.cpu_seconds;
        // a restarted container's counter starts again: no rate until two new points
        if window_ms <= 0 || cpu < 0.0 {
            return None;
        }
        Some(Usage {
            nano_cores: (cpu * 1e9 * 1000.0 / window_ms as f64).round() as u64,
            memory_bytes: self.latest.memory_bytes,
            timestamp_ms: self.latest.at_ms,
            window_ms,
        })
    }
}

#[derive(Debug)]
struct NodeSeries {
    node: Series,
    containers: HashMap<ContainerKey, Series>,
}

/// Every node's series.
#[derive(Debug, Default)]
pub struct MetricsPoints {
    nodes: HashMap<String, NodeSeries>,
}

/// Fills `cpu` or `memory` of the point a sample belongs to.
fn put(points: &mut HashMap<Option<ContainerKey>, Point>, key: Option<ContainerKey>, s: &Sample) {
    let p = points.entry(key).or_default();
    if let Some(at) = s.timestamp_ms {
        p.at_ms = p.at_ms.max(at);
    }
    if s.name.ends_with("_cpu_usage_seconds_total") {
        p.cpu_seconds = s.value;
    } else {
        p.memory_bytes = s.value.max(0.0) as u64;
    }
}

impl MetricsPoints {
    /// A scrape of `node`'s `/metrics/resource`.
    pub fn record(&mut self, node: &str, samples: &[Sample]) {
        let mut points: HashMap<Option<ContainerKey>, Point> = HashMap::new();
        for s in samples {
            match s.name.as_str() {
                "node_cpu_usage_seconds_total" | "node_memory_working_set_bytes" => {
                    put(&mut points, None, s);
                }
                "container_cpu_usage_seconds_total" | "container_memory_working_set_bytes" => {
                    let key = ContainerKey {
                        namespace: s.label("namespace").to_owned(),
                        pod: s.label("pod").to_owned(),
                        container: s.label("container").to_owned(),
                    };
                    put(&mut points, Some(key), s);
                }
                _ => {}
            }
        }
        let Some(node_point) = points.remove(&None) else {
            self.forget(node);
            return;
        };
        let entry = match self.nodes.entry(node.to_owned()) {
            Entry::Occupied(e) => {
                let entry = e.into_mut();
                entry.node.push(node_point);
                entry
            }
            Entry::Vacant(e) => e.insert(NodeSeries {
                node: Series::new(node_point),
                containers: HashMap::new(),
            }),
        };
        let mut containers = HashMap::new();
        for (key, p) in points {
            let Some(key) = key else { continue };
            let series = match entry.containers.remove(&key) {
                Some(mut series) => {
                    series.push(p);
                    series
                }
                None => Series::new(p),
            };
            containers.insert(key, series);
        }
        // containers not in this scrape are gone
        entry.containers = containers;
    }

    /// `node`'s scrape failed: nothing is known of it.
    pub fn forget(&mut self, node: &str) {
        self.nodes.remove(node);
    }

    /// Nodes scraped, by name.
    pub fn nodes(&self) -> impl Iterator<Item = &str> {
        self.nodes.keys().map(String::as_str)
    }

    /// `node`'s usage, once two points are in.
    pub fn node_usage(&self, node: &str) -> Option<Usage> {
        self.nodes.get(node)?.node.usage()
    }

    /// The usage of every container with two points, on every node, sorted.
    pub fn container_usage(&self) -> Vec<(ContainerKey, Usage)> {
        let mut out: Vec<(ContainerKey, Usage)> = self
            .nodes
            .values()
            .flat_map(|n| n.containers.iter())
            .filter_map(|(k, s)| Some((k.clone(), s.usage()?)))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

#[cfg(test)]
mod tests;

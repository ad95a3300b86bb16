//! What kube-controller-manager does to every Node it sees besides health: the node
//! lifecycle controller's `RegisteredNode` event ("Node n1 event: Registered Node n1 in
//! Controller", once per node it learns about, also for the nodes present when it starts)
//! and its label reconciliation (`beta.kubernetes.io/os` and `beta.kubernetes.io/arch`
//! kept equal to `kubernetes.io/os` and `kubernetes.io/arch`), and the TTL controller's
//! `node.alpha.kubernetes.io/ttl` annotation (0 s up to 100 nodes, then 15, 30, 60 and
//! 300 s as the cluster grows, with the same overlapping steps).

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};

use super::clock;
use super::cluster::{Cluster, meta_str};
use super::resources;

const TTL_ANNOTATION: &str = "node.alpha.kubernetes.io/ttl";
/// (primary, secondary) labels: the secondary follows the primary.
const MIRRORED_LABELS: &[(&str, &str)] = &[
    ("kubernetes.io/os", "beta.kubernetes.io/os"),
    ("kubernetes.io/arch", "beta.kubernetes.io/arch"),
];
/// kube's `ttlBoundaries`: (size min, size max, ttl seconds).
const TTL_STEPS: &[(usize, usize, u32)] = &[
    (0, 100, 0),
    (90, 500, 15),
    (450, 1000, 30),
    (900, 2000, 60),
    (1800, usize::MAX, 300),
];

/// Controller state: the nodes registered (name → uid) and the TTL step.
#[derive(Debug, Default)]
pub struct NodeRegistration {
    known: HashMap<String, String>,
    step: usize,
}

/// The labels and annotation the controllers want on `node`, if it lacks them.
fn wanted_metadata(node: &Value, ttl: u32) -> Option<(Vec<(&'static str, String)>, bool)> {
    let labels = node.pointer("/metadata/labels");
    let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    let labels: Vec<(&str, String)> = MIRRORED_LABELS
        .iter()
        .filter_map(|(primary, secondary)| {
            let v = label(primary)?;
            (label(secondary) != Some(v)).then(|| (*secondary, v.to_string()))
        })
        .collect();
    let current_ttl = node
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(TTL_ANNOTATION))
        .and_then(Value::as_str)
        .and_then(|v| v.parse::<u32>().ok());
    let set_ttl = current_ttl != Some(ttl);
    (!labels.is_empty() || set_ttl).then_some((labels, set_ttl))
}

impl NodeRegistration {
    pub fn new() -> Self {
        Self::default()
    }

    fn desired_ttl(&mut self, nodes: usize) -> u32 {
        while nodes > TTL_STEPS[self.step].1 && self.step + 1 < TTL_STEPS.len() {
            self.step += 1;
        }
        while nodes < TTL_STEPS[self.step].0 && self.step > 0 {
            self.step -= 1;
        }
        TTL_STEPS[self.step].2
    }

    /// One pass over all nodes (allocates only for nodes that are new or need a write).
    pub fn run_once(&mut self, cluster: &Cluster) {
        let nodes = cluster.lock().list("nodes", None);
        let ttl = self.desired_ttl(nodes.len());
        for node in &nodes {
            let name = meta_str(node, "name");
            let uid = meta_str(node, "uid");
            if self.known.get(name).map(String::as_str) != Some(uid) {
                record_registered(cluster, name, uid);
                self.known.insert(name.to_string(), uid.to_string());
            }
            let Some((labels, set_ttl)) = wanted_metadata(node, ttl) else {
                continue;
            };
            cluster.write_status("nodes", "", name, |n| {
                let meta = &mut n["metadata"];
                for (k, v) in &labels {
                    if !meta["labels"].is_object() {
                        meta["labels"] = json!({});
                    }
                    meta["labels"][*k] = json!(v);
                }
                if set_ttl {
                    if !meta["annotations"].is_object() {
                        meta["annotations"] = json!({});
                    }
                    meta["annotations"][TTL_ANNOTATION] = json!(ttl.to_string());
                }
            });
        }
        if self.known.len() > nodes.len() {
            let present: HashSet<&str> = nodes.iter().map(|n| meta_str(n, "name")).collect();
            self.known.retain(|name, _| present.contains(name.as_str()));
        }
    }
}

/// The `RegisteredNode` event (core/v1, in `default`, as for every cluster-scoped object).
fn record_registered(cluster: &Cluster, name: &str, uid: &str) {
    let Some(rt) = resources::find("", "v1", "events") else {
        return;
    };
    let now = clock::now();
    let ev = json!({
        "metadata": {"name": clock::event_name(name), "namespace": "default"},
        "involvedObject": {"kind": "Node", "name": name, "uid": uid, "apiVersion": "v1"},
        "reason": "RegisteredNode",
        "message": format!("Node {name} event: Registered Node {name} in Controller"),
        "source": {"component": "node-controller"},
        "firstTimestamp": now, "lastTimestamp": now, "count": 1, "type": "Normal",
        "eventTime": null, "reportingComponent": "node-controller", "reportingInstance": "",
    });
    if let Err(e) = cluster.create(rt, Some("default"), ev) {
        tracing::debug!(error = %e.message, "recording RegisteredNode");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ttl_steps_overlap_like_kube() {
        let mut r = NodeRegistration::new();
        assert_eq!(r.desired_ttl(1), 0);
        assert_eq!(r.desired_ttl(101), 15);
        // Back below 100 but above the next step's minimum: stays.
        assert_eq!(r.desired_ttl(95), 15);
        assert_eq!(r.desired_ttl(89), 0);
        assert_eq!(r.desired_ttl(5000), 300);
    }

    #[test]
    fn beta_labels_follow_the_stable_ones() {
        let n = json!({"metadata": {"labels": {"kubernetes.io/arch": "arm64",
            "beta.kubernetes.io/arch": "amd64"}, "annotations": {TTL_ANNOTATION: "0"}}});
        let (labels, ttl) = wanted_metadata(&n, 0).unwrap();
        assert_eq!(labels, [("beta.kubernetes.io/arch", "arm64".to_string())]);
        assert!(!ttl);
        let done = json!({"metadata": {"labels": {"kubernetes.io/arch": "arm64",
            "beta.kubernetes.io/arch": "arm64"}, "annotations": {TTL_ANNOTATION: "0"}}});
        assert!(wanted_metadata(&done, 0).is_none());
    }
}

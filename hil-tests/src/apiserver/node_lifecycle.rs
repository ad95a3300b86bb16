//! The node lifecycle controller: a node whose Lease in `kube-node-lease` is not renewed
//! within the grace period gets Ready=Unknown (and the other kubelet conditions Unknown),
//! reason `NodeStatusUnknown`. Taints follow the Ready condition as kube-controller-manager
//! keeps them: Unknown → `node.kubernetes.io/unreachable` NoSchedule + NoExecute,
//! False → `node.kubernetes.io/not-ready` NoSchedule + NoExecute, True → neither.
//! When renewals resume the taints go as soon as the kubelet posts Ready=True again
//! (and, as a convenience the real controller lacks, once it sees a renewal it restores
//! the Ready condition it had replaced, so a renewing kubelet that does not re-post status
//! recovers too).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::clock;
use super::cluster::{Cluster, meta_str};
use super::deletion::DeleteOptions;
use super::resources;
use super::scheduler::{record_pod_event_from, tolerates};

const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
const NOT_READY: &str = "node.kubernetes.io/not-ready";
const KUBELET_CONDITIONS: &[&str] = &["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

#[derive(Debug)]
struct Probe {
    lease_rv: String,
    seen_at: Instant,
    /// Conditions replaced with Unknown (restored when renewals resume).
    saved: Option<Value>,
}

/// Controller state: when each node's lease was last seen changing.
#[derive(Debug)]
pub struct NodeLifecycle {
    grace: Duration,
    probes: HashMap<String, Probe>,
}

fn ready_status(node: &Value) -> Option<String> {
    node.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
        })
        .map(|c| {
            c.get("status")
                .and_then(Value::as_str)
                .unwrap_or("Unknown")
                .to_string()
        })
}

/// Adds/removes the not-ready and unreachable taints for the node's Ready condition
/// (a node without a Ready condition is left alone until its lease grace expires).
pub fn reconcile_taints(node: &mut Value) {
    let Some(ready) = ready_status(node) else {
        return;
    };
    let want: &[&str] = match ready.as_str() {
        "True" => &[],
        "False" => &[NOT_READY],
        _ => &[UNREACHABLE],
    };
    let existing: Vec<Value> = node
        .pointer("/spec/taints")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut out: Vec<Value> = existing
        .iter()
        .filter(|t| {
            let k = t.get("key").and_then(Value::as_str).unwrap_or("");
            (k != UNREACHABLE && k != NOT_READY) || want.contains(&k)
        })
        .cloned()
        .collect();
    for key in want {
        for effect in ["NoSchedule", "NoExecute"] {
            let has = out.iter().any(|t| {
                t.get("key").and_then(Value::as_str) == Some(key)
                    && t.get("effect").and_then(Value::as_str) == Some(effect)
            });
            if !has {
                let mut t = json!({"key": key, "effect": effect});
                if effect == "NoExecute" {
                    t["timeAdded"] = json!(clock::now());
                }
                out.push(t);
            }
        }
    }
    if out != existing {
        if node.get("spec").is_none_or(|s| !s.is_object()) {
            node["spec"] = json!({});
        }
        if out.is_empty() {
            if let Some(spec) = node["spec"].as_object_mut() {
                spec.remove("taints");
            }
        } else {
            node["spec"]["taints"] = json!(out);
        }
    }
}

/// Whether the node's not-ready/unreachable taints already match its Ready condition.
fn taints_in_line(node: &Value) -> bool {
    let Some(ready) = ready_status(node) else {
        return true;
    };
    let has = |key: &str| {
        node.pointer("/spec/taints")
            .and_then(Value::as_array)
            .map_or(0, |ts| {
                ts.iter()
                    .filter(|t| t.get("key").and_then(Value::as_str) == Some(key))
                    .count()
            })
    };
    match ready.as_str() {
        "True" => has(UNREACHABLE) == 0 && has(NOT_READY) == 0,
        "False" => has(UNREACHABLE) == 0 && has(NOT_READY) == 2,
        _ => has(UNREACHABLE) == 2 && has(NOT_READY) == 0,
    }
}

fn mark_unknown(node: &mut Value) {
    let now = clock::now();
    if node.get("status").is_none_or(|s| !s.is_object()) {
        node["status"] = json!({});
    }
    let conds = node["status"]
        .as_object_mut()
        .map(|s| s.entry("conditions").or_insert_with(|| json!([])));
    let Some(Value::Array(conds)) = conds else {
        return;
    };
    for t in KUBELET_CONDITIONS {
        let fresh = json!({"type": t, "status": "Unknown", "reason": "NodeStatusUnknown",
            "message": "Kubelet stopped posting node status.", "lastHeartbeatTime": now, "lastTransitionTime": now});
        match conds
            .iter_mut()
            .find(|c| c.get("type").and_then(Value::as_str) == Some(t))
        {
            Some(c) => {
                if c.get("status").and_then(Value::as_str) != Some("Unknown") {
                    c["status"] = json!("Unknown");
                    c["reason"] = json!("NodeStatusUnknown");
                    c["message"] = json!("Kubelet stopped posting node status.");
                    c["lastTransitionTime"] = json!(now);
                }
            }
            None if *t == "Ready" => conds.push(fresh),
            None => {
                let mut f = fresh;
                f["reason"] = json!("NodeStatusNeverUpdated");
                f["message"] = json!("Kubelet never posted node status.");
                conds.push(f);
            }
        }
    }
}

impl NodeLifecycle {
    /// A controller with the given lease grace period.
    pub fn new(grace: Duration) -> Self {
        Self {
            grace,
            probes: HashMap::new(),
        }
    }

    /// One pass over all nodes.
    pub fn run_once(&mut self, cluster: &Cluster) {
        let (nodes, leases) = {
            let store = cluster.lock();
            (
                store.list("nodes", None),
                store.list("leases", Some("kube-node-lease")),
            )
        };
        let lease_by_node: HashMap<&str, &Value> = leases
            .iter()
            .map(|l| (meta_str(l, "name"), l.as_ref()))
            .collect();
        let now = Instant::now();
        let names: std::collections::HashSet<&str> =
            nodes.iter().map(|x| meta_str(x, "name")).collect();
        self.probes.retain(|n, _| names.contains(n.as_str()));
        for node in nodes {
            let name_ref = meta_str(&node, "name");
            // A renewal is a change of the lease's identity or renewTime.
            let (uid, renew) = lease_by_node.get(name_ref).map_or(("", ""), |l| {
                (
                    meta_str(l, "uid"),
                    l.pointer("/spec/renewTime")
                        .and_then(Value::as_str)
                        .unwrap_or(""),
                )
            });
            if !self.probes.contains_key(name_ref) {
                self.probes.insert(
                    name_ref.to_string(),
                    Probe {
                        lease_rv: format!("{uid}/{renew}"),
                        seen_at: now,
                        saved: None,
                    },
                );
            }
            let Some(probe) = self.probes.get_mut(name_ref) else {
                continue;
            };
            let renewed = probe
                .lease_rv
                .split_once('/')
                .is_none_or(|(u, r)| u != uid || r != renew);
            if renewed {
                probe.lease_rv = format!("{uid}/{renew}");
                probe.seen_at = now;
            }
            let expired = now.duration_since(probe.seen_at) > self.grace;
            // Most passes change nothing: skip the copy-and-compare unless something is due.
            let idle = !(expired || (renewed && probe.saved.is_some()));
            let already_unknown = expired && ready_status(&node).as_deref() == Some("Unknown");
            if (idle || already_unknown) && taints_in_line(&node) {
                continue;
            }
            let name = name_ref.to_string();
            let became_unknown = expired && ready_status(&node).as_deref() != Some("Unknown");
            let saved = probe.saved.take();
            let mut new_saved = saved.clone();
            let updated = cluster.write_status("nodes", "", &name, |n| {
                if expired {
                    if ready_status(n).is_some_and(|r| r != "Unknown") && new_saved.is_none() {
                        new_saved = n.pointer("/status/conditions").cloned();
                    }
                    mark_unknown(n);
                } else if renewed && let Some(old) = saved.as_ref() {
                    // Renewals resumed: undo our Unknown unless the kubelet posted since.
                    let still_ours = n
                        .pointer("/status/conditions")
                        .and_then(Value::as_array)
                        .and_then(|cs| {
                            cs.iter()
                                .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
                        })
                        .is_some_and(|c| {
                            c.get("reason").and_then(Value::as_str) == Some("NodeStatusUnknown")
                        });
                    if still_ours {
                        let mut restored = old.clone();
                        if let Some(cs) = restored.as_array_mut() {
                            for c in cs {
                                c["lastHeartbeatTime"] = json!(clock::now());
                                c["lastTransitionTime"] = json!(clock::now());
                            }
                        }
                        n["status"]["conditions"] = restored;
                    }
                    new_saved = None;
                }
                reconcile_taints(n);
            });
            if updated.is_some()
                && let Some(p) = self.probes.get_mut(&name)
            {
                p.saved = new_saved;
            }
            if became_unknown {
                mark_pods_not_ready(cluster, &name);
            }
        }
        evict_for_no_execute_taints(cluster);
    }
}

/// MarkPodsNotReady: the pods of a node that stopped reporting get Ready=False.
fn mark_pods_not_ready(cluster: &Cluster, node: &str) {
    let pods = cluster.lock().list("pods", None);
    for pod in pods
        .iter()
        .filter(|p| p.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node))
    {
        let ns = meta_str(pod, "namespace").to_string();
        let name = meta_str(pod, "name").to_string();
        let mut changed = false;
        cluster.write_status("pods", &ns, &name, |p| {
            if let Some(cs) = p
                .pointer_mut("/status/conditions")
                .and_then(Value::as_array_mut)
            {
                for c in cs.iter_mut() {
                    if c.get("type").and_then(Value::as_str) == Some("Ready")
                        && c.get("status").and_then(Value::as_str) != Some("False")
                    {
                        c["status"] = json!("False");
                        c["lastTransitionTime"] = json!(clock::now());
                        changed = true;
                    }
                }
            }
        });
        if changed {
            record_pod_event_from(
                cluster,
                pod,
                "node-controller",
                "Warning",
                "NodeNotReady",
                "Node is not ready",
            );
        }
    }
}

/// The taint eviction controller: pods that do not tolerate a `NoExecute` taint of their
/// node are deleted (gracefully) at once; pods that tolerate it for `tolerationSeconds`
/// are deleted that long after the taint was added.
fn evict_for_no_execute_taints(cluster: &Cluster) {
    let (nodes, pods) = {
        let store = cluster.lock();
        (store.list("nodes", None), store.list("pods", None))
    };
    let tainted: HashMap<String, Vec<Value>> = nodes
        .iter()
        .filter_map(|n| {
            let ts: Vec<Value> = n
                .pointer("/spec/taints")
                .and_then(Value::as_array)
                .map(|ts| {
                    ts.iter()
                        .filter(|t| t.get("effect").and_then(Value::as_str) == Some("NoExecute"))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            (!ts.is_empty()).then(|| (meta_str(n, "name").to_string(), ts))
        })
        .collect();
    if tainted.is_empty() {
        return;
    }
    let Some(rt) = resources::find("", "v1", "pods") else {
        return;
    };
    let now = jiff::Timestamp::now().as_second();
    for pod in &pods {
        let node = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or("");
        let Some(taints) = tainted.get(node) else {
            continue;
        };
        if !meta_str(pod, "deletionTimestamp").is_empty() {
            continue;
        }
        let tolerations: Vec<Value> = pod
            .pointer("/spec/tolerations")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut evict_at: Option<i64> = None;
        let mut untolerated = false;
        for taint in taints {
            let used: Vec<&Value> = tolerations.iter().filter(|t| tolerates(t, taint)).collect();
            if used.is_empty() {
                untolerated = true;
                break;
            }
            let added = taint
                .get("timeAdded")
                .and_then(Value::as_str)
                .and_then(clock::parse)
                .map_or(now, |t| t.as_second());
            if let Some(secs) = used
                .iter()
                .filter_map(|t| t.get("tolerationSeconds").and_then(Value::as_i64))
                .min()
            {
                let at = added + secs.max(0);
                evict_at = Some(evict_at.map_or(at, |e| e.min(at)));
            }
        }
        if untolerated || evict_at.is_some_and(|at| now >= at) {
            let ns = meta_str(pod, "namespace").to_string();
            let name = meta_str(pod, "name").to_string();
            if cluster
                .delete(rt, Some(&ns), &name, &DeleteOptions::default())
                .is_ok()
            {
                record_pod_event_from(
                    cluster,
                    pod,
                    "taint-eviction-controller",
                    "Normal",
                    "TaintManagerEviction",
                    &format!("Marking for deletion Pod {ns}/{name}"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taints_follow_ready() {
        let mut n = json!({"spec":{"taints":[{"key":"x","effect":"NoSchedule"}]},"status":{"conditions":[{"type":"Ready","status":"True"}]}});
        reconcile_taints(&mut n);
        assert_eq!(n["spec"]["taints"].as_array().map(Vec::len), Some(1));
        mark_unknown(&mut n);
        reconcile_taints(&mut n);
        let keys: Vec<&str> = n["spec"]["taints"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["key"].as_str())
            .collect();
        assert_eq!(keys, vec!["x", UNREACHABLE, UNREACHABLE]);
        n["status"]["conditions"][0]["status"] = json!("True");
        reconcile_taints(&mut n);
        assert_eq!(n["spec"]["taints"].as_array().map(Vec::len), Some(1));
    }
}

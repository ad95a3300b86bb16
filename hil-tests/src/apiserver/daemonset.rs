//! The DaemonSet controller (kube-controller-manager's `daemon`): one pod per eligible
//! node. A node is eligible when the pod template's nodeSelector and required node
//! affinity match it and it has no `NoSchedule`/`NoExecute` taint the daemon pod does not
//! tolerate (a pod already there stays unless a `NoExecute` taint is untolerated); daemon
//! pods get the tolerations the real controller adds and the required
//! node affinity `matchFields metadata.name In [node]`, and are left to the scheduler to
//! bind. Pods on nodes that stopped being eligible (or went away) are deleted; a template
//! change replaces pods `maxUnavailable` at a time. Status carries the counts.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::cluster::{Cluster, meta_str};
use super::controller_ref::{self, pod_active, pod_ready};
use super::deployment::template_hash;
use super::scheduler::{term_matches, tolerates};

const COMPONENT: &str = "daemonset-controller";
const GENERATION_LABEL: &str = "pod-template-generation";
const REVISION_LABEL: &str = "controller-revision-hash";

/// One pass over every DaemonSet.
pub fn run_once(cluster: &Cluster) {
    let sets = cluster.lock().list("daemonsets", None);
    if sets.is_empty() {
        return;
    }
    let nodes = cluster.lock().list("nodes", None);
    for ds in sets {
        reconcile(cluster, &ds, &nodes);
    }
}

/// The tolerations the DaemonSet controller adds to its pods (`util.AddOrUpdateDaemonPodTolerations`).
pub fn daemon_tolerations(host_network: bool) -> Vec<Value> {
    let mut t = vec![
        json!({"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}),
        json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}),
        json!({"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}),
    ];
    if host_network {
        t.push(json!({"key": "node.kubernetes.io/network-unavailable", "operator": "Exists", "effect": "NoSchedule"}));
    }
    t
}

/// The template's pod spec with the daemon tolerations added (kept when a toleration for
/// the same key and effect exists).
fn daemon_spec(template: &Value) -> Value {
    let mut spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
    let host_network = spec.get("hostNetwork").and_then(Value::as_bool) == Some(true);
    let tols = spec
        .as_object_mut()
        .map(|s| s.entry("tolerations").or_insert_with(|| json!([])));
    if let Some(Value::Array(tols)) = tols {
        for t in daemon_tolerations(host_network) {
            let same = tols
                .iter()
                .any(|x| x.get("key") == t.get("key") && x.get("effect") == t.get("effect"));
            if !same {
                tols.push(t);
            }
        }
    }
    spec
}

/// Whether a daemon pod with `spec` should run on `node` and whether one already there
/// should continue running (`nodeShouldRunDaemonPod`): nodeSelector and required node
/// affinity must match; an untolerated `NoSchedule` or `NoExecute` taint means no new pod,
/// but an existing pod keeps running unless a `NoExecute` taint is untolerated.
pub fn should_run(spec: &Value, node: &Value) -> (bool, bool) {
    let labels = node.pointer("/metadata/labels");
    let selector_ok = spec
        .get("nodeSelector")
        .and_then(Value::as_object)
        .is_none_or(|sel| {
            sel.iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        });
    let affinity_ok = spec
        .pointer("/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
        .and_then(Value::as_array)
        .is_none_or(|terms| terms.iter().any(|t| term_matches(t, node)));
    if !(selector_ok && affinity_ok) {
        return (false, false);
    }
    let tolerations = spec
        .get("tolerations")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let taints = node
        .pointer("/spec/taints")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let untolerated = |effects: &[&str]| {
        taints.iter().any(|taint| {
            let effect = taint.get("effect").and_then(Value::as_str).unwrap_or("");
            effects.contains(&effect) && !tolerations.iter().any(|t| tolerates(t, taint))
        })
    };
    if untolerated(&["NoSchedule", "NoExecute"]) {
        return (false, !untolerated(&["NoExecute"]));
    }
    (true, true)
}

/// The node a daemon pod is for: `spec.nodeName`, else its `metadata.name` matchFields term.
fn target_node(pod: &Value) -> String {
    if let Some(n) = pod.pointer("/spec/nodeName").and_then(Value::as_str)
        && !n.is_empty()
    {
        return n.to_string();
    }
    pod.pointer("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("matchFields").and_then(Value::as_array))
        .flatten()
        .find(|f| f["key"] == "metadata.name" && f["operator"] == "In")
        .and_then(|f| f.pointer("/values/0"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn reconcile(cluster: &Cluster, ds: &Value, nodes: &[Arc<Value>]) {
    let ns = meta_str(ds, "namespace");
    let name = meta_str(ds, "name");
    let uid = meta_str(ds, "uid");
    let template = ds.pointer("/spec/template").cloned().unwrap_or_default();
    let spec = daemon_spec(&template);
    let generation = ds
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let hash = template_hash(&template);
    let pods: Vec<Arc<Value>> = cluster
        .lock()
        .list("pods", Some(ns))
        .into_iter()
        .filter(|p| controller_ref::controller_uid(p) == Some(uid))
        .collect();
    let mut by_node: BTreeMap<String, Vec<&Arc<Value>>> = BTreeMap::new();
    for p in &pods {
        by_node.entry(target_node(p)).or_default().push(p);
    }
    let mut eligible: Vec<&str> = Vec::new();
    let mut keep: Vec<&str> = Vec::new();
    for n in nodes {
        let (run, cont) = should_run(&spec, n);
        if run {
            eligible.push(meta_str(n, "name"));
        }
        if cont {
            keep.push(meta_str(n, "name"));
        }
    }
    let updated = |p: &Value| {
        p.pointer("/metadata/labels")
            .and_then(|l| l.get(REVISION_LABEL))
            .and_then(Value::as_str)
            == Some(hash.as_str())
    };
    let active_deleting = controller_ref::deleting(ds);
    let mut desired = 0;
    let mut current = 0;
    let mut misscheduled = 0;
    let mut ready = 0;
    let mut up_to_date = 0;
    let mut outdated: Vec<&Arc<Value>> = Vec::new();
    for (node, node_pods) in &by_node {
        if !eligible.contains(&node.as_str()) {
            let active: Vec<&&Arc<Value>> = node_pods.iter().filter(|p| pod_active(p)).collect();
            if !active.is_empty() && nodes.iter().any(|n| meta_str(n, "name") == node) {
                misscheduled += 1;
            }
            // Pods on nodes where they may not continue (or that are gone) are deleted.
            if !keep.contains(&node.as_str()) && !active_deleting {
                for p in active {
                    delete_pod(cluster, ds, meta_str(p, "name"));
                }
            }
        }
    }
    for node in &eligible {
        desired += 1;
        let node_pods = by_node.get(*node).cloned().unwrap_or_default();
        // Failed pods are deleted and replaced, like the real controller does.
        for p in node_pods.iter().filter(|p| {
            p.pointer("/status/phase").and_then(Value::as_str) == Some("Failed")
                && !controller_ref::deleting(p)
        }) {
            delete_pod(cluster, ds, meta_str(p, "name"));
        }
        let active: Vec<&&Arc<Value>> = node_pods.iter().filter(|p| pod_active(p)).collect();
        if active.is_empty() {
            // A pod still terminating on the node blocks its replacement.
            let terminating = node_pods.iter().any(|p| controller_ref::deleting(p));
            if !active_deleting && !terminating {
                create(cluster, ds, &template, &spec, node, generation, &hash);
            }
            continue;
        }
        current += 1;
        for extra in active.iter().skip(1) {
            delete_pod(cluster, ds, meta_str(extra, "name"));
        }
        let p = active[0];
        if pod_ready(p) {
            ready += 1;
        }
        if updated(p) {
            up_to_date += 1;
        } else {
            outdated.push(p);
        }
    }
    // RollingUpdate: replace outdated pods while at most maxUnavailable are unavailable.
    if !active_deleting
        && ds
            .pointer("/spec/updateStrategy/type")
            .and_then(Value::as_str)
            != Some("OnDelete")
    {
        let max_unavailable = match ds.pointer("/spec/updateStrategy/rollingUpdate/maxUnavailable")
        {
            Some(Value::Number(n)) => n.as_i64().unwrap_or(1),
            Some(Value::String(s)) => s
                .strip_suffix('%')
                .and_then(|p| p.parse::<i64>().ok())
                .map(|p| (p * desired / 100).max(1))
                .unwrap_or(1),
            _ => 1,
        };
        let mut unavailable = desired - ready;
        outdated.sort_by_key(|p| pod_ready(p));
        for p in outdated {
            if pod_ready(p) && unavailable >= max_unavailable {
                break;
            }
            if pod_ready(p) {
                unavailable += 1;
            }
            delete_pod(cluster, ds, meta_str(p, "name"));
        }
    }
    cluster.write_status("daemonsets", ns, name, |o| {
        let mut status = json!({
            "currentNumberScheduled": current,
            "numberMisscheduled": misscheduled,
            "desiredNumberScheduled": desired,
            "numberReady": ready,
            "observedGeneration": generation,
            "updatedNumberScheduled": up_to_date,
            "numberAvailable": ready,
            "numberUnavailable": desired - ready,
        });
        if let Some(s) = status.as_object_mut() {
            for k in [
                "updatedNumberScheduled",
                "numberAvailable",
                "numberUnavailable",
            ] {
                if s.get(k) == Some(&json!(0)) {
                    s.remove(k);
                }
            }
        }
        o["status"] = status;
    });
}

fn create(
    cluster: &Cluster,
    ds: &Value,
    template: &Value,
    spec: &Value,
    node: &str,
    generation: i64,
    hash: &str,
) {
    let owner = controller_ref::owner_ref(ds, "apps/v1", "DaemonSet");
    let name = meta_str(ds, "name");
    let res = controller_ref::create_pod(
        cluster,
        meta_str(ds, "namespace"),
        template,
        name,
        owner,
        |pod| {
            pod["spec"] = spec.clone();
            if pod["metadata"].get("labels").is_none_or(|l| !l.is_object()) {
                pod["metadata"]["labels"] = json!({});
            }
            pod["metadata"]["labels"][GENERATION_LABEL] = json!(generation.to_string());
            pod["metadata"]["labels"][REVISION_LABEL] = json!(hash);
            // ReplaceDaemonSetPodNodeNameNodeAffinity: the required terms become exactly
            // `metadata.name In [node]`.
            let term = json!({"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]});
            if pod["spec"].get("affinity").is_none_or(|a| !a.is_object()) {
                pod["spec"]["affinity"] = json!({});
            }
            if pod["spec"]["affinity"]
                .get("nodeAffinity")
                .is_none_or(|a| !a.is_object())
            {
                pod["spec"]["affinity"]["nodeAffinity"] = json!({});
            }
            pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] =
                json!({"nodeSelectorTerms": [term]});
        },
    );
    match res {
        Ok(pod) => controller_ref::record_event(
            cluster,
            ds,
            "DaemonSet",
            COMPONENT,
            "SuccessfulCreate",
            &format!("Created pod: {}", meta_str(&pod, "name")),
        ),
        Err(e) => {
            tracing::warn!(ds = name, node, error = %e.message, "DaemonSet could not create a pod");
            controller_ref::record_event(
                cluster,
                ds,
                "DaemonSet",
                COMPONENT,
                "FailedCreate",
                &format!("Error creating: {}", e.message),
            );
        }
    }
}

fn delete_pod(cluster: &Cluster, ds: &Value, pod: &str) {
    controller_ref::delete(cluster, "pods", meta_str(ds, "namespace"), pod);
    controller_ref::record_event(
        cluster,
        ds,
        "DaemonSet",
        COMPONENT,
        "SuccessfulDelete",
        &format!("Deleted pod: {pod}"),
    );
}

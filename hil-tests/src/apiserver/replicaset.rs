//! The ReplicaSet controller (kube-controller-manager's `replicaset`): keeps
//! `spec.replicas` active pods owned by each ReplicaSet, creating pods from the template
//! and deleting the excess (unscheduled first, then not ready, then the newest), and
//! reports `status` (replicas, fullyLabeledReplicas, readyReplicas, availableReplicas,
//! terminatingReplicas, observedGeneration).

use std::sync::Arc;

use serde_json::{Value, json};

use super::cluster::{Cluster, meta_str};
use super::controller_ref::{self, pod_active, pod_ready};
use super::label_selector;

const COMPONENT: &str = "replicaset-controller";

/// One pass over every ReplicaSet.
pub fn run_once(cluster: &Cluster) {
    let sets = cluster.lock().list("replicasets", None);
    for rs in sets {
        reconcile(cluster, &rs);
    }
}

fn owned_pods(cluster: &Cluster, owner: &Value) -> Vec<Arc<Value>> {
    let uid = meta_str(owner, "uid");
    cluster
        .lock()
        .list("pods", Some(meta_str(owner, "namespace")))
        .into_iter()
        .filter(|p| controller_ref::controller_uid(p) == Some(uid))
        .collect()
}

fn reconcile(cluster: &Cluster, rs: &Value) {
    let ns = meta_str(rs, "namespace");
    let name = meta_str(rs, "name");
    let pods = owned_pods(cluster, rs);
    let mut active: Vec<&Arc<Value>> = pods.iter().filter(|p| pod_active(p)).collect();
    if !controller_ref::deleting(rs) {
        let want = rs
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1)
            .max(0) as usize;
        if active.len() < want {
            let template = rs.pointer("/spec/template").cloned().unwrap_or_default();
            let owner = controller_ref::owner_ref(rs, "apps/v1", "ReplicaSet");
            for _ in active.len()..want {
                match controller_ref::create_pod(
                    cluster,
                    ns,
                    &template,
                    name,
                    owner.clone(),
                    |_| {},
                ) {
                    Ok(pod) => controller_ref::record_event(
                        cluster,
                        rs,
                        "ReplicaSet",
                        COMPONENT,
                        "SuccessfulCreate",
                        &format!("Created pod: {}", meta_str(&pod, "name")),
                    ),
                    Err(e) => {
                        tracing::warn!(ns, name, error = %e.message, "ReplicaSet could not create a pod");
                        controller_ref::record_event(
                            cluster,
                            rs,
                            "ReplicaSet",
                            COMPONENT,
                            "FailedCreate",
                            &format!("Error creating: {}", e.message),
                        );
                        break;
                    }
                }
            }
        } else if active.len() > want {
            // Like kube's ActivePods ordering: unassigned < assigned, not ready < ready,
            // newer < older; the first ones go.
            active.sort_by_key(|p| {
                (
                    p.pointer("/spec/nodeName")
                        .and_then(Value::as_str)
                        .is_some_and(|n| !n.is_empty()),
                    pod_ready(p),
                    std::cmp::Reverse(meta_str(p, "creationTimestamp").to_string()),
                )
            });
            for p in active.iter().take(active.len() - want) {
                controller_ref::delete(cluster, "pods", ns, meta_str(p, "name"));
                controller_ref::record_event(
                    cluster,
                    rs,
                    "ReplicaSet",
                    COMPONENT,
                    "SuccessfulDelete",
                    &format!("Deleted pod: {}", meta_str(p, "name")),
                );
            }
        }
    }
    // Status from the pods as observed at the start of the pass (like the real controller,
    // creations show up on the next pass).
    let active: Vec<&Arc<Value>> = pods.iter().filter(|p| pod_active(p)).collect();
    let selector = rs.pointer("/spec/selector").cloned().unwrap_or_default();
    let template_labels = rs
        .pointer("/spec/template/metadata/labels")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let fully = active
        .iter()
        .filter(|p| {
            let labels = p.pointer("/metadata/labels").cloned().unwrap_or_default();
            template_labels
                .as_object()
                .is_some_and(|t| t.iter().all(|(k, v)| labels.get(k) == Some(v)))
                && label_selector::matches(&selector, &labels)
        })
        .count();
    let ready = active.iter().filter(|p| pod_ready(p)).count();
    // Being deleted and not finished (kube's `FilterTerminatingPods`).
    let terminating = pods
        .iter()
        .filter(|p| controller_ref::deleting(p))
        .filter(|p| {
            !matches!(
                p.pointer("/status/phase").and_then(Value::as_str),
                Some("Succeeded" | "Failed")
            )
        })
        .count();
    let generation = rs
        .pointer("/metadata/generation")
        .cloned()
        .unwrap_or(json!(1));
    cluster.write_status("replicasets", ns, name, |o| {
        o["status"] = json!({
            "replicas": active.len(),
            "fullyLabeledReplicas": fully,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": generation,
            "terminatingReplicas": terminating,
        });
        for k in ["fullyLabeledReplicas", "readyReplicas", "availableReplicas"] {
            if o["status"][k] == json!(0)
                && let Some(s) = o["status"].as_object_mut()
            {
                s.remove(k);
            }
        }
    });
}

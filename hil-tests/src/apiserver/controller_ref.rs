//! What the workload controllers share: controller ownerReferences, pod activity and
//! readiness, and creating pods from a template (kube-controller-manager's
//! `controller.PodControl` and `metav1.GetControllerOf`).

use serde_json::{Value, json};

use super::cluster::{Cluster, meta_str};
use super::deletion::DeleteOptions;
use super::errors::ApiResult;
use super::resources;

/// The controller ownerReference pointing at `owner` (kind `kind`, group/version `api_version`).
pub fn owner_ref(owner: &Value, api_version: &str, kind: &str) -> Value {
    json!({
        "apiVersion": api_version, "kind": kind, "name": meta_str(owner, "name"),
        "uid": meta_str(owner, "uid"), "controller": true, "blockOwnerDeletion": true,
    })
}

/// The uid of the object's controller (the ownerReference with `controller: true`).
pub fn controller_uid(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .and_then(|r| r.get("uid"))
        .and_then(Value::as_str)
}

/// Whether the object is being deleted.
pub fn deleting(obj: &Value) -> bool {
    !meta_str(obj, "deletionTimestamp").is_empty()
}

/// A pod that counts towards a controller's replicas: not finished, not being deleted.
pub fn pod_active(pod: &Value) -> bool {
    let phase = pod
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("");
    phase != "Succeeded" && phase != "Failed" && !deleting(pod)
}

/// Whether the pod has the `Ready=True` condition (available: minReadySeconds 0).
pub fn pod_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Ready")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

/// Creates a pod from a pod template (`metadata` labels/annotations and `spec`), named
/// `<prefix>-xxxxx`, owned by `owner_ref`; `tweak` adjusts the pod before it is created.
pub fn create_pod(
    cluster: &Cluster,
    ns: &str,
    template: &Value,
    prefix: &str,
    owner_ref: Value,
    tweak: impl FnOnce(&mut Value),
) -> ApiResult<Value> {
    let mut meta = json!({"generateName": format!("{prefix}-"), "ownerReferences": [owner_ref]});
    for k in ["labels", "annotations", "finalizers"] {
        if let Some(v) = template.pointer(&format!("/metadata/{k}")) {
            meta[k] = v.clone();
        }
    }
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": meta,
        "spec": template.get("spec").cloned().unwrap_or_else(|| json!({})),
    });
    tweak(&mut pod);
    let Some(rt) = resources::find("", "v1", "pods") else {
        return Err(super::errors::ApiError::internal("pods not served"));
    };
    cluster.create(rt, Some(ns), pod)
}

/// Deletes an object of `storage` (background propagation, default grace).
pub fn delete(cluster: &Cluster, storage: &str, ns: &str, name: &str) {
    let Some(rt) = resources::by_storage(storage) else {
        return;
    };
    if let Err(e) = cluster.delete(rt, Some(ns), name, &DeleteOptions::default()) {
        tracing::debug!(storage, ns, name, error = %e.message, "controller delete failed");
    }
}

/// Records a core/v1 Event about a workload object from a controller (`component`, e.g.
/// `replicaset-controller`), as kube-controller-manager's event recorders do.
pub fn record_event(
    cluster: &Cluster,
    obj: &Value,
    kind: &str,
    component: &str,
    reason: &str,
    message: &str,
) {
    let Some(rt) = resources::find("", "v1", "events") else {
        return;
    };
    let ns = meta_str(obj, "namespace");
    let now = super::clock::now();
    let ev = json!({
        "metadata": {"name": super::clock::event_name(meta_str(obj, "name")), "namespace": ns},
        "involvedObject": {"kind": kind, "namespace": ns, "name": meta_str(obj, "name"),
            "uid": meta_str(obj, "uid"), "apiVersion": "apps/v1",
            "resourceVersion": meta_str(obj, "resourceVersion")},
        "reason": reason, "message": message, "source": {"component": component},
        "firstTimestamp": now, "lastTimestamp": now, "count": 1, "type": "Normal",
        "eventTime": null, "reportingComponent": component, "reportingInstance": "",
    });
    if let Err(e) = cluster.create(rt, Some(ns), ev) {
        tracing::debug!(error = %e.message, "recording controller event");
    }
}

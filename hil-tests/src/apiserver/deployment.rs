//! The Deployment controller (kube-controller-manager's `deployment`): one ReplicaSet per
//! pod template (named `<deployment>-<pod-template-hash>`, label and selector
//! `pod-template-hash`, controller ownerReference, `deployment.kubernetes.io/revision`,
//! `desired-replicas` and `max-replicas` annotations); scaling; rollouts with `Recreate`
//! or `RollingUpdate` honouring `maxSurge`/`maxUnavailable`; old ReplicaSets beyond
//! `revisionHistoryLimit` deleted; status and the `Available`/`Progressing` conditions.

use std::sync::Arc;

use serde_json::{Value, json};

use super::clock;
use super::cluster::{Cluster, meta_str};
use super::controller_ref;
use super::resources;

const HASH_LABEL: &str = "pod-template-hash";
const REVISION: &str = "deployment.kubernetes.io/revision";
/// kube's `rand.SafeEncodeString` alphabet (no vowels, no confusable characters).
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// A stable hash of a pod template in kube's safe-encoded form.
pub fn template_hash(template: &Value) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in template.to_string().bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h.to_string()
        .bytes()
        .map(|d| SAFE_ALPHABET[usize::from(d) % SAFE_ALPHABET.len()] as char)
        .collect()
}

fn int(v: &Value, ptr: &str) -> i64 {
    v.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

/// An intstr (`3` or `"25%"`) against a total, rounding up or down.
fn int_or_percent(v: Option<&Value>, total: i64, round_up: bool) -> i64 {
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
            Some(p) if round_up => (p * total + 99) / 100,
            Some(p) => p * total / 100,
            None => s.parse().unwrap_or(0),
        },
        _ => 0,
    }
}

fn without_hash(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(l) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        l.remove(HASH_LABEL);
    }
    t
}

fn revision(rs: &Value) -> i64 {
    rs.pointer("/metadata/annotations")
        .and_then(|a| a.get(REVISION))
        .and_then(Value::as_str)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// Deployment annotations the controller does not copy to its ReplicaSets
/// (kube's `annotationsToSkip`).
const NOT_COPIED: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];

/// The deployment's annotations a ReplicaSet of it lacks (or has with another value).
fn annotations_to_copy(d: &Value, rs: &Value) -> Vec<(String, Value)> {
    let have = rs.pointer("/metadata/annotations");
    d.pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .map(|a| {
            a.iter()
                .filter(|(k, v)| {
                    !NOT_COPIED.contains(&k.as_str())
                        && have.and_then(|h| h.get(k.as_str())) != Some(v)
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Copies the deployment's annotations to its new ReplicaSet (`SetNewReplicaSetAnnotations`).
fn sync_annotations(cluster: &Cluster, d: &Value, rs: Arc<Value>) -> Arc<Value> {
    let missing = annotations_to_copy(d, &rs);
    let rt = resources::by_storage("replicasets");
    let Some(rt) = rt.filter(|_| !missing.is_empty()) else {
        return rs;
    };
    let mut new = (*rs).clone();
    if !new["metadata"]["annotations"].is_object() {
        new["metadata"]["annotations"] = json!({});
    }
    for (k, v) in missing {
        new["metadata"]["annotations"][k] = v;
    }
    match cluster.update(
        rt,
        Some(meta_str(&rs, "namespace")),
        meta_str(&rs, "name"),
        new,
        None,
    ) {
        Ok(updated) => Arc::new(updated),
        Err(e) => {
            tracing::debug!(error = %e.message, "copying annotations to the ReplicaSet failed");
            rs
        }
    }
}

/// One pass over every Deployment.
pub fn run_once(cluster: &Cluster) {
    let deployments = cluster.lock().list("deployments", None);
    for d in deployments {
        if !controller_ref::deleting(&d) {
            reconcile(cluster, &d);
        }
    }
}

fn set_replicas(
    cluster: &Cluster,
    d: &Value,
    rs: &Value,
    replicas: i64,
    deployment_replicas: i64,
    max: i64,
) {
    let Some(rt) = resources::by_storage("replicasets") else {
        return;
    };
    let mut new = rs.clone();
    new["spec"]["replicas"] = json!(replicas);
    let ann = new["metadata"]
        .as_object_mut()
        .map(|m| m.entry("annotations").or_insert_with(|| json!({})));
    if let Some(Value::Object(a)) = ann {
        a.insert(
            "deployment.kubernetes.io/desired-replicas".into(),
            json!(deployment_replicas.to_string()),
        );
        a.insert(
            "deployment.kubernetes.io/max-replicas".into(),
            json!(max.to_string()),
        );
    }
    let from = int(rs, "/spec/replicas");
    match cluster.update(
        rt,
        Some(meta_str(rs, "namespace")),
        meta_str(rs, "name"),
        new,
        None,
    ) {
        Ok(_) => controller_ref::record_event(
            cluster,
            d,
            "Deployment",
            "deployment-controller",
            "ScalingReplicaSet",
            &format!(
                "Scaled {} replica set {} from {from} to {replicas}",
                if replicas > from { "up" } else { "down" },
                meta_str(rs, "name")
            ),
        ),
        Err(e) => tracing::debug!(error = %e.message, "scaling ReplicaSet failed"),
    }
}

fn reconcile(cluster: &Cluster, d: &Value) {
    let ns = meta_str(d, "namespace");
    let name = meta_str(d, "name");
    let uid = meta_str(d, "uid");
    let replicas = int(d, "/spec/replicas").max(0);
    let template = d.pointer("/spec/template").cloned().unwrap_or_default();
    let sets: Vec<Arc<Value>> = cluster
        .lock()
        .list("replicasets", Some(ns))
        .into_iter()
        .filter(|rs| controller_ref::controller_uid(rs) == Some(uid))
        .collect();
    let (new_rs, mut old): (Vec<Arc<Value>>, Vec<Arc<Value>>) = sets.into_iter().partition(|rs| {
        rs.pointer("/spec/template")
            .is_some_and(|t| without_hash(t) == template)
    });
    let Some(rt) = resources::by_storage("replicasets") else {
        return;
    };
    let strategy = d
        .pointer("/spec/strategy/type")
        .and_then(Value::as_str)
        .unwrap_or("RollingUpdate");
    let (max_surge, max_unavailable) = if strategy == "Recreate" {
        (0, replicas)
    } else {
        let surge = int_or_percent(
            d.pointer("/spec/strategy/rollingUpdate/maxSurge"),
            replicas,
            true,
        );
        let mut unavail = int_or_percent(
            d.pointer("/spec/strategy/rollingUpdate/maxUnavailable"),
            replicas,
            false,
        );
        if surge == 0 && unavail == 0 {
            unavail = 1;
        }
        (surge, unavail.min(replicas))
    };
    let max_revision = old.iter().map(|rs| revision(rs)).max().unwrap_or(0);
    let new_rs: Arc<Value> = match new_rs.into_iter().next() {
        Some(rs) => rs,
        None => {
            let hash = template_hash(&template);
            let mut t = template.clone();
            if t.get("metadata").is_none_or(|m| !m.is_object()) {
                t["metadata"] = json!({});
            }
            if t["metadata"].get("labels").is_none_or(|l| !l.is_object()) {
                t["metadata"]["labels"] = json!({});
            }
            t["metadata"]["labels"][HASH_LABEL] = json!(hash);
            let mut selector = d.pointer("/spec/selector").cloned().unwrap_or(json!({}));
            if selector.get("matchLabels").is_none_or(|l| !l.is_object()) {
                selector["matchLabels"] = json!({});
            }
            selector["matchLabels"][HASH_LABEL] = json!(hash);
            let old_active: i64 = old.iter().map(|rs| int(rs, "/spec/replicas")).sum();
            let initial = if strategy == "Recreate" {
                if old_active > 0 { 0 } else { replicas }
            } else if old_active == 0 {
                replicas
            } else {
                (replicas + max_surge - old_active).clamp(0, replicas)
            };
            let mut labels = t["metadata"]["labels"].clone();
            if labels.is_null() {
                labels = json!({});
            }
            let mut annotations = json!({
                REVISION: (max_revision + 1).to_string(),
                "deployment.kubernetes.io/desired-replicas": replicas.to_string(),
                "deployment.kubernetes.io/max-replicas": (replicas + max_surge).to_string(),
            });
            for (k, v) in annotations_to_copy(d, &json!({})) {
                annotations[k] = v;
            }
            let mut rs = json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {
                    "name": format!("{name}-{hash}"), "namespace": ns, "labels": labels,
                    "annotations": annotations,
                    "ownerReferences": [controller_ref::owner_ref(d, "apps/v1", "Deployment")],
                },
                "spec": {"replicas": initial, "selector": selector, "template": t},
            });
            // Copied from the deployment; omitted when 0 (omitempty), as in kube.
            if let Some(m) = d
                .pointer("/spec/minReadySeconds")
                .filter(|m| **m != json!(0))
            {
                rs["spec"]["minReadySeconds"] = m.clone();
            }
            match cluster.create(rt, Some(ns), rs) {
                Ok(created) => {
                    record_progress(
                        cluster,
                        d,
                        "NewReplicaSetCreated",
                        &format!("Created new replica set \"{}\"", meta_str(&created, "name")),
                    );
                    if initial > 0 {
                        controller_ref::record_event(
                            cluster,
                            d,
                            "Deployment",
                            "deployment-controller",
                            "ScalingReplicaSet",
                            &format!(
                                "Scaled up replica set {} from 0 to {initial}",
                                meta_str(&created, "name")
                            ),
                        );
                    }
                    Arc::new(created)
                }
                Err(e) => {
                    tracing::warn!(ns, name, error = %e.message, "Deployment could not create its ReplicaSet");
                    return;
                }
            }
        }
    };
    let new_rs = sync_annotations(cluster, d, new_rs);
    let new_spec = int(&new_rs, "/spec/replicas");
    let old_spec: i64 = old.iter().map(|rs| int(rs, "/spec/replicas")).sum();
    let old_pods: i64 = old.iter().map(|rs| int(rs, "/status/replicas")).sum();
    if strategy == "Recreate" {
        for rs in &old {
            if int(rs, "/spec/replicas") != 0 {
                set_replicas(cluster, d, rs, 0, replicas, replicas);
            }
        }
        if old_spec == 0 && old_pods == 0 && new_spec != replicas {
            set_replicas(cluster, d, &new_rs, replicas, replicas, replicas);
        }
    } else if old_spec == 0 {
        if new_spec != replicas {
            set_replicas(
                cluster,
                d,
                &new_rs,
                replicas,
                replicas,
                replicas + max_surge,
            );
        }
    } else {
        // Scale the new ReplicaSet up within maxSurge.
        let allowed = replicas + max_surge;
        let total = new_spec + old_spec;
        if new_spec < replicas && total < allowed {
            let up = (new_spec + allowed - total).min(replicas);
            set_replicas(cluster, d, &new_rs, up, replicas, allowed);
        } else if new_spec > replicas {
            set_replicas(cluster, d, &new_rs, replicas, replicas, allowed);
        }
        // Scale old ReplicaSets down within maxUnavailable (reconcileOldReplicaSets):
        // first unhealthy replicas, bounded by what may go without dropping below
        // `replicas - maxUnavailable` (counting the new ReplicaSet's unavailable pods), then
        // available ones while enough stay available.
        let min_available = replicas - max_unavailable;
        let all_pods: i64 = int(&new_rs, "/status/replicas") + old_pods;
        let new_unavailable = (new_spec - int(&new_rs, "/status/availableReplicas")).max(0);
        let max_scaled_down = all_pods - min_available - new_unavailable;
        if max_scaled_down > 0 {
            old.sort_by_key(|rs| revision(rs));
            let mut targets: Vec<i64> = old.iter().map(|rs| int(rs, "/spec/replicas")).collect();
            let mut cleaned = 0;
            for (rs, target) in old.iter().zip(targets.iter_mut()) {
                if cleaned >= max_scaled_down {
                    break;
                }
                let unhealthy = (*target - int(rs, "/status/availableReplicas")).max(0);
                if *target == 0 || unhealthy == 0 {
                    continue;
                }
                let n = unhealthy.min(max_scaled_down - cleaned);
                *target -= n;
                cleaned += n;
            }
            let all_available: i64 = int(&new_rs, "/status/availableReplicas")
                + old
                    .iter()
                    .map(|rs| int(rs, "/status/availableReplicas"))
                    .sum::<i64>();
            let scale_down = all_available - min_available;
            let mut scaled = 0;
            for target in targets.iter_mut() {
                if scaled >= scale_down {
                    break;
                }
                if *target == 0 {
                    continue;
                }
                let n = (*target).min(scale_down - scaled);
                *target -= n;
                scaled += n;
            }
            for (rs, target) in old.iter().zip(targets) {
                if target != int(rs, "/spec/replicas") {
                    set_replicas(cluster, d, rs, target, replicas, allowed);
                }
            }
        }
    }
    cleanup_history(cluster, d, &old);
    update_status(cluster, d, &new_rs, &old, replicas, max_unavailable);
}

fn cleanup_history(cluster: &Cluster, d: &Value, old: &[Arc<Value>]) {
    let limit = int(d, "/spec/revisionHistoryLimit").max(0) as usize;
    let mut idle: Vec<&Arc<Value>> = old
        .iter()
        .filter(|rs| int(rs, "/spec/replicas") == 0 && int(rs, "/status/replicas") == 0)
        .collect();
    if idle.len() <= limit {
        return;
    }
    idle.sort_by_key(|rs| revision(rs));
    for rs in idle.iter().take(idle.len() - limit) {
        controller_ref::delete(
            cluster,
            "replicasets",
            meta_str(rs, "namespace"),
            meta_str(rs, "name"),
        );
    }
}

/// kube's `SetDeploymentCondition`: nothing happens when a condition of the type has the
/// same status and reason; otherwise the condition is replaced and moves to the end
/// (keeping `lastTransitionTime` if the status stays).
fn set_deployment_condition(d: &mut Value, ctype: &str, status: &str, reason: &str, message: &str) {
    let now = clock::now();
    if d.get("status").is_none_or(|s| !s.is_object()) {
        d["status"] = json!({});
    }
    let conds = d["status"]
        .as_object_mut()
        .map(|s| s.entry("conditions").or_insert_with(|| json!([])));
    let Some(Value::Array(conds)) = conds else {
        return;
    };
    let mut c = json!({"type": ctype, "status": status, "reason": reason, "message": message,
        "lastUpdateTime": now, "lastTransitionTime": now});
    if let Some(existing) = conds.iter().find(|c| c["type"] == ctype) {
        if existing["status"] == status {
            if existing["reason"] == reason {
                return;
            }
            c["lastTransitionTime"] = existing["lastTransitionTime"].clone();
        }
    }
    conds.retain(|c| c["type"] != ctype);
    conds.push(c);
}

/// The `Progressing=True/ReplicaSetUpdated` condition when a rollout makes progress: unlike
/// other conditions it is re-set with the same reason (new `lastUpdateTime`, moved to the
/// end), as kube's `syncRolloutStatus` does.
fn set_progressing_updated(d: &mut Value, message: &str) {
    let kept = d
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Progressing"))
        .filter(|c| c["status"] == "True")
        .map(|c| c["lastTransitionTime"].clone());
    if let Some(cs) = d
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
    {
        cs.retain(|c| c["type"] != "Progressing");
    }
    set_deployment_condition(d, "Progressing", "True", "ReplicaSetUpdated", message);
    if let Some(t) = kept
        && let Some(c) = d
            .pointer_mut("/status/conditions")
            .and_then(Value::as_array_mut)
            .and_then(|cs| cs.last_mut())
    {
        c["lastTransitionTime"] = t;
    }
}

fn record_progress(cluster: &Cluster, d: &Value, reason: &str, message: &str) {
    cluster.write_status(
        "deployments",
        meta_str(d, "namespace"),
        meta_str(d, "name"),
        |o| {
            set_deployment_condition(o, "Progressing", "True", reason, message);
        },
    );
}

fn update_status(
    cluster: &Cluster,
    d: &Value,
    new_rs: &Value,
    old: &[Arc<Value>],
    replicas: i64,
    max_unavailable: i64,
) {
    let all = || std::iter::once(new_rs).chain(old.iter().map(|r| r.as_ref()));
    let total: i64 = all().map(|rs| int(rs, "/status/replicas")).sum();
    let ready: i64 = all().map(|rs| int(rs, "/status/readyReplicas")).sum();
    let available: i64 = all().map(|rs| int(rs, "/status/availableReplicas")).sum();
    let updated = int(new_rs, "/status/replicas");
    let generation = d
        .pointer("/metadata/generation")
        .cloned()
        .unwrap_or(json!(1));
    let rs_name = meta_str(new_rs, "name").to_string();
    let rev = revision(new_rs).to_string();
    let complete = updated == replicas
        && total == replicas
        && available == replicas
        && int(new_rs, "/spec/replicas") == replicas;
    // kube sums the ReplicaSets' terminatingReplicas (those not yet synced count 0).
    let terminating: i64 = all().map(|rs| int(rs, "/status/terminatingReplicas")).sum();
    cluster.write_status(
        "deployments",
        meta_str(d, "namespace"),
        meta_str(d, "name"),
        |o| {
            let prev = o.get("status").cloned().unwrap_or_else(|| json!({}));
            let was = |k: &str| prev.get(k).and_then(Value::as_i64).unwrap_or(0);
            // DeploymentProgressing: any progress since the last status.
            let progressed = updated > was("updatedReplicas")
                || total - updated < was("replicas") - was("updatedReplicas")
                || ready > was("readyReplicas")
                || available > was("availableReplicas");
            let current_reason = prev
                .get("conditions")
                .and_then(Value::as_array)
                .and_then(|cs| cs.iter().find(|c| c["type"] == "Progressing"))
                .map(|c| c["reason"].clone());
            let already_complete =
                total == updated && current_reason == Some(json!("NewReplicaSetAvailable"));
            let conditions = o.pointer("/status/conditions").cloned();
            let mut status = json!({"observedGeneration": generation, "replicas": total,
            "updatedReplicas": updated, "readyReplicas": ready, "availableReplicas": available,
            "unavailableReplicas": (replicas - available).max(0)});
            if let Some(c) = conditions {
                status["conditions"] = c;
            }
            if let Some(s) = status.as_object_mut() {
                s.retain(|_, v| *v != json!(0));
                s.insert("observedGeneration".into(), generation.clone());
                s.insert("terminatingReplicas".into(), json!(terminating));
            }
            o["status"] = status;
            let anns = o["metadata"]
                .as_object_mut()
                .map(|m| m.entry("annotations").or_insert_with(|| json!({})));
            if let Some(Value::Object(a)) = anns {
                a.insert(REVISION.into(), json!(rev));
            }
            if available >= replicas - max_unavailable {
                set_deployment_condition(
                    o,
                    "Available",
                    "True",
                    "MinimumReplicasAvailable",
                    "Deployment has minimum availability.",
                );
            } else {
                set_deployment_condition(
                    o,
                    "Available",
                    "False",
                    "MinimumReplicasUnavailable",
                    "Deployment does not have minimum availability.",
                );
            }
            if already_complete {
                return;
            }
            if complete {
                set_deployment_condition(
                    o,
                    "Progressing",
                    "True",
                    "NewReplicaSetAvailable",
                    &format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
                );
            } else if progressed {
                set_progressing_updated(o, &format!("ReplicaSet \"{rs_name}\" is progressing."));
            }
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn surge_rounds_up_unavailable_down() {
        assert_eq!(int_or_percent(Some(&json!("25%")), 3, true), 1);
        assert_eq!(int_or_percent(Some(&json!("25%")), 3, false), 0);
        assert_eq!(int_or_percent(Some(&json!(2)), 3, false), 2);
        assert_eq!(int_or_percent(None, 3, true), 0);
    }

    #[test]
    fn template_hash_is_stable_and_safe() {
        let t = json!({"metadata": {"labels": {"app": "a"}}, "spec": {"containers": []}});
        let h = template_hash(&t);
        assert_eq!(h, template_hash(&t.clone()));
        assert!(h.bytes().all(|b| SAFE_ALPHABET.contains(&b)));
        assert_ne!(h, template_hash(&json!({"spec": {}})));
    }
}

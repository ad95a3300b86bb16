//! The scheduler: binds pods without a node like kube-scheduler's default plugins do
//! (NodeUnschedulable, NodeName, NodeAffinity incl. nodeSelector, TaintToleration,
//! NodeResourcesFit, plus node readiness), and reports pods that fit nowhere with
//! `PodScheduled=False`, reason `Unschedulable`, and kube-scheduler's message.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::clock;
use super::cluster::{Cluster, meta_str, set_condition};
use super::quantity;
use super::resources;

/// Why a node was filtered out (kube-scheduler's wording).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FitError(pub String);

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn arr<'a>(v: &'a Value, ptr: &str) -> &'a [Value] {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Whether a toleration tolerates a taint (kube's Toleration.ToleratesTaint).
pub fn tolerates(t: &Value, taint: &Value) -> bool {
    let effect = s(t, "/effect");
    if !effect.is_empty() && effect != s(taint, "/effect") {
        return false;
    }
    let key = s(t, "/key");
    if !key.is_empty() && key != s(taint, "/key") {
        return false;
    }
    match s(t, "/operator") {
        "Exists" => true,
        "" | "Equal" => s(t, "/value") == s(taint, "/value"),
        _ => false,
    }
}

fn match_expression(expr: &Value, value: Option<&str>) -> bool {
    let values: Vec<&str> = arr(expr, "/values")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match s(expr, "/operator") {
        "In" => value.is_some_and(|v| values.contains(&v)),
        "NotIn" => value.is_none_or(|v| !values.contains(&v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        op @ ("Gt" | "Lt") => {
            let (Some(v), Some(bound)) = (
                value.and_then(|v| v.parse::<i64>().ok()),
                values.first().and_then(|b| b.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if op == "Gt" { v > bound } else { v < bound }
        }
        _ => false,
    }
}

/// Whether a node satisfies a NodeSelectorTerm (matchExpressions on labels and
/// matchFields on metadata.name, ANDed). An empty term matches nothing.
pub fn term_matches(term: &Value, node: &Value) -> bool {
    let exprs = arr(term, "/matchExpressions");
    let fields = arr(term, "/matchFields");
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let labels = node.pointer("/metadata/labels");
    exprs.iter().all(|e| {
        let v = labels
            .and_then(|l| l.get(s(e, "/key")))
            .and_then(Value::as_str);
        match_expression(e, v)
    }) && fields.iter().all(|e| {
        let v = (s(e, "/key") == "metadata.name").then(|| meta_str(node, "name"));
        match_expression(e, v)
    })
}

fn affinity_ok(pod: &Value, node: &Value) -> bool {
    let labels = node.pointer("/metadata/labels");
    let selector_ok = pod
        .pointer("/spec/nodeSelector")
        .and_then(Value::as_object)
        .is_none_or(|sel| {
            sel.iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        });
    let terms = pod.pointer("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms");
    let affinity_ok = match terms.and_then(Value::as_array) {
        None => true,
        Some(ts) => ts.iter().any(|t| term_matches(t, node)),
    };
    selector_ok && affinity_ok
}

/// Total requests of a pod (max of init containers vs sum of containers, plus overhead).
pub fn pod_requests(pod: &Value) -> BTreeMap<String, f64> {
    let mut sum: BTreeMap<String, f64> = BTreeMap::new();
    for c in arr(pod, "/spec/containers") {
        if let Some(r) = c.pointer("/resources/requests").and_then(Value::as_object) {
            for (k, v) in r {
                *sum.entry(k.clone()).or_default() += quantity::from_json(v).unwrap_or(0.0);
            }
        }
    }
    for c in arr(pod, "/spec/initContainers") {
        if let Some(r) = c.pointer("/resources/requests").and_then(Value::as_object) {
            for (k, v) in r {
                let q = quantity::from_json(v).unwrap_or(0.0);
                let e = sum.entry(k.clone()).or_default();
                if q > *e {
                    *e = q;
                }
            }
        }
    }
    if let Some(o) = pod.pointer("/spec/overhead").and_then(Value::as_object) {
        for (k, v) in o {
            *sum.entry(k.clone()).or_default() += quantity::from_json(v).unwrap_or(0.0);
        }
    }
    sum
}

/// Filters one node for a pod; `used` is what pods already on the node request
/// (including their count under `pods`).
pub fn fits(pod: &Value, node: &Value, used: &BTreeMap<String, f64>) -> Result<(), Vec<FitError>> {
    let tolerations = arr(pod, "/spec/tolerations");
    if node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        let unsched_taint =
            json!({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"});
        if !tolerations.iter().any(|t| tolerates(t, &unsched_taint)) {
            return Err(vec![FitError("node(s) were unschedulable".into())]);
        }
    }
    let mut taints: Vec<Value> = arr(node, "/spec/taints").to_vec();
    let ready = arr(node, "/status/conditions")
        .iter()
        .find(|c| s(c, "/type") == "Ready")
        .map(|c| s(c, "/status").to_string());
    match ready.as_deref() {
        Some("True") => {}
        Some("False") => {
            taints.push(json!({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}))
        }
        _ => taints.push(json!({"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"})),
    }
    for taint in &taints {
        let effect = s(taint, "/effect");
        if effect != "NoSchedule" && effect != "NoExecute" {
            continue;
        }
        if !tolerations.iter().any(|t| tolerates(t, taint)) {
            // kube-scheduler's TaintToleration reason (it logs the taint, but the
            // status names none).
            return Err(vec![FitError("node(s) had untolerated taint(s)".into())]);
        }
    }
    // The default profile filters NodeAffinity after TaintToleration: a node failing
    // both counts under the taint.
    if !affinity_ok(pod, node) {
        return Err(vec![FitError(
            "node(s) didn't match Pod's node affinity/selector".into(),
        )]);
    }
    let alloc = node
        .pointer("/status/allocatable")
        .or_else(|| node.pointer("/status/capacity"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let get_alloc = |k: &str| alloc.get(k).and_then(quantity::from_json).unwrap_or(0.0);
    let mut errs = Vec::new();
    if used.get("pods").copied().unwrap_or(0.0) + 1.0 > get_alloc("pods") + 1e-9 {
        errs.push(FitError("Too many pods".into()));
    }
    for (k, want) in pod_requests(pod) {
        if want <= 0.0 {
            continue;
        }
        let have = get_alloc(&k) - used.get(&k).copied().unwrap_or(0.0);
        if want > have + 1e-9 {
            errs.push(FitError(format!("Insufficient {k}")));
        }
    }
    if errs.is_empty() { Ok(()) } else { Err(errs) }
}

/// kube-scheduler's unschedulable message for per-node reasons.
pub fn unschedulable_message(total_nodes: usize, reasons: &BTreeMap<String, usize>) -> String {
    if total_nodes == 0 {
        return "no nodes available to schedule pods".into();
    }
    let parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
    format!(
        "0/{total_nodes} nodes are available: {}. preemption: 0/{total_nodes} nodes are available: {total_nodes} Preemption is not helpful for scheduling.",
        parts.join(", ")
    )
}

/// Picks a node for a pod: Ok(node name) or Err(message).
pub fn pick(
    pod: &Value,
    nodes: &[Arc<Value>],
    usage: &BTreeMap<String, BTreeMap<String, f64>>,
) -> Result<String, String> {
    let empty = BTreeMap::new();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut best: Option<(f64, String)> = None;
    for node in nodes {
        let name = meta_str(node, "name").to_string();
        let used = usage.get(&name).unwrap_or(&empty);
        match fits(pod, node, used) {
            Ok(()) => {
                // LeastAllocated: prefer the node with the largest free cpu+memory share.
                let alloc = node
                    .pointer("/status/allocatable")
                    .cloned()
                    .unwrap_or_default();
                let free = |k: &str| {
                    let a = alloc.get(k).and_then(quantity::from_json).unwrap_or(0.0);
                    if a <= 0.0 {
                        0.0
                    } else {
                        (a - used.get(k).copied().unwrap_or(0.0)) / a
                    }
                };
                let score = free("cpu") + free("memory");
                if best.as_ref().is_none_or(|(b, _)| score > *b + 1e-12) {
                    best = Some((score, name));
                }
            }
            Err(errs) => {
                for e in errs {
                    *reasons.entry(e.0).or_default() += 1;
                }
            }
        }
    }
    best.map(|(_, n)| n)
        .ok_or_else(|| unschedulable_message(nodes.len(), &reasons))
}

/// `default-scheduler-<hostname>`: kube-scheduler's `reportingInstance`.
fn scheduler_instance() -> &'static str {
    static INSTANCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    INSTANCE.get_or_init(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        format!("default-scheduler-{host}")
    })
}

/// Records an Event about a pod as kube-scheduler does: through the events.k8s.io/v1 API
/// (`eventTime`, `action`, `reportingController`/`Instance`; no `source`, `count`,
/// `firstTimestamp` or `lastTimestamp` in the core/v1 view).
pub fn record_pod_event(
    cluster: &Cluster,
    pod: &Value,
    event_type: &str,
    reason: &str,
    message: &str,
) {
    let action = if reason == "Scheduled" {
        "Binding"
    } else {
        "Scheduling"
    };
    create_pod_event(
        cluster,
        pod,
        json!({
            "reason": reason,
            "message": message,
            "action": action,
            "source": {},
            "firstTimestamp": null,
            "lastTimestamp": null,
            "type": event_type,
            "eventTime": clock::now_micro(),
            "reportingComponent": "default-scheduler",
            "reportingInstance": scheduler_instance(),
        }),
    );
}

/// Records a core/v1 Event about a pod from `component`.
pub fn record_pod_event_from(
    cluster: &Cluster,
    pod: &Value,
    component: &str,
    event_type: &str,
    reason: &str,
    message: &str,
) {
    let now = clock::now();
    create_pod_event(
        cluster,
        pod,
        json!({
            "reason": reason,
            "message": message,
            "source": {"component": component},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "type": event_type,
            "eventTime": null,
            "reportingComponent": component,
            "reportingInstance": "",
        }),
    );
}

/// Creates an Event about `pod`: its name, namespace and involvedObject, plus `fields`.
fn create_pod_event(cluster: &Cluster, pod: &Value, fields: Value) {
    let Some(rt) = resources::find("", "v1", "events") else {
        return;
    };
    let ns = meta_str(pod, "namespace");
    let mut ev = json!({
        "metadata": {"name": clock::event_name(meta_str(pod, "name")), "namespace": ns},
        "involvedObject": {"kind": "Pod", "namespace": ns, "name": meta_str(pod, "name"), "uid": meta_str(pod, "uid"),
            "apiVersion": "v1", "resourceVersion": meta_str(pod, "resourceVersion")},
    });
    if let (Some(ev), Value::Object(fields)) = (ev.as_object_mut(), fields) {
        ev.extend(fields);
    }
    if let Err(e) = cluster.create(rt, Some(ns), ev) {
        tracing::debug!(error = %e, "recording a pod event");
    }
}

/// `spec.nodeName` without JSON-pointer parsing (this runs for every pod on every pass).
fn bound_node(p: &Value) -> &str {
    p.get("spec")
        .and_then(|s| s.get("nodeName"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// One scheduling pass over all pending pods.
pub fn run_once(cluster: &Cluster) {
    let (pods, nodes) = {
        let store = cluster.lock();
        (store.list("pods", None), store.list("nodes", None))
    };
    let pending: Vec<Arc<Value>> = pods
        .iter()
        .filter(|p| bound_node(p).is_empty())
        .filter(|p| {
            s(p, "/spec/nodeName").is_empty()
                && meta_str(p, "deletionTimestamp").is_empty()
                && matches!(s(p, "/spec/schedulerName"), "" | "default-scheduler")
        })
        .cloned()
        .collect();
    if pending.is_empty() {
        return;
    }
    let mut usage: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for p in &pods {
        let node = s(p, "/spec/nodeName");
        let phase = s(p, "/status/phase");
        if !node.is_empty() && phase != "Succeeded" && phase != "Failed" {
            let u = usage.entry(node.to_string()).or_default();
            for (k, v) in pod_requests(p) {
                *u.entry(k).or_default() += v;
            }
            *u.entry("pods".into()).or_default() += 1.0;
        }
    }
    for pod in pending {
        let ns = meta_str(&pod, "namespace").to_string();
        let name = meta_str(&pod, "name").to_string();
        if !arr(&pod, "/spec/schedulingGates").is_empty() {
            cluster.write_status("pods", &ns, &name, |p| {
                set_condition(
                    p,
                    "PodScheduled",
                    "False",
                    Some("SchedulingGated"),
                    Some("Scheduling is blocked due to non-empty scheduling gates"),
                )
            });
            continue;
        }
        match pick(&pod, &nodes, &usage) {
            Ok(node) => {
                let binding = json!({"apiVersion": "v1", "kind": "Binding",
                    "metadata": {"name": name, "namespace": ns, "uid": meta_str(&pod, "uid")},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": node}});
                match cluster.bind(&ns, &name, &binding) {
                    Ok(_) => {
                        let u = usage.entry(node.clone()).or_default();
                        for (k, v) in pod_requests(&pod) {
                            *u.entry(k).or_default() += v;
                        }
                        *u.entry("pods".into()).or_default() += 1.0;
                        record_pod_event(
                            cluster,
                            &pod,
                            "Normal",
                            "Scheduled",
                            &format!("Successfully assigned {ns}/{name} to {node}"),
                        );
                    }
                    Err(e) => tracing::debug!(pod = %name, error = %e, "binding failed"),
                }
            }
            Err(msg) => {
                let before = arr(&pod, "/status/conditions")
                    .iter()
                    .find(|c| s(c, "/type") == "PodScheduled")
                    .map(|c| s(c, "/message").to_string());
                if before.as_deref() != Some(msg.as_str()) {
                    cluster.write_status("pods", &ns, &name, |p| {
                        set_condition(
                            p,
                            "PodScheduled",
                            "False",
                            Some("Unschedulable"),
                            Some(&msg),
                        )
                    });
                    record_pod_event(cluster, &pod, "Warning", "FailedScheduling", &msg);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, labels: Value, taints: Value, cpu: &str) -> Arc<Value> {
        Arc::new(
            json!({"metadata":{"name":name,"labels":labels},"spec":{"taints":taints},
            "status":{"allocatable":{"cpu":cpu,"memory":"1Gi","pods":"10"},"conditions":[{"type":"Ready","status":"True"}]}}),
        )
    }

    #[test]
    fn picks_matching_node_and_explains_failures() {
        let nodes = vec![
            node("a", json!({"arch":"arm64"}), json!([]), "1"),
            node(
                "b",
                json!({"arch":"amd64"}),
                json!([{"key":"edge","value":"x","effect":"NoSchedule"}]),
                "4",
            ),
            node("c", json!({"arch":"amd64"}), json!([]), "100m"),
        ];
        let pod = json!({"spec":{"nodeSelector":{"arch":"amd64"},"containers":[{"resources":{"requests":{"cpu":"500m"}}}]}});
        let err = pick(&pod, &nodes, &BTreeMap::new()).unwrap_err();
        assert_eq!(
            err,
            "0/3 nodes are available: 1 Insufficient cpu, 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint(s). preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
        );
        let mut tolerating = pod.clone();
        tolerating["spec"]["tolerations"] = json!([{"key":"edge","operator":"Exists"}]);
        assert_eq!(
            pick(&tolerating, &nodes, &BTreeMap::new()),
            Ok("b".to_string())
        );
    }

    #[test]
    fn affinity_operators() {
        let n = json!({"metadata":{"name":"n","labels":{"gen":"5","zone":"z1"}}});
        let t = |op: &str, key: &str, vals: Value| json!({"matchExpressions":[{"key":key,"operator":op,"values":vals}]});
        assert!(term_matches(&t("In", "zone", json!(["z1"])), &n));
        assert!(!term_matches(&t("NotIn", "zone", json!(["z1"])), &n));
        assert!(term_matches(&t("Exists", "zone", json!([])), &n));
        assert!(term_matches(&t("DoesNotExist", "x", json!([])), &n));
        assert!(term_matches(&t("Gt", "gen", json!(["4"])), &n));
        assert!(!term_matches(&t("Lt", "gen", json!(["4"])), &n));
    }
}

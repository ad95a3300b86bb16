use std::collections::BTreeMap;

use kube::core::admission::AdmissionReview;
use serde_json::{Value, json};

use super::*;
use crate::autonomy::budget::AUTONOMY_KEY;

fn policy() -> AutonomyPolicy {
    AutonomyPolicy {
        default_budget: Duration::from_secs(86_400),
        cluster_default_toleration_seconds: 300,
        provider: "edge".into(),
        taint: true,
    }
}

fn devices() -> Vec<DeviceNodeView> {
    vec![DeviceNodeView {
        name: "pi-01".into(),
        labels: BTreeMap::from([("site".into(), "field".into())]),
        annotations: BTreeMap::from([(AUTONOMY_KEY.into(), "72h".into())]),
    }]
}

fn request(operation: &str, pod: Value) -> AdmissionRequest<Pod> {
    let review: AdmissionReview<Pod> = serde_json::from_value(json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "p",
            "namespace": "default",
            "operation": operation,
            "userInfo": {"username": "admin"},
            "object": pod,
            "oldObject": null,
            "dryRun": false,
            "options": null
        }
    }))
    .unwrap();
    review.try_into().unwrap()
}

fn device_pod(extra_tolerations: Value, annotations: Value) -> Value {
    let mut tolerations = vec![
        json!({"key": "virtual-kubelet.io/provider", "operator": "Exists", "effect": "NoSchedule"}),
    ];
    tolerations.extend(extra_tolerations.as_array().cloned().unwrap_or_default());
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default", "annotations": annotations},
        "spec": {
            "nodeSelector": {"site": "field"},
            "tolerations": tolerations,
            "containers": [{"name": "c", "image": "busybox"}]
        }
    })
}

fn defaults() -> Value {
    json!([
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
    ])
}

/// The pod after applying the response's patch (as the API server reads it: the
/// review's `patch` bytes, a JSON patch).
fn patched(pod: &Value, response: &AdmissionResponse) -> Value {
    assert_eq!(
        serde_json::to_value(response.clone().into_review()).unwrap()["response"]["patchType"],
        "JSONPatch"
    );
    let bytes = response.patch.clone().expect("a patch");
    let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
    let mut out = pod.clone();
    json_patch::patch(&mut out, &patch).unwrap();
    out
}

fn seconds_of(pod: &Value, key: &str) -> Option<i64> {
    pod["spec"]["tolerations"]
        .as_array()?
        .iter()
        .find(|t| t["key"] == key)?["tolerationSeconds"]
        .as_i64()
}

#[test]
fn a_device_pod_gets_the_budget_of_the_nodes_it_may_land_on() {
    let pod = device_pod(defaults(), json!({}));
    let (response, decision) = review_pod(&request("CREATE", pod.clone()), &devices(), &policy());
    assert!(response.allowed);
    assert_eq!(
        decision,
        AdmissionDecision::Mutated {
            seconds: 72 * 3600,
            source: BudgetSource::NodeAnnotation
        }
    );
    let after = patched(&pod, &response);
    assert_eq!(
        seconds_of(&after, "node.kubernetes.io/unreachable"),
        Some(72 * 3600)
    );
    assert_eq!(
        seconds_of(&after, "node.kubernetes.io/not-ready"),
        Some(72 * 3600)
    );
    assert_eq!(after["spec"]["tolerations"].as_array().unwrap().len(), 3);
}

#[test]
fn other_pods_opted_out_pods_and_updates_are_untouched() {
    let cloud = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
        "spec": {"tolerations": defaults(), "containers": [{"name": "c", "image": "nginx"}]}
    });
    let (response, decision) = review_pod(&request("CREATE", cloud), &devices(), &policy());
    assert!(response.allowed && response.patch.is_none());
    assert_eq!(decision, AdmissionDecision::NotForDevices);

    let opted = device_pod(defaults(), json!({AUTONOMY_KEY: "off"}));
    let (response, decision) = review_pod(&request("CREATE", opted), &devices(), &policy());
    assert!(response.allowed && response.patch.is_none());
    assert_eq!(decision, AdmissionDecision::OptedOut);

    let update = device_pod(defaults(), json!({}));
    let (_, decision) = review_pod(&request("UPDATE", update), &devices(), &policy());
    assert_eq!(decision, AdmissionDecision::NotForDevices);
}

#[test]
fn a_pods_own_budget_and_own_tolerations_win() {
    let own = device_pod(defaults(), json!({AUTONOMY_KEY: "2h"}));
    let (response, decision) = review_pod(&request("CREATE", own.clone()), &devices(), &policy());
    assert_eq!(
        decision,
        AdmissionDecision::Mutated {
            seconds: 7200,
            source: BudgetSource::PodAnnotation
        }
    );
    assert_eq!(
        seconds_of(&patched(&own, &response), "node.kubernetes.io/unreachable"),
        Some(7200)
    );

    let chosen = device_pod(
        json!([
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}
        ]),
        json!({}),
    );
    let (response, decision) = review_pod(&request("CREATE", chosen), &devices(), &policy());
    assert_eq!(decision, AdmissionDecision::KeepsOwn);
    assert!(response.patch.is_none());
}

#[test]
fn a_pod_without_tolerations_for_the_taints_gets_them_added() {
    let pod = device_pod(json!([]), json!({}));
    let (response, _) = review_pod(&request("CREATE", pod.clone()), &devices(), &policy());
    let after = patched(&pod, &response);
    assert_eq!(
        seconds_of(&after, "node.kubernetes.io/unreachable"),
        Some(72 * 3600)
    );
}

#[test]
fn untainted_devices_are_found_by_node_selector() {
    let mut p = policy();
    p.taint = false;
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"nodeSelector": {"site": "field"}, "containers": [{"name": "c", "image": "x"}]}
    });
    let (_, decision) = review_pod(&request("CREATE", pod), &devices(), &p);
    assert!(matches!(decision, AdmissionDecision::Mutated { .. }));
    let elsewhere = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"nodeSelector": {"site": "dc"}, "containers": [{"name": "c", "image": "x"}]}
    });
    let (_, decision) = review_pod(&request("CREATE", elsewhere), &devices(), &p);
    assert_eq!(decision, AdmissionDecision::NotForDevices);
}

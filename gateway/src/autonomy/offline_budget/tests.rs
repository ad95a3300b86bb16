use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;

use super::*;
use crate::autonomy::budget::AUTONOMY_KEY;

fn node(taints: serde_json::Value, budget: Option<&str>) -> Node {
    let mut annotations = BTreeMap::new();
    if let Some(b) = budget {
        annotations.insert(AUTONOMY_KEY.to_owned(), b.to_owned());
    }
    serde_json::from_value(json!({
        "metadata": {"name": "pi-01", "annotations": annotations},
        "spec": {"taints": taints}
    }))
    .unwrap()
}

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

#[test]
fn an_online_node_has_no_budget_running() {
    let n = node(
        json!([{"key": "virtual-kubelet.io/provider", "value": "edge", "effect": "NoSchedule"}]),
        None,
    );
    assert_eq!(
        offline_budget(&n, Duration::from_secs(3600), at("2026-12-06T10:00:00Z")),
        None
    );
    // the NoSchedule half of the unreachable taint does not start the clock
    let n = node(
        json!([{"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule", "timeAdded": "2026-12-06T09:00:00Z"}]),
        None,
    );
    assert_eq!(
        offline_budget(&n, Duration::from_secs(3600), at("2026-12-06T10:00:00Z")),
        None
    );
}

#[test]
fn the_clock_starts_at_the_noexecute_taint() {
    let n = node(
        json!([{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": "2026-12-06T09:00:00Z"}]),
        Some("2h"),
    );
    let b = offline_budget(&n, Duration::from_secs(3600), at("2026-12-06T10:30:00Z")).unwrap();
    assert_eq!(b.tainted_at, at("2026-12-06T09:00:00Z"));
    assert_eq!(b.expires, at("2026-12-06T11:00:00Z"));
    assert_eq!(b.remaining, Duration::from_secs(1800));
    assert!(!b.is_over());
    assert_eq!(
        expires_annotation(Some(&b)).as_deref(),
        Some("2026-12-06T11:00:00Z")
    );
    let later = offline_budget(&n, Duration::from_secs(3600), at("2026-12-06T12:00:00Z")).unwrap();
    assert!(later.is_over());
    assert_eq!(later.remaining, Duration::ZERO);
}

#[test]
fn the_earliest_offline_taint_counts_and_the_default_applies() {
    let n = node(
        json!([
            {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute", "timeAdded": "2026-12-06T09:10:00Z"},
            {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": "2026-12-06T09:00:00Z"}
        ]),
        None,
    );
    let b = offline_budget(&n, Duration::from_secs(600), at("2026-12-06T09:05:00Z")).unwrap();
    assert_eq!(b.expires, at("2026-12-06T09:10:00Z"));
    let _ = Time(at("2026-12-06T09:00:00Z"));
}

use super::*;

fn settings() -> NodeSettings {
    NodeSettings {
        provider: "edge".into(),
        taint: true,
        node_address: "10.0.0.1".into(),
        kubelet_port: 10250,
    }
}

fn node(value: serde_json::Value) -> Node {
    serde_json::from_value(value).unwrap()
}

#[test]
fn only_nodes_we_created_are_ours() {
    let s = settings();
    let ours = node(serde_json::json!({"metadata": {"name": "pi-01",
            "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE}}}));
    assert_eq!(ownership(&ours, &s), NodeOwnership::Ours);
    let kubelet = node(serde_json::json!({"metadata": {"name": "worker-1",
            "labels": {"kubernetes.io/hostname": "worker-1"}}}));
    assert!(matches!(
        ownership(&kubelet, &s),
        NodeOwnership::Foreign { .. }
    ));
    let other_provider = node(serde_json::json!({"metadata": {"name": "aci",
            "labels": {"type": "virtual-kubelet"}},
            "spec": {"taints": [{"key": PROVIDER_TAINT_KEY, "value": "azure", "effect": "NoSchedule"}]}}));
    assert!(matches!(
        ownership(&other_provider, &s),
        NodeOwnership::Foreign { .. }
    ));
    let legacy = node(serde_json::json!({"metadata": {"name": "pi-02",
            "labels": {"type": "virtual-kubelet"}},
            "spec": {"taints": [{"key": PROVIDER_TAINT_KEY, "value": "edge", "effect": "NoSchedule"}]}}));
    assert_eq!(ownership(&legacy, &s), NodeOwnership::Legacy);
    let other_manager = node(serde_json::json!({"metadata": {"name": "pi-03",
            "labels": {MANAGED_BY_LABEL: "someone-else"}}}));
    assert!(matches!(
        ownership(&other_manager, &s),
        NodeOwnership::Foreign { .. }
    ));
}

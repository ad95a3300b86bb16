use super::*;
use crate::node_object::fixtures::{now, report, settings};

#[test]
fn node_has_taint_capacity_info_and_endpoints() {
    let id = DeviceId::new("pi-01").unwrap();
    let node = new_node(&id, &report(), &settings(), now());
    let taints = node.spec.unwrap().taints.unwrap();
    assert_eq!(taints[0].key, PROVIDER_TAINT_KEY);
    assert_eq!(taints[0].value.as_deref(), Some("edge"));
    assert_eq!(taints[0].effect, "NoSchedule");
    let status = node.status.unwrap();
    let cap = status.capacity.unwrap();
    assert_eq!(cap["cpu"].0, "4");
    assert_eq!(cap["memory"].0, "4194304Ki");
    assert_eq!(cap["pods"].0, "20");
    assert_eq!(cap["nvidia.com/gpu"].0, "1");
    // allocatable falls back to capacity when the device sent none
    assert_eq!(status.allocatable.unwrap()["cpu"].0, "4");
    let addrs = status.addresses.unwrap();
    assert_eq!(
        addrs.len(),
        1,
        "no Hostname address the API server would try first"
    );
    assert_eq!(addrs[0].type_, "InternalIP");
    assert_eq!(addrs[0].address, "10.0.0.5");
    assert_eq!(
        status
            .daemon_endpoints
            .unwrap()
            .kubelet_endpoint
            .unwrap()
            .port,
        10250
    );
    let info = status.node_info.unwrap();
    assert_eq!(info.architecture, "arm64");
    assert_eq!(info.container_runtime_version, "docker://24.0.7");
    assert!(info.kubelet_version.starts_with("v1.32.0"));
    let ready = &status.conditions.unwrap()[0];
    assert_eq!(
        (ready.type_.as_str(), ready.status.as_str()),
        ("Ready", "True")
    );
}

#[test]
fn no_taint_when_disabled() {
    let mut s = settings();
    s.taint = false;
    let id = DeviceId::new("pi-01").unwrap();
    assert!(
        new_node(&id, &report(), &s, now())
            .spec
            .unwrap()
            .taints
            .is_none()
    );
}

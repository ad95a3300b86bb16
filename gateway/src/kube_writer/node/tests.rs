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

#[test]
fn reported_pressure_and_images_reach_the_node_status() {
    use edge_protocol::{NodeConditionKind, NodeImage, NodePressureCondition};
    let mut r = report();
    let plain = node_status(&r, &settings(), now(), now());
    let of = |status: &NodeStatus, kind: &str| {
        status
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == kind)
            .cloned()
            .unwrap()
    };
    // an agent that does not measure: no pressure, no images
    assert_eq!(of(&plain, "DiskPressure").status, "False");
    assert!(plain.images.is_none());
    r.conditions = vec![
        NodePressureCondition {
            kind: NodeConditionKind::DiskPressure,
            pressure: true,
            since: 1_767_225_600_000,
            message: "nodefs.available 1 < 10".into(),
        },
        NodePressureCondition {
            kind: NodeConditionKind::PidPressure,
            pressure: false,
            since: 1_767_225_000_000,
            message: String::new(),
        },
    ];
    r.images = vec![NodeImage {
        names: vec!["localhost/busybox:test".into()],
        size_bytes: 2_010_000,
    }];
    let status = node_status(&r, &settings(), now(), now());
    let disk = of(&status, "DiskPressure");
    assert_eq!(disk.status, "True");
    assert_eq!(disk.reason.as_deref(), Some("KubeletHasDiskPressure"));
    assert_eq!(
        disk.message.as_deref(),
        Some("kubelet has disk pressure: nodefs.available 1 < 10")
    );
    assert_eq!(
        disk.last_transition_time,
        Some(crate::status_mapping::time_from_millis(1_767_225_600_000))
    );
    let pid = of(&status, "PIDPressure");
    assert_eq!(pid.status, "False");
    assert_eq!(pid.reason.as_deref(), Some("KubeletHasSufficientPID"));
    assert_eq!(of(&status, "MemoryPressure").status, "False");
    assert_eq!(of(&status, "Ready").status, "True");
    let images = status.images.unwrap();
    assert_eq!(
        images[0].names.as_deref(),
        Some(&["localhost/busybox:test".to_owned()][..])
    );
    assert_eq!(images[0].size_bytes, Some(2_010_000));
}

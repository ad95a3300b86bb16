use super::fixtures::report;
use super::*;

#[test]
fn labels_filter_reserved_namespaces_and_keep_ours() {
    let id = DeviceId::new("pi-01").unwrap();
    let (labels, dropped) = node_labels(&id, &report());
    assert_eq!(labels["kubernetes.io/hostname"], "pi-01");
    assert_eq!(labels["kubernetes.io/arch"], "arm64");
    assert_eq!(labels["kubernetes.io/os"], "linux");
    assert_eq!(labels["type"], "virtual-kubelet");
    assert_eq!(labels["site"], "lab");
    assert_eq!(
        labels["node.kubernetes.io/instance-type"],
        "Raspberry-Pi-4-Model-B-Rev-1.4"
    );
    assert!(!labels.contains_key("node-role.kubernetes.io/control-plane"));
    assert!(!labels.contains_key("node-restriction.kubernetes.io/x"));
    assert!(!labels.contains_key("foo.k8s.io/x"));
    assert_eq!(dropped.len(), 6, "{dropped:?}");
}

#[test]
fn board_family_groups_models() {
    assert_eq!(
        board_family(Some("Raspberry Pi 4 Model B Rev 1.4")),
        "raspberry-pi"
    );
    assert_eq!(
        board_family(Some("Raspberry Pi Compute Module 4")),
        "raspberry-pi"
    );
    assert_eq!(
        board_family(Some("NVIDIA Jetson Orin Nano Developer Kit")),
        "jetson"
    );
    assert_eq!(board_family(Some("Rock Pi 4")), "generic");
    assert_eq!(board_family(None), "generic");
    // The device cannot choose it.
    let report = NodeReport {
        board_model: Some("Raspberry Pi 5 Model B".into()),
        labels: [(BOARD_FAMILY_LABEL.to_owned(), "jetson".to_owned())].into(),
        ..Default::default()
    };
    let (labels, dropped) = node_labels(&DeviceId::new("pi-5").unwrap(), &report);
    assert_eq!(labels[BOARD_FAMILY_LABEL], "raspberry-pi");
    assert_eq!(dropped, vec![BOARD_FAMILY_LABEL.to_owned()]);
}

#[test]
fn sanitizes_label_values() {
    assert_eq!(sanitize_label_value("  Jetson (Orin) "), "Jetson-Orin");
    assert_eq!(sanitize_label_value(&"x".repeat(80)).len(), 63);
    assert!(is_valid_label_value(&sanitize_label_value(
        "Raspberry Pi 4 Model B Rev 1.4"
    )));
}

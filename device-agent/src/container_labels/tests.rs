#![allow(clippy::unwrap_used)]
use super::*;

#[test]
fn round_trips_and_names() {
    let id = ContainerIdentity {
        device: "pi-01".into(),
        pod_uid: "1234abcd-5678".into(),
        pod_namespace: "default".into(),
        pod_name: "web".into(),
        container_name: "nginx".into(),
        restart_count: 3,
        spec_hash: "h".into(),
        grace_period_seconds: 5,
        sandbox_id: String::new(),
        gpu_devices: Vec::new(),
    };
    assert_eq!(id.container_name(), "edge_web_default_nginx_1234abcd_3");
    assert_eq!(ContainerIdentity::from_labels(&id.to_labels()), Some(id));
    assert_eq!(ContainerIdentity::from_labels(&HashMap::new()), None);
}

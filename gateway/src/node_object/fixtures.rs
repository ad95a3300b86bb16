//! A device's hello and the gateway's Node settings, for the tests of the Node's
//! labels, object and status.

use std::collections::BTreeMap;

use edge_protocol::{NodeAddress as DeviceAddress, NodeAddressKind, NodeReport, NodeResources};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::NodeSettings;

pub(crate) fn report() -> NodeReport {
    NodeReport {
        agent_version: "0.1.0".into(),
        hostname: "raspberrypi".into(),
        architecture: "arm64".into(),
        operating_system: "linux".into(),
        os_image: "Debian GNU/Linux 12 (bookworm)".into(),
        kernel_version: "6.1.0-rpi7".into(),
        board_model: Some("Raspberry Pi 4 Model B Rev 1.4".into()),
        container_runtime_version: "docker://24.0.7".into(),
        machine_id: Some("abc".into()),
        boot_id: Some("boot".into()),
        capacity: NodeResources {
            cpu_millis: 4000,
            memory_bytes: 4 * 1024 * 1024 * 1024,
            ephemeral_storage_bytes: 32_000_000_000,
            pods: 20,
            extended: BTreeMap::from([("nvidia.com/gpu".into(), 1)]),
        },
        allocatable: NodeResources::default(),
        labels: BTreeMap::from([
            ("site".into(), "lab".into()),
            ("kubernetes.io/hostname".into(), "evil".into()),
            ("node-role.kubernetes.io/control-plane".into(), "".into()),
            ("node-restriction.kubernetes.io/x".into(), "y".into()),
            ("foo.k8s.io/x".into(), "y".into()),
            ("type".into(), "real".into()),
            ("bad key!".into(), "v".into()),
        ]),
        addresses: vec![DeviceAddress {
            kind: NodeAddressKind::InternalIP,
            address: "192.168.1.20".into(),
        }],
        capabilities: Default::default(),
        conditions: Vec::new(),
        images: Vec::new(),
        update: false,
        agent_update: None,
        image_prepull: None,
    }
}

pub(crate) fn settings() -> NodeSettings {
    NodeSettings {
        provider: "edge".into(),
        taint: true,
        node_address: "10.0.0.5".into(),
        kubelet_port: 10250,
    }
}

pub(crate) fn now() -> Time {
    Time(jiff::Timestamp::from_second(1_700_000_000).unwrap())
}

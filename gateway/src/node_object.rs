//! A device's Node: labels, taint, capacity, nodeInfo, addresses and conditions built
//! from its hello ([`NodeReport`]). Pure functions.

use std::collections::BTreeMap;

use edge_protocol::{DeviceId, NodeAddressKind, NodeReport, NodeResources};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
    NodeSystemInfo, Taint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as KubeQuantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use crate::quantity::{bytes_quantity, cpu_quantity};

/// Taint key put on every device node unless disabled.
pub const PROVIDER_TAINT_KEY: &str = "virtual-kubelet.io/provider";
/// The Kubernetes version the gateway's nodes claim to be compatible with.
pub const KUBELET_VERSION: &str = "v1.32.0";

/// Gateway-wide settings that go into every Node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSettings {
    /// Provider name in the taint `virtual-kubelet.io/provider=<provider>:NoSchedule`.
    pub provider: String,
    /// Whether to put the provider taint on new nodes.
    pub taint: bool,
    /// InternalIP of every Node: where the API server reaches the gateway's kubelet API.
    pub node_address: String,
    /// Port of the gateway's kubelet API.
    pub kubelet_port: u16,
}

/// Whether a label key lies in a namespace a device may not set.
pub fn is_reserved_label(key: &str) -> bool {
    let Some((prefix, _)) = key.split_once('/') else {
        return false;
    };
    let prefix = prefix.to_ascii_lowercase();
    ["kubernetes.io", "k8s.io"]
        .iter()
        .any(|ns| prefix == *ns || prefix.ends_with(&format!(".{ns}")))
}

fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn is_dns_subdomain(s: &str) -> bool {
    edge_protocol::DeviceId::new(s).is_ok()
}

/// Whether `key` is a syntactically valid label key (`[prefix/]name`).
pub fn is_valid_label_key(key: &str) -> bool {
    match key.split_once('/') {
        Some((prefix, name)) => {
            prefix.len() <= 253 && is_dns_subdomain(prefix) && is_label_name(name)
        }
        None => is_label_name(key),
    }
}

/// Whether `value` is a valid label value (empty allowed).
pub fn is_valid_label_value(value: &str) -> bool {
    value.is_empty() || is_label_name(value)
}

/// Turns free text (a board model) into a valid label value.
pub fn sanitize_label_value(raw: &str) -> String {
    let mapped: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut collapsed = String::with_capacity(mapped.len());
    for c in mapped.chars() {
        if c == '-' && collapsed.ends_with('-') {
            continue;
        }
        collapsed.push(c);
    }
    let trimmed: String = collapsed.chars().take(63).collect();
    trimmed
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

/// The Node's labels: ours first, then what the device asks for (reserved namespaces,
/// invalid labels and attempts to override ours are dropped; the dropped keys are returned).
pub fn node_labels(
    device: &DeviceId,
    report: &NodeReport,
) -> (BTreeMap<String, String>, Vec<String>) {
    let mut labels = BTreeMap::new();
    let mut dropped = Vec::new();
    for (k, v) in &report.labels {
        if is_reserved_label(k)
            || !is_valid_label_key(k)
            || !is_valid_label_value(v)
            || k == "type"
            || k == BOARD_FAMILY_LABEL
            || k == crate::node_ownership::MANAGED_BY_LABEL
        {
            dropped.push(k.clone());
            continue;
        }
        labels.insert(k.clone(), v.clone());
    }
    let arch = if report.architecture.is_empty() {
        "unknown".to_owned()
    } else {
        sanitize_label_value(&report.architecture)
    };
    let os = if report.operating_system.is_empty() {
        "linux".to_owned()
    } else {
        sanitize_label_value(&report.operating_system)
    };
    labels.insert("kubernetes.io/arch".to_owned(), arch);
    labels.insert("kubernetes.io/os".to_owned(), os);
    labels.insert(
        "kubernetes.io/hostname".to_owned(),
        sanitize_label_value(device.as_str()),
    );
    if let Some(board) = report.board_model.as_deref().map(sanitize_label_value) {
        if !board.is_empty() {
            labels.insert("node.kubernetes.io/instance-type".to_owned(), board);
        }
    }
    labels.insert(
        BOARD_FAMILY_LABEL.to_owned(),
        board_family(report.board_model.as_deref()).to_owned(),
    );
    labels.insert("type".to_owned(), "virtual-kubelet".to_owned());
    labels.insert(
        crate::node_ownership::MANAGED_BY_LABEL.to_owned(),
        crate::node_ownership::MANAGED_BY_VALUE.to_owned(),
    );
    (labels, dropped)
}

/// Node label grouping board models, so one selector covers every Raspberry Pi (or
/// Jetson) whatever its exact model string in `node.kubernetes.io/instance-type`.
pub const BOARD_FAMILY_LABEL: &str = "edge-kube.io/board-family";

/// `raspberry-pi`, `jetson` or `generic`, from `/proc/device-tree/model`.
pub fn board_family(board_model: Option<&str>) -> &'static str {
    let model = board_model.unwrap_or_default().to_ascii_lowercase();
    if model.contains("raspberry pi") {
        "raspberry-pi"
    } else if model.contains("jetson") {
        "jetson"
    } else {
        "generic"
    }
}

fn resources(r: &NodeResources) -> BTreeMap<String, KubeQuantity> {
    let mut m = BTreeMap::new();
    m.insert("cpu".to_owned(), KubeQuantity(cpu_quantity(r.cpu_millis)));
    m.insert(
        "memory".to_owned(),
        KubeQuantity(bytes_quantity(r.memory_bytes)),
    );
    m.insert(
        "ephemeral-storage".to_owned(),
        KubeQuantity(bytes_quantity(r.ephemeral_storage_bytes)),
    );
    m.insert("pods".to_owned(), KubeQuantity(r.pods.to_string()));
    for (name, count) in &r.extended {
        if is_valid_label_key(name) {
            m.insert(name.clone(), KubeQuantity(count.to_string()));
        }
    }
    m
}

fn kubelet_version(agent_version: &str) -> String {
    let build: String = agent_version
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    if build.is_empty() {
        KUBELET_VERSION.to_owned()
    } else {
        format!("{KUBELET_VERSION}+edge-agent.{build}")
    }
}

/// The device's own InternalIP, if it reported one (pods on it use this as hostIP).
pub fn device_internal_ip(report: &NodeReport) -> Option<String> {
    report
        .addresses
        .iter()
        .find(|a| a.kind == NodeAddressKind::InternalIP)
        .map(|a| a.address.clone())
}

/// Node conditions of a node whose device is online and reporting.
pub fn ready_conditions(now: Time, ready_since: Time) -> Vec<NodeCondition> {
    let cond = |type_: &str, status: &str, reason: &str, message: &str| NodeCondition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        last_heartbeat_time: Some(now.clone()),
        last_transition_time: Some(ready_since.clone()),
    };
    vec![
        cond(
            "Ready",
            "True",
            "KubeletReady",
            "edge-agent is posting ready status",
        ),
        cond(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "device has sufficient memory available",
        ),
        cond(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "device has no disk pressure",
        ),
        cond(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "device has sufficient PID available",
        ),
    ]
}

/// The Node's status for a device that is online.
pub fn node_status(
    report: &NodeReport,
    settings: &NodeSettings,
    now: Time,
    ready_since: Time,
) -> NodeStatus {
    let allocatable = if report.allocatable == NodeResources::default() {
        &report.capacity
    } else {
        &report.allocatable
    };
    NodeStatus {
        capacity: Some(resources(&report.capacity)),
        allocatable: Some(resources(allocatable)),
        conditions: Some(ready_conditions(now, ready_since)),
        // Only the gateway's address: kube-apiserver's default
        // --kubelet-preferred-address-types tries Hostname first, and the device id does
        // not resolve to the gateway.
        addresses: Some(vec![NodeAddress {
            type_: "InternalIP".to_owned(),
            address: settings.node_address.clone(),
        }]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: i32::from(settings.kubelet_port),
            }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: report.architecture.clone(),
            boot_id: report.boot_id.clone().unwrap_or_default(),
            container_runtime_version: report.container_runtime_version.clone(),
            kernel_version: report.kernel_version.clone(),
            kube_proxy_version: String::new(),
            kubelet_version: kubelet_version(&report.agent_version),
            machine_id: report.machine_id.clone().unwrap_or_default(),
            operating_system: if report.operating_system.is_empty() {
                "linux".to_owned()
            } else {
                report.operating_system.clone()
            },
            os_image: report.os_image.clone(),
            system_uuid: report.machine_id.clone().unwrap_or_default(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The provider taint, or none.
pub fn node_taints(settings: &NodeSettings) -> Vec<Taint> {
    if !settings.taint {
        return Vec::new();
    }
    vec![Taint {
        key: PROVIDER_TAINT_KEY.to_owned(),
        value: Some(settings.provider.clone()),
        effect: "NoSchedule".to_owned(),
        time_added: None,
    }]
}

/// The whole Node object to create for a device that said hello.
pub fn new_node(
    device: &DeviceId,
    report: &NodeReport,
    settings: &NodeSettings,
    now: Time,
) -> Node {
    let (labels, _) = node_labels(device, report);
    let taints = node_taints(settings);
    Node {
        metadata: ObjectMeta {
            name: Some(device.to_string()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                "node.alpha.kubernetes.io/ttl".to_owned(),
                "0".to_owned(),
            )])),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            taints: if taints.is_empty() {
                None
            } else {
                Some(taints)
            },
            ..Default::default()
        }),
        status: Some(node_status(report, settings, now.clone(), now)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge_protocol::NodeAddress as DeviceAddress;

    fn report() -> NodeReport {
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
        }
    }

    fn settings() -> NodeSettings {
        NodeSettings {
            provider: "edge".into(),
            taint: true,
            node_address: "10.0.0.5".into(),
            kubelet_port: 10250,
        }
    }

    fn now() -> Time {
        Time(jiff::Timestamp::from_second(1_700_000_000).unwrap())
    }

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
}

//! The status of the device's Node: capacity and allocatable, conditions, nodeInfo,
//! addresses and the kubelet endpoint, built from its hello and written with a merge
//! patch.

use std::collections::BTreeMap;

use edge_protocol::{
    DeviceId, MAX_NODE_IMAGES, NodeConditionKind, NodePressureCondition, NodeReport, NodeResources,
};
use k8s_openapi::api::core::v1::{
    ContainerImage, DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints,
    NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as KubeQuantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::{KubeFeedback, Worker, is_status};
use crate::node_object::{NodeSettings, is_valid_label_key};
use crate::quantity::{bytes_quantity, cpu_quantity};

/// Node features the gateway's kubelet API serves, in every Node's
/// `status.declaredFeatures` (node declared features).
pub const DECLARED_FEATURES: &[&str] = &["ExtendWebSocketsToKubelet"];

/// The Kubernetes version the gateway's nodes claim to be compatible with.
pub const KUBELET_VERSION: &str = "v1.32.0";

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

/// The Node's `kubeletVersion` for an agent version: `v1.32.0+edge-agent.<version>`.
pub fn kubelet_version(agent_version: &str) -> String {
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

/// The kubelet's reason and message of a pressure condition.
fn pressure_reason(kind: NodeConditionKind, pressure: bool) -> (&'static str, &'static str) {
    match (kind, pressure) {
        (NodeConditionKind::MemoryPressure, true) => (
            "KubeletHasInsufficientMemory",
            "kubelet has insufficient memory available",
        ),
        (NodeConditionKind::MemoryPressure, false) => (
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        (NodeConditionKind::DiskPressure, true) => {
            ("KubeletHasDiskPressure", "kubelet has disk pressure")
        }
        (NodeConditionKind::DiskPressure, false) => {
            ("KubeletHasNoDiskPressure", "kubelet has no disk pressure")
        }
        (NodeConditionKind::PidPressure, true) => (
            "KubeletHasInsufficientPID",
            "kubelet has insufficient PID available",
        ),
        (NodeConditionKind::PidPressure, false) => (
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        ),
    }
}

/// Puts the pressure conditions the device measured (protocol 1.2) in place of the
/// defaults: status, the kubelet's reason and message (with what was measured), and
/// the device's transition time.
pub fn apply_pressure(conditions: &mut [NodeCondition], reported: &[NodePressureCondition]) {
    for r in reported {
        let Some(c) = conditions.iter_mut().find(|c| c.type_ == r.kind.as_str()) else {
            continue;
        };
        let (reason, message) = pressure_reason(r.kind, r.pressure);
        c.status = if r.pressure { "True" } else { "False" }.to_owned();
        c.reason = Some(reason.to_owned());
        c.message = Some(if r.message.is_empty() {
            message.to_owned()
        } else {
            format!("{message}: {}", r.message)
        });
        if r.since > 0 {
            c.last_transition_time = Some(crate::status_mapping::time_from_millis(r.since));
        }
    }
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
    let mut conditions = ready_conditions(now, ready_since);
    apply_pressure(&mut conditions, &report.conditions);
    let images: Vec<ContainerImage> = report
        .images
        .iter()
        .take(MAX_NODE_IMAGES)
        .map(|i| ContainerImage {
            names: Some(i.names.clone()),
            size_bytes: i64::try_from(i.size_bytes).ok(),
        })
        .collect();
    NodeStatus {
        capacity: Some(resources(&report.capacity)),
        allocatable: Some(resources(allocatable)),
        conditions: Some(conditions),
        images: (!images.is_empty()).then_some(images),
        // Only the gateway's address: kube-apiserver's default
        // --kubelet-preferred-address-types tries Hostname first, and the device id does
        // not resolve to the gateway.
        addresses: Some(vec![NodeAddress {
            type_: "InternalIP".to_owned(),
            address: settings.node_address.clone(),
        }]),
        // The gateway's kubelet API serves exec, attach and port-forward on WebSocket too
        // (port-forward as the SPDY tunnel): kube-apiserver with ExtendWebSocketsToKubelet
        // then passes its clients' WebSockets through instead of translating them to SPDY.
        declared_features: Some(DECLARED_FEATURES.iter().map(|f| (*f).to_owned()).collect()),
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

/// Patches the status of the device's Node.
pub(super) async fn patch_node_status(
    nodes: &Api<Node>,
    device: &DeviceId,
    status: &NodeStatus,
) -> Result<Node, kube::Error> {
    let patch = json!({ "status": status });
    nodes
        .patch_status(
            device.as_str(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
}

impl Worker {
    /// Writes the Node's status; a missing Node is reported to the fleet (it registers
    /// the Node again).
    pub(super) async fn update_node_status(&mut self, device: DeviceId, status: &NodeStatus) {
        let nodes: Api<Node> = Api::all(self.client.clone());
        if let Err(e) = patch_node_status(&nodes, &device, status).await {
            self.failed("patch_node_status", device.as_str(), &e);
            if is_status(&e, 404) {
                let _ = self.feedback.send(KubeFeedback::NodeFailed { device });
            }
        }
    }
}

//! What a device says about itself: the node report (`up/hello`), heartbeats and
//! online state.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch (UTC).
pub type UnixMillis = u64;

/// The device's description of itself, sent on connect and whenever it changes.
/// The gateway turns it into the Node's labels, capacity, nodeInfo and addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct NodeReport {
    /// Version of the edge-agent binary: under `edge-agent supervise`, the signed version
    /// of the slot it runs from (an agent update's version), else the build's.
    pub agent_version: String,
    pub hostname: String,
    /// Kubernetes (GOARCH) naming: `arm64`, `arm`, `amd64`.
    pub architecture: String,
    /// `linux`.
    pub operating_system: String,
    /// Pretty name of the OS image, e.g. `Debian GNU/Linux 12 (bookworm)`.
    pub os_image: String,
    pub kernel_version: String,
    /// From `/proc/device-tree/model`, e.g. `Raspberry Pi 4 Model B Rev 1.4`.
    pub board_model: Option<String>,
    /// Runtime and version as the kubelet reports it, e.g. `docker://24.0.7`.
    pub container_runtime_version: String,
    pub machine_id: Option<String>,
    pub boot_id: Option<String>,
    pub capacity: NodeResources,
    pub allocatable: NodeResources,
    /// Labels the device asks for. The gateway drops any in the reserved
    /// `kubernetes.io/`, `k8s.io/` and `node-restriction.kubernetes.io/` namespaces.
    pub labels: BTreeMap<String, String>,
    pub addresses: Vec<NodeAddress>,
    /// What this agent can do beyond protocol 1.0; absent fields mean "no".
    pub capabilities: DeviceCapabilities,
    /// The node's pressure conditions as the agent's eviction manager sees them
    /// (protocol 1.2). Empty: the agent does not measure pressure (reported as no
    /// pressure, as before).
    pub conditions: Vec<NodePressureCondition>,
    /// The container images on the device, largest first, at most [`MAX_NODE_IMAGES`]
    /// (protocol 1.2; the kubelet's `nodeStatusMaxImages`).
    pub images: Vec<NodeImage>,
    /// `true` when the report changed during the agent's session (sent again without
    /// a reconnect, protocol 1.2): the gateway updates the Node and keeps the session
    /// (its streams and report sequence). `false` on every connect.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub update: bool,
    /// The last agent update's status (protocol 1.4): how the last order ended
    /// (`committed`, `rolledBack` with why) or how far the current one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_update: Option<crate::AgentUpdateStatus>,
    /// The device's progress on its image pre-pull set (protocol 1.5), so a gateway that
    /// restarted knows it without waiting for the next change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_prepull: Option<crate::ImagePrepullStatus>,
}

/// How many images a node report lists at most (the kubelet's default
/// `nodeStatusMaxImages`).
pub const MAX_NODE_IMAGES: usize = 50;

/// A node condition the agent decides itself (the kubelet's eviction manager's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum NodeConditionKind {
    MemoryPressure,
    DiskPressure,
    #[serde(rename = "PIDPressure")]
    PidPressure,
}

impl NodeConditionKind {
    /// The Node condition's `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeConditionKind::MemoryPressure => "MemoryPressure",
            NodeConditionKind::DiskPressure => "DiskPressure",
            NodeConditionKind::PidPressure => "PIDPressure",
        }
    }
}

/// One pressure condition: whether a hard eviction threshold of its resource is
/// crossed, since when, and what was measured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodePressureCondition {
    #[serde(rename = "type")]
    pub kind: NodeConditionKind,
    pub pressure: bool,
    /// When `pressure` last changed (the condition's `lastTransitionTime`).
    #[serde(default)]
    pub since: UnixMillis,
    /// E.g. `nodefs.available 3% < 10%`; empty when there is no pressure.
    #[serde(default)]
    pub message: String,
}

/// An image on the device, as in a Node's `status.images`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct NodeImage {
    /// Tags and digests (`docker.io/library/busybox:1.36`, `...@sha256:...`).
    pub names: Vec<String>,
    pub size_bytes: u64,
}

/// Optional features an agent declares in its node report, so the gateway never sends
/// a device something it does not understand and can tell the user why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct DeviceCapabilities {
    /// The interactive stream protocol version ([`crate::stream`]) the agent speaks:
    /// exec, attach and port-forward.
    pub streams: Option<u32>,
    /// The agent publishes [`crate::NodeStats`] on `up/stats` every this many seconds.
    pub stats_interval_seconds: Option<u32>,
    /// The agent publishes [`crate::LogTailReport`]s on `up/logtail` every this many
    /// seconds.
    pub log_tail_interval_seconds: Option<u32>,
    /// The agent ends pods past their `activeDeadlineSeconds` (protocol 1.2).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub active_deadline: bool,
    /// The agent runs init and sidecar containers ([`crate::PodSpec::init_containers`],
    /// protocol 1.2) in a pod sandbox; the gateway refuses pods with init containers for
    /// agents without it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub init_containers: bool,
    /// The agent runs containers' postStart/preStop hooks and reports their termination
    /// messages (protocol 1.3); for agents without it the gateway names those fields in
    /// a `FieldsNotApplied` event.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub lifecycle_hooks: bool,
    /// The agent runs gRPC probes ([`crate::ProbeHandler::Grpc`], protocol 1.3); the
    /// gateway refuses pods with them for agents without it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub grpc_probes: bool,
    /// The agent assigns distinct `nvidia.com/gpu` devices to the containers whose
    /// limits name them ([`crate::ResourceRequirements::extended`], protocol 1.3) and
    /// refuses pods asking for more than are free; the gateway warns that the resource
    /// is not applied for agents without it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub gpu_assignment: bool,
    /// The agent obeys a [`crate::RetireOrder`] on `down/retire` (protocol 1.3): it
    /// removes its containers, state, key and certificate and stops. The gateway retires
    /// a device without it all the same, and says in its Event that the device must be
    /// wiped by hand.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub retire: bool,
    /// The agent updates itself over the air ([`crate::AgentUpdateOrder`], protocol
    /// 1.4): it runs under `edge-agent supervise` and has the fleet's update key pinned.
    /// A rollout skips devices without it and says why.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub agent_update: bool,
    /// The agent pulls an [`crate::ImagePrepullSet`] ahead and keeps its images from
    /// garbage collection (protocol 1.5). Pre-pulls skip devices without it and say why.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub image_prepull: bool,
}

/// Amounts of the resources a device offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct NodeResources {
    /// CPU in millicores (`4` cores = `4000`).
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    /// Storage of the disk the container runtime uses.
    pub ephemeral_storage_bytes: u64,
    /// How many pods the device accepts.
    pub pods: u64,
    /// Extended resources as whole counts, e.g. `nvidia.com/gpu: 1`.
    pub extended: BTreeMap<String, u64>,
}

/// One address of the device, as in a Node's `status.addresses`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeAddress {
    #[serde(rename = "type")]
    pub kind: NodeAddressKind,
    pub address: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeAddressKind {
    InternalIP,
    ExternalIP,
    Hostname,
}

/// Liveness, sent at the agent's heartbeat interval (QoS 0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct Heartbeat {
    /// Increases by one with every heartbeat since the agent started.
    pub sequence: u64,
    pub sent_at: UnixMillis,
    /// The desired-set generation the device has applied.
    pub observed_generation: u64,
    pub pods_running: u32,
}

/// Online or offline, retained on `up/state`. The agent connects with a last will
/// carrying `online: false`, so the broker publishes it when the device vanishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct DeviceState {
    pub online: bool,
    /// Why, when known (`shutdown`, `connection lost`).
    pub reason: Option<String>,
    pub since: UnixMillis,
}

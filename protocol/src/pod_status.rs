//! What a device reports about its pods (`up/status`).

use serde::{Deserialize, Serialize};

use crate::node_report::UnixMillis;

/// Status of some or all of a device's pods.
///
/// Reports carry a per-device `sequence` that increases by one with every report the
/// agent produces (kept across agent restarts), so the gateway can apply them in order
/// and ignore duplicates that QoS 1 may deliver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct PodStatusReport {
    pub sequence: u64,
    /// The desired-set generation the device had applied when it made this report.
    pub observed_generation: u64,
    /// True when `pods` lists every pod the device has (an answer to a resync):
    /// pods the gateway knows but that are missing here do not exist on the device.
    pub full: bool,
    pub pods: Vec<PodStatus>,
}

/// Kubernetes pod phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum PodPhase {
    #[default]
    Pending,
    Running,
    Succeeded,
    Failed,
    Unknown,
}

/// One pod on the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct PodStatus {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub phase: PodPhase,
    /// Short machine-readable reason for the phase, if any.
    pub reason: Option<String>,
    pub message: Option<String>,
    pub pod_ip: Option<String>,
    /// When the device accepted the pod.
    pub start_time: Option<UnixMillis>,
    pub containers: Vec<ContainerStatus>,
    /// Ephemeral containers (`kubectl debug`), never restarted (protocol 1.1).
    pub ephemeral_containers: Vec<ContainerStatus>,
    /// Init containers, in the spec's order (protocol 1.2).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub init_containers: Vec<ContainerStatus>,
    /// True once every container of the pod is stopped and removed from the device
    /// after the gateway asked for it to go: the gateway may now delete the pod.
    pub removed: bool,
}

/// One container, with the kubelet's meaning for every field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct ContainerStatus {
    pub name: String,
    pub state: ContainerState,
    /// The previous instance's state, after a restart.
    pub last_state: Option<ContainerState>,
    pub ready: bool,
    pub started: Option<bool>,
    pub restart_count: u32,
    pub image: String,
    /// Image id as the runtime reports it (e.g. `sha256:...`).
    pub image_id: String,
    /// `docker://<id>` style, as the kubelet reports it.
    pub container_id: Option<String>,
}

/// Waiting, running or terminated, like Kubernetes `ContainerState`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum ContainerState {
    Waiting {
        /// `ContainerCreating`, `ErrImagePull`, `ImagePullBackOff`,
        /// `CreateContainerConfigError`, `CrashLoopBackOff`, ...
        reason: String,
        #[serde(default)]
        message: Option<String>,
    },
    Running {
        started_at: UnixMillis,
    },
    Terminated {
        exit_code: i32,
        #[serde(default)]
        signal: Option<i32>,
        /// `Completed`, `Error`, `OOMKilled`, ...
        reason: String,
        #[serde(default)]
        message: Option<String>,
        #[serde(default)]
        started_at: Option<UnixMillis>,
        #[serde(default)]
        finished_at: Option<UnixMillis>,
    },
}

impl Default for ContainerState {
    fn default() -> Self {
        ContainerState::Waiting {
            reason: "ContainerCreating".to_owned(),
            message: None,
        }
    }
}

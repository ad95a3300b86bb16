//! What goes into the reconciler ([`Input`]: desired sets, container listings, outcomes
//! of effects, probe reports) and what comes out ([`Effect`]: runtime operations, volume
//! preparation, probe workers, status reports and events).

use std::sync::Arc;
use std::time::Duration;

use edge_protocol::{
    ContainerSpec, DesiredSet, LifecycleHandler, PodEvent, PodSpec, PodStatus, PullPolicy,
    RegistryCredential, UnixMillis,
};

use super::lifecycle_hooks::{HookError, HookKind};
use crate::config::SandboxSettings;
use crate::container_runtime::ContainerSnapshot;
use crate::pod_volumes::VolumeError;

/// Why a pod's volumes could not be prepared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VolumeSetupError {
    #[error(transparent)]
    Volume(#[from] VolumeError),
    /// The task preparing them did not finish (it panicked or was cancelled).
    #[error("{0}")]
    Interrupted(String),
}

/// Why a container cannot be brought up: the kubelet's waiting reasons for image and
/// create failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReason {
    ErrImagePull,
    ImagePullBackOff,
    ErrImageNeverPull,
    CreateContainerConfigError,
    CreateContainerError,
}

impl FailureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::ErrImagePull => "ErrImagePull",
            FailureReason::ImagePullBackOff => "ImagePullBackOff",
            FailureReason::ErrImageNeverPull => "ErrImageNeverPull",
            FailureReason::CreateContainerConfigError => "CreateContainerConfigError",
            FailureReason::CreateContainerError => "CreateContainerError",
        }
    }

    /// A pull failure (cleared once the image is there).
    pub fn is_pull(self) -> bool {
        matches!(
            self,
            FailureReason::ErrImagePull | FailureReason::ImagePullBackOff
        )
    }
}

impl std::fmt::Display for FailureReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Pod uid and container name.
pub type ContainerKey = (String, String);

/// The namespaces an ephemeral container joins: those of running containers of its
/// pod, by runtime id (`container:<id>` in the Engine API).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespaceShare {
    /// The PID namespace of the `targetContainerName` container, when one is named.
    pub pid_of: Option<String>,
    /// The network namespace of the target (or else the first) container; `None` for
    /// a host-network pod, which stays on the host network.
    pub network_of: Option<String>,
}

/// How a container to create relates to its pod's infra (sandbox) container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SandboxRole {
    /// No infra container: a host-network pod (or a reconciler without sandboxes), or
    /// an ephemeral container (whose namespaces are in [`NamespaceShare`]).
    #[default]
    Own,
    /// This is the pod's infra container.
    Infra(SandboxSettings),
    /// Joins the network and IPC namespaces of the infra container with this id.
    Join(String),
}

#[derive(Debug, Clone)]
pub enum Input {
    /// A new desired set (from the gateway or the local store at start).
    Desired(DesiredSet),
    /// Every managed container on the device, freshly listed.
    Containers {
        list: Vec<ContainerSnapshot>,
        now: UnixMillis,
    },
    /// Time passed (back-offs may have expired).
    Tick { now: UnixMillis },
    /// An effect finished.
    Done(Outcome),
    /// A probe worker crossed a threshold.
    Probe(ProbeReport),
    /// The eviction manager chose this pod under node pressure; `message` is the
    /// kubelet's (`The node was low on resource: ...`).
    Evict { pod_uid: String, message: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    VolumesReady {
        pod_uid: String,
        result: Result<(), VolumeSetupError>,
    },
    /// An actual registry pull began (the image was not present or policy is Always).
    PullStarted {
        key: ContainerKey,
    },
    ImageReady {
        key: ContainerKey,
        pulled: bool,
    },
    ImageFailed {
        key: ContainerKey,
        message: String,
    },
    Created {
        key: ContainerKey,
        id: String,
    },
    /// `reason` is [`FailureReason::CreateContainerConfigError`] or
    /// [`FailureReason::CreateContainerError`], as the kubelet's.
    CreateFailed {
        key: ContainerKey,
        reason: FailureReason,
        message: String,
    },
    Started {
        key: ContainerKey,
        id: String,
    },
    StartFailed {
        key: ContainerKey,
        id: String,
        message: String,
    },
    Stopped {
        id: String,
    },
    StopFailed {
        id: String,
        message: String,
    },
    Removed {
        id: String,
    },
    RemoveFailed {
        id: String,
        message: String,
    },
    /// A lifecycle hook ran for `elapsed`.
    HookDone {
        container_id: String,
        kind: HookKind,
        elapsed: Duration,
        result: Result<(), HookError>,
    },
    /// The termination message of an exited container (`None`: no file).
    TerminationMessage {
        container_id: String,
        message: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

impl ProbeKind {
    pub(super) fn name(self) -> &'static str {
        match self {
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Startup => "Startup",
        }
    }
}

/// A probe result after thresholds were applied (sent on transitions only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeReport {
    pub container_id: String,
    pub kind: ProbeKind,
    pub success: bool,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    PrepareVolumes {
        pod: Arc<PodSpec>,
    },
    EnsureImage {
        key: ContainerKey,
        image: String,
        policy: PullPolicy,
        credentials: Vec<RegistryCredential>,
    },
    Create {
        key: ContainerKey,
        pod: Arc<PodSpec>,
        restart_count: u32,
        spec_hash: String,
        /// Set for an ephemeral container: the namespaces it joins.
        share: Option<NamespaceShare>,
        sandbox: SandboxRole,
        /// The `nvidia.com/gpu` device ids assigned to the container (empty: none).
        gpus: Vec<String>,
    },
    Start {
        key: ContainerKey,
        id: String,
    },
    Stop {
        id: String,
        grace: Duration,
    },
    Remove {
        id: String,
    },
    CleanupPod {
        pod_uid: String,
    },
    WatchProbes {
        container_id: String,
        container: Box<ContainerSpec>,
        /// Address HTTP and TCP probes connect to when the probe names no host.
        target_ip: String,
    },
    UnwatchProbes {
        container_id: String,
    },
    /// Runs a lifecycle hook of a running container; `target_ip` is where an httpGet
    /// without `host` goes; no `timeout` for postStart (as the kubelet).
    RunHook {
        container_id: String,
        kind: HookKind,
        handler: LifecycleHandler,
        target_ip: String,
        timeout: Option<Duration>,
    },
    /// Reads the termination message file of an exited container (instance
    /// `restart_count`); `fallback_to_logs`: an empty file gives the log's tail.
    ReadTerminationMessage {
        container_id: String,
        pod_uid: String,
        container_name: String,
        restart_count: u32,
        fallback_to_logs: bool,
    },
    /// Pods whose status changed.
    Report(Vec<PodStatus>),
    Events(Vec<PodEvent>),
}

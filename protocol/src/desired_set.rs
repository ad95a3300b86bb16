//! What the gateway wants a device to run: device-facing pod specs, fully resolved.
//!
//! No Kubernetes client types appear here. The gateway resolves env references,
//! ConfigMap/Secret/downwardAPI/projected volumes, named ports and image pull secrets
//! before sending, so the device needs nothing but this message to run a pod.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::binary::Base64Bytes;
use crate::ephemeral_container::EphemeralContainerSpec;

/// The whole set of pods a device should run, with a generation that increases on
/// every change. The device answers with the generation it applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct DesiredSet {
    pub generation: u64,
    pub pods: Vec<PodSpec>,
}

/// One pod as the device runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct PodSpec {
    /// The Kubernetes pod uid; containers are labelled with it.
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub containers: Vec<ContainerSpec>,
    pub volumes: Vec<Volume>,
    pub restart_policy: RestartPolicy,
    /// Seconds between SIGTERM and SIGKILL when the pod stops (spec default 30).
    pub termination_grace_period_seconds: u64,
    /// Set when the pod is being deleted: stop it with this grace period, report the
    /// containers terminated, then forget it.
    pub deletion_grace_period_seconds: Option<u64>,
    /// Credentials for pulling this pod's images, from its imagePullSecrets.
    pub registry_credentials: Vec<RegistryCredential>,
    /// Share the device's network namespace (the default for device pods).
    pub host_network: bool,
    pub hostname: Option<String>,
    /// The pod opted out of the gateway's offline log cache (its containers' output is
    /// not sent as [`crate::LogTailReport`]s).
    pub log_cache_opt_out: bool,
    /// Containers added by `kubectl debug` (protocol 1.1; older agents ignore them).
    pub ephemeral_containers: Vec<EphemeralContainerSpec>,
    /// `activeDeadlineSeconds` (protocol 1.2): the device ends the pod this long after
    /// it took it. Sent only to agents that declare
    /// [`crate::DeviceCapabilities::active_deadline`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<u64>,
    /// Init containers, in order (protocol 1.2): each runs to completion before the next
    /// starts, except sidecars (`restart_policy: Always`), which start and keep running.
    /// Older agents would ignore them: the gateway sends them only to agents that declare
    /// [`crate::DeviceCapabilities::init_containers`].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub init_containers: Vec<ContainerSpec>,
}

impl PodSpec {
    /// The ephemeral container `name`, if the pod has one.
    pub fn ephemeral_container(&self, name: &str) -> Option<&EphemeralContainerSpec> {
        self.ephemeral_containers.iter().find(|e| e.name == name)
    }

    /// The container `name` of the pod: one of its containers or init containers.
    pub fn container(&self, name: &str) -> Option<&ContainerSpec> {
        self.containers
            .iter()
            .chain(self.init_containers.iter())
            .find(|c| c.name == name)
    }

    /// Whether the gateway asked for this pod to be stopped and forgotten.
    pub fn is_terminating(&self) -> bool {
        self.deletion_grace_period_seconds.is_some()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum RestartPolicy {
    #[default]
    Always,
    OnFailure,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum PullPolicy {
    Always,
    #[default]
    IfNotPresent,
    Never,
}

/// Login for one registry (`registry` as in a docker config: `ghcr.io`, `127.0.0.1:5000`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct RegistryCredential {
    pub registry: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for RegistryCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryCredential")
            .field("registry", &self.registry)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// One container of a pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub image_pull_policy: PullPolicy,
    /// Entrypoint override (Kubernetes `command`); empty keeps the image's.
    pub command: Vec<String>,
    /// Kubernetes `args`; empty keeps the image's.
    pub args: Vec<String>,
    pub working_dir: Option<String>,
    /// Fully resolved environment, in order.
    pub env: Vec<EnvVar>,
    pub ports: Vec<ContainerPort>,
    pub resources: ResourceRequirements,
    pub volume_mounts: Vec<VolumeMount>,
    /// Host devices to pass through, e.g. `/dev/gpiomem`.
    pub devices: Vec<DeviceMapping>,
    pub liveness_probe: Option<Probe>,
    pub readiness_probe: Option<Probe>,
    pub startup_probe: Option<Probe>,
    pub privileged: bool,
    /// Keep the main process's stdin open, for `kubectl attach -i` and `kubectl run -i`
    /// (Kubernetes `stdin`). Since 1.2; left out of the encoding when false, so a spec
    /// without it encodes (and hashes) as before.
    #[serde(skip_serializing_if = "is_false")]
    pub stdin: bool,
    /// Close stdin when the first attach ends (Kubernetes `stdinOnce`). Since 1.2.
    #[serde(skip_serializing_if = "is_false")]
    pub stdin_once: bool,
    /// Allocate a terminal (Kubernetes `tty`). Since 1.2.
    #[serde(skip_serializing_if = "is_false")]
    pub tty: bool,
    /// Init containers only (protocol 1.2): `Always` makes it a sidecar, started before
    /// the containers, kept running and restarted, stopped after them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    /// postStart / preStop hooks (protocol 1.3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<crate::Lifecycle>,
    /// Where the termination message file is bound in the container; `None` is the
    /// kubelet's default [`crate::DEFAULT_TERMINATION_MESSAGE_PATH`] (protocol 1.3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub termination_message_path: Option<String>,
    /// Protocol 1.3.
    #[serde(skip_serializing_if = "crate::TerminationMessagePolicy::is_file")]
    pub termination_message_policy: crate::TerminationMessagePolicy,
}

/// `skip_serializing_if` for fields added after 1.0: a default value is left out, so
/// what older peers sent encodes the same.
#[allow(clippy::trivially_copy_pass_by_ref)] // serde passes a reference
pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

impl ContainerSpec {
    /// An init container with `restartPolicy: Always`.
    pub fn is_sidecar(&self) -> bool {
        self.restart_policy == Some(RestartPolicy::Always)
    }
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct EnvVar {
    pub name: String,
    pub value: String,
}

impl std::fmt::Debug for EnvVar {
    /// Values may come from Secrets: only names are printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EnvVar({}=<{} bytes>)", self.name, self.value.len())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum PortProtocol {
    #[default]
    Tcp,
    Udp,
    Sctp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct ContainerPort {
    pub name: Option<String>,
    pub container_port: u16,
    pub host_port: Option<u16>,
    pub protocol: PortProtocol,
}

/// Requests and limits, in plain units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct ResourceRequirements {
    pub cpu_request_millis: Option<u64>,
    pub cpu_limit_millis: Option<u64>,
    pub memory_request_bytes: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
    /// Extended resources of the container's limits as whole counts, e.g.
    /// `nvidia.com/gpu: 1` (protocol 1.3; agents declaring
    /// [`crate::DeviceCapabilities::gpu_assignment`] assign that many GPUs). Left out of
    /// the encoding when empty, so a spec without it encodes (and hashes) as before.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub extended: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct VolumeMount {
    /// Name of a volume in the pod's `volumes`.
    pub name: String,
    pub mount_path: String,
    pub read_only: bool,
    pub sub_path: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct DeviceMapping {
    pub host_path: String,
    /// Defaults to `host_path` when empty.
    pub container_path: String,
    /// cgroup permissions, `rwm` when empty.
    pub permissions: String,
}

/// A pod volume, with everything the device needs to create it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    pub name: String,
    pub source: VolumeSource,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "type"
)]
pub enum VolumeSource {
    /// A scratch directory that lives as long as the pod.
    EmptyDir {
        #[serde(default)]
        in_memory: bool,
        #[serde(default)]
        size_limit_bytes: Option<u64>,
    },
    /// A path on the device.
    HostPath {
        path: String,
        /// Kubernetes hostPath type (`Directory`, `DirectoryOrCreate`, `CharDevice`, ...).
        #[serde(default)]
        kind: Option<String>,
    },
    /// Files resolved by the gateway from ConfigMaps, Secrets, the downward API or a
    /// projection; written under the agent's state directory and mounted read-only.
    Files {
        files: Vec<FileItem>,
        /// True when any content came from a Secret: written with mode 0600 / tmpfs.
        #[serde(default)]
        sensitive: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct FileItem {
    /// Relative path inside the volume (no `..`, not absolute).
    pub path: String,
    pub content: Base64Bytes,
    /// Unix permission bits, e.g. `0o644` = 420.
    pub mode: u32,
}

/// A probe with numeric ports (named ports are resolved by the gateway).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    pub handler: ProbeHandler,
    #[serde(default)]
    pub initial_delay_seconds: u32,
    #[serde(default = "default_period")]
    pub period_seconds: u32,
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u32,
    #[serde(default = "default_one")]
    pub success_threshold: u32,
    #[serde(default = "default_failure_threshold")]
    pub failure_threshold: u32,
}

fn default_period() -> u32 {
    10
}
fn default_timeout() -> u32 {
    1
}
fn default_one() -> u32 {
    1
}
fn default_failure_threshold() -> u32 {
    3
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "type"
)]
pub enum ProbeHandler {
    Exec {
        command: Vec<String>,
    },
    HttpGet {
        #[serde(default)]
        host: Option<String>,
        port: u16,
        #[serde(default)]
        path: String,
        /// `HTTP` or `HTTPS`.
        #[serde(default)]
        scheme: String,
        #[serde(default)]
        headers: Vec<HttpHeader>,
    },
    TcpSocket {
        #[serde(default)]
        host: Option<String>,
        port: u16,
    },
    /// `grpc.health.v1.Health/Check` over plaintext HTTP/2 to the pod's address
    /// (protocol 1.3; sent only to agents declaring
    /// [`crate::DeviceCapabilities::grpc_probes`]).
    Grpc {
        port: u16,
        /// The request's `service` (empty or absent: the server's overall health).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct HttpHeader {
    pub name: String,
    pub value: String,
}

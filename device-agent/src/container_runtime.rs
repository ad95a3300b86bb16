//! The small interface the agent needs from a container runtime, so that Docker/Podman
//! (through the Docker Engine API, [`crate::docker_runtime`]) and later containerd can
//! sit behind it.

use std::time::Duration;

use edge_protocol::{DeviceMapping, RegistryCredential, UnixMillis};
use futures::future::BoxFuture;
use futures::stream::BoxStream;

use crate::container_labels::ContainerIdentity;
pub use crate::pull_progress::PullProgress;

/// Told how far a pull is, as the runtime reports it (see [`crate::pull_progress`]).
pub type ProgressSink<'a> = &'a (dyn Fn(PullProgress) + Send + Sync);

#[derive(Debug, Clone, thiserror::Error)]
pub enum RuntimeError {
    #[error("container runtime is unreachable at {socket}: {message} (is Docker/Podman running?)")]
    Unreachable { socket: String, message: String },
    #[error("not found: {0}")]
    NotFound(String),
    #[error("pulling image {image}: {message}")]
    Pull { image: String, message: String },
    #[error("{0}")]
    Api(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

/// What a container is doing, as the runtime reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunState {
    /// Created (or starting) but not running yet.
    Created,
    Running {
        started_at: UnixMillis,
    },
    Exited {
        exit_code: i32,
        started_at: Option<UnixMillis>,
        finished_at: Option<UnixMillis>,
        oom_killed: bool,
        /// Runtime error when the container could not start (e.g. executable not found).
        error: Option<String>,
    },
}

/// One managed container found on the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSnapshot {
    pub id: String,
    pub identity: ContainerIdentity,
    pub state: RunState,
    pub image_id: String,
    /// IP address in the container's network (none for host networking).
    pub ip_address: Option<String>,
}

/// A bind mount from the device into a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    pub host_path: String,
    pub container_path: String,
    pub read_only: bool,
}

/// A published port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    pub container_port: u16,
    pub host_port: Option<u16>,
    /// `tcp`, `udp`, `sctp`.
    pub protocol: String,
}

/// Everything needed to create one container.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CreateContainer {
    pub identity: Option<ContainerIdentity>,
    pub image: String,
    /// Kubernetes `command` (entrypoint override).
    pub command: Vec<String>,
    /// Kubernetes `args` (cmd override).
    pub args: Vec<String>,
    pub working_dir: Option<String>,
    /// `NAME=value`.
    pub env: Vec<String>,
    pub binds: Vec<BindMount>,
    /// tmpfs mounts: container path and mount options.
    pub tmpfs: Vec<(String, String)>,
    pub devices: Vec<DeviceMapping>,
    pub ports: Vec<PortMapping>,
    pub cpu_limit_millis: Option<u64>,
    /// CPU weight from the request ([`cpu_shares`]); `None`: the runtime's default.
    pub cpu_shares: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
    pub host_network: bool,
    pub hostname: Option<String>,
    pub privileged: bool,
    /// `container:<id>`: share that container's PID namespace (ephemeral containers).
    pub pid_mode: Option<String>,
    /// `container:<id>`: share that container's network namespace (the pod's infra
    /// container, or for ephemeral containers without one the target); takes the place
    /// of `host_network`.
    pub network_mode: Option<String>,
    /// `container:<id>` to join the pod's infra container's IPC namespace, `shareable`
    /// for the infra container itself.
    pub ipc_mode: Option<String>,
    /// Keep stdin open for attach.
    pub stdin: bool,
    /// Close stdin when the first attach ends.
    pub stdin_once: bool,
    pub tty: bool,
    /// `nvidia.com/gpu` device ids assigned to the container, passed as the runtime's
    /// GPU request mode says ([`crate::gpu_request`]).
    pub gpus: Vec<String>,
}

/// Options of a log read, as the kubelet's containerLogs takes them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogReadOptions {
    pub follow: bool,
    pub tail_lines: Option<u64>,
    /// Unix seconds.
    pub since: Option<i64>,
    pub timestamps: bool,
}

/// The kubelet's CPU shares for a CPU request: milliCPU × 1024 / 1000, at least 2 (also
/// for a container without a request), at most 262144.
pub fn cpu_shares(request_millis: Option<u64>) -> u64 {
    const MIN_SHARES: u64 = 2;
    const MAX_SHARES: u64 = 262_144;
    (request_millis.unwrap_or(0).saturating_mul(1024) / 1000).clamp(MIN_SHARES, MAX_SHARES)
}

/// The container runtime as the agent sees it.
pub trait ContainerRuntime: Send + Sync + 'static {
    /// `docker://24.0.7` style name and version, for the node report.
    fn version(&self) -> BoxFuture<'_, Result<String>>;
    /// Directory holding the runtime's images and containers (for disk capacity).
    fn data_root(&self) -> BoxFuture<'_, Result<Option<String>>>;
    /// Every container carrying the agent's labels, running or not.
    fn list_managed(&self) -> BoxFuture<'_, Result<Vec<ContainerSnapshot>>>;
    fn image_present<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<bool>>;
    /// The id of the image `image` names on the runtime (without `sha256:`, as
    /// [`crate::runtime_images::image_key`]), `None` when the runtime has no such image.
    fn image_id<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<Option<String>>>;
    fn pull<'a>(
        &'a self,
        image: &'a str,
        credential: Option<&'a RegistryCredential>,
    ) -> BoxFuture<'a, Result<()>>;
    /// [`ContainerRuntime::pull`], telling `progress` the bytes summed over the layers
    /// as the runtime reports them (never, for a runtime that does not).
    fn pull_with_progress<'a>(
        &'a self,
        image: &'a str,
        credential: Option<&'a RegistryCredential>,
        progress: ProgressSink<'a>,
    ) -> BoxFuture<'a, Result<()>> {
        let _ = progress;
        self.pull(image, credential)
    }
    /// Creates (does not start) a container; returns its id.
    fn create<'a>(&'a self, spec: &'a CreateContainer) -> BoxFuture<'a, Result<String>>;
    fn start<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>>;
    /// SIGTERM, then SIGKILL after `grace`.
    fn stop<'a>(&'a self, id: &'a str, grace: Duration) -> BoxFuture<'a, Result<()>>;
    fn remove<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>>;
    /// Runs a command in a running container; returns its exit code and output.
    fn exec<'a>(
        &'a self,
        id: &'a str,
        command: &'a [String],
        timeout: Duration,
    ) -> BoxFuture<'a, Result<(i64, String)>>;
    /// The container's log (stdout and stderr interleaved) as byte chunks.
    fn logs(&self, id: &str, options: LogReadOptions) -> BoxStream<'static, Result<Vec<u8>>>;
}

#[cfg(test)]
mod tests;

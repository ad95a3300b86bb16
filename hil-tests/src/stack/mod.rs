//! The full stack for end-to-end scenarios: a Kubernetes API (the emulator, the real
//! control plane of [`crate::controlplane`], or a user's cluster through
//! `EDGE_E2E_KUBECONFIG`), a broker (the gateway's embedded one, a
//! real Mosquitto, or a NATS cluster), the `edge-gateway` binary and real `edge-agent` processes (host
//! build, or the static aarch64 / armv7 builds under qemu-aarch64 / qemu-arm) running pods
//! on Podman.
//!
//! Every part is a real process; the scenarios talk to them only through their public
//! interfaces (the Kubernetes API, `kubectl`, MQTT, the container runtime).

mod agent;
mod child_process;
mod cluster;
mod gateway;
mod kubectl;
mod mosquitto;
mod nats_cluster;
mod stack_env;

pub use agent::{Agent, AgentBuild, AgentOptions};
pub use child_process::ChildProcess;
pub use cluster::{Cluster, ClusterBackend};
pub use gateway::{Gateway, GatewayOptions, GatewayReady};
pub use kubectl::Kubectl;
pub use mosquitto::{MOSQUITTO_BIN, Mosquitto};
pub use nats_cluster::{NATS_SERVER_BIN, NatsCluster, NatsNodePorts};
pub use stack_env::{
    BrokerKind, STACK_LABEL, Stack, StackOptions, binary, rbac_refusals, remove_pod_containers,
};

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// Why the test bed could not bring a part of the stack up.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("{tool} is needed but missing: {hint}")]
    MissingTool { tool: String, hint: String },
    #[error("could not start {program}: {error}")]
    Spawn { program: String, error: String },
    #[error("{path}: {error}")]
    Io { path: String, error: String },
    #[error("{what} did not become ready within {seconds} s{detail}")]
    NotReady {
        what: String,
        seconds: u64,
        detail: String,
    },
    #[error("kubernetes: {0}")]
    Kubernetes(String),
    #[error(
        "device id {device} is in use by another agent of a running test (this or another \
         test binary): agents with one id on the one Podman tear down each other's \
         containers; give each test its own device ids"
    )]
    DeviceIdInUse { device: String },
    #[error("{0}")]
    Other(String),
}

impl StackError {
    pub(crate) fn io(path: &Path, e: impl std::fmt::Display) -> Self {
        StackError::Io {
            path: path.display().to_string(),
            error: e.to_string(),
        }
    }
}

pub type StackResult<T> = Result<T, StackError>;

/// A loopback port nobody listens on right now (bind to port 0, then release it).
pub fn free_loopback_port() -> StackResult<u16> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| StackError::Other(e.to_string()))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| StackError::Other(e.to_string()))
}

/// Waits until something accepts TCP connections on `127.0.0.1:port`.
pub fn wait_for_tcp(port: u16, timeout: Duration, what: &str) -> StackResult<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(StackError::NotReady {
        what: what.to_owned(),
        seconds: timeout.as_secs(),
        detail: format!(" (nothing listens on 127.0.0.1:{port})"),
    })
}

/// Polls `check` every 200 ms until it returns `Some`, or fails after `timeout` with
/// the last observation in the message.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> StackResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => "condition not met".to_owned(),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(StackError::NotReady {
                what: what.to_owned(),
                seconds: timeout.as_secs(),
                detail: format!("; last: {last}"),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

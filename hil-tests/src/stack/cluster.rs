//! The Kubernetes API the stack runs against: our emulator, the real control plane
//! built from upstream (shared by the test binary), or a cluster of the user's.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::apiserver::{ApiServer, ApiServerConfig};
use crate::controlplane::{ControlPlane, client_from_kubeconfig};

use super::{StackError, StackResult};

/// Environment variable that points the end-to-end scenarios at a real cluster.
pub const E2E_KUBECONFIG_ENV: &str = "EDGE_E2E_KUBECONFIG";

/// Which Kubernetes API a stack asks for (`EDGE_E2E_KUBECONFIG` overrides both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterBackend {
    /// The hil-tests emulator, one per stack: fast, zero build.
    Emulator,
    /// Upstream etcd, kube-apiserver, kube-controller-manager and kube-scheduler, one
    /// shared by every stack of the test binary.
    ControlPlane,
}

/// A Kubernetes API server the scenarios use.
#[derive(Debug)]
pub enum Cluster {
    /// The hil-tests emulator, started for this stack.
    Emulator(ApiServer),
    /// The real control plane of this test binary.
    ControlPlane(&'static ControlPlane),
    /// A real cluster (kind, k3s, ...) from `EDGE_E2E_KUBECONFIG`.
    Real {
        kubeconfig: PathBuf,
        /// CA of the client certificate its API server presents to kubelets
        /// (`EDGE_E2E_KUBELET_CLIENT_CA`), if known.
        kubelet_client_ca: Option<PathBuf>,
    },
}

impl Cluster {
    /// A real cluster when `EDGE_E2E_KUBECONFIG` is set, otherwise the backend asked for.
    pub async fn start(
        backend: ClusterBackend,
        dir: &Path,
        node_lease_grace: Duration,
    ) -> StackResult<Self> {
        if let Some(kubeconfig) = std::env::var_os(E2E_KUBECONFIG_ENV) {
            return Ok(Cluster::Real {
                kubeconfig: PathBuf::from(kubeconfig),
                kubelet_client_ca: std::env::var_os("EDGE_E2E_KUBELET_CLIENT_CA")
                    .map(PathBuf::from),
            });
        }
        if backend == ClusterBackend::ControlPlane {
            let cp = tokio::task::spawn_blocking(ControlPlane::shared)
                .await
                .map_err(|e| StackError::Other(e.to_string()))??;
            return Ok(Cluster::ControlPlane(cp));
        }
        let mut config = ApiServerConfig::new(dir.join("apiserver"));
        config.node_lease_grace = node_lease_grace;
        // As real clusters do: every pod gets the kube-api-access projected volume.
        config.service_account_token_volumes = true;
        let server = ApiServer::start(config)
            .await
            .map_err(|e| StackError::Kubernetes(format!("starting the API emulator: {e}")))?;
        Ok(Cluster::Emulator(server))
    }

    pub fn is_emulated(&self) -> bool {
        matches!(self, Cluster::Emulator(_))
    }

    /// The node monitor grace period of the cluster's node lifecycle controller, when
    /// the test bed knows it.
    pub fn node_monitor_grace_period(&self) -> Option<Duration> {
        match self {
            Cluster::ControlPlane(cp) => Some(cp.node_monitor_grace_period()),
            _ => None,
        }
    }

    /// Kubeconfig for the tests and kubectl (cluster admin on the control plane).
    pub fn kubeconfig_path(&self) -> &Path {
        match self {
            Cluster::Emulator(s) => s.kubeconfig_path(),
            Cluster::ControlPlane(cp) => cp.admin_kubeconfig(),
            Cluster::Real { kubeconfig, .. } => kubeconfig,
        }
    }

    /// Kubeconfig the gateway runs with: on the control plane its own ServiceAccount
    /// under the shipped ClusterRole, elsewhere the same as the tests'.
    pub fn gateway_kubeconfig_path(&self) -> &Path {
        match self {
            Cluster::ControlPlane(cp) => cp.gateway_kubeconfig(),
            other => other.kubeconfig_path(),
        }
    }

    /// The kubectl binary to use: the control plane's own release, else the PATH one.
    pub fn kubectl_binary(&self) -> PathBuf {
        match self {
            Cluster::ControlPlane(cp) => cp.binaries.kubectl.clone(),
            _ => PathBuf::from("kubectl"),
        }
    }

    pub fn kubelet_client_ca(&self) -> Option<&Path> {
        match self {
            Cluster::Emulator(s) => Some(s.kubelet_client_ca_path()),
            Cluster::ControlPlane(cp) => Some(cp.kubelet_client_ca()),
            Cluster::Real {
                kubelet_client_ca, ..
            } => kubelet_client_ca.as_deref(),
        }
    }

    /// A kube-rs client for this cluster.
    pub async fn client(&self) -> StackResult<kube::Client> {
        match self {
            Cluster::Emulator(s) => s
                .client()
                .await
                .map_err(|e| StackError::Kubernetes(e.to_string())),
            other => client_from_kubeconfig(other.kubeconfig_path()).await,
        }
    }
}

//! The Kubernetes API the stack runs against: our emulator, or a real cluster.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::apiserver::{ApiServer, ApiServerConfig};

use super::{StackError, StackResult};

/// Environment variable that points the end-to-end scenarios at a real cluster.
pub const E2E_KUBECONFIG_ENV: &str = "EDGE_E2E_KUBECONFIG";

/// A Kubernetes API server the scenarios use.
#[derive(Debug)]
pub enum Cluster {
    /// The hil-tests emulator, started for this stack.
    Emulator(ApiServer),
    /// A real cluster (kind, k3s, ...) from `EDGE_E2E_KUBECONFIG`.
    Real {
        kubeconfig: PathBuf,
        /// CA of the client certificate its API server presents to kubelets
        /// (`EDGE_E2E_KUBELET_CLIENT_CA`), if known.
        kubelet_client_ca: Option<PathBuf>,
    },
}

impl Cluster {
    /// A real cluster when `EDGE_E2E_KUBECONFIG` is set, otherwise a new emulator.
    pub async fn start(dir: &Path, node_lease_grace: Duration) -> StackResult<Self> {
        if let Some(kubeconfig) = std::env::var_os(E2E_KUBECONFIG_ENV) {
            return Ok(Cluster::Real {
                kubeconfig: PathBuf::from(kubeconfig),
                kubelet_client_ca: std::env::var_os("EDGE_E2E_KUBELET_CLIENT_CA")
                    .map(PathBuf::from),
            });
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

    pub fn kubeconfig_path(&self) -> &Path {
        match self {
            Cluster::Emulator(s) => s.kubeconfig_path(),
            Cluster::Real { kubeconfig, .. } => kubeconfig,
        }
    }

    pub fn kubelet_client_ca(&self) -> Option<&Path> {
        match self {
            Cluster::Emulator(s) => Some(s.kubelet_client_ca_path()),
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
            Cluster::Real { kubeconfig, .. } => {
                let raw = kube::config::Kubeconfig::read_from(kubeconfig)
                    .map_err(|e| StackError::Kubernetes(e.to_string()))?;
                let config = kube::Config::from_custom_kubeconfig(raw, &Default::default())
                    .await
                    .map_err(|e| StackError::Kubernetes(e.to_string()))?;
                kube::Client::try_from(config).map_err(|e| StackError::Kubernetes(e.to_string()))
            }
        }
    }
}

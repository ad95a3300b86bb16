//! The Kubernetes API of one benchmark run: the emulator in this process, or the real
//! control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler as
//! processes of their own, started fresh for the run).

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;

use crate::apiserver::{ApiServer, ApiServerConfig};
use crate::controlplane::{ControlPlane, ControlPlaneConfig};
use crate::stack::{ClusterBackend, StackError, StackResult, eventually};

fn err(e: impl std::fmt::Display) -> StackError {
    StackError::Other(e.to_string())
}

/// A running API for one run. Dropping it stops it.
#[derive(Debug)]
pub enum BenchApi {
    Emulator(ApiServer),
    ControlPlane(Box<ControlPlane>),
}

impl BenchApi {
    /// Starts the emulator, or a control plane of its own in `dir` (blocking work on a
    /// blocking thread; its components die with this process).
    pub async fn start(backend: ClusterBackend, dir: &Path) -> StackResult<Self> {
        match backend {
            ClusterBackend::Emulator => {
                let api = ApiServer::start(ApiServerConfig::new(dir.join("apiserver")))
                    .await
                    .map_err(err)?;
                Ok(Self::Emulator(api))
            }
            ClusterBackend::ControlPlane => {
                let config = ControlPlaneConfig::new(dir.join("controlplane"));
                let cp = tokio::task::spawn_blocking(move || ControlPlane::start(config))
                    .await
                    .map_err(err)??;
                Ok(Self::ControlPlane(Box::new(cp)))
            }
        }
    }

    /// `emulator` or `control-plane`, as recorded in the results.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Emulator(_) => "emulator",
            Self::ControlPlane(_) => "control-plane",
        }
    }

    /// `Kubernetes v1.37.2` for the control plane.
    pub fn version(&self) -> Option<String> {
        match self {
            Self::Emulator(_) => None,
            Self::ControlPlane(cp) => Some(cp.server_version()),
        }
    }

    /// A client for the benchmark's own watches and pods (cluster admin).
    pub async fn client(&self) -> StackResult<kube::Client> {
        match self {
            Self::Emulator(api) => api.client().await.map_err(err),
            Self::ControlPlane(cp) => cp.client().await,
        }
    }

    /// The gateway's kubeconfig: on the control plane its own ServiceAccount under the
    /// shipped ClusterRole.
    pub fn gateway_kubeconfig(&self) -> &Path {
        match self {
            Self::Emulator(api) => api.kubeconfig_path(),
            Self::ControlPlane(cp) => cp.gateway_kubeconfig(),
        }
    }

    /// The CA of the client certificate the API server presents to the kubelet API.
    pub fn kubelet_client_ca(&self) -> &Path {
        match self {
            Self::Emulator(api) => api.kubelet_client_ca_path(),
            Self::ControlPlane(cp) => cp.kubelet_client_ca(),
        }
    }

    /// The control plane's processes by component name (none for the emulator, which
    /// runs in the benchmark process).
    pub fn component_pids(&self) -> Vec<(String, u32)> {
        match self {
            Self::Emulator(_) => Vec::new(),
            Self::ControlPlane(cp) => cp.pids(),
        }
    }

    /// On the control plane, pods can only be created in a namespace once the service
    /// account controller has made its `default` ServiceAccount.
    pub async fn wait_pods_allowed(
        &self,
        client: &kube::Client,
        namespace: &str,
    ) -> StackResult<()> {
        if matches!(self, Self::Emulator(_)) {
            return Ok(());
        }
        let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
        eventually(
            "the default ServiceAccount of the bench namespace",
            Duration::from_secs(120),
            || {
                let sas = sas.clone();
                async move {
                    match sas.get_opt("default").await {
                        Ok(found) => Ok(found.map(|_| ())),
                        Err(e) => Err(e.to_string()),
                    }
                }
            },
        )
        .await
    }

    pub async fn shutdown(self) {
        match self {
            Self::Emulator(api) => api.shutdown().await,
            // Drop kills the components.
            Self::ControlPlane(cp) => drop(cp),
        }
    }
}

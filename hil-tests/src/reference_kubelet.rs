//! The streams benchmark's reference kubelet (`gateway/examples/reference_kubelet.rs`, a
//! kubelet that serves only port-forward, straight to the container's address, with no
//! MQTT and no device on the way) as a process, and the Node and Pod that make
//! kube-apiserver send `kubectl port-forward` to it.

use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};

/// Errors of the reference kubelet.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceKubeletError {
    #[error(
        "starting {path}: {source} (build it with `cargo build -p edge-gateway --example reference_kubelet`)"
    )]
    Spawn {
        path: String,
        source: std::io::Error,
    },
    #[error("the reference kubelet did not say where it listens: {0:?}")]
    NoPort(String),
    #[error("registering the reference node: {0}")]
    Kubernetes(#[from] kube::Error),
}

/// A running reference kubelet; killed when dropped.
#[derive(Debug)]
pub struct ReferenceKubelet {
    pub port: u16,
    child: Child,
}

impl Drop for ReferenceKubelet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ReferenceKubelet {
    /// Starts `binary` forwarding to `target`, accepting client certificates of
    /// `client_ca` (the API server's kubelet client CA).
    pub fn start(
        binary: &Path,
        client_ca: &Path,
        target: IpAddr,
    ) -> Result<Self, ReferenceKubeletError> {
        let mut child = Command::new(binary)
            .arg("--client-ca")
            .arg(client_ca)
            .arg("--target")
            .arg(target.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|source| ReferenceKubeletError::Spawn {
                path: binary.display().to_string(),
                source,
            })?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        let port = line
            .trim()
            .strip_prefix("listening on 127.0.0.1:")
            .and_then(|p| p.parse().ok());
        match port {
            Some(port) => Ok(Self { port, child }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(ReferenceKubeletError::NoPort(line))
            }
        }
    }

    /// Its process id (for CPU figures).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Makes this the kubelet of a new Node `node` (Ready, its endpoint 127.0.0.1 and
    /// this port, declaring `ExtendWebSocketsToKubelet` as the gateway's Nodes do) and
    /// puts a Pod `pod` on it in `namespace`, Running with `pod_ip`: `kubectl
    /// port-forward pod/<pod>` then goes through kube-apiserver to this kubelet.
    pub async fn register(
        &self,
        client: &kube::Client,
        node: &str,
        namespace: &str,
        pod: &str,
        pod_ip: IpAddr,
    ) -> Result<(), ReferenceKubeletError> {
        let now = jiff::Timestamp::now().to_string();
        let nodes: Api<Node> = Api::all(client.clone());
        let manifest = serde_json::json!({"metadata": {"name": node}});
        let created = serde_json::from_value(manifest).map_err(kube::Error::SerdeError)?;
        nodes.create(&PostParams::default(), &created).await?;
        let status = serde_json::json!({"status": {
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}},
            "declaredFeatures": ["ExtendWebSocketsToKubelet"],
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                "lastHeartbeatTime": now, "lastTransitionTime": now}],
        }});
        nodes
            .patch_status(node, &PatchParams::default(), &Patch::Merge(&status))
            .await?;
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        // tolerates the taints the node lifecycle controller puts on a node without
        // heartbeats, so the pod is not evicted during the benchmark
        let manifest = serde_json::json!({
            "metadata": {"name": pod},
            "spec": {
                "nodeName": node,
                "tolerations": [{"operator": "Exists"}],
                "containers": [{"name": "main", "image": "reference"}],
            }
        });
        let created = serde_json::from_value(manifest).map_err(kube::Error::SerdeError)?;
        pods.create(&PostParams::default(), &created).await?;
        let status = serde_json::json!({"status": {
            "phase": "Running",
            "podIP": pod_ip.to_string(),
            "podIPs": [{"ip": pod_ip.to_string()}],
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
        }});
        pods.patch_status(pod, &PatchParams::default(), &Patch::Merge(&status))
            .await?;
        Ok(())
    }
}

//! The labels and names the agent puts on every container it creates, so that a
//! restarted agent finds (adopts) its containers instead of recreating them.

use std::collections::HashMap;

pub const POD_UID: &str = "io.edge-kube.pod-uid";
pub const POD_NAMESPACE: &str = "io.edge-kube.pod-namespace";
pub const POD_NAME: &str = "io.edge-kube.pod-name";
pub const CONTAINER_NAME: &str = "io.edge-kube.container-name";
pub const RESTART_COUNT: &str = "io.edge-kube.restart-count";
pub const MANAGED: &str = "io.edge-kube.managed";
/// The device (agent) that owns the container: agents sharing one runtime (test beds,
/// several simulated devices on one host) never touch each other's containers.
pub const DEVICE: &str = "io.edge-kube.device";
/// Hash of the container spec the container was created from (a changed spec, e.g. a new
/// image, replaces the container as the kubelet does).
pub const SPEC_HASH: &str = "io.edge-kube.spec-hash";
/// Grace period to stop the container with when its pod is no longer known.
pub const GRACE_PERIOD: &str = "io.edge-kube.termination-grace-period";
/// Id of the pod's infra (sandbox) container whose namespaces the container joined; a
/// container of an older sandbox is replaced, as the kubelet does.
pub const SANDBOX_ID: &str = "io.edge-kube.sandbox-id";
/// The container name of a pod's infra (sandbox) container. Kubernetes container names
/// are lowercase DNS labels, so it never collides with one of the pod's containers.
pub const SANDBOX_CONTAINER_NAME: &str = "POD";
/// The GPUs (`nvidia.com/gpu` device ids, comma-separated) assigned to the container;
/// a restarted agent takes its GPU assignments back from it.
pub const GPU_DEVICES: &str = "io.edge-kube.gpu-devices";

/// Identity of a managed container, read back from its labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerIdentity {
    pub device: String,
    pub pod_uid: String,
    pub pod_namespace: String,
    pub pod_name: String,
    pub container_name: String,
    pub restart_count: u32,
    pub spec_hash: String,
    pub grace_period_seconds: u64,
    /// The infra container joined (empty: none, e.g. host network or the infra itself).
    pub sandbox_id: String,
    /// The `nvidia.com/gpu` devices assigned to it (empty: none).
    pub gpu_devices: Vec<String>,
}

impl ContainerIdentity {
    pub fn to_labels(&self) -> HashMap<String, String> {
        let mut labels = HashMap::from([
            (POD_UID.to_owned(), self.pod_uid.clone()),
            (POD_NAMESPACE.to_owned(), self.pod_namespace.clone()),
            (POD_NAME.to_owned(), self.pod_name.clone()),
            (CONTAINER_NAME.to_owned(), self.container_name.clone()),
            (RESTART_COUNT.to_owned(), self.restart_count.to_string()),
            (MANAGED.to_owned(), "true".to_owned()),
            (DEVICE.to_owned(), self.device.clone()),
            (SPEC_HASH.to_owned(), self.spec_hash.clone()),
            (
                GRACE_PERIOD.to_owned(),
                self.grace_period_seconds.to_string(),
            ),
        ]);
        if !self.sandbox_id.is_empty() {
            labels.insert(SANDBOX_ID.to_owned(), self.sandbox_id.clone());
        }
        if !self.gpu_devices.is_empty() {
            labels.insert(GPU_DEVICES.to_owned(), self.gpu_devices.join(","));
        }
        labels
    }

    /// Whether this is a pod's infra (sandbox) container.
    pub fn is_sandbox(&self) -> bool {
        self.container_name == SANDBOX_CONTAINER_NAME
    }

    /// `None` when the container is not one of ours (or its labels were tampered with).
    pub fn from_labels(labels: &HashMap<String, String>) -> Option<Self> {
        if labels.get(MANAGED).map(String::as_str) != Some("true") {
            return None;
        }
        Some(Self {
            device: labels.get(DEVICE).cloned().unwrap_or_default(),
            pod_uid: labels.get(POD_UID)?.clone(),
            pod_namespace: labels.get(POD_NAMESPACE).cloned().unwrap_or_default(),
            pod_name: labels.get(POD_NAME).cloned().unwrap_or_default(),
            container_name: labels.get(CONTAINER_NAME)?.clone(),
            restart_count: labels.get(RESTART_COUNT)?.parse().ok()?,
            spec_hash: labels.get(SPEC_HASH).cloned().unwrap_or_default(),
            grace_period_seconds: labels
                .get(GRACE_PERIOD)
                .and_then(|g| g.parse().ok())
                .unwrap_or(30),
            sandbox_id: labels.get(SANDBOX_ID).cloned().unwrap_or_default(),
            gpu_devices: labels
                .get(GPU_DEVICES)
                .map(|ids| {
                    ids.split(',')
                        .filter(|id| !id.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// `edge_<pod-name>_<ns>_<container>_<uid8>_<restart>`.
    pub fn container_name(&self) -> String {
        let uid8: String = self.pod_uid.chars().filter(|c| *c != '-').take(8).collect();
        format!(
            "edge_{}_{}_{}_{}_{}",
            sanitize(&self.pod_name),
            sanitize(&self.pod_namespace),
            sanitize(&self.container_name),
            sanitize(&uid8),
            self.restart_count
        )
    }
}

/// Docker names allow `[a-zA-Z0-9][a-zA-Z0-9_.-]`; Kubernetes names already fit, this
/// only guards against hostile input.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;

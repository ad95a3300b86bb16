//! Pods the gateway writes to: their status (from the device's reports), and their
//! final deletion once the device stopped them (grace 0, uid precondition).

use edge_protocol::DeviceId;
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use serde_json::json;
use tracing::debug;

use super::{KubeFeedback, Worker, is_status};

/// Which pod instance a write is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PodInstance<'a> {
    pub(super) namespace: &'a str,
    pub(super) name: &'a str,
    pub(super) uid: &'a str,
}

impl PodInstance<'_> {
    fn target(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

impl Worker {
    /// Writes the pod's status; a pod that is gone or was replaced is left alone.
    pub(super) async fn patch_pod_status(&mut self, pod: PodInstance<'_>, status: &PodStatus) {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), pod.namespace);
        // metadata.uid in the patch makes it apply only to this pod instance
        let patch = json!({"metadata": {"uid": pod.uid}, "status": status});
        if let Err(e) = pods
            .patch_status(pod.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            if !is_status(&e, 404) && !is_status(&e, 409) {
                self.failed("patch_pod_status", &pod.target(), &e);
            }
        }
    }

    /// Deletes the pod for good (grace 0), only if it is still this instance; a failure
    /// is reported to the fleet, which tries again.
    pub(super) async fn delete_pod(&mut self, device: DeviceId, pod: PodInstance<'_>) {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), pod.namespace);
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(pod.uid.to_owned()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match pods.delete(pod.name, &dp).await {
            Ok(_) => debug!(%device, pod = %pod.target(), "pod deleted"),
            // gone already, or a new pod with the same name (precondition failed)
            Err(e) if is_status(&e, 404) || is_status(&e, 409) => {}
            Err(e) => {
                self.failed("delete_pod", &pod.target(), &e);
                let _ = self.feedback.send(KubeFeedback::DeleteFailed {
                    device,
                    uid: pod.uid.to_owned(),
                });
            }
        }
    }
}

//! The status of the device's Node: capacity, conditions, nodeInfo, addresses (built by
//! [`crate::node_object::node_status`]), written with a merge patch.

use edge_protocol::DeviceId;
use k8s_openapi::api::core::v1::{Node, NodeStatus};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::{KubeFeedback, Worker, is_status};

/// Patches the status of the device's Node.
pub(super) async fn patch_node_status(
    nodes: &Api<Node>,
    device: &DeviceId,
    status: &NodeStatus,
) -> Result<Node, kube::Error> {
    let patch = json!({ "status": status });
    nodes
        .patch_status(
            device.as_str(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
}

impl Worker {
    /// Writes the Node's status; a missing Node is reported to the fleet (it registers
    /// the Node again).
    pub(super) async fn update_node_status(&mut self, device: DeviceId, status: &NodeStatus) {
        let nodes: Api<Node> = Api::all(self.client.clone());
        if let Err(e) = patch_node_status(&nodes, &device, status).await {
            self.failed("patch_node_status", device.as_str(), &e);
            if is_status(&e, 404) {
                let _ = self.feedback.send(KubeFeedback::NodeFailed { device });
            }
        }
    }
}

//! The device's Node object: created on the first hello, its labels kept in step with
//! later hellos, never touched when it is not ours (a `NodeNameConflict` Event says
//! why). Its status is written by `node_status.rs`.

use std::collections::BTreeMap;

use edge_protocol::{DeviceId, NodeReport};
use k8s_openapi::api::core::v1::{Node, NodeSpec, NodeStatus, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tracing::{debug, warn};

use super::event_reason::{EventReason, EventType};
use super::events::node_event;
use super::node_status::{node_status, patch_node_status};
use super::{KubeFeedback, Worker, is_status};
use crate::kubelet_api::usage::{RESOURCE_METRICS_PATH_ANNOTATION, resource_metrics_path};
use crate::node_object::{NodeSettings, PROVIDER_TAINT_KEY, node_labels};
use crate::node_ownership::{NodeOwnership, ownership};

/// The provider taint, or none.
pub fn node_taints(settings: &NodeSettings) -> Vec<Taint> {
    if !settings.taint {
        return Vec::new();
    }
    vec![Taint {
        key: PROVIDER_TAINT_KEY.to_owned(),
        value: Some(settings.provider.clone()),
        effect: "NoSchedule".to_owned(),
        time_added: None,
    }]
}

/// The whole Node object to create for a device that said hello.
pub fn new_node(
    device: &DeviceId,
    report: &NodeReport,
    settings: &NodeSettings,
    now: Time,
) -> Node {
    let (labels, _) = node_labels(device, report);
    let taints = node_taints(settings);
    Node {
        metadata: ObjectMeta {
            name: Some(device.to_string()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([
                ("node.alpha.kubernetes.io/ttl".to_owned(), "0".to_owned()),
                (
                    RESOURCE_METRICS_PATH_ANNOTATION.to_owned(),
                    resource_metrics_path(device.as_str()),
                ),
            ])),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            taints: if taints.is_empty() {
                None
            } else {
                Some(taints)
            },
            ..Default::default()
        }),
        status: Some(node_status(report, settings, now.clone(), now)),
    }
}

/// The outcome of looking at the Node named like a device.
enum NodeClaimed {
    /// Created or updated; its uid.
    Ours(Option<String>),
    /// Someone else's: why.
    Foreign(String),
}

/// The merge patch of the Node's labels: ours and the device's, and `null` for those a
/// previous hello set that are no longer asked for.
fn label_patch(
    device: &DeviceId,
    report: &NodeReport,
    previous_labels: Option<&BTreeMap<String, String>>,
) -> serde_json::Map<String, serde_json::Value> {
    let (labels, dropped) = node_labels(device, report);
    if !dropped.is_empty() {
        debug!(%device, ?dropped, "dropped labels the device may not set");
    }
    let mut patch = serde_json::Map::new();
    for key in previous_labels.iter().flat_map(|p| p.keys()) {
        if !labels.contains_key(key) {
            patch.insert(key.clone(), serde_json::Value::Null);
        }
    }
    for (k, v) in &labels {
        patch.insert(k.clone(), json!(v));
    }
    patch
}

impl Worker {
    /// Sets one annotation on the device's Node (a Node gone meanwhile is left alone).
    pub(super) async fn annotate_node(&mut self, device: DeviceId, key: &str, value: Option<&str>) {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let patch = json!({"metadata": {"annotations": {key: value}}});
        match nodes
            .patch(
                device.as_str(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {}
            Err(e) if is_status(&e, 404) => debug!(%device, "Node gone before its annotation"),
            Err(e) => self.failed("annotate_node", device.as_str(), &e),
        }
    }

    /// Creates the device's Node or updates the labels of ours, then patches its status;
    /// tells the fleet what came of it.
    pub(super) async fn upsert_node(
        &mut self,
        device: DeviceId,
        report: &NodeReport,
        previous_labels: Option<&BTreeMap<String, String>>,
        status: &NodeStatus,
        now: Time,
    ) {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let label_patch = label_patch(&device, report, previous_labels);
        let uid = match self
            .claim_node(&nodes, &device, report, &label_patch, &now)
            .await
        {
            Ok(NodeClaimed::Ours(uid)) => uid,
            Ok(NodeClaimed::Foreign(why)) => {
                self.refuse_node(device, why, now).await;
                return;
            }
            Err((operation, e)) => {
                self.failed(operation, device.as_str(), &e);
                let _ = self.feedback.send(KubeFeedback::NodeFailed { device });
                return;
            }
        };
        if let Err(e) = patch_node_status(&nodes, &device, status).await {
            self.failed("patch_node_status", device.as_str(), &e);
        }
        let _ = self
            .feedback
            .send(KubeFeedback::NodeRegistered { device, uid });
    }

    /// Creates the device's Node, or updates the labels of the one we created; never
    /// touches a Node that is not ours. The label patch carries the uid of the Node that
    /// was checked, so it cannot land on a Node that replaced it meanwhile (409: looked
    /// at again).
    async fn claim_node(
        &self,
        nodes: &Api<Node>,
        device: &DeviceId,
        report: &NodeReport,
        label_patch: &serde_json::Map<String, serde_json::Value>,
        now: &Time,
    ) -> Result<NodeClaimed, (&'static str, kube::Error)> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = attempt >= 3;
            let existing = nodes
                .get_opt(device.as_str())
                .await
                .map_err(|e| ("get_node", e))?;
            let Some(node) = existing else {
                let node = new_node(device, report, &self.settings, now.clone());
                match nodes.create(&PostParams::default(), &node).await {
                    Ok(n) => return Ok(NodeClaimed::Ours(n.metadata.uid)),
                    Err(e) if is_status(&e, 409) && !last => continue,
                    Err(e) => return Err(("create_node", e)),
                }
            };
            if let NodeOwnership::Foreign { why } = ownership(&node, &self.settings) {
                return Ok(NodeClaimed::Foreign(why));
            }
            let annotations = json!({
                RESOURCE_METRICS_PATH_ANNOTATION: resource_metrics_path(device.as_str()),
            });
            let patch = json!({"metadata": {
                "labels": label_patch,
                "annotations": annotations,
                "uid": node.metadata.uid,
            }});
            match nodes
                .patch(
                    device.as_str(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
            {
                Ok(n) => return Ok(NodeClaimed::Ours(n.metadata.uid)),
                Err(e) if (is_status(&e, 409) || is_status(&e, 404)) && !last => continue,
                Err(e) => return Err(("patch_node", e)),
            }
        }
    }

    /// Leaves a Node that is not ours untouched, says so on the Node, and tells the fleet.
    async fn refuse_node(&mut self, device: DeviceId, why: String, now: Time) {
        warn!(%device, %why, "refusing a device: a Node with its name exists and is not ours");
        let message = format!(
            "edge-gateway refused device {device}: {why}. The device must use another id, or delete this Node if it is stale."
        );
        let event = node_event(
            device.as_str(),
            EventType::Warning,
            EventReason::NodeNameConflict,
            &message,
            now,
        );
        self.record_event(Box::new(event)).await;
        let _ = self
            .feedback
            .send(KubeFeedback::NodeRefused { device, why });
    }
}

#[cfg(test)]
mod tests;

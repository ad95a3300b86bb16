//! Kubernetes writes: Nodes, node status, Leases, pod status, pod deletion, Events.
//!
//! Operations are queued per device shard and executed in order by a few worker tasks,
//! so writes about one node never overtake each other and a slow API call for one
//! device does not hold up the rest of the fleet.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Instant;

use edge_protocol::{DeviceId, NodeReport};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Event, Node, NodeStatus, Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

mod events;
mod write_queue;

use events::EventCorrelator;
pub use events::{EVENT_AGGREGATION_WINDOW, node_event, pod_event};

pub use write_queue::{MAX_QUEUED_EVENTS, WriteQueue};

use crate::metrics::Metrics;
use crate::node_object::{NodeSettings, new_node, node_labels};
use crate::node_ownership::{NodeOwnership, ownership};

/// Namespace of node Leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// One write.
#[derive(Debug, Clone)]
pub enum KubeOp {
    /// Create the device's Node, or update its labels; then patch its status.
    UpsertNode {
        device: DeviceId,
        report: Box<NodeReport>,
        /// Labels set from the previous hello: those no longer asked for are removed.
        previous_labels: Option<BTreeMap<String, String>>,
        status: Box<NodeStatus>,
        now: Time,
    },
    PatchNodeStatus {
        device: DeviceId,
        status: Box<NodeStatus>,
    },
    RenewLease {
        device: DeviceId,
        node_uid: Option<String>,
        duration_seconds: i32,
    },
    PatchPodStatus {
        device: DeviceId,
        namespace: String,
        name: String,
        uid: String,
        status: Box<PodStatus>,
    },
    DeletePod {
        device: DeviceId,
        namespace: String,
        name: String,
        uid: String,
    },
    RecordEvent {
        device: DeviceId,
        event: Box<Event>,
    },
}

impl KubeOp {
    fn device(&self) -> &DeviceId {
        match self {
            KubeOp::UpsertNode { device, .. }
            | KubeOp::PatchNodeStatus { device, .. }
            | KubeOp::RenewLease { device, .. }
            | KubeOp::PatchPodStatus { device, .. }
            | KubeOp::DeletePod { device, .. }
            | KubeOp::RecordEvent { device, .. } => device,
        }
    }
}

/// What the fleet learns back from the API.
#[derive(Debug, Clone)]
pub enum KubeFeedback {
    NodeRegistered {
        device: DeviceId,
        uid: Option<String>,
    },
    NodeFailed {
        device: DeviceId,
    },
    /// A Node with the device's name exists and was not created by the gateway: it was
    /// left untouched (an Event on it says why).
    NodeRefused {
        device: DeviceId,
        why: String,
    },
    DeleteFailed {
        device: DeviceId,
        uid: String,
    },
}

/// Queues into the worker shards.
#[derive(Debug, Clone)]
pub struct KubeOps {
    target: Target,
}

#[derive(Debug, Clone)]
enum Target {
    Shards(Vec<Arc<WriteQueue>>),
    /// Every write, unmerged, to a channel (tests of the fleet logic).
    Detached(mpsc::UnboundedSender<KubeOp>),
}

impl KubeOps {
    pub fn send(&self, op: KubeOp) {
        match &self.target {
            Target::Shards(shards) => {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                op.device().hash(&mut h);
                let n = shards.len().max(1) as u64;
                let idx = (h.finish() % n) as usize;
                if let Some(shard) = shards.get(idx) {
                    shard.push(op);
                }
            }
            Target::Detached(tx) => {
                let _ = tx.send(op);
            }
        }
    }

    /// A queue with no workers, for tests of the fleet logic: returns the receiver.
    pub fn detached() -> (Self, mpsc::UnboundedReceiver<KubeOp>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Self {
                target: Target::Detached(tx),
            },
            rx,
        )
    }
}

/// The outcome of looking at the Node named like a device.
enum NodeClaimed {
    /// Created or updated; its uid.
    Ours(Option<String>),
    /// Someone else's: why.
    Foreign(String),
}

struct Worker {
    client: kube::Client,
    metrics: Arc<Metrics>,
    settings: NodeSettings,
    feedback: mpsc::UnboundedSender<KubeFeedback>,
    recent_events: EventCorrelator,
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

impl Worker {
    fn failed(&self, operation: &str, target: &str, e: &kube::Error) {
        self.metrics.api_error(operation);
        warn!(operation, target, error = %e, "Kubernetes API call failed");
    }

    /// Creates an Event, or counts a repeat of a recent one into it (the kubelet's
    /// correlation).
    async fn record_event(&mut self, event: Box<Event>) {
        let ns = event.metadata.namespace.clone().unwrap_or_default();
        let events: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        let now = Instant::now();
        let added = event.count.unwrap_or(1).max(1);
        if let Some(earlier) = self.recent_events.earlier(&event, now) {
            let count = earlier.count.saturating_add(added);
            let patch = json!({"count": count, "lastTimestamp": event.last_timestamp});
            match events
                .patch(
                    &earlier.name,
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
            {
                Ok(_) => {
                    self.recent_events.remember(
                        &Event {
                            metadata: ObjectMeta {
                                name: Some(earlier.name.clone()),
                                namespace: Some(earlier.namespace.clone()),
                                ..Default::default()
                            },
                            ..(*event).clone()
                        },
                        count,
                        now,
                    );
                    return;
                }
                Err(e) if is_status(&e, 404) => {}
                Err(e) => {
                    self.failed("patch_event", &ns, &e);
                    return;
                }
            }
        }
        match events.create(&PostParams::default(), &event).await {
            Ok(_) => self.recent_events.remember(&event, added, now),
            Err(e) => self.failed("create_event", &ns, &e),
        }
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
            let patch = json!({"metadata": {"labels": label_patch, "uid": node.metadata.uid}});
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
            "Warning",
            "NodeNameConflict",
            &message,
            now,
        );
        self.record_event(Box::new(event)).await;
        let _ = self
            .feedback
            .send(KubeFeedback::NodeRefused { device, why });
    }

    async fn run(&mut self, op: KubeOp) {
        match op {
            KubeOp::UpsertNode {
                device,
                report,
                previous_labels,
                status,
                now,
            } => {
                let nodes: Api<Node> = Api::all(self.client.clone());
                let (labels, dropped) = node_labels(&device, &report);
                if !dropped.is_empty() {
                    debug!(%device, ?dropped, "dropped labels the device may not set");
                }
                let mut label_patch = serde_json::Map::new();
                for key in previous_labels.iter().flat_map(|p| p.keys()) {
                    if !labels.contains_key(key) {
                        label_patch.insert(key.clone(), serde_json::Value::Null);
                    }
                }
                for (k, v) in &labels {
                    label_patch.insert(k.clone(), json!(v));
                }
                let uid = match self
                    .claim_node(&nodes, &device, &report, &label_patch, &now)
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
                if let Err(e) = patch_node_status(&nodes, &device, &status).await {
                    self.failed("patch_node_status", device.as_str(), &e);
                }
                let _ = self
                    .feedback
                    .send(KubeFeedback::NodeRegistered { device, uid });
            }
            KubeOp::PatchNodeStatus { device, status } => {
                let nodes: Api<Node> = Api::all(self.client.clone());
                if let Err(e) = patch_node_status(&nodes, &device, &status).await {
                    self.failed("patch_node_status", device.as_str(), &e);
                    if is_status(&e, 404) {
                        let _ = self.feedback.send(KubeFeedback::NodeFailed { device });
                    }
                }
            }
            KubeOp::RenewLease {
                device,
                node_uid,
                duration_seconds,
            } => {
                let leases: Api<Lease> = Api::namespaced(self.client.clone(), NODE_LEASE_NAMESPACE);
                let now = MicroTime(jiff::Timestamp::now());
                let spec = LeaseSpec {
                    holder_identity: Some(device.to_string()),
                    lease_duration_seconds: Some(duration_seconds),
                    renew_time: Some(now),
                    ..Default::default()
                };
                let patch = json!({ "spec": spec });
                match leases
                    .patch(
                        device.as_str(),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await
                {
                    Ok(_) => {}
                    Err(e) if is_status(&e, 404) => {
                        let lease = Lease {
                            metadata: ObjectMeta {
                                name: Some(device.to_string()),
                                namespace: Some(NODE_LEASE_NAMESPACE.to_owned()),
                                owner_references: node_uid.map(|uid| {
                                    vec![OwnerReference {
                                        api_version: "v1".to_owned(),
                                        kind: "Node".to_owned(),
                                        name: device.to_string(),
                                        uid,
                                        ..Default::default()
                                    }]
                                }),
                                ..Default::default()
                            },
                            spec: Some(spec),
                        };
                        if let Err(e) = leases.create(&PostParams::default(), &lease).await {
                            self.failed("create_lease", device.as_str(), &e);
                        }
                    }
                    Err(e) => self.failed("renew_lease", device.as_str(), &e),
                }
            }
            KubeOp::PatchPodStatus {
                namespace,
                name,
                uid,
                status,
                ..
            } => {
                let pods: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
                // metadata.uid in the patch makes it apply only to this pod instance
                let patch = json!({"metadata": {"uid": uid}, "status": status});
                if let Err(e) = pods
                    .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    if !is_status(&e, 404) && !is_status(&e, 409) {
                        self.failed("patch_pod_status", &format!("{namespace}/{name}"), &e);
                    }
                }
            }
            KubeOp::DeletePod {
                device,
                namespace,
                name,
                uid,
            } => {
                let pods: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
                let dp = DeleteParams {
                    grace_period_seconds: Some(0),
                    preconditions: Some(Preconditions {
                        uid: Some(uid.clone()),
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                match pods.delete(&name, &dp).await {
                    Ok(_) => debug!(%device, pod = %format!("{namespace}/{name}"), "pod deleted"),
                    // gone already, or a new pod with the same name (precondition failed)
                    Err(e) if is_status(&e, 404) || is_status(&e, 409) => {}
                    Err(e) => {
                        self.failed("delete_pod", &format!("{namespace}/{name}"), &e);
                        let _ = self
                            .feedback
                            .send(KubeFeedback::DeleteFailed { device, uid });
                    }
                }
            }
            KubeOp::RecordEvent { event, .. } => self.record_event(event).await,
        }
    }
}

async fn patch_node_status(
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

/// Starts `shards` workers; returns the queue handle.
pub fn spawn_workers(
    shards: usize,
    client: kube::Client,
    metrics: Arc<Metrics>,
    settings: NodeSettings,
    feedback: mpsc::UnboundedSender<KubeFeedback>,
    token: CancellationToken,
) -> KubeOps {
    let mut queues = Vec::new();
    for _ in 0..shards.max(1) {
        let queue = Arc::new(WriteQueue::new(metrics.clone()));
        queues.push(queue.clone());
        let worker = Worker {
            client: client.clone(),
            metrics: metrics.clone(),
            settings: settings.clone(),
            feedback: feedback.clone(),
            recent_events: EventCorrelator::default(),
        };
        let mut worker = worker;
        let token = token.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = token.cancelled() => break,
                    op = queue.pop() => worker.run(op).await,
                }
            }
        });
    }
    KubeOps {
        target: Target::Shards(queues),
    }
}

//! Kubernetes writes, one file per kind of object: the Node (`node.rs`), its status
//! (`node_status.rs`), its Lease (`lease.rs`), pod status and deletion (`pod.rs`),
//! Events (`events.rs`, with typed reasons in `event_reason.rs` and repeats folded by
//! `event_correlator.rs`), and a retired device's Node, Lease and pods removed
//! (`node_retirement.rs`).
//!
//! Operations are queued per device shard (`write_queue.rs`: latest wins for Leases and
//! statuses) and executed in order by a few worker tasks, so writes about one node never
//! overtake each other and a slow API call for one device does not hold up the rest of
//! the fleet.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use edge_protocol::{DeviceId, NodeReport};
use k8s_openapi::api::core::v1::{Event, NodeStatus, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::warn;

mod event_correlator;
mod event_reason;
mod events;
mod lease;
mod node;
mod node_retirement;
mod node_status;
mod pod;
mod write_queue;

pub use event_correlator::EVENT_AGGREGATION_WINDOW;
use event_correlator::EventCorrelator;
pub use event_reason::{EventReason, EventType};
pub use events::{EventPod, PodEvent, configmap_event, node_event, post_configmap_event};
pub use lease::NODE_LEASE_NAMESPACE;
pub use node::{new_node, node_taints};
pub use node_status::{KUBELET_VERSION, kubelet_version, node_status, ready_conditions};
use pod::PodInstance;
pub use write_queue::{MAX_QUEUED_EVENTS, WriteQueue};

use crate::metrics::Metrics;
use crate::node_object::NodeSettings;

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
    /// The device was retired: delete its Node (if ours), its Lease and every pod bound
    /// to it (a Warning Event on each); `why` goes into the pods' Events.
    RetireNode {
        device: DeviceId,
        why: String,
    },
    /// Set (or with `None`, remove) one annotation on the device's Node (the progress of
    /// agent rollouts and image pre-pulls).
    AnnotateNode {
        device: DeviceId,
        key: String,
        value: Option<String>,
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
            | KubeOp::RecordEvent { device, .. }
            | KubeOp::RetireNode { device, .. }
            | KubeOp::AnnotateNode { device, .. } => device,
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
    /// A retired device's Node, Lease and pods are gone.
    NodeRetired {
        device: DeviceId,
    },
    /// Some of a retired device's objects could not be deleted (the fleet tries again).
    RetireFailed {
        device: DeviceId,
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
    /// Makes the write if this replica may write about its device now (sharded
    /// gateways), abandoning it at the renew deadline (which moves on while the replica
    /// renews); else counts it as skipped. A Node registration skipped or abandoned is
    /// reported as failed, so that the fleet registers the Node again.
    async fn run_gated(&mut self, op: KubeOp, gate: &crate::sharding::ShardGate) {
        let device = op.device().clone();
        let registration = matches!(op, KubeOp::UpsertNode { .. });
        let feedback = self.feedback.clone();
        let not_made = || {
            if registration {
                let _ = feedback.send(KubeFeedback::NodeFailed {
                    device: device.clone(),
                });
            }
        };
        if !gate.may_write(&device) {
            self.metrics
                .kubernetes_writes_skipped
                .get_or_create(&vec![(
                    "reason".to_owned(),
                    "not_owned_or_fenced".to_owned(),
                )])
                .inc();
            not_made();
            return;
        }
        let write = self.run(op);
        tokio::pin!(write);
        loop {
            let Some(deadline) = gate.write_deadline() else {
                return write.await;
            };
            tokio::select! {
                () = &mut write => return,
                () = tokio::time::sleep_until(deadline.into()) => {
                    if gate.may_write(&device) {
                        // renewed meanwhile: the deadline moved on
                        continue;
                    }
                    warn!(%device, "Kubernetes write abandoned at this replica's renew deadline");
                    not_made();
                    return;
                }
            }
        }
    }

    fn failed(&self, operation: &str, target: &str, e: &kube::Error) {
        self.metrics.api_error(operation);
        warn!(operation, target, error = %e, "Kubernetes API call failed");
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
                self.upsert_node(device, &report, previous_labels.as_ref(), &status, now)
                    .await
            }
            KubeOp::PatchNodeStatus { device, status } => {
                self.update_node_status(device, &status).await
            }
            KubeOp::RenewLease {
                device,
                node_uid,
                duration_seconds,
            } => self.renew_lease(device, node_uid, duration_seconds).await,
            KubeOp::PatchPodStatus {
                namespace,
                name,
                uid,
                status,
                ..
            } => {
                let pod = PodInstance {
                    namespace: &namespace,
                    name: &name,
                    uid: &uid,
                };
                self.patch_pod_status(pod, &status).await
            }
            KubeOp::DeletePod {
                device,
                namespace,
                name,
                uid,
            } => {
                let pod = PodInstance {
                    namespace: &namespace,
                    name: &name,
                    uid: &uid,
                };
                self.delete_pod(device, pod).await
            }
            KubeOp::RecordEvent { event, .. } => self.record_event(event).await,
            KubeOp::RetireNode { device, why } => self.retire_node(device, why).await,
            KubeOp::AnnotateNode { device, key, value } => {
                self.annotate_node(device, &key, value.as_deref()).await
            }
        }
    }
}

/// Starts `shards` workers; returns the queue handle.
pub fn spawn_workers(
    shards: usize,
    gate: crate::sharding::ShardGate,
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
        let gate = gate.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = token.cancelled() => break,
                    op = queue.pop() => worker.run_gated(op, &gate).await,
                }
            }
        });
    }
    KubeOps {
        target: Target::Shards(queues),
    }
}

#[cfg(test)]
mod tests;

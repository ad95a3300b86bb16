//! What the fleet state machine decides: Kubernetes writes, MQTT messages, store
//! writes, pod-watch requests, metrics, rejections and log-stream routing. The runner
//! executes them in order.

use std::time::Duration;

use std::collections::BTreeSet;

use edge_protocol::{ContainerLogTail, DeviceId, LogChunk, NodeReport, RequestId};

use super::Outgoing;
use crate::device_streams::DeviceStreamMessage;
use crate::device_sync::PersistedDevice;
use crate::hostile_input::{RejectReason, Rejection};
use crate::kube_writer::KubeOp;

/// One effect of [`FleetState::handle`](super::FleetState::handle).
#[derive(Debug, Clone)]
pub enum FleetEffect {
    /// A Kubernetes write (to the writers' queues).
    Kube(KubeOp),
    /// A message to a device (to the outbox). A desired set is only sent while the
    /// device's set is stored: the runner drops it after a failed `StoreDesired`.
    Mqtt(Outgoing),
    /// Write a device's desired set and acknowledged generation (before the publish that
    /// follows). `retry`: a held-back set written again by a tick; once one of those
    /// fails, the others of the same tick wait for the next.
    StoreDesired {
        device: DeviceId,
        record: PersistedDevice,
        retry: bool,
    },
    /// Write a device's last node report.
    StoreReport {
        device: DeviceId,
        report: Box<NodeReport>,
    },
    /// Remove a device from the store; `retired`: a failure also fails readiness.
    ForgetStored {
        device: DeviceId,
        retired: bool,
    },
    /// Ask the pod watch to hand over this device's pods.
    AdoptPods(DeviceId),
    /// Count and log (rate limited) a dropped message.
    Reject(Rejection),
    /// Count a dropped message without logging it.
    CountRejected(RejectReason),
    Metric(MetricUpdate),
    /// Hand a log chunk to the kubelet API request waiting for it.
    DeliverLogChunk {
        device: DeviceId,
        id: RequestId,
        chunk: LogChunk,
    },
    /// End every open log stream of a device; `tell_device`: send it a cancel for each.
    EndLogStreams {
        device: DeviceId,
        tell_device: bool,
    },
    /// Add a device's new output of one of its containers to the offline log cache.
    CacheLogTail {
        device: DeviceId,
        tail: Box<ContainerLogTail>,
    },
    /// Forget the cached output of a pod (gone from the fleet).
    ForgetLogTails {
        pod_uid: String,
    },
    /// Forget the cached output of a device's pods other than `present`.
    RetainLogTails {
        device: DeviceId,
        present: BTreeSet<String>,
    },
    /// Hand a device's stream message to the kubelet API connection of its stream.
    DeliverStreamMessage {
        device: DeviceId,
        id: RequestId,
        message: DeviceStreamMessage,
    },
    /// End every exec, attach and port-forward stream of a device (it went offline, its
    /// agent restarted, or it was retired); `reason` reaches each stream's client.
    EndDeviceStreams {
        device: DeviceId,
        reason: String,
    },
}

/// A change of the gateway's metrics.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricUpdate {
    DevicesTotal(usize),
    DeviceOnline,
    DeviceOffline,
    /// A pod moved between phases (`None`: not counted before / any more).
    PodPhase {
        from: Option<String>,
        to: Option<String>,
    },
    DesiredToRunning(Duration),
    /// A step of a retirement: `retired`, `order_sent` or `refused`.
    Retirement(&'static str),
}

/// The effects of one input, in order.
pub type Effects = Vec<FleetEffect>;

//! What the fleet state machine is fed: decoded device messages, pod changes from the
//! pod watch, results of Kubernetes writes, ticks and log requests.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use edge_protocol::{DeviceId, LogRequest, RequestId};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::kube_writer::KubeFeedback;
use crate::mqtt_link::DeviceFrame;
use crate::status_mapping::now_time;
use crate::translation::{Translation, TranslationError};

/// One input of [`FleetState::handle`](super::FleetState::handle).
#[derive(Debug)]
pub enum FleetInput {
    /// A decoded message of a device, with whether the device is revoked (the runner
    /// reads the revocation list, a file, before handing the message over).
    Device {
        frame: DeviceFrame,
        revocation: Revocation,
    },
    /// A pod bound to one of the fleet's nodes, with its translation result.
    PodTranslated {
        device: DeviceId,
        pod: Arc<Pod>,
        result: Result<Translation, TranslationError>,
    },
    /// The cached pod object changed without anything the device sees (e.g. the watch
    /// brings our own status patch back).
    PodRefreshed(Arc<Pod>),
    /// A pod is gone from Kubernetes.
    PodDeleted { uid: String },
    /// The pod watch has a complete view for `device`: `present` are its pods' uids.
    PodsSynced {
        device: DeviceId,
        present: BTreeSet<String>,
    },
    /// The result of a Kubernetes write.
    Kube(KubeFeedback),
    /// Periodic pass: liveness, leases, node status, held-back desired sets; `revoked`
    /// are the known devices on the revocation list now.
    Tick { revoked: Vec<DeviceId> },
    /// The broker answered a reconnect without the gateway's session.
    BrokerSessionLost,
    /// The kubelet API opened a log stream (its route is already registered).
    LogRequested {
        device: DeviceId,
        id: RequestId,
        request: LogRequest,
    },
    /// The kubelet API's client went away from an open log stream.
    LogCancelled { device: DeviceId, id: RequestId },
    /// A `StoreDesired` effect failed: nothing more is sent to the device until its set
    /// is stored again.
    DesiredSetNotStored { device: DeviceId },
    /// Sharded gateways: the device was handed to this replica (`true`) or away from it.
    HandedOver { device: DeviceId, to_us: bool },
}

impl FleetInput {
    /// The device whose registry facts (online, Node ours, node context) this input can
    /// change; `None` for inputs that change none (a tick may change every device's).
    pub fn device(&self) -> Option<&DeviceId> {
        match self {
            FleetInput::Device { frame, .. } => Some(&frame.device),
            FleetInput::Kube(feedback) => Some(match feedback {
                KubeFeedback::NodeRegistered { device, .. }
                | KubeFeedback::NodeFailed { device }
                | KubeFeedback::NodeRefused { device, .. }
                | KubeFeedback::DeleteFailed { device, .. }
                | KubeFeedback::NodeRetired { device }
                | KubeFeedback::RetireFailed { device } => device,
            }),
            FleetInput::HandedOver { device, .. } => Some(device),
            _ => None,
        }
    }
}

/// Whether a device's certificate is revoked, as far as the gateway can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    NotRevoked,
    Revoked,
    /// The revocation list cannot be read (why): hellos are refused until it can.
    Unreadable(String),
}

/// The time of an input: monotonic for timeouts, wall clock for Kubernetes timestamps.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub at: Instant,
    pub wall: jiff::Timestamp,
}

impl Now {
    pub fn current() -> Self {
        Self {
            at: Instant::now(),
            wall: jiff::Timestamp::now(),
        }
    }

    /// The wall clock as a Kubernetes timestamp.
    pub fn kube(&self) -> Time {
        now_time(self.wall)
    }
}

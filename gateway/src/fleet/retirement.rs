//! Retirement: a device on the revocation list (`edge-gateway retire`, or its Node
//! deleted with the retire label) is forgotten for good: its pods and desired set are
//! dropped, its store entries purged, its Node, Lease and pods deleted (the pods' owners
//! reschedule them elsewhere), and the device is told to wipe itself and stop: at once if
//! it is online, else whenever it talks again (at most every [`RETIRE_ORDER_INTERVAL`]);
//! that order is the only thing a retired device ever gets.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use edge_protocol::DeviceId;
use tracing::{info, warn};

use super::Outgoing;
use super::effect::{Effects, FleetEffect, MetricUpdate};
use super::input::Now;
use super::state::FleetState;
use crate::kube_writer::{EventReason, EventType, KubeOp, node_event};

/// How often, at most, a retired device that keeps talking is sent its order again.
pub const RETIRE_ORDER_INTERVAL: Duration = Duration::from_secs(10);
/// How long after a failed deletion of a retired device's objects it is tried again.
pub const RETIRE_CLEANUP_RETRY: Duration = Duration::from_secs(10);
/// Bound on remembered order times, so a client inventing revoked ids cannot grow memory.
const MAX_REMEMBERED_ORDERS: usize = 100_000;

/// Why a device was retired, as its Events and its order say.
pub const RETIRED_WHY: &str =
    "retired (edge-gateway retire, or its Node deleted with the retire label)";

/// The retirements under way: orders sent, Kubernetes objects still to delete.
#[derive(Debug, Default)]
pub struct Retirements {
    /// When each retired device was last sent its order.
    ordered: HashMap<DeviceId, Instant>,
    /// Retired devices whose Node, Lease or pods are not deleted yet: when to try again
    /// (`None`: a try is under way).
    cleanup: HashMap<DeviceId, Option<Instant>>,
}

impl Retirements {
    /// Sends the order unless it was sent within [`RETIRE_ORDER_INTERVAL`].
    fn order(&mut self, device: &DeviceId, now: Now, out: &mut Effects) {
        if self
            .ordered
            .get(device)
            .is_some_and(|t| now.at.duration_since(*t) < RETIRE_ORDER_INTERVAL)
        {
            return;
        }
        if self.ordered.len() >= MAX_REMEMBERED_ORDERS {
            self.ordered.clear();
        }
        self.ordered.insert(device.clone(), now.at);
        info!(%device, "telling the retired device to wipe itself and stop");
        out.push(FleetEffect::Mqtt(Outgoing::Retire {
            device: device.clone(),
            reason: RETIRED_WHY.to_owned(),
        }));
        out.push(FleetEffect::Metric(MetricUpdate::Retirement("order_sent")));
    }

    fn delete_objects(&mut self, device: &DeviceId, out: &mut Effects) {
        self.cleanup.insert(device.clone(), None);
        out.push(FleetEffect::Kube(KubeOp::RetireNode {
            device: device.clone(),
            why: RETIRED_WHY.to_owned(),
        }));
    }
}

impl FleetState {
    /// Forgets a device on the revocation list (known to the fleet or not): its pods,
    /// desired set, store entries, Node, Lease; tells it to wipe itself if it is online.
    pub(super) fn retire(&mut self, device: &DeviceId, now: Now, out: &mut Effects) {
        let Some(entry) = self.devices.remove(device) else {
            return;
        };
        out.push(FleetEffect::Metric(MetricUpdate::DevicesTotal(
            self.devices.len(),
        )));
        out.push(FleetEffect::Metric(MetricUpdate::Retirement("retired")));
        self.pods.remove_device(device, out);
        if entry.online {
            out.push(FleetEffect::Metric(MetricUpdate::DeviceOffline));
            self.retirements.order(device, now, out);
        }
        warn!(%device, "device retired: its pods and desired set are dropped, its Node, Lease and pods deleted");
        out.push(FleetEffect::EndLogStreams {
            device: device.clone(),
            tell_device: false,
        });
        Self::end_streams(device, format!("node {device} was retired"), out);
        out.push(FleetEffect::ForgetStored {
            device: device.clone(),
            retired: true,
        });
        out.push(FleetEffect::RetainLogTails {
            device: device.clone(),
            present: Default::default(),
        });
        let told = match &entry.report {
            Some(report) if !report.capabilities.retire => format!(
                "; its agent ({}) does not obey retire orders (protocol 1.3): remove its containers, state, key and certificate by hand",
                if report.agent_version.is_empty() {
                    "version unknown"
                } else {
                    report.agent_version.as_str()
                }
            ),
            _ => String::new(),
        };
        let message = format!("edge-gateway no longer serves device {device}: {RETIRED_WHY}{told}");
        out.push(FleetEffect::Kube(KubeOp::RecordEvent {
            device: device.clone(),
            event: Box::new(node_event(
                device.as_str(),
                EventType::Warning,
                EventReason::DeviceRetired,
                &message,
                now.kube(),
            )),
        }));
        self.retirements.delete_objects(device, out);
    }

    /// A message from a device on the revocation list: refused, the device retired if
    /// the fleet still knew it, and its order sent (again, at most every
    /// [`RETIRE_ORDER_INTERVAL`]). `hello`: it came back (a new connection).
    pub(super) fn refuse_retired(
        &mut self,
        device: &DeviceId,
        hello: bool,
        now: Now,
        out: &mut Effects,
    ) {
        if hello {
            warn!(%device, "a retired device came back; refused");
            out.push(FleetEffect::Metric(MetricUpdate::Retirement("refused")));
        }
        self.retire(device, now, out);
        self.retirements.order(device, now, out);
    }

    /// The result of deleting a retired device's objects: done, or tried again after
    /// [`RETIRE_CLEANUP_RETRY`].
    pub(super) fn on_retire_result(&mut self, device: DeviceId, done: bool, now: Now) {
        if done {
            self.retirements.cleanup.remove(&device);
        } else if let Some(due) = self.retirements.cleanup.get_mut(&device) {
            *due = Some(now.at + RETIRE_CLEANUP_RETRY);
        }
    }

    /// Deletions of retired devices' objects that failed and are due again.
    pub(super) fn retry_retirements(&mut self, now: Now, out: &mut Effects) {
        let due: Vec<DeviceId> = self
            .retirements
            .cleanup
            .iter()
            .filter(|(_, due)| due.is_some_and(|at| at <= now.at))
            .map(|(device, _)| device.clone())
            .collect();
        for device in due {
            self.retirements.delete_objects(&device, out);
        }
    }
}

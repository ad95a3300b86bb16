//! Retirement: a device the gateway no longer serves (revoked, at its next message or
//! the next tick) is forgotten for good: its pods and desired set are dropped, nothing
//! more is sent to it, its Node is left to expire.

use edge_protocol::DeviceId;
use tracing::warn;

use super::effect::{Effects, FleetEffect, MetricUpdate};
use super::input::Now;
use super::state::FleetState;
use crate::kube_writer::{EventReason, EventType, KubeOp, node_event};

impl FleetState {
    pub(super) fn retire(&mut self, device: &DeviceId, why: &str, now: Now, out: &mut Effects) {
        let Some(entry) = self.devices.remove(device) else {
            return;
        };
        out.push(FleetEffect::Metric(MetricUpdate::DevicesTotal(
            self.devices.len(),
        )));
        self.pods.remove_device(device, out);
        if entry.online {
            out.push(FleetEffect::Metric(MetricUpdate::DeviceOffline));
        }
        warn!(%device, why, "device retired: its pods and desired set are dropped and its Node no longer renewed");
        out.push(FleetEffect::EndLogStreams {
            device: device.clone(),
            tell_device: false,
        });
        Self::end_streams(device, format!("node {device} was retired: {why}"), out);
        out.push(FleetEffect::ForgetStored {
            device: device.clone(),
            retired: true,
        });
        let message = format!("edge-gateway no longer serves device {device}: {why}");
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
    }
}

//! Sharded gateways: a device handed to another replica is forgotten here without a
//! word to Kubernetes or to the device (its Node, Lease, pods and containers carry on
//! under the new owner); a device handed to this replica is asked for its node report
//! and a full status report, and rebuilt from them and from the API server as a
//! gateway that lost its store does.

use edge_protocol::DeviceId;
use tracing::info;

use super::Outgoing;
use super::effect::{Effects, FleetEffect, MetricUpdate};
use super::state::FleetState;

impl FleetState {
    /// `device` now belongs to another replica (or this one is fenced).
    pub(super) fn release(&mut self, device: &DeviceId, out: &mut Effects) {
        let Some(entry) = self.devices.remove(device) else {
            return;
        };
        info!(%device, "device handed over to another gateway replica");
        out.push(FleetEffect::Metric(MetricUpdate::DevicesTotal(
            self.devices.len(),
        )));
        if entry.online {
            out.push(FleetEffect::Metric(MetricUpdate::DeviceOffline));
        }
        // its pods leave the book; nothing is deleted or sent
        self.pods.remove_device(device, out);
        out.push(FleetEffect::EndLogStreams {
            device: device.clone(),
            tell_device: false,
        });
        Self::end_streams(
            device,
            format!("node {device} moved to another gateway replica"),
            out,
        );
        out.push(FleetEffect::ForgetStored {
            device: device.clone(),
            retired: false,
        });
    }

    /// `device` now belongs to this replica: ask it to introduce itself at once (its
    /// hello registers the Node as ours again and renews its Lease; its full status
    /// report, with what it acknowledged, rebuilds its sync state).
    pub(super) fn adopt(&mut self, device: &DeviceId, out: &mut Effects) {
        info!(%device, "device handed over to this gateway replica; asking for its report");
        out.push(FleetEffect::Mqtt(Outgoing::StatusResync {
            device: device.clone(),
            reason: "handed over to another gateway replica: send your node report".to_owned(),
        }));
    }
}

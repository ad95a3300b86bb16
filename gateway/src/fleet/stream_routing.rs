//! Stream routing: a device's `up/stream/{id}` messages go to the kubelet API
//! connection of the stream (the routes themselves are in [`crate::device_streams`],
//! which the connections open and close), in order with the device's hellos; and the
//! streams of a device end when it goes away (offline, a new agent session, retired).

use edge_protocol::{DeviceId, RequestId};

use super::effect::{Effects, FleetEffect};
use super::state::FleetState;
use crate::device_streams::DeviceStreamMessage;

impl FleetState {
    pub(super) fn on_stream_message(
        device: &DeviceId,
        id: RequestId,
        message: DeviceStreamMessage,
        out: &mut Effects,
    ) {
        out.push(FleetEffect::DeliverStreamMessage {
            device: device.clone(),
            id,
            message,
        });
    }

    /// Every stream of `device` ends, the client told `reason`.
    pub(super) fn end_streams(device: &DeviceId, reason: impl Into<String>, out: &mut Effects) {
        out.push(FleetEffect::EndDeviceStreams {
            device: device.clone(),
            reason: reason.into(),
        });
    }
}

//! Log routing: requests and cancels from the kubelet API go to the device; chunks from
//! the device go to the request waiting for them (the routes themselves are in
//! [`crate::log_streams`], shared with the kubelet API, which opens and closes them).

use edge_protocol::{DeviceId, LogChunk, LogRequest, RequestId};

use super::Outgoing;
use super::effect::{Effects, FleetEffect};
use super::state::FleetState;

impl FleetState {
    pub(super) fn on_log_chunk(
        device: &DeviceId,
        id: RequestId,
        chunk: LogChunk,
        out: &mut Effects,
    ) {
        out.push(FleetEffect::DeliverLogChunk {
            device: device.clone(),
            id,
            chunk,
        });
    }

    pub(super) fn on_log_requested(
        device: DeviceId,
        id: RequestId,
        request: LogRequest,
        out: &mut Effects,
    ) {
        out.push(FleetEffect::Mqtt(Outgoing::LogRequest {
            device,
            id,
            request,
        }));
    }

    pub(super) fn on_log_cancelled(device: DeviceId, id: RequestId, out: &mut Effects) {
        out.push(FleetEffect::Mqtt(Outgoing::LogCancel { device, id }));
    }
}

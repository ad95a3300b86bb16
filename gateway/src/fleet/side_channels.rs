//! Device messages the [`Fleet`] handle files beside the runner, before they reach the
//! state machine: usage samples go to the [`crate::usage_stats::UsageStore`], agent-update
//! messages (and what hellos say about updates) to the agent rollout, pre-pull statuses
//! (and what hellos say about pre-pull) to the image pre-pull.

use tracing::warn;

use super::Fleet;
use crate::hostile_input::Rejection;
use crate::mqtt_link::{DeviceFrame, DeviceMessage};

impl Fleet {
    /// Files what goes beside the runner; the frame when the runner should see it too.
    pub(super) fn file_side_channels(&self, frame: DeviceFrame) -> Option<DeviceFrame> {
        let frame = self.file_usage_sample(frame)?;
        let frame = self.file_agent_update(frame)?;
        self.file_prepull(frame)
    }

    /// Files a usage sample in the [`UsageStore`] (of a device whose Node is ours) and
    /// exports the agent's counters; other frames are returned for the runner.
    pub(super) fn file_usage_sample(&self, frame: DeviceFrame) -> Option<DeviceFrame> {
        let DeviceMessage::Stats(stats) = frame.message else {
            return Some(frame);
        };
        let now = std::time::Instant::now();
        for gone in self.usage.prune(|d| self.is_known(d.as_str()), now) {
            self.metrics.forget_agent(gone.as_str());
        }
        if self.is_known(frame.device.as_str()) {
            self.metrics
                .agent_counters(frame.device.as_str(), &stats.agent);
            if !self.usage.record(&frame.device, *stats, now) {
                warn!(device = %frame.device, "usage store full; sample dropped");
            }
        }
        None
    }

    /// Sends agent-update messages (and what hellos say about updates) to `inbox`.
    pub fn set_rollout_inbox(&self, inbox: crate::agent_rollout::RolloutInbox) {
        let _ = self.rollouts.set(inbox);
    }

    /// Hands a device's agent-update message to the rollout (and what a hello says
    /// about updates); other frames are returned for the runner.
    pub(super) fn file_agent_update(&self, frame: DeviceFrame) -> Option<DeviceFrame> {
        use crate::agent_rollout::DeviceUpdateMessage;
        use crate::mqtt_link::DeviceAgentUpdate;
        let message = match &frame.message {
            DeviceMessage::Hello(report) => DeviceUpdateMessage::Hello {
                device: frame.device.clone(),
                capable: report.capabilities.agent_update,
                agent_update: report.agent_update.clone(),
            },
            DeviceMessage::AgentUpdate(update) => {
                let device = frame.device.clone();
                match update.clone() {
                    DeviceAgentUpdate::Fetch(fetch) => DeviceUpdateMessage::Fetch { device, fetch },
                    DeviceAgentUpdate::Status(status) => {
                        DeviceUpdateMessage::Status { device, status }
                    }
                }
            }
            _ => return Some(frame),
        };
        let hello = matches!(frame.message, DeviceMessage::Hello(_));
        match self.rollouts.get() {
            Some(inbox) if !inbox.offer(message) => {
                warn!(device = %frame.device, "agent rollout queue full; an update message is dropped");
            }
            Some(_) => {}
            None if !hello => self.reject(&Rejection::new(
                frame.device.as_str(),
                crate::hostile_input::RejectReason::WrongTopic,
                "agent updates are not served by this gateway (run it with --agent-rollout-namespace)",
            )),
            None => {}
        }
        hello.then_some(frame)
    }

    /// Sends pre-pull statuses (and what hellos say about pre-pull) to `inbox`.
    pub fn set_prepull_inbox(&self, inbox: crate::image_prepull::PrepullInbox) {
        let _ = self.prepulls.set(inbox);
    }

    /// Hands a device's pre-pull status to the image pre-pull (and what a hello says
    /// about it); other frames are returned for the runner.
    fn file_prepull(&self, frame: DeviceFrame) -> Option<DeviceFrame> {
        use crate::image_prepull::DevicePrepullMessage;
        let message = match &frame.message {
            DeviceMessage::Hello(report) => DevicePrepullMessage::Hello {
                device: frame.device.clone(),
                capable: report.capabilities.image_prepull,
                status: report.image_prepull.clone(),
            },
            DeviceMessage::Prepull(status) => DevicePrepullMessage::Status {
                device: frame.device.clone(),
                status: status.clone(),
            },
            _ => return Some(frame),
        };
        let hello = matches!(frame.message, DeviceMessage::Hello(_));
        match self.prepulls.get() {
            Some(inbox) if !inbox.offer(message) => {
                warn!(device = %frame.device, "image pre-pull queue full; a status is dropped");
            }
            // a gateway without pre-pull never sent a set: a status is simply not needed
            _ => {}
        }
        hello.then_some(frame)
    }
}

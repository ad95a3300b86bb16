//! The reasons of the Events the gateway writes, with the exact strings Kubernetes
//! shows (`kubectl get events`), and the type (Normal / Warning) of an Event.

use std::fmt;

pub use edge_protocol::EventType;

/// Why an Event was recorded: the `reason` field of the Event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EventReason {
    /// A Node with the device's name exists and was not created by the gateway.
    NodeNameConflict,
    /// The gateway stopped serving a device (revoked, or no longer allowed).
    DeviceRetired,
    /// A pod would make the device's desired set larger than one MQTT message.
    DesiredSetTooLarge,
    /// An image pull secret of a pod is missing or unusable (the kubelet's reason).
    FailedToRetrieveImagePullSecret,
    /// A pod cannot be run as asked, or a non-fatal problem with its spec.
    Failed,
    /// A change of a running pod's volumes (a ConfigMap, Secret or token it mounts)
    /// cannot be delivered; the device keeps the previous files (the kubelet's reason
    /// for a failed volume set-up).
    FailedMount,
    /// The pod sets fields the device does not apply (lifecycle hooks, a security
    /// context, extended resources, ...): it runs without them.
    FieldsNotApplied,
    /// Kubernetes evicted the pod while its device was offline longer than the pod
    /// tolerates (its autonomy budget); the device, back, stops its containers.
    EvictedWhileOffline,
    /// Agent rollouts: the device was ordered to run a new agent version.
    AgentUpdateStarted,
    /// The new agent is verified and starting on trial.
    AgentUpdateStaged,
    /// The device runs the rollout's agent version.
    AgentUpdated,
    /// The new agent did not report healthy in time: the previous one is back.
    AgentUpdateRolledBack,
    /// The update could not be made (refused by the device, no progress in time).
    AgentUpdateFailed,
    /// The agent rollout changed phase (Progressing, Complete, Paused, Invalid).
    AgentRollout(String),
    /// Image pre-pull: every image of the device's set is on it.
    ImagesPrepulled,
    /// Image pre-pull: a pull failed on the device (it tries again with back-off).
    ImagePrepullFailed,
    /// A pre-pull changed phase (`PrepullProgressing`, `PrepullComplete`,
    /// `PrepullInvalid`).
    Prepull(String),
    /// A reason the device reported about its pod, in its own words (`Pulled`,
    /// `Started`, `BackOff`, ...).
    Reported(String),
}

impl EventReason {
    /// The `reason` string of the Event.
    pub fn as_str(&self) -> &str {
        match self {
            EventReason::NodeNameConflict => "NodeNameConflict",
            EventReason::DeviceRetired => "DeviceRetired",
            EventReason::DesiredSetTooLarge => "DesiredSetTooLarge",
            EventReason::FailedToRetrieveImagePullSecret => "FailedToRetrieveImagePullSecret",
            EventReason::Failed => "Failed",
            EventReason::FailedMount => "FailedMount",
            EventReason::EvictedWhileOffline => "EvictedWhileOffline",
            EventReason::FieldsNotApplied => "FieldsNotApplied",
            EventReason::AgentUpdateStarted => "AgentUpdateStarted",
            EventReason::AgentUpdateStaged => "AgentUpdateStaged",
            EventReason::AgentUpdated => "AgentUpdated",
            EventReason::AgentUpdateRolledBack => "AgentUpdateRolledBack",
            EventReason::AgentUpdateFailed => "AgentUpdateFailed",
            EventReason::AgentRollout(phase) => phase,
            EventReason::ImagesPrepulled => "ImagesPrepulled",
            EventReason::ImagePrepullFailed => "ImagePrepullFailed",
            EventReason::Prepull(phase) => phase,
            EventReason::Reported(reason) => reason,
        }
    }
}

impl fmt::Display for EventReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `type` string of an Event.
pub fn event_type_str(event_type: EventType) -> &'static str {
    match event_type {
        EventType::Normal => "Normal",
        EventType::Warning => "Warning",
    }
}

#[cfg(test)]
mod tests;

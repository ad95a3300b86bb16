//! Events the device records about its pods (`up/events`), as the kubelet records them.

use serde::{Deserialize, Serialize};

use crate::node_report::UnixMillis;

/// A batch of events, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct PodEventReport {
    pub events: Vec<PodEvent>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum EventType {
    #[default]
    Normal,
    Warning,
}

/// One event: `Pulling`, `Pulled`, `Created`, `Started`, `Failed`, `BackOff`,
/// `Killing`, `Unhealthy`, ...
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct PodEvent {
    pub pod_uid: String,
    pub namespace: String,
    pub pod_name: String,
    /// The container the event is about, if any (`spec.containers{name}`).
    pub container: Option<String>,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub reason: String,
    pub message: String,
    pub timestamp: UnixMillis,
    /// How many times it happened since it was last reported (at least 1).
    pub count: u32,
}

//! The Events of agent rollouts: one on a Node when its update changes phase (started,
//! staged, updated, rolled back, failed), one on the rollout ConfigMap when the rollout
//! does (Progressing, Complete, Paused, Invalid).

use edge_protocol::EventType;
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::plan::{RolloutPhase, RolloutStatus};
use super::progress::{NodePhase, NodeProgress};
use super::spec::ROLLOUT_CONFIGMAP;
use crate::kube_writer::{EventReason, configmap_event, node_event, post_configmap_event};

/// The Node's Event for its new progress (`None` for a phase that says nothing new, such
/// as a download's progress).
pub fn node_event_for(
    node: &str,
    progress: &NodeProgress,
    previous: Option<&NodeProgress>,
) -> Option<Event> {
    let version = &progress.version;
    let (reason, message) = match progress.phase {
        NodePhase::Ordered => (
            EventReason::AgentUpdateStarted,
            format!("updating the agent to version {version}"),
        ),
        NodePhase::Downloading => return None,
        NodePhase::Staged => (
            EventReason::AgentUpdateStaged,
            format!("agent {version} verified; starting it on trial"),
        ),
        NodePhase::Committed => {
            // nothing to say of a Node that already ran the version when the rollout began
            previous.filter(|p| p.version == *version)?;
            (
                EventReason::AgentUpdated,
                format!("the agent runs version {version}"),
            )
        }
        NodePhase::RolledBack => (
            EventReason::AgentUpdateRolledBack,
            format!(
                "agent {version} rolled back, the previous agent runs again: {}",
                progress.message
            ),
        ),
        NodePhase::Failed => (
            EventReason::AgentUpdateFailed,
            format!("agent update to {version} failed: {}", progress.message),
        ),
    };
    let event_type = if progress.phase.failed() {
        EventType::Warning
    } else {
        EventType::Normal
    };
    Some(node_event(
        node,
        event_type,
        reason,
        &message,
        Time(jiff::Timestamp::now()),
    ))
}

/// Records the rollout's new phase on its ConfigMap (errors are logged).
pub async fn record_rollout_event(
    client: &kube::Client,
    namespace: &str,
    configmap_uid: Option<&str>,
    status: &RolloutStatus,
) {
    let phase = format!("{:?}", status.phase);
    let event_type = match status.phase {
        RolloutPhase::Paused | RolloutPhase::Invalid => EventType::Warning,
        RolloutPhase::Progressing | RolloutPhase::Complete => EventType::Normal,
    };
    let message = match status.message.as_str() {
        "" => format!(
            "agent {}: {} of {} Node(s) updated",
            status.version, status.updated, status.selected
        ),
        m => m.to_owned(),
    };
    let event = configmap_event(
        namespace,
        ROLLOUT_CONFIGMAP,
        configmap_uid,
        event_type,
        EventReason::AgentRollout(phase).as_str(),
        &message,
    );
    post_configmap_event(client, &event).await;
}

//! The Events of agent rollouts: one on a Node when its update changes phase (started,
//! staged, updated, rolled back, failed), one on the rollout ConfigMap when the rollout
//! does (Progressing, Complete, Paused, Invalid).

use edge_protocol::EventType;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Api;
use kube::api::PostParams;
use tracing::warn;

use super::plan::{RolloutPhase, RolloutStatus};
use super::progress::{NodePhase, NodeProgress};
use super::spec::ROLLOUT_CONFIGMAP;
use crate::kube_writer::{EventReason, node_event};

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
        RolloutPhase::Paused | RolloutPhase::Invalid => "Warning",
        RolloutPhase::Progressing | RolloutPhase::Complete => "Normal",
    };
    let message = match status.message.as_str() {
        "" => format!(
            "agent {}: {} of {} Node(s) updated",
            status.version, status.updated, status.selected
        ),
        m => m.to_owned(),
    };
    let now = Time(jiff::Timestamp::now());
    let event = Event {
        metadata: ObjectMeta {
            generate_name: Some(format!("{ROLLOUT_CONFIGMAP}.")),
            namespace: Some(namespace.to_owned()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            kind: Some("ConfigMap".to_owned()),
            api_version: Some("v1".to_owned()),
            name: Some(ROLLOUT_CONFIGMAP.to_owned()),
            namespace: Some(namespace.to_owned()),
            uid: configmap_uid.map(str::to_owned),
            ..Default::default()
        },
        reason: Some(EventReason::AgentRollout(phase).as_str().to_owned()),
        message: Some(message),
        type_: Some(event_type.to_owned()),
        source: Some(EventSource {
            component: Some("edge-gateway".to_owned()),
            host: None,
        }),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        count: Some(1),
        reporting_component: Some("edge-gateway".to_owned()),
        reporting_instance: Some("edge-gateway".to_owned()),
        ..Default::default()
    };
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    if let Err(e) = events.create(&PostParams::default(), &event).await {
        warn!(error = %e, "cannot record the agent rollout's Event");
    }
}

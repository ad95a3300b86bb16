//! The rollout controller's decisions (pure): from the spec and what the Nodes say, which
//! devices to order now, which Nodes' progress to change, and the rollout's status.
//!
//! Rules, per Node the selector picks, in this order (the device's own progress first:
//! a new agent on trial already reports the new version, but is not updated until its
//! supervisor commits it):
//! - **updated**: its progress for this version is `committed`;
//! - **failed**: its progress for this version is `rolledBack` or `failed`, or it is
//!   online and its update did not move for `progressDeadline` (then marked `failed`);
//! - **updating**: ordered, downloading or staged, for this version or an earlier one that
//!   has not stalled (counts against `maxUnavailable`; a device ordered and then offline
//!   keeps its place until it is back; an offline device not yet ordered does not count);
//! - **updated** too: no progress for this version, and its agent reports the version
//!   (it ran it before the rollout);
//! - **blocked**: a device of this replica that cannot update itself (its agent has no
//!   supervisor or no pinned key) or with no release for its architecture: it never
//!   counts as a failure, the status names it;
//! - **pending**: the rest. While failed ≤ `maxFailures` and the rollout is not paused,
//!   pending devices of this replica that are online are ordered, by name, until
//!   `maxUnavailable` are updating.
//!
//! A sharded gateway runs this on every replica over all Nodes (their progress is on the
//! Nodes), and each orders only its own devices; two replicas may order at once, so the
//! fleet can briefly have up to one device per replica more than `maxUnavailable` in
//! flight. Updated, updating and failed Nodes count fleet-wide (a failure anywhere
//! pauses every replica); pending and blocked ones only on their own replica, whose
//! status says Complete once its own devices are done and nothing is updating.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::progress::{NodePhase, NodeProgress};
use super::spec::RolloutSpec;

/// What the controller knows of one device Node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// The agent version it reports (from `status.nodeInfo.kubeletVersion`).
    pub agent_version: String,
    /// Ready (its device is connected).
    pub ready: bool,
    pub progress: Option<NodeProgress>,
    /// This replica's device: ordered and marked by this replica only.
    pub ours: bool,
    /// Why this replica cannot update the device, if it cannot (no capability, no
    /// release for its architecture); `None` for others' devices.
    pub blocked: Option<String>,
}

/// One Node's progress to write (the annotation) and, when its phase changed, an Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub node: String,
    pub progress: NodeProgress,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RolloutPhase {
    Progressing,
    Complete,
    Paused,
    Invalid,
}

/// The rollout's status (the ConfigMap's `edge-kube.io/rollout-status` annotation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    pub phase: RolloutPhase,
    pub version: String,
    pub selected: usize,
    pub updated: usize,
    pub updating: usize,
    pub failed: usize,
    pub blocked: usize,
    pub pending: usize,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The failed Nodes (at most 20), with why.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub failures: BTreeMap<String, String>,
    /// The blocked Nodes of this replica (at most 20), with why.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub blocked_nodes: BTreeMap<String, String>,
}

impl RolloutStatus {
    /// The status of a ConfigMap that cannot be parsed.
    pub fn invalid(message: String) -> Self {
        Self {
            phase: RolloutPhase::Invalid,
            version: String::new(),
            selected: 0,
            updated: 0,
            updating: 0,
            failed: 0,
            blocked: 0,
            pending: 0,
            message,
            failures: BTreeMap::new(),
            blocked_nodes: BTreeMap::new(),
        }
    }
}

/// The decisions of one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Devices to send the order to (new ones, and ordered ones that have not answered
    /// within [`ORDER_RESEND`]).
    pub orders: Vec<String>,
    pub marks: Vec<Mark>,
    pub status: RolloutStatus,
}

/// An order not answered in this long is sent again (lost while the device reconnected).
pub const ORDER_RESEND: Duration = Duration::from_secs(60);

const LISTED: usize = 20;

enum Standing {
    Updated,
    Failed(String),
    Updating,
    Blocked,
    Pending,
    /// Another replica's device that is neither updated, updating nor failed: that
    /// replica counts it (pending or blocked there).
    Elsewhere,
}

pub fn plan(spec: &RolloutSpec, nodes: &[NodeView], now_ms: u64) -> Plan {
    let mut marks = Vec::new();
    let mut orders = Vec::new();
    let mut status = RolloutStatus::invalid(String::new());
    status.phase = RolloutPhase::Progressing;
    status.version = spec.version.clone();
    let mut pending_ours: Vec<&NodeView> = Vec::new();
    let deadline_ms = spec.progress_deadline.as_millis() as u64;
    for node in nodes.iter().filter(|n| spec.selector.matches(&n.labels)) {
        status.selected += 1;
        let current = node.progress.as_ref();
        let progress = current.filter(|p| p.version == spec.version);
        let stalled = |p: &NodeProgress| now_ms.saturating_sub(p.since) > deadline_ms;
        let standing = if progress.is_some_and(|p| p.phase == NodePhase::Committed) {
            Standing::Updated
        } else if let Some(p) = progress.filter(|p| p.phase.failed()) {
            Standing::Failed(p.message.clone())
        } else if let Some(p) = progress.filter(|p| p.phase.in_progress() && stalled(p)) {
            if node.ours && node.ready {
                let mut failed = NodeProgress::new(&spec.version, NodePhase::Failed, now_ms);
                failed.message = format!(
                    "no progress for {} s in phase {:?} (progressDeadline)",
                    deadline_ms / 1000,
                    p.phase
                );
                let why = failed.message.clone();
                marks.push(Mark {
                    node: node.name.clone(),
                    progress: failed,
                });
                Standing::Failed(why)
            } else {
                // offline (or another replica's): it keeps its place until it is back
                Standing::Updating
            }
        } else if let Some(p) = current.filter(|p| p.phase.in_progress() && !stalled(p)) {
            let unanswered = p.version == spec.version
                && p.phase == NodePhase::Ordered
                && now_ms.saturating_sub(p.since) > ORDER_RESEND.as_millis() as u64;
            if node.ours && node.ready && unanswered {
                orders.push(node.name.clone());
            }
            Standing::Updating
        } else if node.agent_version == spec.version {
            if node.ours && progress.is_none() {
                marks.push(Mark {
                    node: node.name.clone(),
                    progress: NodeProgress::new(&spec.version, NodePhase::Committed, now_ms),
                });
            }
            Standing::Updated
        } else if let (true, Some(why)) = (node.ours, &node.blocked) {
            if status.blocked_nodes.len() < LISTED {
                status.blocked_nodes.insert(node.name.clone(), why.clone());
            }
            Standing::Blocked
        } else if !node.ours {
            Standing::Elsewhere
        } else {
            if node.ready {
                pending_ours.push(node);
            }
            Standing::Pending
        };
        match standing {
            Standing::Updated => status.updated += 1,
            Standing::Failed(why) => {
                status.failed += 1;
                if status.failures.len() < LISTED {
                    status.failures.insert(node.name.clone(), why);
                }
            }
            Standing::Updating => status.updating += 1,
            Standing::Blocked => status.blocked += 1,
            Standing::Pending => status.pending += 1,
            Standing::Elsewhere => {}
        }
    }
    let too_many_failures = status.failed > spec.max_failures as usize;
    if spec.paused || too_many_failures {
        status.phase = RolloutPhase::Paused;
        status.message = if too_many_failures {
            format!(
                "paused: {} Node(s) failed to update (maxFailures {}); fix the release and set a new \
                 version, or raise maxFailures to go on",
                status.failed, spec.max_failures
            )
        } else {
            "paused (data.paused is true)".to_owned()
        };
    } else {
        let budget = spec
            .max_unavailable
            .of(status.selected)
            .saturating_sub(status.updating);
        pending_ours.sort_by(|a, b| a.name.cmp(&b.name));
        for node in pending_ours.into_iter().take(budget) {
            orders.push(node.name.clone());
            marks.push(Mark {
                node: node.name.clone(),
                progress: NodeProgress::new(&spec.version, NodePhase::Ordered, now_ms),
            });
            status.pending -= 1;
            status.updating += 1;
        }
        if status.pending == 0 && status.updating == 0 {
            status.phase = RolloutPhase::Complete;
            if status.blocked > 0 {
                status.message = format!(
                    "{} Node(s) cannot be updated over the air (see blockedNodes)",
                    status.blocked
                );
            }
        }
    }
    Plan {
        orders,
        marks,
        status,
    }
}

#[cfg(test)]
mod tests;

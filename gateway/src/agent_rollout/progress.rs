//! A Node's agent-update progress, kept on the Node itself in the annotation
//! `edge-kube.io/agent-update` (pure encoding): every replica of a sharded gateway reads
//! the whole rollout's progress from the Nodes, and `kubectl get nodes -o
//! custom-columns=...` shows it.
//!
//! ```text
//! edge-kube.io/agent-update: {"version":"0.4.0","phase":"rolledBack","since":1767225600000,
//!                             "message":"version 0.4.0 did not report healthy within 120 s"}
//! ```

use edge_protocol::{AgentUpdatePhase, AgentUpdateStatus};
use serde::{Deserialize, Serialize};

/// The annotation's key.
pub const AGENT_UPDATE_ANNOTATION: &str = "edge-kube.io/agent-update";

/// Where a Node is with the rollout's version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum NodePhase {
    /// The gateway sent the order; the device has not answered yet.
    Ordered,
    Downloading,
    Staged,
    Committed,
    RolledBack,
    /// Refused by the device, or no progress within the rollout's progressDeadline.
    Failed,
}

impl NodePhase {
    /// The phase a device's status names (`None` for one of a newer protocol).
    pub fn from_device(phase: AgentUpdatePhase) -> Option<Self> {
        Some(match phase {
            AgentUpdatePhase::Downloading => NodePhase::Downloading,
            AgentUpdatePhase::Staged => NodePhase::Staged,
            AgentUpdatePhase::Committed => NodePhase::Committed,
            AgentUpdatePhase::RolledBack => NodePhase::RolledBack,
            AgentUpdatePhase::Failed => NodePhase::Failed,
            AgentUpdatePhase::Unknown => return None,
        })
    }

    /// The order of the phases of one update: a device's status may only move forward
    /// (a later status never takes an update back to an earlier phase).
    fn rank(self) -> u8 {
        match self {
            NodePhase::Ordered => 0,
            NodePhase::Downloading => 1,
            NodePhase::Staged => 2,
            NodePhase::Committed | NodePhase::RolledBack | NodePhase::Failed => 3,
        }
    }

    /// Whether a device may report `next` for an update in this phase: forward, or a
    /// download's progress; nothing after a final phase.
    pub fn may_move_to(self, next: NodePhase) -> bool {
        self.rank() < 3 && next.rank() >= self.rank()
    }

    /// The device is busy with the update (it counts against maxUnavailable).
    pub fn in_progress(self) -> bool {
        matches!(
            self,
            NodePhase::Ordered | NodePhase::Downloading | NodePhase::Staged
        )
    }

    /// The update failed on this device (it counts against maxFailures).
    pub fn failed(self) -> bool {
        matches!(self, NodePhase::RolledBack | NodePhase::Failed)
    }
}

/// The annotation's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeProgress {
    pub version: String,
    pub phase: NodePhase,
    /// Unix milliseconds when the Node entered the phase.
    pub since: u64,
    /// Download progress, e.g. `40%` (downloading only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub progress: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

impl NodeProgress {
    pub fn new(version: &str, phase: NodePhase, since: u64) -> Self {
        Self {
            version: version.to_owned(),
            phase,
            since,
            progress: String::new(),
            message: String::new(),
        }
    }

    /// What a device's status says (`None` for a phase of a newer protocol). `since` is
    /// when the update last moved: a new phase, or the download's percentage.
    pub fn from_device(
        status: &AgentUpdateStatus,
        previous: Option<&NodeProgress>,
        now: u64,
    ) -> Option<Self> {
        let phase = NodePhase::from_device(status.phase)?;
        let progress = match (status.phase, status.total_bytes) {
            (AgentUpdatePhase::Downloading, total) if total > 0 => format!(
                "{}%",
                status.bytes_received.min(total).saturating_mul(100) / total
            ),
            _ => String::new(),
        };
        let since = match previous {
            Some(p)
                if p.version == status.version && p.phase == phase && p.progress == progress =>
            {
                p.since
            }
            _ => now,
        };
        Some(Self {
            version: status.version.clone(),
            phase,
            since,
            progress,
            message: status.message.chars().take(512).collect(),
        })
    }

    /// Parses the annotation; `None` for a value this gateway cannot read (treated as no
    /// progress, and overwritten by the next change).
    pub fn parse(value: &str) -> Option<Self> {
        serde_json::from_str(value).ok()
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Whether writing `self` over `previous` changes what a reader learns: a new phase
    /// or version, a message, or the progress moving by a tenth or more.
    pub fn worth_writing_over(&self, previous: Option<&NodeProgress>) -> bool {
        let Some(p) = previous else { return true };
        if p.version != self.version || p.phase != self.phase || p.message != self.message {
            return true;
        }
        let pct = |s: &str| s.trim_end_matches('%').parse::<u32>().unwrap_or(0);
        pct(&self.progress) / 10 != pct(&p.progress) / 10
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_annotation_round_trips_and_garbage_is_no_progress() {
        let mut p = NodeProgress::new("0.4.0", NodePhase::RolledBack, 7);
        p.message = "did not report healthy".into();
        assert_eq!(NodeProgress::parse(&p.encode()), Some(p));
        assert_eq!(NodeProgress::parse("not json"), None);
        assert_eq!(
            NodeProgress::parse(r#"{"version":"1","phase":"x","since":1}"#),
            None
        );
    }

    #[test]
    fn a_device_status_keeps_its_phase_start_and_rounds_progress() {
        let status = AgentUpdateStatus {
            version: "0.4.0".into(),
            phase: AgentUpdatePhase::Downloading,
            bytes_received: 450,
            total_bytes: 1000,
            ..Default::default()
        };
        let first = NodeProgress::from_device(&status, None, 100).unwrap();
        assert_eq!(
            (first.phase, first.since, first.progress.as_str()),
            (NodePhase::Downloading, 100, "45%")
        );
        let later = NodeProgress::from_device(
            &AgentUpdateStatus {
                bytes_received: 480,
                ..status.clone()
            },
            Some(&first),
            200,
        )
        .unwrap();
        assert_eq!(later.since, 200, "the download moved at 200");
        assert!(!later.worth_writing_over(Some(&first)), "45% → 48%");
        let more = NodeProgress::from_device(
            &AgentUpdateStatus {
                bytes_received: 510,
                ..status.clone()
            },
            Some(&later),
            300,
        )
        .unwrap();
        assert!(more.worth_writing_over(Some(&later)), "48% → 51%");
        let staged = NodeProgress::from_device(
            &AgentUpdateStatus {
                phase: AgentUpdatePhase::Staged,
                ..status
            },
            Some(&more),
            400,
        )
        .unwrap();
        assert_eq!((staged.since, staged.progress.as_str()), (400, ""));
        assert!(staged.worth_writing_over(Some(&more)));
    }

    #[test]
    fn a_status_that_did_not_move_keeps_its_time_and_unknown_phases_are_ignored() {
        let status = AgentUpdateStatus {
            version: "0.4.0".into(),
            phase: AgentUpdatePhase::Staged,
            ..Default::default()
        };
        let staged = NodeProgress::from_device(&status, None, 100).unwrap();
        let again = NodeProgress::from_device(&status, Some(&staged), 900).unwrap();
        assert_eq!(again.since, 100);
        let newer = AgentUpdateStatus {
            phase: AgentUpdatePhase::Unknown,
            ..status
        };
        assert_eq!(NodeProgress::from_device(&newer, Some(&staged), 900), None);
    }

    #[test]
    fn statuses_only_move_an_update_forward() {
        use NodePhase::*;
        assert!(Ordered.may_move_to(Downloading) && Ordered.may_move_to(RolledBack));
        assert!(Downloading.may_move_to(Downloading), "progress");
        assert!(Staged.may_move_to(Committed));
        assert!(!Staged.may_move_to(Downloading));
        assert!(!Committed.may_move_to(Failed) && !RolledBack.may_move_to(Staged));
    }

    #[test]
    fn in_progress_and_failed_phases() {
        assert!(NodePhase::Ordered.in_progress() && NodePhase::Staged.in_progress());
        assert!(!NodePhase::Committed.in_progress() && !NodePhase::Committed.failed());
        assert!(NodePhase::RolledBack.failed() && NodePhase::Failed.failed());
    }
}

//! Agent rollouts: the fleet's desired agent version, declared in the ConfigMap
//! `edge-agent-rollout` (see [`spec`]), rolled out in waves over MQTT (protocol 1.4's
//! `down/agent-update` and `up/agent-update`) to devices whose agents update themselves
//! A/B under `edge-agent supervise`, with the binaries signed offline by the fleet's key.
//!
//! Progress shows per Node (the annotation `edge-kube.io/agent-update`, Events, and the
//! agent version in `kubectl get nodes`' VERSION column) and for the whole rollout (the
//! ConfigMap's `edge-kube.io/rollout-status` annotation and Events).
//!
//! | file | what is there |
//! |---|---|
//! | `spec.rs` | the ConfigMap's data: version, nodeSelector, maxUnavailable, maxFailures, deadlines, paused (pure) |
//! | `progress.rs` | a Node's progress annotation (pure) |
//! | `plan.rs` | the controller: which devices to order, which Nodes' progress to change, the rollout's status (pure) |
//! | `fetch_gate.rs` | which chunk fetches are answered: the rollout's version only, at a bounded rate per device (pure) |
//! | `catalog.rs` | the signed releases under `<store-dir>/agent-releases`, hashed once, read in chunks |
//! | `events.rs` | the Events on Nodes and on the ConfigMap |
//! | `runner.rs` | the thin async loop: watches, device messages, planning, writes |
//! | `cli.rs` | `edge-gateway agent-release add|list` |

use edge_protocol::{AgentUpdateFetch, AgentUpdateStatus, DeviceId};

pub mod catalog;
pub mod cli;
pub mod events;
pub mod fetch_gate;
pub mod plan;
pub mod progress;
pub mod runner;
pub mod spec;

/// The rollout's status annotation on the ConfigMap.
pub const ROLLOUT_STATUS_ANNOTATION: &str = "edge-kube.io/rollout-status";

/// Device messages that concern agent updates, forwarded by the fleet's handle.
#[derive(Debug, Clone)]
pub enum DeviceUpdateMessage {
    /// What a hello says about updates.
    Hello {
        device: DeviceId,
        capable: bool,
        agent_update: Option<AgentUpdateStatus>,
    },
    Status {
        device: DeviceId,
        status: AgentUpdateStatus,
    },
    Fetch {
        device: DeviceId,
        fetch: AgentUpdateFetch,
    },
}

/// Messages waiting for the rollout runner at most; more are dropped (a device asks
/// again, and hellos and statuses are repeated).
pub const MESSAGE_QUEUE: usize = 4096;

/// The fleet's side of the rollout runner's queue.
pub type RolloutInbox = crate::side_inbox::SideInbox<DeviceUpdateMessage>;

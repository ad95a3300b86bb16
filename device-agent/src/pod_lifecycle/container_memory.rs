//! What the reconciler remembers between passes: per pod ([`PodEntry`]: spec, volume
//! state) and per container ([`ContainerMemory`]: the operation in flight, failures and
//! back-offs, restart decisions), and the spec hash that tells a changed container.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use edge_protocol::{ContainerSpec, PodSpec, UnixMillis};

use super::inputs_effects::FailureReason;
use crate::backoff::Backoff;

/// Hash of what a container was created from; a change replaces the container (in
/// Kubernetes only the image of a running pod can change). The environment is left out:
/// the gateway resolves it from ConfigMaps and Secrets, and like the kubelet the agent
/// does not restart a container when those change later.
pub fn spec_hash(c: &ContainerSpec) -> String {
    let mut c = c.clone();
    c.env.clear();
    let bytes = serde_json::to_vec(&c).unwrap_or_default();
    format!("{:016x}", spec_hash_bytes(&bytes))
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum VolumeState {
    NotPrepared,
    InFlight,
    Ready,
    Failed {
        message: String,
        at: UnixMillis,
        backoff: Backoff,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Image,
    Create,
    Start,
}

/// What the machine remembers about one container of a desired pod.
#[derive(Debug, Clone, Default)]
pub(super) struct ContainerMemory {
    pub(super) op: Option<Op>,
    /// Restart count of the instance being brought up (image → create → start).
    pub(super) pipeline: Option<u32>,
    pub(super) image_ok: bool,
    /// The last pull/create failure (its back-off is `attempt_backoff`).
    pub(super) failure: Option<Failure>,
    pub(super) attempt_backoff: Backoff,
    pub(super) backoff_event_sent: bool,
    /// Crash-loop back-off; `None` until first needed (then rebuilt from restart count).
    pub(super) crash_backoff: Option<Backoff>,
    /// Exited instance for which a restart was already decided.
    pub(super) restart_decided_for: Option<String>,
    pub(super) crash_event_for: Option<String>,
    /// The wait of the current crash-loop back-off (for the status message).
    pub(super) crash_wait: Duration,
    /// Highest restart count ever created, so names never collide.
    pub(super) max_restart: Option<u32>,
    /// A container created by us that no listing has shown yet (and since when).
    pub(super) awaiting: Option<(String, UnixMillis)>,
}

/// A pull or create failure: the waiting reason reported, its message, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Failure {
    pub(super) reason: FailureReason,
    pub(super) message: String,
    pub(super) at: UnixMillis,
}

/// How long a created container may be missing from listings before it counts as gone.
pub(super) const AWAITING_LIMIT_MS: UnixMillis = 30_000;

#[derive(Debug, Clone)]
pub(super) struct PodEntry {
    pub(super) spec: Arc<PodSpec>,
    pub(super) accepted_at: UnixMillis,
    pub(super) volumes: VolumeState,
    pub(super) volumes_hash: String,
    pub(super) containers: BTreeMap<String, ContainerMemory>,
    pub(super) removed_reported: bool,
    /// Ended by the node (evicted, past its active deadline): its containers are
    /// stopped and never started again.
    pub(super) ended: Option<NodeEnding>,
}

/// Why and when the node ended a pod, as the kubelet reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct NodeEnding {
    /// The pod's status reason: `Evicted`, `DeadlineExceeded`.
    pub(super) reason: &'static str,
    pub(super) message: String,
    pub(super) at: UnixMillis,
    /// SIGTERM to SIGKILL for its containers.
    pub(super) grace: Duration,
    /// Its directory (emptyDir volumes) was removed once its containers stopped.
    pub(super) cleaned: bool,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct ProbeState {
    pub(super) ready: bool,
    pub(super) started: bool,
    pub(super) liveness_failed: bool,
}

impl ProbeState {
    /// A running container's state before any probe result, as on the kubelet: not ready
    /// while it has a readiness probe, not started while it has a startup probe.
    pub(super) fn initial(c: &ContainerSpec) -> Self {
        Self {
            ready: c.readiness_probe.is_none(),
            started: c.startup_probe.is_none(),
            liveness_failed: false,
        }
    }
}

pub(super) fn spec_hash_bytes(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests;
